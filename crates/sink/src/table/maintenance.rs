//! Keeping a table small and readable: compacting a day's small files into
//! one (a `replace` snapshot whose one manifest also supersedes the many
//! that appends left), expiring old snapshots and deleting the files only
//! they reached, and deleting orphans (files of batches that never
//! committed) once they are older than the last commit and than a grace
//! period (three days by default, Iceberg's own): another writer on the same
//! warehouse may have uploaded a file it has not committed yet.
//!
//! The worker runs this between its own commits, so it never races the
//! writer; every change is still committed only if the table is where it
//! was read (another writer's commit in between makes it skip a round).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use arrow_array::RecordBatch;
use chrono::{DateTime, FixedOffset, Utc};
use iceberg::ErrorKind;
use iceberg::spec::{
    DataFile, MAIN_BRANCH, Manifest, ManifestList, ManifestListWriter, ManifestWriterBuilder, Operation, Snapshot,
    Struct, Summary,
};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{TableError, TableWriter};

/// When and how much to maintain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maintenance {
    /// How often a worker maintains its tables.
    pub every: Duration,
    /// Snapshots older than this expire...
    pub snapshot_max_age: Duration,
    /// ...but at least this many (the newest) are kept.
    pub snapshot_min_count: usize,
    /// A day partition is compacted once it has this many small files.
    pub compact_min_files: usize,
    /// Files smaller than this are small.
    pub small_file_bytes: u64,
    /// At most this many bytes of files are compacted per partition and
    /// round (they are decoded in memory, several times their size).
    pub compact_input_bytes: u64,
    /// An unreferenced file is an orphan only once it is this old.
    pub orphan_min_age: Duration,
}

