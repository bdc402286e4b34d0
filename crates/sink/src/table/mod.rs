//! Datasets as Apache Iceberg v2 tables.
//!
//! Files are written by our own Parquet writer (the same encodings and zstd
//! as the plain layout, each column carrying its Iceberg field id) and
//! registered through iceberg-rust's metadata API; see [`TableWriter`].
//! A commit is one Iceberg transaction: the append and every advanced
//! shard's checkpoint as a table property, accepted only while the table
//! still holds each shard's checkpoint where the batch began. The table is
//! therefore the truth for checkpoints; the store is a cache of it.

mod catalog;
mod checkpoints;
mod durable;
mod dynamo;
mod follow;
mod glue;
mod inspect;
mod maintenance;
mod owner;
mod rejected;
mod replay;
mod s3;
mod schema;
mod stats;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_schema::Schema as ArrowSchema;
use chrono::Utc;
use iceberg::spec::{DataFile, SchemaRef, TableMetadata, Transform, UnboundPartitionSpec};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableCreation, TableIdent};

use catalog::CommitGuard;
use parking_lot::Mutex;
use parquet::schema::types::ColumnPath;
use tributary_reader::{ShardAdvance, ShardCheckpoint};
use tributary_store::ManifestFile;

pub use catalog::{NAMESPACE, TableCatalog, is_table_name};
pub use dynamo::{DEFAULT_DYNAMODB_CATALOG_TABLE, DynamoCatalog};
pub use follow::{Followed, already_rejected};
pub use glue::GlueCatalog;
pub use inspect::{
    SchemaField, SnapshotSummary, TableSummary, checkpoints_of, current_rows, snapshots_and_schema, summaries, summary,
};
pub use maintenance::{Maintained, Maintenance};
pub use owner::WarehouseClaim;
pub use rejected::{
    REJECTED_TIMESTAMP, RejectedRow, rejected_batch, rejected_rows, rejected_schema, rejected_table_name,
};
pub use replay::{REPLAYED_REASON, current_rejections};
pub use schema::{SchemaChangeError, table_schema, with_field_ids};

use crate::SinkError;
use crate::dataset::{DayFiles, create_dir_durably, date_name};

/// Why a table could not be opened, written or committed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A shard's checkpoint in the table is not where the batch began: the
    /// batch was committed already (a replay), or another writer owns the shard.
    #[error(
        "the table's checkpoint of shard {shard_id} moved: the batch was already committed or another writer owns it"
    )]
    CheckpointConflict {
        /// The shard.
        shard_id: String,
    },
    /// In cluster mode: the table's ownership epoch of a shard is not the
    /// writer's; another process claimed the shard since (the writer lost its
    /// lease), so this writer may not commit for it.
    #[error("shard {shard_id} was claimed by a newer owner (epoch {table_epoch} in the table, this writer's {epoch})")]
    Fenced {
        /// The shard.
        shard_id: String,
        /// The epoch the table holds.
        table_epoch: u64,
        /// The epoch the writer presented.
        epoch: u64,
    },
    /// The dataset's fields cannot become the table's schema.
    #[error("schema: {0}")]
    Schema(#[from] SchemaChangeError),
    /// Writing a data file failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The catalog or the table's storage refused.
    #[error("iceberg: {0}")]
    Iceberg(String),
}

impl From<iceberg::Error> for TableError {
    fn from(error: iceberg::Error) -> TableError {
        TableError::Iceberg(error.to_string())
    }
}

/// A data file written for a batch, before it is committed.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// What the table's manifest says about it.
    pub data_file: DataFile,
    /// What Tributary's store records (for status totals).
    pub manifest: ManifestFile,
    /// Where the file waits to be uploaded (an object-storage warehouse).
    pub spooled: Option<PathBuf>,
}

/// A table's data files being written batch by batch, by where each goes.
pub type TableFiles = DayFiles<TablePlace>;

