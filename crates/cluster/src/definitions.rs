//! The cluster's committed source versions, shared by every process in one
//! DynamoDB table (`tributary-{cluster}-definitions`): hash key `source`,
//! range key `version`, one item per version, written only where no item
//! of that version exists. Two commits of one source racing on two nodes
//! therefore give one version each, in order (the loser re-reads and takes
//! the next number), or a conflict after repeated losses; a version is never
//! lost or stored twice. A delete is a version too (`deleted`), so the
//! history stays whole and every node sees it the way it sees a commit.
//!
//! Nodes learn of changes by reading one small item on an interval, a
//! counter every append and finish raises in the same transaction
//! ([`DefinitionsTable::change_count`]), and only when it moved read the
//! newest version of every source ([`DefinitionsTable::heads`]) to compare
//! with what they run ([`changes`]). A poll so costs one read of a few bytes
//! however long the history grows.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, KeyType, Put, ScalarAttributeType, TransactWriteItem, Update,
};

use crate::ClusterError;
use tributary_source::dynamodb::{DynamoTable, Item, Transacted};

const SOURCE: &str = "source";
const VERSION: &str = "version";
const DEFINITION: &str = "definition";
const STREAM_ARN: &str = "streamArn";
const START_AT: &str = "startAtMicros";
const COMMITTED_AT: &str = "committedAtMicros";
const MESSAGE: &str = "message";
const DELETED: &str = "deleted";
const FINISHED_BECAUSE: &str = "finishedBecause";

/// The change counter's item: a `source` no source name can be (names are
/// letters, digits and `_`), at version 0.
const CHANGES_SOURCE: &str = "#changes";
const CHANGES_COUNT: &str = "changeCount";

/// How many times a commit takes the next version number after losing a race.
const APPEND_ATTEMPTS: usize = 5;

/// How many times a change conflicting with another on the counter is tried.
const COUNTED_WRITE_ATTEMPTS: u32 = 6;

/// One committed version of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedVersion {
    /// The source's name.
    pub source: String,
    /// 1 for the first commit of the name, then +1 per commit or delete.
    pub version: u64,
    /// The definition, as proto3 JSON (secrets as references, never values).
    pub definition: String,
    /// The stream it reads.
    pub stream_arn: String,
    /// Where shards without a checkpoint start (µs); `None` for TRIM_HORIZON.
    pub start_at_micros: Option<i64>,
    /// When it was committed (µs).
    pub committed_at_micros: i64,
    /// The commit message.
    pub message: String,
    /// This version deletes the source (stop and archive).
    pub deleted: bool,
    /// Why this version finished (a bounded source idle, `until` passed on
    /// every shard), once a node found every shard done: no node runs it again.
    pub finished_because: Option<String>,
}

impl SharedVersion {
    fn to_item(&self) -> Item {
        let mut item = HashMap::from([
            (SOURCE.to_owned(), AttributeValue::S(self.source.clone())),
            (VERSION.to_owned(), AttributeValue::N(self.version.to_string())),
            (DEFINITION.to_owned(), AttributeValue::S(self.definition.clone())),
            (STREAM_ARN.to_owned(), AttributeValue::S(self.stream_arn.clone())),
            (COMMITTED_AT.to_owned(), AttributeValue::N(self.committed_at_micros.to_string())),
            (MESSAGE.to_owned(), AttributeValue::S(self.message.clone())),
            (DELETED.to_owned(), AttributeValue::Bool(self.deleted)),
        ]);
        if let Some(start_at) = self.start_at_micros {
            item.insert(START_AT.to_owned(), AttributeValue::N(start_at.to_string()));
        }
        if let Some(because) = &self.finished_because {
            item.insert(FINISHED_BECAUSE.to_owned(), AttributeValue::S(because.clone()));
        }
        item
    }

    fn from_item(item: &Item) -> Result<SharedVersion, (String, String)> {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(text)) => Some(text.clone()),
            _ => None,
        };
        let source = text(SOURCE).ok_or_else(|| (String::new(), format!("no string `{SOURCE}`")))?;
        let fail = |detail: String| (source.clone(), detail);
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(text)) => {
                text.parse::<i64>().map(Some).map_err(|_| fail(format!("`{name}` is not an integer: {text}")))
            }
            None => Ok(None),
            Some(_) => Err(fail(format!("`{name}` is not a number"))),
        };
        let version = number(VERSION)?
            .and_then(|version| u64::try_from(version).ok())
            .ok_or_else(|| fail(format!("no `{VERSION}`")))?;
        Ok(SharedVersion {
            version,
            definition: text(DEFINITION).ok_or_else(|| fail(format!("no `{DEFINITION}`")))?,
            stream_arn: text(STREAM_ARN).unwrap_or_default(),
            start_at_micros: number(START_AT)?,
            committed_at_micros: number(COMMITTED_AT)?.unwrap_or(0),
            message: text(MESSAGE).unwrap_or_default(),
            deleted: matches!(item.get(DELETED), Some(AttributeValue::Bool(true))),
            finished_because: text(FINISHED_BECAUSE),
            source,
        })
    }
}

