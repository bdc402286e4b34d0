//! One shard's task: what it needs, how it ends, and Kinesis' shard shapes.

use std::sync::Arc;

use aws_sdk_kinesis::types::{ChildShard, Shard};
use tokio::sync::Semaphore;

use crate::ReaderError;
use crate::config::{ConsumerKind, ReaderConfig};
use crate::cursor::ShardCursor;
use crate::kpl::HashKeyRange;
use crate::lineage::ShardInfo;
use crate::route::RouteCell;
use crate::{efo, polling};

/// Everything a shard consumer needs besides its cursor.
pub(crate) struct ShardTask {
    pub(crate) client: aws_sdk_kinesis::Client,
    pub(crate) stream_arn: Arc<str>,
    pub(crate) shard: ShardInfo,
    pub(crate) config: Arc<ReaderConfig>,
    /// The registered stream consumer, for enhanced fan-out.
    pub(crate) consumer_arn: Option<Arc<str>>,
    /// Where `GetRecords` and `GetShardIterator` calls go without the SDK, once learned.
    pub(crate) route: RouteCell,
    /// Permits for `GetRecords` and `GetShardIterator` calls, shared by the reader's shards.
    pub(crate) call_permits: Arc<Semaphore>,
    /// How long the stream keeps records, when known.
    pub(crate) retention: Option<std::time::Duration>,
}

/// How a shard consumer ended without error.
#[derive(Debug)]
pub(crate) enum ShardEnd {
    /// The shard is closed and fully handed on; these are its children.
    Finished { children: Vec<ShardInfo> },
    /// The reader stopped listening.
    Stopped,
}

/// Runs the shard's consumer; returns the shard id with the outcome.
pub(crate) async fn run(task: ShardTask, cursor: ShardCursor) -> (String, Result<ShardEnd, ReaderError>) {
    let shard_id = task.shard.shard_id.clone();
    let outcome = match (&task.config.consumer, task.consumer_arn.clone()) {
        (ConsumerKind::EnhancedFanOut { .. }, Some(consumer_arn)) => efo::run(task, cursor, consumer_arn).await,
        _ => polling::run(task, cursor).await,
    };
    (shard_id, outcome)
}

/// A listed shard as the reader sees it.
pub(crate) fn shard_info(shard: &Shard) -> ShardInfo {
    let hash_range = shard
        .hash_key_range()
        .and_then(|range| HashKeyRange::parse(range.starting_hash_key(), range.ending_hash_key()))
        .unwrap_or(HashKeyRange::ALL);
    ShardInfo {
        shard_id: shard.shard_id().to_owned(),
        parents: shard
            .parent_shard_id()
            .into_iter()
            .chain(shard.adjacent_parent_shard_id())
            .map(str::to_owned)
            .collect(),
        hash_range,
    }
}

/// The children named by a closing response.
pub(crate) fn child_infos(children: Vec<ChildShard>) -> Vec<ShardInfo> {
    children
        .into_iter()
        .map(|child| ShardInfo {
            hash_range: child
                .hash_key_range
                .as_ref()
                .and_then(|range| HashKeyRange::parse(range.starting_hash_key(), range.ending_hash_key()))
                .unwrap_or(HashKeyRange::ALL),
            shard_id: child.shard_id,
            parents: child.parent_shards,
        })
        .collect()
}