/// Where a data file being written goes: its path in the table, and
/// whether it waits in the spool for an upload there.
#[derive(Debug)]
pub struct TablePlace {
    file_path: String,
    spooled: bool,
}

/// What a table holds for one checkpoint scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheckpoints {
    /// Each shard's checkpoint.
    pub shards: HashMap<String, ShardCheckpoint>,
    /// The largest event time committed (µs).
    pub max_event_micros: Option<i64>,
}

/// Writes one dataset's table.
#[derive(Debug)]
pub struct TableWriter {
    catalog: TableCatalog,
    ident: TableIdent,
    timestamp_column: String,
    /// The table's schema (field ids included) for the rows this writer gets.
    arrow_schema: Arc<ArrowSchema>,
    iceberg_schema: SchemaRef,
    spec_id: i32,
    plain_columns: Mutex<HashSet<ColumnPath>>,
}

/// `file:///abs/path` → `/abs/path`; other schemes are not local.
fn local_path(location: &str) -> Result<PathBuf, TableError> {
    location
        .strip_prefix("file://")
        .map(PathBuf::from)
        .ok_or_else(|| TableError::Iceberg(format!("{location}: only file:// warehouses are supported")))
}

impl TableWriter {
    /// Opens (creating it if missing) the `<dataset>__rejected` table of `dataset`.
    pub async fn open_rejected(catalog: TableCatalog, dataset: &str) -> Result<TableWriter, TableError> {
        TableWriter::open(catalog, &rejected_table_name(dataset), REJECTED_TIMESTAMP, &rejected_schema(), &[]).await
    }

    /// Opens the table of `dataset` (creating it, partitioned by
    /// `day(timestamp_column)`, or evolving its schema to `rows`).
    pub async fn open(
        catalog: TableCatalog,
        dataset: &str,
        timestamp_column: &str,
        rows: &ArrowSchema,
        identifier_fields: &[String],
    ) -> Result<TableWriter, TableError> {
        let ident = TableIdent::new(NamespaceIdent::new(NAMESPACE.to_owned()), dataset.to_owned());
        catalog.adopt(&ident).await?;
        let table = if catalog.table_exists(&ident).await? {
            let table = catalog.load_table(&ident).await?;
            let metadata = table.metadata();
            let current = metadata.current_schema();
            let wanted = table_schema(rows, Some(current), metadata.last_column_id(), identifier_fields)?;
            let same = wanted.as_struct() == current.as_struct()
                && wanted.identifier_field_ids().eq(current.identifier_field_ids());
            if same { table } else { catalog.evolve_schema(&table, wanted).await? }
        } else {
            let schema = table_schema(rows, None, 0, identifier_fields)?;
            let timestamp_id = schema
                .field_by_name(timestamp_column)
                .map(|field| field.id)
                .ok_or_else(|| TableError::Iceberg(format!("no timestamp field `{timestamp_column}`")))?;
            let spec = UnboundPartitionSpec::builder()
                .add_partition_field(timestamp_id, format!("{timestamp_column}_day"), Transform::Day)?
                .build();
            let properties = [
                ("write.format.default".to_owned(), "parquet".to_owned()),
                ("write.parquet.compression-codec".to_owned(), "zstd".to_owned()),
            ];
            let creation = TableCreation::builder()
                .name(dataset.to_owned())
                .schema(schema)
                .partition_spec(spec)
                .properties(properties)
                .build();
            match catalog.create_table(ident.namespace(), creation).await {
                Ok(table) => table,
                // Created by another start in between.
                Err(error) if error.kind() == ErrorKind::TableAlreadyExists => catalog.load_table(&ident).await?,
                Err(error) => return Err(error.into()),
            }
        };
        let metadata = table.metadata();
        let iceberg_schema = metadata.current_schema().clone();
        let arrow_schema = Arc::new(with_field_ids(rows, &iceberg_schema)?);
        Ok(TableWriter {
            catalog,
            ident,
            timestamp_column: timestamp_column.to_owned(),
            arrow_schema,
            iceberg_schema,
            spec_id: metadata.default_partition_spec_id(),
            plain_columns: Mutex::new(HashSet::new()),
        })
    }

