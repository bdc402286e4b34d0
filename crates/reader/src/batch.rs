//! What the reader hands on: records, in shard order, in batches that know
//! which stretch of their shard they cover.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::OwnedSemaphorePermit;

use crate::checkpoint::ShardAdvance;
use crate::compact::CompactStr;
use crate::position::{SequenceNumber, ShardCheckpoint};

/// A record's partition key (held inline up to 22 bytes: one per record, no allocation).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey(CompactStr<22>);

impl PartitionKey {
    /// The key as the producer wrote it.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<&str> for PartitionKey {
    fn from(key: &str) -> PartitionKey {
        PartitionKey(CompactStr::new(key))
    }
}

impl Deref for PartitionKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// One user record: a Kinesis record, or one sub-record of a KPL aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The Kinesis record's sequence number (shared by a KPL aggregate's sub-records).
    pub sequence_number: SequenceNumber,
    /// The index inside a KPL aggregate, for sub-records.
    pub sub_sequence: Option<u64>,
    /// Its partition key.
    pub partition_key: PartitionKey,
    /// When Kinesis received it.
    pub arrival_time: DateTime<Utc>,
    /// Its payload.
    pub data: Bytes,
}

/// Consecutive records of one shard: everything after `from` up to and including `to`.
///
/// A batch holds one of its shard's in-flight slots until it is dropped, so a
/// consumer that holds batches slows the reading of that shard (backpressure).
pub struct ShardBatch {
    /// The shard.
    pub shard_id: Arc<str>,
    /// The records, in shard order.
    pub records: Vec<Record>,
    /// The shard's checkpoint before this batch.
    pub from: ShardCheckpoint,
    /// The shard's checkpoint after it; `to.finished` when it closes the shard.
    pub to: ShardCheckpoint,
    /// Kinesis' `MillisBehindLatest` when the records were read.
    pub millis_behind_latest: Option<i64>,
    pub(crate) _in_flight: OwnedSemaphorePermit,
}

impl ShardBatch {
    /// The checkpoint move this batch stands for.
    pub fn advance(&self) -> ShardAdvance {
        ShardAdvance { shard_id: self.shard_id.to_string(), from: self.from.clone(), to: self.to.clone() }
    }

    /// Whether the shard is finished after this batch.
    pub fn closes_shard(&self) -> bool {
        self.to.finished
    }

    /// Payload bytes in the batch.
    pub fn payload_bytes(&self) -> usize {
        self.records.iter().map(|record| record.data.len()).sum()
    }
}

impl fmt::Debug for ShardBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardBatch")
            .field("shard_id", &self.shard_id)
            .field("records", &self.records.len())
            .field("from", &self.from)
            .field("to", &self.to)
            .field("millis_behind_latest", &self.millis_behind_latest)
            .finish_non_exhaustive()
    }
}
