//! Parquet dataset files, partitioned by event date.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::schema::types::ColumnPath;
use tributary_store::ManifestFile;

use crate::SinkError;
use crate::properties::{dictionary_overflowed, properties_without_dictionary};

/// Hive's name for rows whose partition value is null.
const NULL_DATE: &str = "__HIVE_DEFAULT_PARTITION__";
/// Where files wait for their batch's commit. Readers skip paths starting
/// with `_` or `.` (pyarrow, Spark, DuckDB's hive globs), so nothing here is
/// seen as part of the dataset.
const STAGING: &str = "_staging";
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A dataset's files being written batch by batch, by where each is published.
pub type DatasetFiles = DayFiles<PathBuf>;

/// Writes one dataset's files.
#[derive(Debug)]
pub struct DatasetWriter {
    data_dir: PathBuf,
    dataset: String,
    timestamp_column: String,
    /// Leaf columns whose dictionary overflowed in a file written earlier.
    ///
    /// A column with too many distinct values for a dictionary page (1 MiB)
    /// falls back to plain encoding part way through each file, after paying
    /// for hashing every value until then; once seen, later files write it
    /// plain from the start. Learned again after a restart.
    plain_columns: Mutex<HashSet<ColumnPath>>,
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io { path: path.display().to_string(), source }
}

impl DatasetWriter {
    /// A writer of dataset `dataset` under `data_dir`, partitioned by the
    /// UTC date of `timestamp_column` (a microsecond timestamp).
    pub fn new(data_dir: &Path, dataset: &str, timestamp_column: &str) -> DatasetWriter {
        DatasetWriter {
            data_dir: data_dir.to_owned(),
            dataset: dataset.to_owned(),
            timestamp_column: timestamp_column.to_owned(),
            plain_columns: Mutex::new(HashSet::new()),
        }
    }

    /// `DATA_DIR/datasets/{name}`.
    pub fn dataset_dir(&self) -> PathBuf {
        self.data_dir.join("datasets").join(&self.dataset)
    }

    /// Writes `batch` as one file per event date into the staging area;
    /// returns the files for the manifest, by the paths (relative to the data
    /// directory) they get once [published](DatasetWriter::publish). Each file
    /// is complete and synced before this returns; no reader sees it before
    /// it is published, which happens only after the manifest lists it.
    pub fn write(&self, batch: &RecordBatch) -> Result<Vec<ManifestFile>, SinkError> {
        self.write_with_metadata(batch, &[])
    }

    /// [`DatasetWriter::write`], with `key_values` in each file's Parquet
    /// key-value metadata (a cdc source's keys, the watermark).
    pub fn write_with_metadata(
        &self,
        batch: &RecordBatch,
        key_values: &[(String, String)],
    ) -> Result<Vec<ManifestFile>, SinkError> {
        let mut files = DatasetFiles::default();
        self.write_into(&mut files, batch)?;
        self.close(files, key_values)
    }

    /// Appends `batch` to `files`, a commit's files being written batch by
    /// batch (one per event date, in the staging area); [`DatasetWriter::close`]
    /// closes them.
    pub fn write_into(&self, files: &mut DatasetFiles, batch: &RecordBatch) -> Result<(), SinkError> {
        files.append(batch, &self.timestamp_column, &self.plain_columns, |day| {
            let sequence = crate::next_file_sequence();
            let name =
                format!("part-{}-{}-{sequence:05}.parquet", Utc::now().format("%Y%m%dT%H%M%S%6f"), std::process::id());
            let final_path = self.dataset_dir().join(format!("date={}", date_name(day))).join(&name);
            let staged = self.staged_path(&final_path);
            create_dir_durably(staged.parent().unwrap_or(&self.data_dir), &self.data_dir)?;
            Ok((final_path, staged))
        })
    }

    /// Closes `files` (synced, `key_values` in each footer) and returns them
    /// for the manifest, as [`DatasetWriter::write`] does.
    pub fn close(&self, files: DatasetFiles, key_values: &[(String, String)]) -> Result<Vec<ManifestFile>, SinkError> {
        let closed = files.close(key_values, &self.plain_columns)?;
        Ok(closed
            .iter()
            .map(|file| ManifestFile {
                dataset: self.dataset.clone(),
                path: file.place.strip_prefix(&self.data_dir).unwrap_or(&file.place).to_string_lossy().into_owned(),
                rows: file.rows,
                bytes: file.bytes,
            })
            .collect())
    }