    /// Checks, without changing anything, that rows of schema `rows` can be
    /// written to the table of `dataset` (if it exists): a new version of a
    /// source is refused at commit rather than failing once running.
    pub async fn check_schema(
        catalog: &TableCatalog,
        dataset: &str,
        timestamp_column: &str,
        rows: &ArrowSchema,
        identifier_fields: &[String],
    ) -> Result<(), TableError> {
        let ident = TableIdent::new(NamespaceIdent::new(NAMESPACE.to_owned()), dataset.to_owned());
        if !catalog.table_exists(&ident).await? {
            return Ok(());
        }
        let table = catalog.load_table(&ident).await?;
        let metadata = table.metadata();
        let current = metadata.current_schema();
        let wanted = table_schema(rows, Some(current), metadata.last_column_id(), identifier_fields)?;
        // The table stays partitioned by the day of the field it was created with.
        for field in metadata.default_partition_spec().fields() {
            let source = current.field_by_id(field.source_id).map(|f| f.name.clone()).unwrap_or_default();
            if source != timestamp_column || wanted.field_by_name(&source).map(|f| f.id) != Some(field.source_id) {
                return Err(TableError::Schema(SchemaChangeError {
                    field: timestamp_column.to_owned(),
                    reason: format!("the table is partitioned by day({source}); its timestamp field cannot change"),
                }));
            }
        }
        Ok(())
    }

    /// The table's current state.
    pub async fn load(&self) -> Result<Table, TableError> {
        Ok(self.catalog.load_table(&self.ident).await?)
    }

    /// Where the table lives.
    pub fn location(&self) -> String {
        self.catalog.table_location(self.ident.name())
    }

    /// The checkpoints of `scope` the table holds.
    pub async fn checkpoints(&self, scope: &str) -> Result<TableCheckpoints, TableError> {
        let table = self.load().await?;
        table_checkpoints(table.metadata(), scope)
    }

    /// Writes `batch` as one data file per event day under the table's
    /// `data/` directory. Nothing reads them until [`TableWriter::commit`]
    /// names them; the files of a batch that never commits are orphans.
    pub fn write(&self, batch: &RecordBatch, key_values: &[(String, String)]) -> Result<Vec<WrittenFile>, TableError> {
        let mut files = TableFiles::default();
        self.write_into(&mut files, batch)?;
        self.close(files, key_values)
    }

    /// Appends `batch` to `files`, a commit's data files being written batch
    /// by batch (one per event day); [`TableWriter::close`] closes them.
    pub fn write_into(&self, files: &mut TableFiles, batch: &RecordBatch) -> Result<(), TableError> {
        let location = self.location();
        // A local table's files are written in place; an object store's in the spool, then uploaded.
        let (root, spool) = match self.catalog.spool() {
            None => (local_path(&location)?, false),
            Some(spool) => (spool.to_owned(), true),
        };
        let batch = batch
            .clone()
            .with_schema(Arc::clone(&self.arrow_schema))
            .map_err(|error| SinkError::Parquet(format!("the rows do not fit the table's schema: {error}")))?;
        files.append(&batch, &self.timestamp_column, &self.plain_columns, |day| {
            let sequence = crate::next_file_sequence();
            let value = if day.is_some() { date_name(day) } else { "null".to_owned() };
            let partition = format!("{}_day={value}", self.timestamp_column);
            let stamp = Utc::now().format("%Y%m%dT%H%M%S%6f");
            let name = format!("part-{stamp}-{}-{sequence:05}.parquet", std::process::id());
            let directory = if spool { root.clone() } else { root.join("data").join(&partition) };
            create_dir_durably(&directory, &root)?;
            let path =
                if spool { directory.join(format!("{}-{name}", self.ident.name())) } else { directory.join(&name) };
            Ok((TablePlace { file_path: format!("{location}/data/{partition}/{name}"), spooled: spool }, path))
        })?;
        Ok(())
    }

