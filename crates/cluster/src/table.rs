//! The lease table: one DynamoDB table per source, every write conditional
//! as KCL's are (see `lease.rs` for the row).
//!
//! | operation | condition | update |
//! |---|---|---|
//! | create | `leaseKey` absent | the whole row |
//! | renew | counter = the holder's, owner = the holder | counter + 1 (many in one transaction) |
//! | take | counter (and owner) = what the taker observed | owner, counter + 1, owner switches + 1, epoch + 1 |
//! | checkpoint | counter = the holder's, owner = the holder | checkpoint, counter + 1, owner switches = 0 |
//! | release | owner = the holder | owner removed, counter + 1 |

use std::collections::HashSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, GlobalSecondaryIndex, KeyType, Projection, ProjectionType, Put, ReturnValue,
    ScalarAttributeType, TransactWriteItem, Update,
};

use crate::lease::{
    CHECKPOINT, CHILDREN, COUNTER, DONE, ENTITY_TYPE, EPOCH, KEY, LAG_MILLIS, OWNER, OWNER_ADDRESS, OWNER_SWITCHES,
    RECORDS_PER_SECOND, SUB_SEQUENCE, number,
};
use crate::{ClusterError, Lease, LeaseCheckpoint, LeaseReport, ShardSpec};
use tributary_source::dynamodb::{DynamoTable, Expression, Transacted};

/// A renewal's condition: the counter and owner are what the holder last wrote.
const RENEW_CONDITION: &str = "#counter = :counter AND #owner = :me";
/// DynamoDB's limit of actions in one transaction.
pub(crate) const TRANSACTION_ITEMS: usize = 100;

/// Scans a shard sync makes after a refused transaction before it creates
/// the rest lease by lease.
const SYNC_RESCANS: usize = 2;

/// One lease to renew, with what to publish and the checkpoint to mirror if it moved.
#[derive(Debug, Clone, Copy)]
pub struct Renewal<'a> {
    /// The lease as this process last wrote it.
    pub lease: &'a Lease,
    /// Lag, rate, address, done.
    pub report: Option<&'a LeaseReport>,
    /// The checkpoint to write (with `ownerSwitchesSinceCheckpoint` back to 0).
    pub checkpoint: Option<&'a LeaseCheckpoint>,
}

impl Renewal<'_> {
    /// The lease as the renewal left it.
    fn renewed(&self) -> Lease {
        let mut lease = self.lease.clone();
        lease.counter += 1;
        if let Some(report) = self.report {
            lease.report = Some(report.clone());
        }
        if let Some(checkpoint) = self.checkpoint {
            lease.checkpoint = checkpoint.clone();
            lease.owner_switches_since_checkpoint = 0;
        }
        lease
    }
}

/// A take's update and its condition.
struct TakeExpression {
    condition: &'static str,
    expression: UpdateExpression,
}

/// An `UpdateItem` expression with its placeholders.
struct UpdateExpression {
    update: String,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

/// KCL 3.x's index of each worker's leases (hash `leaseOwner`, range `leaseKey`, keys only).
const OWNER_INDEX: &str = "LeaseOwnerToLeaseKeyIndex";

/// One source's lease table, as one process (`worker`) uses it.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    table: DynamoTable,
    worker: String,
}

impl LeaseTable {
    /// The lease table of `source` in `cluster`, named so a KCL user
    /// recognises it (KCL names its table after the application).
    pub fn table_name(cluster: &str, source: &str) -> String {
        format!("tributary-{cluster}-{source}")
    }

    /// Table `table` as process `worker` writes it.
    pub fn new(client: Client, table: impl Into<String>, worker: impl Into<String>) -> LeaseTable {
        LeaseTable { table: DynamoTable::new(client, table), worker: worker.into() }
    }