fn is_change_counter(item: &Item) -> bool {
    matches!(item.get(SOURCE), Some(AttributeValue::S(source)) if source == CHANGES_SOURCE)
}

/// What a node must do to run what the cluster committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A source it does not run yet, or a newer version of one it runs.
    Run(SharedVersion),
    /// A source deleted since.
    Stop(String),
}

/// The changes from `running` (source → version a node runs) to `heads`.
pub fn changes(running: &HashMap<String, u64>, heads: &HashMap<String, SharedVersion>) -> Vec<Change> {
    let mut found: Vec<Change> = heads
        .values()
        .filter_map(|head| match (head.deleted, running.get(&head.source)) {
            (true, Some(_)) => Some(Change::Stop(head.source.clone())),
            (true, None) => None,
            (false, Some(version)) if *version >= head.version => None,
            (false, _) => Some(Change::Run(head.clone())),
        })
        .chain(running.keys().filter(|source| !heads.contains_key(*source)).map(|source| Change::Stop(source.clone())))
        .collect();
    found.sort_by(|a, b| name_of(a).cmp(name_of(b)));
    found
}

fn name_of(change: &Change) -> &str {
    match change {
        Change::Run(version) => &version.source,
        Change::Stop(source) => source,
    }
}

/// The cluster's definitions table.
#[derive(Debug, Clone)]
pub struct DefinitionsTable {
    table: DynamoTable,
}

impl DefinitionsTable {
    /// The definitions table of `cluster`.
    pub fn table_name(cluster: &str) -> String {
        format!("tributary-{cluster}-definitions")
    }