    /// Moves committed files from the staging area into the dataset. Done
    /// already for a file no longer staged and in place (a retry).
    pub fn publish(&self, files: &[ManifestFile]) -> Result<(), SinkError> {
        files.iter().try_for_each(|file| self.publish_one(&self.data_dir.join(&file.path)))
    }

    /// Moves the staged file of `final_path` into place, its directory synced.
    fn publish_one(&self, final_path: &Path) -> Result<(), SinkError> {
        let staged = self.staged_path(final_path);
        if !staged.exists() && final_path.exists() {
            return Ok(());
        }
        let directory = final_path.parent().unwrap_or(&self.data_dir);
        create_dir_durably(directory, &self.data_dir)?;
        std::fs::rename(&staged, final_path).map_err(io(final_path))?;
        sync_dir(directory)
    }

    /// At start-up: publishes the staged files the manifest lists (committed
    /// before a crash stopped their move) and deletes the other staged ones
    /// (written for a batch that never committed). Touches nothing outside
    /// the staging area, so a lost or older state database cannot cost
    /// committed data.
    pub fn recover(&self, committed: &HashSet<String>) -> Result<Recovered, SinkError> {
        let staging = self.dataset_dir().join(STAGING);
        let mut recovered = Recovered::default();
        if !staging.exists() {
            return Ok(recovered);
        }
        for partition in std::fs::read_dir(&staging).map_err(io(&staging))? {
            let partition = partition.map_err(io(&staging))?.path();
            if !partition.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&partition).map_err(io(&partition))? {
                let staged = entry.map_err(io(&partition))?.path();
                let Some(final_path) = self.final_path(&staged) else { continue };
                let relative = final_path.strip_prefix(&self.data_dir).unwrap_or(&final_path);
                if committed.contains(relative.to_string_lossy().as_ref()) {
                    self.publish_one(&final_path)?;
                    recovered.published += 1;
                } else {
                    std::fs::remove_file(&staged).map_err(io(&staged))?;
                    recovered.discarded += 1;
                }
            }
        }
        Ok(recovered)
    }

    /// `datasets/{name}/date=D/F` → `datasets/{name}/_staging/date=D/F`.
    fn staged_path(&self, final_path: &Path) -> PathBuf {
        let relative = final_path.strip_prefix(self.dataset_dir()).unwrap_or(final_path);
        self.dataset_dir().join(STAGING).join(relative)
    }

    /// The inverse of [`DatasetWriter::staged_path`], for `date=D/F` staged files only.
    fn final_path(&self, staged: &Path) -> Option<PathBuf> {
        let relative = staged.strip_prefix(self.dataset_dir().join(STAGING)).ok()?;
        let mut parts = relative.components();
        let (Some(date), Some(name), None) = (parts.next(), parts.next(), parts.next()) else { return None };
        let date = date.as_os_str().to_str()?;
        let name = name.as_os_str().to_str()?;
        (date.starts_with("date=") && name.starts_with("part-") && name.ends_with(".parquet"))
            .then(|| self.dataset_dir().join(date).join(name))
    }
}

/// Rows of `batch` by the UTC day (days since the epoch) of their
/// `timestamp_column`: `None` for rows without one, today when the batch has no such column.
pub(crate) fn split_by_day(
    batch: &RecordBatch,
    timestamp_column: &str,
) -> Result<Vec<(Option<i64>, RecordBatch)>, SinkError> {
    let Some(timestamps) = batch
        .column_by_name(timestamp_column)
        .and_then(|column| column.as_any().downcast_ref::<TimestampMicrosecondArray>())
    else {
        // No usable event time: partition by the day the rows were written.
        return Ok(vec![(Some(Utc::now().timestamp().div_euclid(86_400)), batch.clone())]);
    };
    let mut days: BTreeMap<Option<i64>, Vec<u32>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let day = timestamps.is_valid(row).then(|| timestamps.value(row).div_euclid(MICROS_PER_DAY));
        days.entry(day).or_default().push(row as u32);
    }
    if days.len() == 1 {
        let day = days.into_keys().next().flatten();
        return Ok(vec![(day, batch.clone())]);
    }
    days.into_iter()
        .map(|(day, rows)| {
            let taken = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|error| SinkError::Parquet(error.to_string()))?;
            Ok((day, taken))
        })
        .collect()
}

/// `YYYY-MM-DD` of a day since the epoch, or Hive's null-partition name.
pub(crate) fn date_name(day: Option<i64>) -> String {
    match day.and_then(|day| DateTime::from_timestamp(day * 86_400, 0)) {
        Some(date) => date.format("%Y-%m-%d").to_string(),
        None => NULL_DATE.to_owned(),
    }
}

