//! What a table holds now: its current snapshot's summary and rows, read
//! through the table's metadata (never by listing its directory, which also
//! holds files of batches that never committed).

use arrow_array::RecordBatch;
use futures_util::TryStreamExt;
use iceberg::table::Table;
use iceberg::{Catalog, NamespaceIdent, TableIdent};

use super::{NAMESPACE, TableCatalog, TableError};

/// One table as status and `tributary tables` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// The table (the dataset's name).
    pub name: String,
    /// Where it lives.
    pub location: String,
    /// Its current metadata file.
    pub metadata_location: String,
    /// The current snapshot, if anything was committed.
    pub snapshot_id: Option<i64>,
    /// Snapshots the metadata still holds.
    pub snapshots: usize,
    /// Rows in the current snapshot.
    pub rows: u64,
    /// Data files in the current snapshot.
    pub files: u64,
    /// The current schema's id.
    pub schema_id: i32,
}

fn ident(name: &str) -> TableIdent {
    TableIdent::new(NamespaceIdent::new(NAMESPACE.to_owned()), name.to_owned())
}

/// The data files of `table`'s current snapshot, with their row counts.
async fn current_files(table: &Table) -> Result<Vec<(String, u64)>, TableError> {
    if table.metadata().current_snapshot().is_none() {
        return Ok(Vec::new());
    }
    let tasks: Vec<_> = table.scan().build()?.plan_files().await?.try_collect().await?;
    Ok(tasks.into_iter().map(|task| (task.data_file_path().to_owned(), task.record_count.unwrap_or(0))).collect())
}

/// The summary of table `name`, if the catalog has it.
pub async fn summary(catalog: &TableCatalog, name: &str) -> Result<Option<TableSummary>, TableError> {
    let ident = ident(name);
    if !catalog.table_exists(&ident).await? {
        return Ok(None);
    }
    let table = catalog.load_table(&ident).await?;
    let files = current_files(&table).await?;
    let metadata = table.metadata();
    Ok(Some(TableSummary {
        name: name.to_owned(),
        location: metadata.location().to_owned(),
        metadata_location: table.metadata_location().unwrap_or_default().to_owned(),
        snapshot_id: metadata.current_snapshot_id(),
        snapshots: metadata.snapshots().count(),
        rows: files.iter().map(|(_, rows)| rows).sum(),
        files: files.len() as u64,
        schema_id: metadata.current_schema_id(),
    }))
}

/// The checkpoints of `scope` in table `name`, if the catalog has the table
/// (a start-up that writes files asks what an earlier table run committed).
pub async fn checkpoints_of(
    catalog: &TableCatalog,
    name: &str,
    scope: &str,
) -> Result<Option<super::TableCheckpoints>, TableError> {
    let ident = ident(name);
    if !catalog.table_exists(&ident).await? {
        return Ok(None);
    }
    let table = catalog.load_table(&ident).await?;
    super::table_checkpoints(table.metadata(), scope).map(Some)
}

/// Every table of the catalog, summarised.
pub async fn summaries(catalog: &TableCatalog) -> Result<Vec<TableSummary>, TableError> {
    let mut found = Vec::new();
    for ident in catalog.list_tables(&NamespaceIdent::new(NAMESPACE.to_owned())).await? {
        if let Some(summary) = summary(catalog, ident.name()).await? {
            found.push(summary);
        }
    }
    Ok(found)
}

/// Up to `limit` rows of table `name`'s current snapshot (files in path
/// order), and how many rows it has in all; `None` without such a table.
pub async fn current_rows(
    catalog: &TableCatalog,
    name: &str,
    limit: usize,
) -> Result<Option<(u64, Vec<RecordBatch>)>, TableError> {
    let ident = ident(name);
    if !catalog.table_exists(&ident).await? {
        return Ok(None);
    }
    let table = catalog.load_table(&ident).await?;
    let mut files = current_files(&table).await?;
    files.sort();
    let total = files.iter().map(|(_, rows)| rows).sum();
    let mut batches = Vec::new();
    let mut wanted = limit;
    for (path, _) in files {
        if wanted == 0 {
            break;
        }
        let reader = super::parquet_reader(table.file_io(), &path)
            .await?
            .with_batch_size(wanted)
            .build()
            .map_err(|error| TableError::Iceberg(format!("{path}: {error}")))?;
        for batch in reader {
            let batch = batch.map_err(|error| TableError::Iceberg(format!("{path}: {error}")))?;
            let take = wanted.min(batch.num_rows());
            batches.push(batch.slice(0, take));
            wanted -= take;
            if wanted == 0 {
                break;
            }
        }
    }
    Ok(Some((total, batches)))
}

/// One snapshot of a table, as its metadata summarises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// Its id.
    pub snapshot_id: i64,
    /// When it was committed (ms since the epoch).
    pub timestamp_ms: i64,
    /// `append`, `replace`, `overwrite` or `delete`.
    pub operation: String,
    /// Rows it added, when the summary says.
    pub added_rows: Option<u64>,
    /// Data files it added, when the summary says.
    pub added_files: Option<u64>,
}

/// A field of a table's current schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaField {
    /// Its Iceberg field id.
    pub id: i32,
    /// Its name.
    pub name: String,
    /// Its Iceberg type.
    pub field_type: String,
    /// Whether it is never null.
    pub required: bool,
}

/// Table `name`'s snapshots (oldest first) and current schema, if the catalog has it.
pub async fn snapshots_and_schema(
    catalog: &TableCatalog,
    name: &str,
) -> Result<Option<(Vec<SnapshotSummary>, Vec<SchemaField>)>, TableError> {
    let ident = ident(name);
    if !catalog.table_exists(&ident).await? {
        return Ok(None);
    }
    let table = catalog.load_table(&ident).await?;
    let metadata = table.metadata();
    let number = |snapshot: &iceberg::spec::SnapshotRef, key: &str| -> Option<u64> {
        snapshot.summary().additional_properties.get(key).and_then(|value| value.parse().ok())
    };
    let mut snapshots: Vec<SnapshotSummary> = metadata
        .snapshots()
        .map(|snapshot| SnapshotSummary {
            snapshot_id: snapshot.snapshot_id(),
            timestamp_ms: snapshot.timestamp_ms(),
            operation: snapshot.summary().operation.as_str().to_owned(),
            added_rows: number(snapshot, "added-records"),
            added_files: number(snapshot, "added-data-files"),
        })
        .collect();
    snapshots.sort_by_key(|snapshot| (snapshot.timestamp_ms, snapshot.snapshot_id));
    let fields = metadata
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|field| SchemaField {
            id: field.id,
            name: field.name.clone(),
            field_type: field.field_type.to_string(),
            required: field.required,
        })
        .collect();
    Ok(Some((snapshots, fields)))
}