    /// Table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> DefinitionsTable {
        DefinitionsTable { table: DynamoTable::new(client, table) }
    }

    /// Creates the table if it is missing (`PAY_PER_REQUEST`).
    pub async fn ensure(&self) -> Result<(), ClusterError> {
        let table = &self.table;
        let create = table
            .client
            .create_table()
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(table.attribute(SOURCE, ScalarAttributeType::S)?)
            .attribute_definitions(table.attribute(VERSION, ScalarAttributeType::N)?)
            .key_schema(table.key(SOURCE, KeyType::Hash)?)
            .key_schema(table.key(VERSION, KeyType::Range)?);
        table.ensure(create).await?;
        Ok(())
    }

    fn parse(&self, item: &Item) -> Result<SharedVersion, ClusterError> {
        SharedVersion::from_item(item).map_err(|found| ClusterError::corrupt(&self.table.name, found))
    }

    /// Stores `draft` as the source's next version (its `version` is
    /// ignored): one more than the newest stored, taken again after losing a
    /// race to another node, up to a bound. Raises the change counter with it.
    pub async fn append(&self, draft: &SharedVersion) -> Result<SharedVersion, ClusterError> {
        let mut version = 0;
        for _ in 0..APPEND_ATTEMPTS {
            version = self.latest(&draft.source).await?.map_or(1, |latest| latest.version + 1);
            let stored = SharedVersion { version, ..draft.clone() };
            let put = Put::builder()
                .table_name(&self.table.name)
                .set_item(Some(stored.to_item()))
                .condition_expression("attribute_not_exists(#source)")
                .expression_attribute_names("#source", SOURCE)
                .build()
                .map_err(|error| self.table.error("TransactWriteItems", error))?;
            if self.write_counted(TransactWriteItem::builder().put(put).build()).await? {
                return Ok(stored);
            }
        }
        Err(ClusterError::Conflict { source_name: draft.source.clone(), version })
    }

    /// Records that `version` of `source` finished, and why (the first
    /// node's reason stays). `false` when it was recorded already.
    pub async fn finish(&self, source: &str, version: u64, because: &str) -> Result<bool, ClusterError> {
        let update = Update::builder()
            .table_name(&self.table.name)
            .key(SOURCE, AttributeValue::S(source.to_owned()))
            .key(VERSION, AttributeValue::N(version.to_string()))
            .update_expression("SET #finished = :because")
            .condition_expression("attribute_exists(#source) AND attribute_not_exists(#finished)")
            .expression_attribute_names("#finished", FINISHED_BECAUSE)
            .expression_attribute_names("#source", SOURCE)
            .expression_attribute_values(":because", AttributeValue::S(because.to_owned()))
            .build()
            .map_err(|error| self.table.error("TransactWriteItems", error))?;
        self.write_counted(TransactWriteItem::builder().update(update).build()).await
    }

    /// Writes `change` and raises the change counter in one transaction;
    /// `false` when `change`'s condition failed. Two changes racing on the
    /// counter conflict: the loser tries again, as DynamoDB advises.
    async fn write_counted(&self, change: TransactWriteItem) -> Result<bool, ClusterError> {
        let count = Update::builder()
            .table_name(&self.table.name)
            .key(SOURCE, AttributeValue::S(CHANGES_SOURCE.to_owned()))
            .key(VERSION, AttributeValue::N("0".to_owned()))
            .update_expression("ADD #count :one")
            .expression_attribute_names("#count", CHANGES_COUNT)
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .build()
            .map_err(|error| self.table.error("TransactWriteItems", error))?;
        let items = vec![change, TransactWriteItem::builder().update(count).build()];
        let mut pause = std::time::Duration::from_millis(20);
        for attempt in 1..=COUNTED_WRITE_ATTEMPTS {
            match self.table.transact(items.clone()).await? {
                Transacted::Written => return Ok(true),
                Transacted::Canceled(codes) if codes.first().is_some_and(|code| code == "ConditionalCheckFailed") => {
                    return Ok(false);
                }
                // Canceled for another reason (a conflict on the counter): again, after a pause.
                Transacted::Canceled(_) if attempt < COUNTED_WRITE_ATTEMPTS => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Transacted::Canceled(_) => break,
            }
        }
        Err(self.table.error("TransactWriteItems", "the change counter stayed contended").into())
    }

    /// The change counter: moves on every append and finish. `None` for a
    /// table no change was counted in yet.
    pub async fn change_count(&self) -> Result<Option<u64>, ClusterError> {
        let table = &self.table;
        let read = table
            .client
            .get_item()
            .table_name(&table.name)
            .key(SOURCE, AttributeValue::S(CHANGES_SOURCE.to_owned()))
            .key(VERSION, AttributeValue::N("0".to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| table.failed("GetItem", &error))?;
        match read.item().and_then(|item| item.get(CHANGES_COUNT)) {
            None => Ok(None),
            Some(AttributeValue::N(count)) => count.parse().map(Some).map_err(|_| {
                ClusterError::corrupt(&table.name, (CHANGES_SOURCE.to_owned(), format!("`{CHANGES_COUNT}` is {count}")))
            }),
            Some(_) => Err(ClusterError::corrupt(
                &table.name,
                (CHANGES_SOURCE.to_owned(), format!("`{CHANGES_COUNT}` is not a number")),
            )),
        }
    }

    /// The newest version of `source`, read consistently.
    pub async fn latest(&self, source: &str) -> Result<Option<SharedVersion>, ClusterError> {
        self.table.query(None, SOURCE, source, true).await?.first().map(|item| self.parse(item)).transpose()
    }

    /// Every version of `source`, oldest first.
    pub async fn history(&self, source: &str) -> Result<Vec<SharedVersion>, ClusterError> {
        self.table.query(None, SOURCE, source, false).await?.iter().map(|item| self.parse(item)).collect()
    }

    /// The newest version of every source (a consistent scan; deleted sources included, marked).
    pub async fn heads(&self) -> Result<HashMap<String, SharedVersion>, ClusterError> {
        let mut heads: HashMap<String, SharedVersion> = HashMap::new();
        let versions = self.table.scan(None).await?;
        for item in versions.iter().filter(|item| !is_change_counter(item)) {
            let version = self.parse(item)?;
            if heads.get(&version.source).is_none_or(|head| head.version < version.version) {
                heads.insert(version.source.clone(), version);
            }
        }
        Ok(heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(source: &str, number: u64, deleted: bool) -> SharedVersion {
        SharedVersion {
            source: source.to_owned(),
            version: number,
            definition: "{}".to_owned(),
            stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/s".to_owned(),
            start_at_micros: Some(1),
            committed_at_micros: 2,
            message: "m".to_owned(),
            deleted,
            finished_because: None,
        }
    }

    #[test]
    fn a_version_round_trips_through_its_item() {
        let stored = version("orders", 3, false);
        assert_eq!(SharedVersion::from_item(&stored.to_item()), Ok(stored));
        let no_start = SharedVersion {
            start_at_micros: None,
            deleted: true,
            finished_because: Some("bounded: idle".into()),
            ..version("orders", 4, true)
        };
        assert_eq!(SharedVersion::from_item(&no_start.to_item()), Ok(no_start));
    }

    #[test]
    fn changes_run_new_and_newer_versions_and_stop_deleted_sources() {
        let running =
            HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 2), ("c".to_owned(), 1), ("gone".to_owned(), 1)]);
        let heads = HashMap::from([
            ("a".to_owned(), version("a", 2, false)),
            ("b".to_owned(), version("b", 2, false)),
            ("c".to_owned(), version("c", 2, true)),
            ("d".to_owned(), version("d", 1, false)),
            ("e".to_owned(), version("e", 3, true)),
        ]);
        assert_eq!(
            changes(&running, &heads),
            [
                Change::Run(version("a", 2, false)),
                Change::Stop("c".to_owned()),
                Change::Run(version("d", 1, false)),
                Change::Stop("gone".to_owned()),
            ]
        );
    }
}