/// A Parquet file being written batch by batch: zstd, with the encodings
/// its first batch suggests (see [`properties_without_dictionary`]).
struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl std::fmt::Debug for ParquetFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ParquetFile").field("path", &self.path).field("rows", &self.rows).finish()
    }
}

fn parquet_error(error: parquet::errors::ParquetError) -> SinkError {
    SinkError::Parquet(error.to_string())
}

impl ParquetFile {
    /// Creates the file at `path` for rows like `first` (not written yet).
    fn create(
        path: &Path,
        first: &RecordBatch,
        plain_columns: &Mutex<HashSet<ColumnPath>>,
    ) -> Result<ParquetFile, SinkError> {
        let file = File::create(path).map_err(io(path))?;
        let properties = properties_without_dictionary(first, &plain_columns.lock()).map_err(parquet_error)?;
        let writer = ArrowWriter::try_new(file, first.schema(), Some(properties)).map_err(parquet_error)?;
        Ok(ParquetFile { path: path.to_owned(), writer, rows: 0 })
    }

    fn write(&mut self, rows: &RecordBatch) -> Result<(), SinkError> {
        self.writer.write(rows).map_err(parquet_error)?;
        self.rows += rows.num_rows() as u64;
        Ok(())
    }

    /// Closes the file, synced, with `key_values` in its footer; returns
    /// its size and footer. Columns whose dictionary overflowed join
    /// `plain_columns`, so later files write them plain from the start.
    fn finish(
        mut self,
        key_values: &[(String, String)],
        plain_columns: &Mutex<HashSet<ColumnPath>>,
    ) -> Result<(u64, ParquetMetaData), SinkError> {
        for (key, value) in key_values {
            self.writer.append_key_value_metadata(KeyValue::new(key.clone(), value.clone()));
        }
        let metadata = self.writer.finish().map_err(parquet_error)?;
        let file = self.writer.inner();
        file.sync_all().map_err(io(&self.path))?;
        let bytes = file.metadata().map_err(io(&self.path))?.len();
        let overflowed =
            metadata.row_groups().iter().flat_map(|group| group.columns()).filter(|c| dictionary_overflowed(c));
        plain_columns.lock().extend(overflowed.map(|column| column.column_path().clone()));
        Ok((bytes, metadata))
    }
}

/// Files being written batch by batch, one per event day, each with where
/// it goes (`Place`): a commit's rows, however many batches brought them,
/// land in as few files as one batch of them all would.
#[derive(Debug)]
pub struct DayFiles<Place> {
    open: BTreeMap<Option<i64>, (Place, ParquetFile)>,
}

impl<Place> Default for DayFiles<Place> {
    fn default() -> DayFiles<Place> {
        DayFiles { open: BTreeMap::new() }
    }
}

/// A day's file, closed: its day, where it goes, where it was written, its rows, size and footer.
pub(crate) struct ClosedFile<Place> {
    pub(crate) day: Option<i64>,
    pub(crate) place: Place,
    pub(crate) path: PathBuf,
    pub(crate) rows: u64,
    pub(crate) bytes: u64,
    pub(crate) footer: ParquetMetaData,
}

impl<Place> DayFiles<Place> {
    /// Appends `batch`'s rows to their days' files; a day not seen yet gets
    /// a file where `create` says (a place and the path to write at).
    pub(crate) fn append(
        &mut self,
        batch: &RecordBatch,
        timestamp_column: &str,
        plain_columns: &Mutex<HashSet<ColumnPath>>,
        mut create: impl FnMut(Option<i64>) -> Result<(Place, PathBuf), SinkError>,
    ) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (day, rows) in split_by_day(batch, timestamp_column)? {
            let (_, file) = match self.open.entry(day) {
                std::collections::btree_map::Entry::Occupied(open) => open.into_mut(),
                std::collections::btree_map::Entry::Vacant(missing) => {
                    let (place, path) = create(day)?;
                    let file = ParquetFile::create(&path, &rows, plain_columns)?;
                    missing.insert((place, file))
                }
            };
            file.write(&rows)?;
        }
        Ok(())
    }

    /// Closes every file (`key_values` in each footer), by day: each file and
    /// each directory holding one synced, as a commit may name them next.
    pub(crate) fn close(
        self,
        key_values: &[(String, String)],
        plain_columns: &Mutex<HashSet<ColumnPath>>,
    ) -> Result<Vec<ClosedFile<Place>>, SinkError> {
        let closed = self
            .open
            .into_iter()
            .map(|(day, (place, file))| {
                let (path, rows) = (file.path.clone(), file.rows);
                let (bytes, footer) = file.finish(key_values, plain_columns)?;
                Ok(ClosedFile { day, place, path, rows, bytes, footer })
            })
            .collect::<Result<Vec<_>, SinkError>>()?;
        // The files must outlive a power cut once a commit names them.
        let directories: BTreeSet<&Path> = closed.iter().filter_map(|file| file.path.parent()).collect();
        directories.into_iter().try_for_each(sync_dir)?;
        Ok(closed)
    }
}