    /// This process's id, as `leaseOwner` holds it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Creates the table if it is missing (KCL's schema, `PAY_PER_REQUEST`,
    /// the owner index), and refuses one the Java KCL 3.x manages.
    pub async fn ensure(&self) -> Result<(), ClusterError> {
        let table = &self.table;
        let index = GlobalSecondaryIndex::builder()
            .index_name(OWNER_INDEX)
            .key_schema(table.key(OWNER, KeyType::Hash)?)
            .key_schema(table.key(KEY, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(|error| table.error("CreateTable", error))?;
        let create = table
            .client
            .create_table()
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(table.attribute(KEY, ScalarAttributeType::S)?)
            .attribute_definitions(table.attribute(OWNER, ScalarAttributeType::S)?)
            .key_schema(table.key(KEY, KeyType::Hash)?)
            .global_secondary_indexes(index);
        table.ensure(create).await?;
        self.refuse_kcl3_rows().await
    }

    /// KCL 3.5 keeps its leader and worker metrics in the lease table, marked by `entityType`.
    async fn refuse_kcl3_rows(&self) -> Result<(), ClusterError> {
        let filter = Expression {
            text: "attribute_exists(#entity) AND #entity <> :lease",
            names: &[("#entity", ENTITY_TYPE)],
            values: vec![(":lease", AttributeValue::S("LEASE".to_owned()))],
        };
        let foreign = self.table.scan(Some(filter)).await?;
        match foreign.first().and_then(|item| item.get(ENTITY_TYPE)) {
            Some(AttributeValue::S(entity)) => {
                Err(ClusterError::ForeignTable { table: self.table.name.clone(), entity: entity.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Writes `lease` if no lease of its shard exists.
    pub async fn create(&self, lease: &Lease) -> Result<(), ClusterError> {
        if self.table.put_new(lease.to_item(), KEY).await? {
            Ok(())
        } else {
            Err(ClusterError::Exists { key: lease.key.clone() })
        }
    }

    /// Creates a lease for every shard of `shards` that has none yet (a
    /// new source, or shards a reshard created), as KCL's shard sync does:
    /// shards without parents start at `root_checkpoint` (the source's
    /// start), children at `TRIM_HORIZON`. Answers how many it created, and
    /// how many calls that took (the scan included).
    pub async fn sync(
        &self,
        shards: &[ShardSpec],
        root_checkpoint: &LeaseCheckpoint,
    ) -> Result<(usize, u64), ClusterError> {
        let existing: HashSet<String> = self.list().await?.into_iter().map(|l| l.key).collect();
        let (created, calls) = self.sync_against(shards, root_checkpoint, &existing).await?;
        Ok((created, calls + 1))
    }

    /// [`LeaseTable::sync`] against leases known to exist (a recent scan,
    /// so no scan of its own). The missing leases are created together, up
    /// to 100 per transaction; a transaction refused because another
    /// process's sync created some of them in between (processes starting a
    /// new source together) is followed by a scan and a transaction of what
    /// is still missing, rather than a refused write per lease.
    pub async fn sync_against(
        &self,
        shards: &[ShardSpec],
        root_checkpoint: &LeaseCheckpoint,
        existing: &HashSet<String>,
    ) -> Result<(usize, u64), ClusterError> {
        let lease_for = |shard: &ShardSpec| {
            let mut lease = Lease::new(&shard.shard_id, shard.parent_shard_ids.clone(), shard.hash_key_range.clone());
            if shard.parent_shard_ids.is_empty() {
                lease.checkpoint = root_checkpoint.clone();
            }
            lease
        };
        let (mut created, mut calls) = (0, 0);
        let mut known = existing.clone();
        for round in 0..=SYNC_RESCANS {
            let missing: Vec<Lease> =
                shards.iter().filter(|shard| !known.contains(&shard.shard_id)).map(lease_for).collect();
            let mut refused = Vec::new();
            for chunk in missing.chunks(TRANSACTION_ITEMS) {
                calls += 1;
                if self.create_chunk(chunk).await? {
                    created += chunk.len();
                } else {
                    refused.extend_from_slice(chunk);
                }
            }
            if refused.is_empty() {
                break;
            }
            if round == SYNC_RESCANS {
                // Still racing after every rescan: lease by lease, so this sync ends.
                for lease in &refused {
                    calls += 1;
                    match self.create(lease).await {
                        Ok(()) => created += 1,
                        Err(ClusterError::Exists { .. }) => {}
                        Err(error) => return Err(error),
                    }
                }
                break;
            }
            calls += 1;
            known = self.list().await?.into_iter().map(|lease| lease.key).collect();
        }
        Ok((created, calls))
    }

    /// Creates every lease of `chunk` in one transaction: `false` when one existed (nothing written).
    async fn create_chunk(&self, chunk: &[Lease]) -> Result<bool, ClusterError> {
        let mut items = Vec::with_capacity(chunk.len());
        for lease in chunk {
            let put = Put::builder()
                .table_name(&self.table.name)
                .set_item(Some(lease.to_item()))
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", KEY)
                .build()
                .map_err(|error| self.table.error("TransactWriteItems", error))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(items).await
    }

    /// Every lease of the table (a consistent scan), leaving out rows of other kinds.
    pub async fn list(&self) -> Result<Vec<Lease>, ClusterError> {
        let mut leases = Vec::new();
        for item in self.table.scan(None).await? {
            let kind = match item.get(ENTITY_TYPE) {
                Some(AttributeValue::S(kind)) => Some(kind.as_str()),
                _ => None,
            };
            if kind.is_none_or(|kind| kind == "LEASE") {
                leases.push(Lease::from_item(&item).map_err(|found| ClusterError::corrupt(&self.table.name, found))?);
            }
        }
        leases.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(leases)
    }

    /// The lease of `shard_id`, read consistently.
    pub async fn get(&self, shard_id: &str) -> Result<Option<Lease>, ClusterError> {
        let found = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(shard_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| self.table.failed("GetItem", &error))?;
        found
            .item()
            .map(|item| Lease::from_item(item).map_err(|found| ClusterError::corrupt(&self.table.name, found)))
            .transpose()
    }

    /// One conditional `UpdateItem` on `key`, answering the row as it now is (`None`: the condition failed).
    async fn update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Option<Lease>, ClusterError> {
        let mut request = self
            .table
            .client
            .update_item()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(key.to_owned()))
            .update_expression(update)
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew);
        for (placeholder, name) in names {
            request = request.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in values {
            request = request.expression_attribute_values(placeholder, value);
        }
        match request.send().await {
            Ok(output) => {
                let item =
                    output.attributes().ok_or_else(|| self.table.error("UpdateItem", "no attributes came back"))?;
                Ok(Some(Lease::from_item(item).map_err(|found| ClusterError::corrupt(&self.table.name, found))?))
            }
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(None)
            }
            Err(error) => Err(self.table.failed("UpdateItem", &error).into()),
        }
    }

    fn mine(&self) -> AttributeValue {
        AttributeValue::S(self.worker.clone())
    }

    /// Renews a lease this process holds (`held` as it last wrote it).
    /// A renewal whose answer was lost and that the SDK retried finds the
    /// counter one ahead and this process still the owner: that is a success.
    pub async fn renew(&self, held: &Lease) -> Result<Lease, ClusterError> {
        self.renew_reporting(held, None).await
    }

    /// [`LeaseTable::renew`], also publishing how the shard's reading goes
    /// (attributes KCL ignores), so any process can show the whole source.
    pub async fn renew_reporting(&self, held: &Lease, report: Option<&LeaseReport>) -> Result<Lease, ClusterError> {
        let renewal = Renewal { lease: held, report, checkpoint: None };
        let UpdateExpression { update, names, values } = self.renewal_expression(&renewal);
        match self.update(&held.key, &update, RENEW_CONDITION, &names, values).await? {
            Some(lease) => Ok(lease),
            None => match self.get(&held.key).await? {
                Some(now) if now.owner.as_deref() == Some(self.worker.as_str()) && now.counter == held.counter + 1 => {
                    Ok(now)
                }
                _ => Err(ClusterError::Lost { key: held.key.clone() }),
            },
        }
    }

    /// What one renewal writes: the counter, the report, and a checkpoint that moved.
    fn renewal_expression(&self, renewal: &Renewal<'_>) -> UpdateExpression {
        let held = renewal.lease;
        let mut names = vec![("#counter", COUNTER), ("#owner", OWNER)];
        let mut values = vec![(":counter", number(held.counter)), (":one", number(1)), (":me", self.mine())];
        let mut set = vec!["#counter = #counter + :one"];
        let mut remove = Vec::new();
        if let Some(checkpoint) = renewal.checkpoint {
            let (text, sub_sequence) = checkpoint.attributes();
            names.extend([("#checkpoint", CHECKPOINT), ("#sub", SUB_SEQUENCE), ("#switches", OWNER_SWITCHES)]);
            values.extend([
                (":checkpoint", AttributeValue::S(text.to_owned())),
                (":sub", number(sub_sequence)),
                (":zero", number(0)),
            ]);
            set.push("#checkpoint = :checkpoint, #sub = :sub, #switches = :zero");
        }
        if let Some(report) = renewal.report {
            names.extend([
                ("#lag", LAG_MILLIS),
                ("#rate", RECORDS_PER_SECOND),
                ("#address", OWNER_ADDRESS),
                ("#done", DONE),
            ]);
            values.extend([
                (":lag", number(report.lag_millis)),
                (":rate", number(report.records_per_second)),
                (":address", AttributeValue::S(report.owner_address.clone())),
            ]);
            set.push("#lag = :lag, #rate = :rate, #address = :address");
            match &report.done {
                Some(done) => {
                    values.push((":done", AttributeValue::S(done.clone())));
                    set.push("#done = :done");
                }
                None => remove.push("#done"),
            }
        }
        let mut update = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            update.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        UpdateExpression { update, names, values }
    }

    /// Renews many leases this process holds in as few calls as DynamoDB
    /// allows (a transaction of up to 100 conditional updates each), each with
    /// its report and, when it moved, the checkpoint to mirror: KCL renews
    /// each lease with a call of its own. `Ok(None)` when a transaction was
    /// refused because some lease moved (or conflicted): the caller renews
    /// that chunk's leases one by one to learn which.
    pub async fn renew_together(&self, renewals: &[Renewal<'_>]) -> Result<Vec<Option<Vec<Lease>>>, ClusterError> {
        let mut outcomes = Vec::new();
        for chunk in renewals.chunks(TRANSACTION_ITEMS) {
            let mut items = Vec::with_capacity(chunk.len());
            for renewal in chunk {
                let update =
                    self.transaction_update(&renewal.lease.key, self.renewal_expression(renewal), RENEW_CONDITION)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
            outcomes.push(self.transact(items).await?.then(|| chunk.iter().map(Renewal::renewed).collect()));
        }
        Ok(outcomes)
    }

    /// Takes `observed` (expired, unowned, or stolen by the balancer): only if
    /// its counter and owner are still what this process saw. Raises the epoch
    /// in the same write, so a commit fenced on the epoch tells the new owner's
    /// batches from the old owner's.
    pub async fn take(&self, observed: &Lease) -> Result<Lease, ClusterError> {
        let TakeExpression { condition, expression } = self.take_expression(observed);
        let UpdateExpression { update, names, values } = expression;
        match self.update(&observed.key, &update, condition, &names, values).await? {
            Some(lease) => Ok(lease),
            None => Err(ClusterError::Lost { key: observed.key.clone() }),
        }
    }

    /// Takes many observed leases in as few calls as DynamoDB allows (a
    /// transaction of up to 100 takes, each conditioned as [`LeaseTable::take`]),
    /// where KCL takes each with a call of its own: a node starting on a wide
    /// stream takes its share at once. A transaction refused because some
    /// lease moved is taken again lease by lease. Answers each lease's
    /// outcome, in `observed`'s order, and how many calls it made.
    pub async fn take_together(&self, observed: &[Lease]) -> (Vec<Result<Lease, ClusterError>>, u64) {
        let mut outcomes = Vec::with_capacity(observed.len());
        let mut calls = 0;
        for chunk in observed.chunks(TRANSACTION_ITEMS) {
            if chunk.len() > 1 {
                calls += 1;
                match self.take_chunk(chunk).await {
                    Ok(true) => {
                        outcomes.extend(chunk.iter().map(|lease| Ok(self.taken(lease))));
                        continue;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        outcomes.extend(chunk.iter().map(|_| Err(error.clone())));
                        continue;
                    }
                }
            }
            for lease in chunk {
                calls += 1;
                outcomes.push(self.take(lease).await);
            }
        }
        (outcomes, calls)
    }

    /// One transaction of takes: `false` when it was refused (some lease moved).
    async fn take_chunk(&self, chunk: &[Lease]) -> Result<bool, ClusterError> {
        let mut items = Vec::with_capacity(chunk.len());
        for observed in chunk {
            let TakeExpression { condition, expression } = self.take_expression(observed);
            let update = self.transaction_update(&observed.key, expression, condition)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact(items).await
    }

    /// The take of `observed`: on its counter and owner as observed, raising
    /// the counter, the owner switches and the epoch, dropping the last
    /// owner's report (a new owner publishes its own).
    fn take_expression(&self, observed: &Lease) -> TakeExpression {
        let switch = if observed.owner.as_deref() == Some(self.worker.as_str()) { 0 } else { 1 };
        let condition = match &observed.owner {
            Some(_) => "#counter = :observed AND #owner = :previous",
            None => "#counter = :observed AND attribute_not_exists(#owner)",
        };
        let names = vec![
            ("#counter", COUNTER),
            ("#owner", OWNER),
            ("#switches", OWNER_SWITCHES),
            ("#epoch", EPOCH),
            ("#lag", LAG_MILLIS),
            ("#rate", RECORDS_PER_SECOND),
            ("#address", OWNER_ADDRESS),
            ("#done", DONE),
        ];
        let mut values = vec![
            (":observed", number(observed.counter)),
            (":one", number(1)),
            (":zero", number(0)),
            (":switch", number(switch)),
            (":me", self.mine()),
        ];
        if let Some(previous) = &observed.owner {
            values.push((":previous", AttributeValue::S(previous.clone())));
        }
        let update = "SET #owner = :me, #counter = #counter + :one, \
                      #switches = if_not_exists(#switches, :zero) + :switch, \
                      #epoch = if_not_exists(#epoch, :zero) + :one \
                      REMOVE checkpointOwner, #lag, #rate, #address, #done"
            .to_owned();
        TakeExpression { condition, expression: UpdateExpression { update, names, values } }
    }

    /// `observed` as its take leaves it.
    fn taken(&self, observed: &Lease) -> Lease {
        let mut lease = observed.clone();
        if observed.owner.as_deref() != Some(self.worker.as_str()) {
            lease.owner_switches_since_checkpoint += 1;
        }
        lease.owner = Some(self.worker.clone());
        lease.counter += 1;
        lease.epoch += 1;
        lease.report = None;
        lease
    }

    /// An update for a transaction.
    fn transaction_update(
        &self,
        key: &str,
        expression: UpdateExpression,
        condition: &str,
    ) -> Result<Update, ClusterError> {
        let UpdateExpression { update, names, values } = expression;
        let mut builder = Update::builder()
            .table_name(&self.table.name)
            .key(KEY, AttributeValue::S(key.to_owned()))
            .update_expression(update)
            .condition_expression(condition);
        for (placeholder, name) in names {
            builder = builder.expression_attribute_names(placeholder, name);
        }
        for (placeholder, value) in values {
            builder = builder.expression_attribute_values(placeholder, value);
        }
        builder.build().map_err(|error| self.table.error("TransactWriteItems", error).into())
    }

    /// Writes `items` in one transaction: `false` when it was refused (a condition failed, or a conflict).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, ClusterError> {
        Ok(self.table.transact(items).await? == Transacted::Written)
    }

    /// Records `checkpoint` on a lease this process holds.
    pub async fn checkpoint(&self, held: &Lease, checkpoint: &LeaseCheckpoint) -> Result<Lease, ClusterError> {
        self.record_checkpoint(held, checkpoint, &[]).await
    }

    /// Records that the shard of a lease this process holds was read to its
    /// end (`SHARD_END`), naming its children, so their leases may start.
    pub async fn end_shard(&self, held: &Lease, children: &[String]) -> Result<Lease, ClusterError> {
        self.record_checkpoint(held, &LeaseCheckpoint::ShardEnd, children).await
    }

    /// The checkpoint write, as the holder: also `childShardIds` when there are children
    /// (DynamoDB refuses an empty set, so a shard that ended without children names none).
    async fn record_checkpoint(
        &self,
        held: &Lease,
        checkpoint: &LeaseCheckpoint,
        children: &[String],
    ) -> Result<Lease, ClusterError> {
        let (text, sub_sequence) = checkpoint.attributes();
        let mut names = vec![
            ("#counter", COUNTER),
            ("#owner", OWNER),
            ("#checkpoint", CHECKPOINT),
            ("#sub", SUB_SEQUENCE),
            ("#switches", OWNER_SWITCHES),
        ];
        let mut values = vec![
            (":counter", number(held.counter)),
            (":one", number(1)),
            (":zero", number(0)),
            (":me", self.mine()),
            (":checkpoint", AttributeValue::S(text.to_owned())),
            (":sub", number(sub_sequence)),
        ];
        let mut update =
            "SET #checkpoint = :checkpoint, #sub = :sub, #switches = :zero, #counter = #counter + :one".to_owned();
        if !children.is_empty() {
            names.push(("#children", CHILDREN));
            values.push((":children", AttributeValue::Ss(children.to_vec())));
            update.push_str(", #children = :children");
        }
        match self.update(&held.key, &update, "#counter = :counter AND #owner = :me", &names, values).await? {
            Some(lease) => Ok(lease),
            None => Err(ClusterError::Lost { key: held.key.clone() }),
        }
    }

    /// Gives up a lease this process holds, so another takes it at once (a
    /// clean shutdown hands over without waiting for the failover time).
    pub async fn release(&self, held: &Lease) -> Result<Lease, ClusterError> {
        let names = [("#counter", COUNTER), ("#owner", OWNER)];
        let values = vec![(":one", number(1)), (":me", self.mine())];
        match self
            .update(&held.key, "SET #counter = #counter + :one REMOVE #owner", "#owner = :me", &names, values)
            .await?
        {
            Some(lease) => Ok(lease),
            None => Err(ClusterError::Lost { key: held.key.clone() }),
        }
    }
}
