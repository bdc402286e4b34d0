//! The lease table: one DynamoDB table per source, every write conditional
//! as KCL's are (see `lease.rs` for the row).
//!
//! | operation | condition | update |
//! |---|---|---|
//! | create | `leaseKey` absent | the whole row |
//! | renew | counter = the holder's, owner = the holder | counter + 1 |
//! | take | counter (and owner) = what the taker observed | owner, counter + 1, owner switches + 1, epoch + 1 |
//! | checkpoint | counter = the holder's, owner = the holder | checkpoint, counter + 1, owner switches = 0 |
//! | release | owner = the holder | owner removed, counter + 1 |

use std::collections::HashMap;
use std::fmt::Display;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValue, ScalarAttributeType,
};

use crate::lease::{CHECKPOINT, COUNTER, ENTITY_TYPE, EPOCH, KEY, OWNER, OWNER_SWITCHES, SUB_SEQUENCE, number};
use crate::{ClusterError, Lease, LeaseCheckpoint};

/// KCL 3.x's index of each worker's leases (hash `leaseOwner`, range `leaseKey`, keys only).
const OWNER_INDEX: &str = "LeaseOwnerToLeaseKeyIndex";

/// One source's lease table, as one process (`worker`) uses it.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
    worker: String,
}

/// How an update's condition turned out.
enum Updated {
    Done(Lease),
    ConditionFailed,
}

impl LeaseTable {
    /// The lease table of `source` in `cluster`, named so a KCL user
    /// recognises it (KCL names its table after the application).
    pub fn table_name(cluster: &str, source: &str) -> String {
        format!("tributary-{cluster}-{source}")
    }

    /// Table `table` as process `worker` writes it.
    pub fn new(client: Client, table: impl Into<String>, worker: impl Into<String>) -> LeaseTable {
        LeaseTable { client, table: table.into(), worker: worker.into() }
    }

