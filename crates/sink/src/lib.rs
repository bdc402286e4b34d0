//! What leaves the runtime: dataset files and error-log rows.
//!
//! [`DatasetWriter`] writes a batch of accepted rows as Parquet files under
//! `DATA_DIR/datasets/{name}/date=YYYY-MM-DD/` (one file per event date of
//! the batch). Each is written and synced under `{name}/_staging/`, which
//! readers skip, and moved into place ([`DatasetWriter::publish`]) only after
//! the store's batch transaction lists it in the manifest; at start-up
//! [`DatasetWriter::recover`] finishes the moves of committed files and
//! deletes staged ones that never committed, touching nothing else.
//! [`table`] writes a dataset as an Apache Iceberg table instead, its
//! checkpoints committed in the table with the rows.
//! [`error_rows`] turns the codec's rejections into error-log rows.
//! [`openmetadata`] publishes stream metadata to an OpenMetadata server (or a
//! file of its requests), the metadata workflow's sink.

mod dataset;
mod error_rows;
pub mod openmetadata;
mod properties;
pub mod table;

pub use dataset::{DatasetFiles, DatasetWriter, DayFiles, Recovered};

/// Fault injection for the crash tests: `TRIBUTARY_FAILPOINT=NAME` aborts
/// the process (as `kill -9` would) where the code names `NAME`.
pub fn failpoint(name: &str) {
    if std::env::var("TRIBUTARY_FAILPOINT").is_ok_and(|point| point == name) {
        eprintln!("tributary: failpoint {name}: aborting");
        std::process::abort();
    }
}
pub use error_rows::{PAYLOAD_CAP, error_rows};

/// Fault injection for the cluster tests: with `TRIBUTARY_HOLD_AT=NAME`, a
/// task reaching `NAME` while the file `TRIBUTARY_HOLD_FILE` exists waits
/// there until the file is gone, so a test can pause the process with a
/// commit in flight (a zombie that does not know it lost its shards).
pub async fn hold_point(name: &str) {
    let (Ok(point), Some(file)) = (std::env::var("TRIBUTARY_HOLD_AT"), std::env::var_os("TRIBUTARY_HOLD_FILE")) else {
        return;
    };
    let file = std::path::PathBuf::from(file);
    if point != name || !file.exists() {
        return;
    }
    eprintln!("tributary: held at {name} while {} exists", file.display());
    while file.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eprintln!("tributary: released at {name}");
}

/// Numbers the data files this process writes: one count for every writer,
/// so two writers of one dataset (a worker and a replay) never pick the same
/// name in the same microsecond.
pub(crate) fn next_file_sequence() -> u64 {
    static FILES_WRITTEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    FILES_WRITTEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Parquet key-value metadata: each file's watermark when written (RFC 3339, µs).
pub const WATERMARK_METADATA: &str = "tributary.watermark";
pub use properties::{ROW_GROUP_ROWS, writer_properties};

/// Why a dataset file could not be written or cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Parquet or Arrow refused the batch.
    #[error("writing Parquet: {0}")]
    Parquet(String),
}