impl Default for Maintenance {
    fn default() -> Maintenance {
        Maintenance {
            every: Duration::from_secs(600),
            snapshot_max_age: Duration::from_secs(24 * 3600),
            snapshot_min_count: 10,
            compact_min_files: 16,
            small_file_bytes: 8 * 1024 * 1024,
            compact_input_bytes: 64 * 1024 * 1024,
            orphan_min_age: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Small files replaced by compacted ones.
    pub compacted_files: usize,
    /// Compacted files written.
    pub written_files: usize,
    /// Snapshots expired.
    pub expired_snapshots: usize,
    /// Files deleted (manifest lists, manifests, data and metadata files no snapshot reaches, orphans).
    pub deleted_files: usize,
}

/// A live data file of the current snapshot, as its manifest entry has it.
struct LiveFile {
    data_file: DataFile,
    snapshot_id: i64,
    sequence_number: i64,
    file_sequence_number: Option<i64>,
}

async fn manifest_list(table: &Table, snapshot: &Snapshot) -> Result<ManifestList, TableError> {
    let bytes = table.file_io().new_input(snapshot.manifest_list())?.read().await?;
    Ok(ManifestList::parse_with_version(&bytes, table.metadata().format_version())?)
}

/// The manifest paths of `snapshot`'s list.
async fn manifest_paths(table: &Table, snapshot: &Snapshot) -> Result<Vec<String>, TableError> {
    Ok(manifest_list(table, snapshot).await?.entries().iter().map(|m| m.manifest_path.clone()).collect())
}

/// Every entry of `snapshot`'s manifests: (data file path, alive?), and the live ones in full.
async fn entries(table: &Table, snapshot: &Snapshot) -> Result<(Vec<(String, bool)>, Vec<LiveFile>), TableError> {
    let mut paths = Vec::new();
    let mut live = Vec::new();
    for manifest_file in manifest_list(table, snapshot).await?.entries() {
        let manifest = manifest_file.load_manifest(table.file_io()).await?;
        for entry in manifest.entries() {
            paths.push((entry.data_file().file_path().to_owned(), entry.is_alive()));
            if entry.is_alive() {
                live.push(LiveFile {
                    data_file: entry.data_file().clone(),
                    snapshot_id: entry.snapshot_id().unwrap_or(snapshot.snapshot_id()),
                    sequence_number: entry.sequence_number().unwrap_or(0),
                    file_sequence_number: entry.file_sequence_number,
                });
            }
        }
    }
    Ok((paths, live))
}

impl TableWriter {
    /// One maintenance round: compaction, then expiry, then orphans.
    pub async fn maintain(&self, settings: &Maintenance) -> Result<Maintained, TableError> {
        let mut done = Maintained::default();
        self.compact(settings, &mut done).await?;
        self.expire(settings, &mut done).await?;
        self.remove_orphans(settings.orphan_min_age, &mut done).await?;
        Ok(done)
    }

    async fn compact(&self, settings: &Maintenance, done: &mut Maintained) -> Result<(), TableError> {
        let table = self.load().await?;
        let Some(current) = table.metadata().current_snapshot().cloned() else { return Ok(()) };
        let (_, live) = entries(&table, &current).await?;
        let mut small: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, file) in live.iter().enumerate() {
            if file.data_file.file_size_in_bytes() < settings.small_file_bytes {
                small.entry(partition_key(file.data_file.partition())).or_default().push(index);
            }
        }
        let groups: Vec<Vec<usize>> = small
            .into_values()
            .map(|mut group| {
                // The smallest first, up to the round's budget: memory stays bounded.
                group.sort_by_key(|index| live[*index].data_file.file_size_in_bytes());
                let mut budget = settings.compact_input_bytes;
                group.retain(|index| {
                    let size = live[*index].data_file.file_size_in_bytes();
                    let fits = size <= budget;
                    budget = budget.saturating_sub(size);
                    fits
                });
                group
            })
            .filter(|group| group.len() >= settings.compact_min_files.max(2))
            .collect();
        if groups.is_empty() {
            return Ok(());
        }
        let mut replaced: HashSet<usize> = HashSet::new();
        let mut written = Vec::new();
        for group in groups {
            let paths: Vec<&str> = group.iter().map(|index| live[*index].data_file.file_path()).collect();
            let Some((rows, key_values)) = read_files(table.file_io(), &paths).await? else {
                tracing::info!(table = self.ident.name(), "not compacting files written with different schemas");
                continue;
            };
            let files = self.write_async(rows, key_values).await?;
            written.extend(files.into_iter().map(|file| file.data_file));
            replaced.extend(group);
        }
        if written.is_empty() {
            return Ok(());
        }
        // One manifest for the whole snapshot: what stays, what goes, what comes.
        let metadata = table.metadata();
        let snapshot_id = loop {
            let id = fastrand::i64(1..i64::MAX);
            if metadata.snapshot_by_id(id).is_none() {
                break id;
            }
        };
        let sequence_number = metadata.next_sequence_number();
        let location = self.location();
        let manifest_path = format!("{location}/metadata/{}-m0.avro", uuid_like());
        let spec = metadata.default_partition_spec().as_ref().clone();
        let mut manifest = ManifestWriterBuilder::new(
            table.file_io().new_output(&manifest_path)?,
            Some(snapshot_id),
            metadata.current_schema().clone(),
            spec,
        )
        .build_v2_data();
        let (mut deleted_rows, mut added_rows, mut total_rows, mut total_files) = (0u64, 0u64, 0u64, 0u64);
        for (index, file) in live.iter().enumerate() {
            if replaced.contains(&index) {
                deleted_rows += file.data_file.record_count();
                manifest.add_delete_file(file.data_file.clone(), file.sequence_number, file.file_sequence_number)?;
            } else {
                total_rows += file.data_file.record_count();
                total_files += 1;
                manifest.add_existing_file(
                    file.data_file.clone(),
                    file.snapshot_id,
                    file.sequence_number,
                    file.file_sequence_number,
                )?;
            }
        }
        for file in &written {
            added_rows += file.record_count();
            total_rows += file.record_count();
            total_files += 1;
            manifest.add_file(file.clone(), sequence_number)?;
        }
        let manifest = manifest.write_manifest_file().await?;
        let list_path = format!("{location}/metadata/snap-{snapshot_id}-1-{}.avro", uuid_like());
        let mut list = ManifestListWriter::v2(
            table.file_io().new_output(&list_path)?.writer().await?,
            snapshot_id,
            Some(current.snapshot_id()),
            sequence_number,
        );
        list.add_manifests(std::iter::once(manifest))?;
        list.close().await?;
        let summary = Summary {
            operation: Operation::Replace,
            additional_properties: [
                ("added-data-files", written.len() as u64),
                ("deleted-data-files", replaced.len() as u64),
                ("added-records", added_rows),
                ("deleted-records", deleted_rows),
                ("total-records", total_rows),
                ("total-data-files", total_files),
            ]
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_string()))
            .collect(),
        };
        let snapshot = Snapshot::builder()
            .with_snapshot_id(snapshot_id)
            .with_parent_snapshot_id(Some(current.snapshot_id()))
            .with_sequence_number(sequence_number)
            .with_timestamp_ms(Utc::now().timestamp_millis())
            .with_manifest_list(list_path)
            .with_summary(summary)
            .with_schema_id(metadata.current_schema_id())
            .build();
        let base_location = table.metadata_location().map(str::to_owned);
        let next =
            metadata.clone().into_builder(base_location).set_branch_snapshot(snapshot, MAIN_BRANCH)?.build()?.metadata;
        match self.catalog.replace_metadata(&table, next).await {
            Ok(_) => {
                done.compacted_files += replaced.len();
                done.written_files += written.len();
                Ok(())
            }
            // The table moved (another writer): the compacted files are orphans, removed in a later round.
            Err(error) if error.kind() == ErrorKind::CatalogCommitConflicts => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn expire(&self, settings: &Maintenance, done: &mut Maintained) -> Result<(), TableError> {
        let table = self.load().await?;
        let before: Vec<_> = table.metadata().snapshots().cloned().collect();
        if before.len() <= settings.snapshot_min_count {
            return Ok(());
        }
        let age = i64::try_from(settings.snapshot_max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = Utc::now().timestamp_millis().saturating_sub(age);
        // Nothing old enough beyond the newest ones kept: no commit (it would only rewrite the metadata).
        let mut by_age: Vec<i64> = before.iter().map(|s| s.timestamp_ms()).collect();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        if !by_age.iter().skip(settings.snapshot_min_count).any(|at| *at < cutoff) {
            return Ok(());
        }
        let transaction = Transaction::new(&table);
        let expire =
            transaction.expire_snapshots().expire_older_than_ms(cutoff).retain_last(settings.snapshot_min_count.max(1));
        let after = match expire.apply(transaction)?.commit(&self.catalog).await {
            Ok(after) => after,
            Err(error) if error.kind() == ErrorKind::CatalogCommitConflicts => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let retained: HashSet<i64> = after.metadata().snapshots().map(|s| s.snapshot_id()).collect();
        let removed: Vec<_> = before.iter().filter(|s| !retained.contains(&s.snapshot_id())).collect();
        done.expired_snapshots += removed.len();
        // What is still reachable is computed from every retained snapshot, as
        // Iceberg's own expiry does: retention keeps ancestors by count and by
        // age, and timestamps may step back, so the retained snapshots need not
        // be the newest ones in a row, and no one of them stands for the rest.
        let mut seen_manifests: HashSet<String> = HashSet::new();
        let mut alive: HashSet<String> = HashSet::new();
        let mut dropped_entries: Vec<String> = Vec::new();
        for snapshot in after.metadata().snapshots() {
            for manifest_path in manifest_paths(&after, snapshot).await? {
                if !seen_manifests.insert(manifest_path.clone()) {
                    continue;
                }
                for (path, is_alive) in manifest_entries(&after, &manifest_path).await? {
                    if is_alive {
                        alive.insert(path);
                    } else {
                        // Removed by a retained snapshot (a compaction): kept only if another retained one has it.
                        dropped_entries.push(path);
                    }
                }
            }
        }
        let mut doomed: Vec<String> = dropped_entries.into_iter().filter(|path| !alive.contains(path)).collect();
        for snapshot in removed {
            doomed.push(snapshot.manifest_list().to_owned());
            for manifest_path in manifest_paths(&table, snapshot).await? {
                // Retained snapshots still use it, or another expired snapshot's pass already took it.
                if !seen_manifests.insert(manifest_path.clone()) {
                    continue;
                }
                for (path, _) in manifest_entries(&table, &manifest_path).await? {
                    if !alive.contains(&path) {
                        doomed.push(path);
                    }
                }
                doomed.push(manifest_path);
            }
        }
        doomed.sort();
        doomed.dedup();
        for path in doomed {
            if table.file_io().exists(&path).await? {
                table.file_io().delete(&path).await?;
                done.deleted_files += 1;
            }
        }
        Ok(())
    }

    /// Files under `data/` and `metadata/` that no retained snapshot or
    /// metadata file names, older than the last commit and than `min_age`:
    /// left by batches and commits that never landed.
    async fn remove_orphans(&self, min_age: Duration, done: &mut Maintained) -> Result<(), TableError> {
        let table = self.load().await?;
        let metadata = table.metadata();
        let last_commit =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(metadata.last_updated_ms()).unwrap_or(0));
        let old_enough = SystemTime::now().checked_sub(min_age).unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff = last_commit.min(old_enough);
        let mut referenced: HashSet<String> = HashSet::new();
        referenced.extend(table.metadata_location().map(str::to_owned));
        referenced.extend(metadata.metadata_log().iter().map(|log| log.metadata_file.clone()));
        for snapshot in metadata.snapshots() {
            referenced.insert(snapshot.manifest_list().to_owned());
            for manifest_file in manifest_list(&table, snapshot).await?.entries() {
                if referenced.insert(manifest_file.manifest_path.clone()) {
                    let manifest = manifest_file.load_manifest(table.file_io()).await?;
                    referenced.extend(manifest.entries().iter().map(|entry| entry.data_file().file_path().to_owned()));
                }
            }
        }
        let location = self.location();
        for directory in ["data", "metadata"] {
            for (url, modified) in self.catalog.list_files(&format!("{location}/{directory}/")).await? {
                let unnamed = !referenced.contains(&url) && !url.ends_with("/version-hint.text");
                if unnamed && modified < cutoff {
                    table.file_io().delete(&url).await?;
                    done.deleted_files += 1;
                }
            }
        }
        Ok(())
    }
}

/// Every entry of the manifest at `path`: (data file path, alive?).
async fn manifest_entries(table: &Table, path: &str) -> Result<Vec<(String, bool)>, TableError> {
    let bytes = table.file_io().new_input(path)?.read().await?;
    let manifest = Manifest::parse_avro(&bytes)?;
    Ok(manifest.entries().iter().map(|entry| (entry.data_file().file_path().to_owned(), entry.is_alive())).collect())
}

/// A stable text key for a partition value.
fn partition_key(partition: &Struct) -> String {
    format!("{partition:?}")
}

/// A random 128-bit hex name part (the role Iceberg gives a UUID in file names).
fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Parquet key-value metadata, as written.
type KeyValues = Vec<(String, String)>;

/// The rows of `paths` as one batch, with the key-value metadata of the
/// file with the newest watermark (a compacted file is as late as its
/// latest input, whatever their sizes); `None` when the files do not
/// share one schema.
///
/// Reading is IO; decoding the Parquet files and joining them (up to the
/// round's budget, 64 MiB by default) is CPU work for a blocking thread.
async fn read_files(
    file_io: &iceberg::io::FileIO,
    paths: &[&str],
) -> Result<Option<(RecordBatch, KeyValues)>, TableError> {
    let mut contents = Vec::with_capacity(paths.len());
    for path in paths {
        contents.push((path.to_string(), file_io.new_input(*path)?.read().await?));
    }
    tokio::task::spawn_blocking(move || decode_files(contents))
        .await
        .map_err(|error| TableError::Iceberg(format!("decoding files to compact: {error}")))?
}

fn decode_files(contents: Vec<(String, bytes::Bytes)>) -> Result<Option<(RecordBatch, KeyValues)>, TableError> {
    let mut batches = Vec::new();
    let mut newest: Option<(Option<DateTime<FixedOffset>>, KeyValues)> = None;
    for (path, bytes) in contents {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|error| TableError::Iceberg(format!("{path}: {error}")))?;
        let key_values: KeyValues = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|pairs| {
                pairs
                    .iter()
                    .filter(|pair| !pair.key.starts_with("ARROW:"))
                    .filter_map(|pair| Some((pair.key.clone(), pair.value.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        let watermark = key_values
            .iter()
            .find(|(key, _)| key == crate::WATERMARK_METADATA)
            .and_then(|(_, value)| DateTime::parse_from_rfc3339(value).ok());
        if newest.as_ref().is_none_or(|(seen, _)| watermark >= *seen) {
            newest = Some((watermark, key_values));
        }
        let reader = builder.build().map_err(|error| TableError::Iceberg(format!("{path}: {error}")))?;
        for batch in reader {
            batches.push(batch.map_err(|error| TableError::Iceberg(format!("{path}: {error}")))?);
        }
    }
    let Some(first) = batches.first() else { return Ok(None) };
    let schema = first.schema();
    if batches.iter().any(|batch| batch.schema() != schema) {
        return Ok(None);
    }
    let rows = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|error| TableError::Iceberg(format!("joining files: {error}")))?;
    Ok(Some((rows, newest.map(|(_, key_values)| key_values).unwrap_or_default())))
}
