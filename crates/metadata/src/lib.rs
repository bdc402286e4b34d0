//! OpenMetadata's Kinesis metadata workflow, run by Tributary.
//!
//! Teams that catalog their streams with OpenMetadata describe the job in a
//! workflow YAML (`source.type: kinesis`, `serviceConnection`, `sourceConfig`,
//! `sink`, `workflowConfig`). [`WorkflowConfig::load`] reads that same file
//! (with `$VAR` expansion) and refuses anything OpenMetadata's schema would,
//! naming the path. [`run`] lists every stream, applies the topic filter
//! before any per-stream call, describes, lists shards and samples the
//! admitted streams concurrently, adds what only Tributary knows (a committed
//! source's dataset schema and its lineage), and publishes through the sink's
//! OpenMetadata module.
//!
//! ```
//! use tributary_metadata::TopicFilter;
//!
//! // OpenMetadata's semantics: anchored at the start, case-insensitive, excludes win.
//! let filter = TopicFilter::new(&["orders".into()], &["orders_test".into()]).unwrap();
//! assert!(filter.admits("Orders_v2"));
//! assert!(!filter.admits("orders_test_1"));
//! assert!(!filter.admits("my_orders"));
//! ```

mod config;
mod connection;
mod extract;
mod filter;
mod payload;
mod run;
mod schema;
mod tributary;

pub use config::{ConfigError, SinkKind, WorkflowConfig};
pub use connection::{ConnectionStep, test_connection};
pub use extract::{Extraction, Progress, StreamFindings};
pub use filter::TopicFilter;
pub use payload::{BASE64_MARKER, sample_text};
pub use run::{DEFAULT_DATABASE_SERVICE, RunOptions, Summary, run};
pub use schema::{column_lineage, container_columns, message_schema};