    /// This process's id, as `leaseOwner` holds it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    fn aws(&self, call: &'static str, error: impl Display) -> ClusterError {
        ClusterError::Aws { call, table: self.table.clone(), detail: error.to_string() }
    }

    fn corrupt(&self, (key, detail): (String, String)) -> ClusterError {
        ClusterError::Corrupt { table: self.table.clone(), key, detail }
    }

    /// Creates the table if it is missing (KCL's schema, `PAY_PER_REQUEST`,
    /// the owner index), and refuses one the Java KCL 3.x manages.
    pub async fn ensure(&self) -> Result<(), ClusterError> {
        match self.client.describe_table().table_name(&self.table).send().await {
            Ok(_) => {}
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                self.create_table().await?;
            }
            Err(error) => return Err(self.aws("DescribeTable", sdk_message(&error))),
        }
        self.refuse_kcl3_rows().await
    }

    async fn create_table(&self) -> Result<(), ClusterError> {
        let build = |error: aws_sdk_dynamodb::error::BuildError| self.aws("CreateTable", error);
        let attribute = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let index = GlobalSecondaryIndex::builder()
            .index_name(OWNER_INDEX)
            .key_schema(key(OWNER, KeyType::Hash).map_err(build)?)
            .key_schema(key(KEY, KeyType::Range).map_err(build)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(build)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(KEY).map_err(build)?)
            .attribute_definitions(attribute(OWNER).map_err(build)?)
            .key_schema(key(KEY, KeyType::Hash).map_err(build)?)
            .global_secondary_indexes(index)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Another process created it first.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => return Err(self.aws("CreateTable", sdk_message(&error))),
        }
        self.wait_active().await
    }

    async fn wait_active(&self) -> Result<(), ClusterError> {
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|error| self.aws("DescribeTable", sdk_message(&error)))?;
            let active = described.table().and_then(|table| table.table_status()).map(|status| status.as_str());
            if active == Some("ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(self.aws("DescribeTable", "the table did not become ACTIVE within a minute"))
    }

    /// KCL 3.5 keeps its leader and worker metrics in the lease table, marked by `entityType`.
    async fn refuse_kcl3_rows(&self) -> Result<(), ClusterError> {
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(#entity) AND #entity <> :lease")
                .expression_attribute_names("#entity", ENTITY_TYPE)
                .expression_attribute_values(":lease", AttributeValue::S("LEASE".to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| self.aws("Scan", sdk_message(&error)))?;
            if let Some(AttributeValue::S(entity)) = page.items().first().and_then(|item| item.get(ENTITY_TYPE)) {
                return Err(ClusterError::ForeignTable { table: self.table.clone(), entity: entity.clone() });
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(());
            }
        }
    }

    /// Writes `lease` if no lease of its shard exists.
    pub async fn create(&self, lease: &Lease) -> Result<(), ClusterError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(lease.to_item()))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", KEY)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(ClusterError::Exists { key: lease.key.clone() })
            }
            Err(error) => Err(self.aws("PutItem", sdk_message(&error))),
        }
    }

    /// Every lease of the table (a consistent scan), leaving out rows of other kinds.
    pub async fn list(&self) -> Result<Vec<Lease>, ClusterError> {
        let mut leases = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|error| self.aws("Scan", sdk_message(&error)))?;
            for item in page.items() {
                let kind = match item.get(ENTITY_TYPE) {
                    Some(AttributeValue::S(kind)) => Some(kind.as_str()),
                    _ => None,
                };
                if kind.is_none_or(|kind| kind == "LEASE") {
                    leases.push(Lease::from_item(item).map_err(|found| self.corrupt(found))?);
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                leases.sort_by(|a, b| a.key.cmp(&b.key));
                return Ok(leases);
            }
        }
    }

    /// The lease of `shard_id`, read consistently.
    pub async fn get(&self, shard_id: &str) -> Result<Option<Lease>, ClusterError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(shard_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| self.aws("GetItem", sdk_message(&error)))?;
        found.item().map(|item| Lease::from_item(item).map_err(|found| self.corrupt(found))).transpose()
    }

    /// One conditional `UpdateItem` on `key`, answering the row as it now is.
    async fn update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<Updated, ClusterError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
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
                let item = output.attributes().ok_or_else(|| self.aws("UpdateItem", "no attributes came back"))?;
                Ok(Updated::Done(Lease::from_item(item).map_err(|found| self.corrupt(found))?))
            }
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(Updated::ConditionFailed)
            }
            Err(error) => Err(self.aws("UpdateItem", sdk_message(&error))),
        }
    }

    fn mine(&self) -> AttributeValue {
        AttributeValue::S(self.worker.clone())
    }

    /// Renews a lease this process holds (`held` as it last wrote it).
    /// A renewal whose answer was lost and that the SDK retried finds the
    /// counter one ahead and this process still the owner: that is a success.
    pub async fn renew(&self, held: &Lease) -> Result<Lease, ClusterError> {
        let names = [("#counter", COUNTER), ("#owner", OWNER)];
        let values = vec![(":counter", number(held.counter)), (":one", number(1)), (":me", self.mine())];
        match self
            .update(&held.key, "SET #counter = #counter + :one", "#counter = :counter AND #owner = :me", &names, values)
            .await?
        {
            Updated::Done(lease) => Ok(lease),
            Updated::ConditionFailed => match self.get(&held.key).await? {
                Some(now) if now.owner.as_deref() == Some(self.worker.as_str()) && now.counter == held.counter + 1 => {
                    Ok(now)
                }
                _ => Err(ClusterError::Lost { key: held.key.clone() }),
            },
        }
    }

    /// Takes `observed` (expired, unowned, or stolen by the balancer): only if
    /// its counter and owner are still what this process saw. Raises the epoch
    /// in the same write, so a commit fenced on the epoch tells the new owner's
    /// batches from the old owner's.
    pub async fn take(&self, observed: &Lease) -> Result<Lease, ClusterError> {
        let switch = if observed.owner.as_deref() == Some(self.worker.as_str()) { 0 } else { 1 };
        let (condition, previous) = match &observed.owner {
            Some(owner) => ("#counter = :observed AND #owner = :previous", Some(owner.clone())),
            None => ("#counter = :observed AND attribute_not_exists(#owner)", None),
        };
        let names = [("#counter", COUNTER), ("#owner", OWNER), ("#switches", OWNER_SWITCHES), ("#epoch", EPOCH)];
        let mut values = vec![
            (":observed", number(observed.counter)),
            (":one", number(1)),
            (":zero", number(0)),
            (":switch", number(switch)),
            (":me", self.mine()),
        ];
        if let Some(previous) = previous {
            values.push((":previous", AttributeValue::S(previous)));
        }
        let update = "SET #owner = :me, #counter = #counter + :one, \
                      #switches = if_not_exists(#switches, :zero) + :switch, \
                      #epoch = if_not_exists(#epoch, :zero) + :one \
                      REMOVE checkpointOwner";
        match self.update(&observed.key, update, condition, &names, values).await? {
            Updated::Done(lease) => Ok(lease),
            Updated::ConditionFailed => Err(ClusterError::Lost { key: observed.key.clone() }),
        }
    }

    /// Records `checkpoint` on a lease this process holds.
    pub async fn checkpoint(&self, held: &Lease, checkpoint: &LeaseCheckpoint) -> Result<Lease, ClusterError> {
        let (text, sub_sequence) = checkpoint.attributes();
        let names = [
            ("#counter", COUNTER),
            ("#owner", OWNER),
            ("#checkpoint", CHECKPOINT),
            ("#sub", SUB_SEQUENCE),
            ("#switches", OWNER_SWITCHES),
        ];
        let values = vec![
            (":counter", number(held.counter)),
            (":one", number(1)),
            (":zero", number(0)),
            (":me", self.mine()),
            (":checkpoint", AttributeValue::S(text.to_owned())),
            (":sub", number(sub_sequence)),
        ];
        let update = "SET #checkpoint = :checkpoint, #sub = :sub, #switches = :zero, #counter = #counter + :one";
        match self.update(&held.key, update, "#counter = :counter AND #owner = :me", &names, values).await? {
            Updated::Done(lease) => Ok(lease),
            Updated::ConditionFailed => Err(ClusterError::Lost { key: held.key.clone() }),
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
            Updated::Done(lease) => Ok(lease),
            Updated::ConditionFailed => Err(ClusterError::Lost { key: held.key.clone() }),
        }
    }
}

/// The service's code and message, never the request (which holds nothing secret, but is long).
pub(crate) fn sdk_message<E: ProvideErrorMetadata + std::error::Error, R>(error: &SdkError<E, R>) -> String {
    match error.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("error"), service.message().unwrap_or("no message"))
        }
        None => error.to_string(),
    }
}