/// What [`DatasetWriter::recover`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Committed files moved into place.
    pub published: usize,
    /// Uncommitted staged files deleted.
    pub discarded: usize,
}

/// Creates `directory` and any missing parents below `root`, syncing each new
/// one into its parent (else a power cut can lose the directory, and the
/// files in it, after the commit that lists them).
pub(crate) fn create_dir_durably(directory: &Path, root: &Path) -> Result<(), SinkError> {
    if directory.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = directory;
    while !at.exists() && at.starts_with(root) && at != root {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(directory).map_err(io(directory))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(directory: &Path) -> Result<(), SinkError> {
    File::open(directory).and_then(|dir| dir.sync_all()).map_err(io(directory))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;

    fn batch(timestamps: Vec<Option<i64>>) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]);
        let ids = Int64Array::from_iter_values(0..timestamps.len() as i64);
        let ts = TimestampMicrosecondArray::from(timestamps).with_timezone("UTC");
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ids), Arc::new(ts)]).expect("batch")
    }

    fn read_ids(path: &Path) -> Vec<i64> {
        let file = File::open(path).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
        reader
            .flat_map(|batch| {
                let batch = batch.expect("batch");
                let ids = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("int64").clone();
                ids.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn a_column_whose_dictionary_overflowed_is_written_plain_in_later_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = DatasetWriter::new(dir.path(), "events", "ts");
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
            Field::new("session", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, false),
        ]));
        // Every other row one hot session, the rest 30,000 distinct 40-byte ones: a sample
        // looks half repeated, but the dictionary needs 1.2 MB, more than a page holds.
        let rows = 60_000;
        let session =
            |i: usize| if i.is_multiple_of(2) { "session-hot".to_owned() } else { format!("session-{i:032}") };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from(vec![1_717_243_200_000_000; rows]).with_timezone("UTC")),
                Arc::new(StringArray::from_iter_values((0..rows).map(session))),
                Arc::new(StringArray::from_iter_values((0..rows).map(|i| ["DE", "FR", "BR"][i % 3]))),
            ],
        )
        .expect("batch");
        let dictionary_pages = |file: &ManifestFile| -> Vec<(String, bool)> {
            let file = File::open(dir.path().join(&file.path)).expect("open");
            let reader = SerializedFileReader::new(file).expect("parquet");
            let group = reader.metadata().row_group(0);
            group
                .columns()
                .iter()
                .map(|column| (column.column_path().string(), column.dictionary_page_offset().is_some()))
                .collect()
        };
        let first = writer.write(&batch).expect("first file");
        let second = writer.write(&batch).expect("second file");
        writer.publish(&first).and_then(|()| writer.publish(&second)).expect("publish");
        let expected = |session: bool| {
            vec![("ts".to_owned(), false), ("session".to_owned(), session), ("country".to_owned(), true)]
        };
        assert_eq!(dictionary_pages(&first[0]), expected(true), "the first file tries a dictionary");
        assert_eq!(dictionary_pages(&second[0]), expected(false), "later files write the overflowing column plain");
        for file in [&first[0], &second[0]] {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(File::open(dir.path().join(&file.path)).expect("open"))
                    .expect("parquet")
                    .build()
                    .expect("reader");
            let read: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("rows");
            assert_eq!(arrow_select::concat::concat_batches(&schema, &read).expect("concat"), batch);
        }
    }

    #[test]
    fn batches_written_into_one_set_of_files_land_in_one_file_per_event_date_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = DatasetWriter::new(dir.path(), "events", "ts");
        let june_first = 19_875 * MICROS_PER_DAY;
        let june_second = june_first + MICROS_PER_DAY;
        let mut files = DatasetFiles::default();
        // Ids restart at 0 in each batch: (batch, id) pairs tell the rows apart when read back.
        for timestamps in [vec![Some(june_first), Some(june_second)], vec![], vec![Some(june_first + 7), None]] {
            writer.write_into(&mut files, &batch(timestamps)).expect("write into");
        }
        let closed = writer.close(files, &[("tributary.test".to_owned(), "yes".to_owned())]).expect("close");
        let staged = |file: &ManifestFile| writer.staged_path(&dir.path().join(&file.path));
        let by_date: Vec<(String, u64, Vec<i64>)> = closed
            .iter()
            .map(|file| {
                let date = file.path.split('/').nth(2).expect("date=...").to_owned();
                (date, file.rows, read_ids(&staged(file)))
            })
            .collect();
        assert_eq!(
            by_date,
            [
                (format!("date={NULL_DATE}"), 1, vec![1]),
                ("date=2024-06-01".to_owned(), 2, vec![0, 0]),
                ("date=2024-06-02".to_owned(), 1, vec![1]),
            ],
            "one file per date, holding every batch's rows of that date in the order written"
        );
        let footer = SerializedFileReader::new(File::open(staged(&closed[1])).expect("open")).expect("parquet");
        let key_values = footer.metadata().file_metadata().key_value_metadata().expect("key values");
        assert!(key_values.iter().any(|kv| kv.key == "tributary.test" && kv.value.as_deref() == Some("yes")));
        assert!(closed.iter().all(|file| file.bytes == std::fs::metadata(staged(file)).expect("size").len()));

        let nothing = writer.close(DatasetFiles::default(), &[]).expect("close nothing");
        assert!(nothing.is_empty(), "no batch, no file");
    }

    #[test]
    fn rows_land_in_one_file_per_event_date_staged_until_published() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = DatasetWriter::new(dir.path(), "events", "ts");
        let day = MICROS_PER_DAY;
        // 2024-06-01, 2024-06-02, 2024-06-01, null.
        let june_first = 19_875 * day;
        let files = writer
            .write(&batch(vec![Some(june_first), Some(june_first + day), Some(june_first + 5), None]))
            .expect("write");
        let staged = |file: &ManifestFile| writer.staged_path(&dir.path().join(&file.path));
        let mut by_date: Vec<(String, Vec<i64>)> = files
            .iter()
            .map(|file| {
                let date = file.path.split('/').nth(2).expect("date=...").to_owned();
                (date, read_ids(&staged(file)))
            })
            .collect();
        by_date.sort();
        assert_eq!(
            by_date,
            [
                ("date=2024-06-01".to_owned(), vec![0, 2]),
                ("date=2024-06-02".to_owned(), vec![1]),
                (format!("date={NULL_DATE}"), vec![3]),
            ]
        );
        assert!(files.iter().all(|file| file.path.starts_with("datasets/events/") && file.bytes > 0));

        // Nothing is visible before publishing; then the files are in place.
        assert!(!dir.path().join(&files[0].path).exists(), "staged, not in the dataset");
        writer.publish(&files[..1]).expect("publish");
        assert!(dir.path().join(&files[0].path).exists());
        writer.publish(&files[..1]).expect("publishing again is a no-op");
    }

    #[test]
    fn recovery_publishes_committed_staged_files_discards_the_rest_and_touches_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = DatasetWriter::new(dir.path(), "events", "ts");
        let june_first = 19_875 * MICROS_PER_DAY;
        let published = writer.write(&batch(vec![Some(june_first)])).expect("write");
        writer.publish(&published).expect("publish");
        let staged = writer.write(&batch(vec![Some(june_first), Some(june_first + MICROS_PER_DAY)])).expect("write");
        // A file in the dataset that no manifest lists (a lost or restored state database).
        let unknown = dir.path().join("datasets/events/date=2024-06-01/part-from-before.parquet");
        std::fs::write(&unknown, b"someone's data").expect("unknown file");

        // The commit listed the first staged file; the second never committed.
        let committed: HashSet<String> = [&published[0], &staged[0]].iter().map(|file| file.path.clone()).collect();
        let recovered = writer.recover(&committed).expect("recover");
        assert_eq!(recovered, Recovered { published: 1, discarded: 1 });
        assert_eq!(read_ids(&dir.path().join(&staged[0].path)), vec![0]);
        assert!(!dir.path().join(&staged[1].path).exists());
        assert!(dir.path().join(&published[0].path).exists(), "a published file stays");
        assert!(unknown.exists(), "a file outside the staging area is never deleted");
        // With no manifest at all (the state database lost): still nothing outside staging goes.
        assert_eq!(writer.recover(&HashSet::new()).expect("recover"), Recovered::default());
        assert!(dir.path().join(&published[0].path).exists() && dir.path().join(&staged[0].path).exists());
    }
}