    /// Closes `files` (synced, `key_values` in each footer) and returns them
    /// for a commit, as [`TableWriter::write`] does.
    pub fn close(&self, files: TableFiles, key_values: &[(String, String)]) -> Result<Vec<WrittenFile>, TableError> {
        let closed = files.close(key_values, &self.plain_columns)?;
        closed
            .into_iter()
            .map(|file| {
                let day = file.day.and_then(|day| i32::try_from(day).ok());
                let data_file = stats::data_file(
                    file.place.file_path.clone(),
                    file.bytes,
                    day,
                    &file.footer,
                    &self.iceberg_schema,
                    self.spec_id,
                )
                .map_err(TableError::Iceberg)?;
                let manifest = ManifestFile {
                    dataset: self.ident.name().to_owned(),
                    path: file.place.file_path,
                    rows: file.rows,
                    bytes: file.bytes,
                };
                Ok(WrittenFile { data_file, manifest, spooled: file.place.spooled.then_some(file.path) })
            })
            .collect()
    }

    /// Uploads the spooled files of `written` to the table's object store
    /// (nothing to do for a local table) and removes them from the spool.
    pub async fn upload(&self, written: &[WrittenFile]) -> Result<(), TableError> {
        for file in written {
            let Some(spooled) = &file.spooled else { continue };
            let bytes = std::fs::read(spooled)
                .map_err(|error| TableError::Iceberg(format!("{}: {error}", spooled.display())))?;
            self.catalog.file_io().new_output(&file.manifest.path)?.write(bytes::Bytes::from(bytes)).await?;
            std::fs::remove_file(spooled)
                .map_err(|error| TableError::Iceberg(format!("{}: {error}", spooled.display())))?;
        }
        Ok(())
    }

    /// [`TableWriter::write`] then [`TableWriter::upload`], for maintenance.
    pub(crate) async fn write_async(
        &self,
        batch: RecordBatch,
        key_values: Vec<(String, String)>,
    ) -> Result<Vec<WrittenFile>, TableError> {
        let written = self.write(&batch, &key_values)?;
        self.upload(&written).await?;
        Ok(written)
    }

    /// Commits `files` and the checkpoint `advances` of `scope` as one table
    /// transaction, if every shard's checkpoint in the table still equals its
    /// advance's `from` (checked again on every retry of the optimistic commit).
    /// `also` appends files to a second table (the rejected rows') in the
    /// same catalog commit: both tables move, or neither.
    pub async fn commit(
        &self,
        scope: &str,
        files: Vec<DataFile>,
        advances: &[ShardAdvance],
        max_event_micros: Option<i64>,
        also: Option<(&TableWriter, Vec<DataFile>)>,
    ) -> Result<Table, TableError> {
        self.commit_with(scope, files, advances, None, max_event_micros, also).await
    }

    /// [`TableWriter::commit`], in cluster mode (`fence` given) also only
    /// while the table's ownership epoch of every advanced shard is still
    /// the writer's, as `fence` gives them (from [`TableWriter::claim_shards`]).
    /// A writer that lost a shard's lease and was paused past the hand-over
    /// is refused with [`TableError::Fenced`], however late it wakes.
    pub async fn commit_fenced(
        &self,
        scope: &str,
        files: Vec<DataFile>,
        advances: &[ShardAdvance],
        fence: Option<&HashMap<String, u64>>,
        max_event_micros: Option<i64>,
        also: Option<(&TableWriter, Vec<DataFile>)>,
    ) -> Result<Table, TableError> {
        self.commit_with(scope, files, advances, fence, max_event_micros, also).await
    }

