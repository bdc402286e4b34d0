//! Per-shard Kinesis consumers that never lose or repeat a record.
//!
//! A [`Reader`] reads every shard of a stream (one task per shard, children
//! after all their parents), unpacks KPL aggregates, paces and retries its
//! calls, and hands out [`ShardBatch`]es. Each batch names the checkpoint range
//! `(from, to]` it covers; the caller writes the records, then commits the
//! range to a [`CheckpointStore`] (compare-and-set), so a restart resumes
//! exactly after the last record written.
//!
//! ```no_run
//! # async fn example(client: aws_sdk_kinesis::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tributary_reader::{CheckpointStore, MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, StartPosition};
//!
//! let store = Arc::new(MemoryCheckpointStore::new());
//! let target = ReadTarget {
//!     stream_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".into(),
//!     start: StartPosition::TrimHorizon,
//!     scope: "orders".into(),
//! };
//! let mut reader = Reader::start(client, target, store.clone(), ReaderConfig::default());
//! while let Some(batch) = reader.next().await {
//!     let batch = batch?;
//!     // ... write batch.records somewhere durable, then:
//!     store.commit("orders", &[batch.advance()]).await?;
//! }
//! # Ok(()) }
//! ```

mod answer;
mod batch;
pub mod catalog;
mod checkpoint;
mod compact;
mod config;
mod cursor;
mod efo;
mod fault;
mod get_records;
mod http1;
pub mod kpl;
mod lineage;
mod metrics;
mod polling;
mod position;
mod reader;
mod route;
mod shard;
mod shard_iterator;
mod signing;
mod transport;

pub use batch::{PartitionKey, Record, ShardBatch};
pub use checkpoint::{CheckpointError, CheckpointFuture, CheckpointStore, MemoryCheckpointStore, ShardAdvance};
pub use config::{ConsumerKind, ReaderConfig};
pub use lineage::ShardInfo;
pub use metrics::{ShardMetricsSnapshot, SourceMetrics};
pub use position::{InvalidSequenceNumber, RecordPosition, SequenceNumber, ShardCheckpoint, StartPosition};
pub use reader::{ReadTarget, Reader};
pub use route::USER_AGENT;

/// Why a reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// Kinesis refused a call in a way retrying cannot fix (stream gone,
    /// access denied, invalid request).
    #[error("{operation} on {target} failed: {code}: {message}")]
    Kinesis {
        /// The API operation, e.g. `GetRecords`.
        operation: &'static str,
        /// The stream or shard it was about.
        target: String,
        /// AWS' error code (or the HTTP status).
        code: String,
        /// AWS' message.
        message: String,
    },
    /// Kinesis answered with something that cannot be right.
    #[error("shard {shard_id}: invalid answer from Kinesis: {detail}")]
    InvalidResponse {
        /// The shard being read.
        shard_id: String,
        /// What was wrong.
        detail: String,
    },
    /// The checkpoints could not be read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A bug: a task failed where it cannot.
    #[error("reader internal error: {0}")]
    Internal(String),
}
