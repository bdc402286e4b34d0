//! Tributary's embedded state in one SQLite database (WAL, full sync).
//!
//! It holds the committed versions of every source, the per-shard
//! checkpoints, the dataset manifest (which Parquet files are part of a
//! dataset) and the error log. A batch is recorded by **one** transaction
//! ([`Store::commit_batch`]): its files enter the manifest, its shards'
//! checkpoints advance (compare-and-set) and its rejected rows enter the error
//! log together, or not at all. That transaction is the exactly-once point.

mod batches;
mod checkpoints;
mod error_log;
mod migrations;
mod replays;
mod sources;
mod tables;

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::Connection;

pub use batches::{BatchCommit, ManifestFile, ShardCounts};
pub use error_log::{ErrorLogReader, ErrorPage, ErrorQuery, ErrorRetention, ErrorRow, ErrorRowRef, NewErrorRow};
pub use replays::{ReplayChunk, ReplayMark, ReplayOutcome, Replayed};
pub use sources::{NewVersion, SourceSummary, StoredVersion};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, corruption, locking).
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A batch began at a checkpoint the store no longer holds.
    #[error(
        "checkpoint of shard {shard_id} in {scope} moved: the batch was already recorded or another worker owns it"
    )]
    CheckpointConflict {
        /// The checkpoint scope.
        scope: String,
        /// The shard.
        shard_id: String,
    },
    /// The database was written by a newer Tributary.
    #[error("state database is at schema version {found}; this build knows up to {known}")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build migrates to.
        known: i64,
    },
    /// The database file's permissions could not be set.
    #[error("state database file {0}")]
    Io(String),
    /// A stored value cannot be read back.
    #[error("state database holds an invalid {what}: {detail}")]
    Corrupt {
        /// What was read.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl StoreError {
    /// Another connection held the database longer than the busy timeout: a
    /// passing condition, worth retrying.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _))
                if matches!(error.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

/// The state database.
///
/// Writes go through one connection, reads (status, the error log, lists)
/// through another: WAL lets them run side by side, so a large query never
/// holds up a batch commit.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
    /// `None` for an in-memory database, which a second connection cannot open.
    reader: Option<Mutex<Connection>>,
    /// The database file (`None` in memory).
    path: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating and migrating as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        owner_only(path).map_err(|error| StoreError::Io(format!("{}: {error}", path.display())))?;
        let mut store = Store::from_connection(Connection::open(path)?)?;
        store.reader = Some(Mutex::new(open_reader(path)?));
        store.path = Some(path.to_owned());
        // SQLite gives its WAL and shared-memory files the database's mode; make sure.
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            let companion = std::path::PathBuf::from(companion);
            if companion.exists() {
                owner_only(&companion).map_err(|error| StoreError::Io(format!("{}: {error}", companion.display())))?;
            }
        }
        Ok(store)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        Store::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(mut connection: Connection) -> Result<Store, StoreError> {
        // WAL lets readers (status, errors) run beside the writer; FULL makes each
        // batch commit durable before the worker moves on.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&mut connection)?;
        Ok(Store { connection: Mutex::new(connection), reader: None, path: None })
    }

    /// The connection for reads.
    fn reading(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.reader.as_ref().unwrap_or(&self.connection).lock()
    }
}

/// A read-only connection to the database at `path`.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.busy_timeout(std::time::Duration::from_secs(5))?;
    // Large reads (a replay's pages of rejected rows, an export) map the file instead
    // of copying every page through read(2).
    reader.pragma_update(None, "mmap_size", 256_i64 << 20)?;
    Ok(reader)
}

/// Creates `path` if needed, readable and writable by its owner only: the
/// state holds definitions (registry URLs, role ARNs) and rejected payloads.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    }
    Ok(())
}