    async fn commit_with(
        &self,
        scope: &str,
        files: Vec<DataFile>,
        advances: &[ShardAdvance],
        epochs: Option<&HashMap<String, u64>>,
        max_event_micros: Option<i64>,
        also: Option<(&TableWriter, Vec<DataFile>)>,
    ) -> Result<Table, TableError> {
        let guard = |metadata: &TableMetadata| -> iceberg::Result<()> {
            let properties = metadata.properties();
            for advance in advances {
                if let Some(epochs) = epochs {
                    let table_epoch = checkpoints::epoch_in(properties, scope, &advance.shard_id)
                        .map_err(|error| iceberg::Error::new(ErrorKind::DataInvalid, error))?;
                    let mine = epochs.get(&advance.shard_id).copied().unwrap_or(0);
                    if table_epoch != mine || mine == 0 {
                        return Err(fenced_error(&advance.shard_id, table_epoch, mine));
                    }
                }
                let key = checkpoints::checkpoint_key(scope, &advance.shard_id);
                let current = match properties.get(&key) {
                    None => ShardCheckpoint::default(),
                    Some(value) => checkpoints::decode(value).ok_or_else(|| {
                        iceberg::Error::new(ErrorKind::DataInvalid, format!("{key}: not a checkpoint"))
                    })?,
                };
                if current != advance.from {
                    return Err(iceberg::Error::new(
                        ErrorKind::PreconditionFailed,
                        conflict_message(&advance.shard_id),
                    ));
                }
            }
            Ok(())
        };
        let properties: HashMap<String, String> = advances
            .iter()
            .map(|advance| (checkpoints::checkpoint_key(scope, &advance.shard_id), checkpoints::encode(&advance.to)))
            .collect();
        self.commit_guarded(files, &properties, scope, max_event_micros, &guard, also).await
    }

    /// In cluster mode, after this process took the leases of `claims`'
    /// shards: records each shard's new ownership epoch in the table (and in
    /// `also`, the rejected table), only if the table holds an older one for
    /// every shard (or this same one: claiming again is harmless), and answers the checkpoints of `scope` in that same
    /// snapshot, where the new owner starts reading. From then on no commit
    /// of an older epoch lands for these shards.
    pub async fn claim_shards(
        &self,
        scope: &str,
        claims: &HashMap<String, u64>,
        also: Option<&TableWriter>,
    ) -> Result<TableCheckpoints, TableError> {
        let guard = |metadata: &TableMetadata| -> iceberg::Result<()> {
            for (shard, epoch) in claims {
                let table_epoch = checkpoints::epoch_in(metadata.properties(), scope, shard)
                    .map_err(|error| iceberg::Error::new(ErrorKind::DataInvalid, error))?;
                // The same epoch is this process's own claim again (a take raises it, so no other holds it).
                if table_epoch > *epoch {
                    return Err(fenced_error(shard, table_epoch, *epoch));
                }
            }
            Ok(())
        };
        let properties: HashMap<String, String> =
            claims.iter().map(|(shard, epoch)| (checkpoints::epoch_key(scope, shard), epoch.to_string())).collect();
        let also = also.map(|rejected| (rejected, Vec::new()));
        let claimed = self.commit_guarded(Vec::new(), &properties, scope, None, &guard, also).await?;
        table_checkpoints(claimed.metadata(), scope)
    }

    /// Writes the store's checkpoints of `scope` into a table that has none
    /// for it yet (a source that ran before its dataset was a table).
    pub async fn seed_checkpoints(&self, scope: &str, seed: &TableCheckpoints) -> Result<Table, TableError> {
        let guard = |metadata: &TableMetadata| -> iceberg::Result<()> {
            match checkpoints::checkpoints_in(metadata.properties(), scope) {
                Ok(found) if found.is_empty() => Ok(()),
                Ok(found) => {
                    let shard = found.into_keys().next().unwrap_or_default();
                    Err(iceberg::Error::new(ErrorKind::PreconditionFailed, conflict_message(&shard)))
                }
                Err(error) => Err(iceberg::Error::new(ErrorKind::DataInvalid, error)),
            }
        };
        let properties: HashMap<String, String> = seed
            .shards
            .iter()
            .map(|(shard, checkpoint)| (checkpoints::checkpoint_key(scope, shard), checkpoints::encode(checkpoint)))
            .collect();
        self.commit_guarded(Vec::new(), &properties, scope, seed.max_event_micros, &guard, None).await
    }

    async fn commit_guarded(
        &self,
        files: Vec<DataFile>,
        properties: &HashMap<String, String>,
        scope: &str,
        max_event_micros: Option<i64>,
        guard: CommitGuard<'_>,
        also: Option<(&TableWriter, Vec<DataFile>)>,
    ) -> Result<Table, TableError> {
        let batch = Batch { properties, scope, guard };
        let Some((rejected, rejected_files)) = also else {
            return self.commit_attempts(files, max_event_micros, &batch, Pairing::Single).await;
        };
        // The rejected table carries the batch's checkpoints too, so that it can be checked on its own.
        if self.catalog.commits_tables_together() {
            let also = Also { table: rejected, files: rejected_files };
            return self.commit_attempts(files, max_event_micros, &batch, Pairing::Together(also)).await;
        }
        // A catalog that moves one table at a time: the rejected table first. If the
        // rows table (the truth) then refuses or never gets the batch, the rejected
        // table is ahead: the shard's owner brings it back in step (`follow`), keeping
        // what it holds, and the batch read again adds only the rejections past it.
        let carries_files = !files.is_empty() || !rejected_files.is_empty();
        rejected.commit_attempts(rejected_files, None, &batch, Pairing::Single).await.map_err(|error| match error {
            TableError::Iceberg(message) => TableError::Iceberg(format!("the rejected table: {message}")),
            other => other,
        })?;
        // Between a batch's two commits (not a claim's, which carry no files).
        if carries_files {
            crate::failpoint("between-table-commits");
        }
        self.commit_attempts(files, max_event_micros, &batch, Pairing::Single).await
    }

    /// The optimistic commit of `files` (and this table's largest event time)
    /// with `batch`: applied to the tables as they are now, guarded, and tried
    /// again when another commit moved a table first.
    async fn commit_attempts(
        &self,
        files: Vec<DataFile>,
        max_event_micros: Option<i64>,
        batch: &Batch<'_>,
        pairing: Pairing<'_>,
    ) -> Result<Table, TableError> {
        let Batch { scope, guard, .. } = *batch;
        let conflict = |error: iceberg::Error| match error.kind() {
            ErrorKind::PreconditionFailed => match error.message().strip_prefix(FENCED) {
                Some(fenced) => {
                    let mut parts = fenced.split(' ');
                    let shard_id = parts.next().unwrap_or_default().to_owned();
                    let mut number = || parts.next().and_then(|part| part.parse().ok()).unwrap_or(0);
                    let (table_epoch, epoch) = (number(), number());
                    TableError::Fenced { shard_id, table_epoch, epoch }
                }
                None => {
                    let shard_id = error.message().strip_prefix(CONFLICT).unwrap_or_default().to_owned();
                    TableError::CheckpointConflict { shard_id }
                }
            },
            _ => error.into(),
        };
        // An earlier version's single-writer undo: it would roll back other writers' batches.
        let undo = checkpoints::undo_key(scope);
        let mut attempt = 0;
        loop {
            // Each attempt starts from the tables as they are now, and the guard checks again.
            let staging = catalog::Staging::new(&self.catalog, self.ident.name(), guard);
            let table = self.load().await?;
            let mut properties = batch.properties.clone();
            if let Some(max_event) = max_event_micros {
                let stored = checkpoints::max_event_in(table.metadata().properties(), scope);
                let max_event = stored.map_or(max_event, |stored| stored.max(max_event));
                properties.insert(checkpoints::max_event_key(scope), max_event.to_string());
            }
            let removals: Vec<String> =
                table.metadata().properties().contains_key(&undo).then(|| undo.clone()).into_iter().collect();
            transact(&table, files.clone(), properties, removals)?.commit(&staging).await.map_err(conflict)?;
            if let Pairing::Together(also) = &pairing {
                let other = also.table.load().await?;
                let removals = other.metadata().properties().contains_key(&undo).then(|| undo.clone());
                let transaction =
                    transact(&other, also.files.clone(), batch.properties.clone(), removals.into_iter().collect())?;
                transaction.commit(&staging).await?;
            }
            match staging.install().await {
                Ok(mut tables) => return Ok(tables.swap_remove(0)),
                Err(error) if error.kind() == ErrorKind::CatalogCommitConflicts && attempt < COMMIT_ATTEMPTS => {
                    attempt += 1;
                    COMMIT_RETRIES.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// What a commit's table has to do with another table's commit.
enum Pairing<'a> {
    /// Nothing.
    Single,
    /// Both move in one catalog commit.
    Together(Also<'a>),
}

/// What every table a batch moves is committed with.
#[derive(Clone, Copy)]
struct Batch<'a> {
    /// The checkpoint properties the batch sets.
    properties: &'a HashMap<String, String>,
    scope: &'a str,
    /// Checks each table's checkpoints are where the batch began.
    guard: CommitGuard<'a>,
}

/// A second table one commit appends to (the batch's properties set on it too).
struct Also<'a> {
    table: &'a TableWriter,
    files: Vec<DataFile>,
}

/// A transaction appending `files` (if any), setting `properties` and removing `removals`.
fn transact(
    table: &Table,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
    removals: Vec<String>,
) -> iceberg::Result<Transaction> {
    let mut transaction = Transaction::new(table);
    if !files.is_empty() {
        // Our file names are unique; checking for duplicates would read every manifest on each commit.
        let append = transaction.fast_append().with_check_duplicate(false).add_data_files(files);
        transaction = append.apply(transaction)?;
    }
    let mut update = transaction.update_table_properties();
    for (key, value) in properties {
        update = update.set(key, value);
    }
    for key in removals {
        update = update.remove(key);
    }
    update.apply(transaction)
}

/// Times a commit is tried again after another commit moved a table first.
const COMMIT_ATTEMPTS: u32 = 4;

/// Commits of this process tried again because another writer's commit moved a table first.
static COMMIT_RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many table commits this process tried again (each retry reloads the
/// tables and writes the manifests anew: with several writers, their cost).
pub fn commit_retries() -> u64 {
    COMMIT_RETRIES.load(Ordering::Relaxed)
}

const CONFLICT: &str = "checkpoint moved: ";
const FENCED: &str = "epoch moved: ";

/// The guard's refusal of a writer whose epoch for `shard_id` is not the table's.
fn fenced_error(shard_id: &str, table_epoch: u64, epoch: u64) -> iceberg::Error {
    iceberg::Error::new(ErrorKind::PreconditionFailed, format!("{FENCED}{shard_id} {table_epoch} {epoch}"))
}

fn conflict_message(shard_id: &str) -> String {
    format!("{CONFLICT}{shard_id}")
}

/// A Parquet reader of the file at `url`, read whole through `file_io`.
pub(crate) async fn parquet_reader(
    file_io: &iceberg::io::FileIO,
    url: &str,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<bytes::Bytes>, TableError> {
    let bytes = file_io.new_input(url)?.read().await?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|error| TableError::Iceberg(format!("{url}: {error}")))
}

/// The checkpoints of `scope` in a table's metadata.
pub fn table_checkpoints(metadata: &TableMetadata, scope: &str) -> Result<TableCheckpoints, TableError> {
    let properties = metadata.properties();
    Ok(TableCheckpoints {
        shards: checkpoints::checkpoints_in(properties, scope).map_err(TableError::Iceberg)?,
        max_event_micros: checkpoints::max_event_in(properties, scope),
    })
}
