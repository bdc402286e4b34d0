//! Recording a written batch: manifest, checkpoints, error log, counters, in
//! one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};
use tributary_reader::{ShardAdvance, ShardCheckpoint};

use crate::checkpoints::apply_advances;
use crate::error_log::{self, ErrorRetention, NewErrorRow};
use crate::{Store, StoreError};

/// A Parquet file that becomes part of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The dataset.
    pub dataset: String,
    /// Its path relative to the data directory.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// Rows written and records rejected, per shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCounts {
    /// The shard.
    pub shard_id: String,
    /// Rows written to the dataset.
    pub rows: u64,
    /// Records sent to the error log.
    pub rejected: u64,
    /// Decoded rows the source's `where`, `since`/`until` or `sample` left out.
    pub filtered: u64,
    /// Rows older than the watermark (dropped, or kept with `late: keep`).
    pub late: u64,
}

/// Everything one written batch changes.
#[derive(Debug, Clone)]
pub struct BatchCommit<'a> {
    /// The source.
    pub source: &'a str,
    /// The source version that read the batch.
    pub version: u64,
    /// The checkpoint scope (the source reading one stream).
    pub scope: &'a str,
    /// Files written (already in place under the data directory).
    pub files: &'a [ManifestFile],
    /// Checkpoint moves, one per shard in the batch.
    pub advances: &'a [ShardAdvance],
    /// Rejected records.
    pub rejected: &'a [NewErrorRow],
    /// Counters to add.
    pub counts: &'a [ShardCounts],
    /// Error-log retention applied after the insert.
    pub retention: ErrorRetention,
    /// The largest event time seen (µs), persisted with the checkpoints so
    /// the watermark survives a restart.
    pub max_event_micros: Option<i64>,
}

impl Store {
    /// Records a written batch atomically. Fails with
    /// [`StoreError::CheckpointConflict`] (changing nothing) when a shard's
    /// checkpoint is no longer where the batch began.
    pub fn commit_batch(&self, batch: &BatchCommit<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        record_batch(&transaction, batch, now, Settled::Yes)?;
        transaction.commit()?;
        Ok(())
    }

    /// [`Store::commit_batch`] for a batch whose truth is a table commit
    /// still to come: also remembers what it added (error-log rows, manifest
    /// rows), so [`Store::settle_prepared`] can take it back if that commit
    /// never lands. Its counters and its largest event time (the watermark)
    /// move only when it is settled as landed, so neither status nor the
    /// rules of a retry see a batch the table does not have. One prepared
    /// batch per scope at a time.
    pub fn prepare_batch(&self, batch: &BatchCommit<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let last_id = |table: &str| -> Result<i64, StoreError> {
            Ok(transaction.query_row(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), [], |row| row.get(0))?)
        };
        let (errors_after, manifest_after) = (last_id("error_log")?, last_id("manifest")?);
        record_batch(&transaction, batch, now, Settled::No)?;
        let (errors_through, manifest_through) = (last_id("error_log")?, last_id("manifest")?);
        let counts: String = batch
            .counts
            .iter()
            .map(|c| format!("{}\t{}\t{}\t{}\t{}\n", c.shard_id, c.rows, c.rejected, c.filtered, c.late))
            .collect();
        transaction.execute(
            "INSERT INTO prepared_batches
               (scope, source, errors_after, errors_through, manifest_after, manifest_through, counts, max_event_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                batch.scope,
                batch.source,
                errors_after,
                errors_through,
                manifest_after,
                manifest_through,
                counts,
                batch.max_event_micros
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Whether `scope` has a batch waiting for its table commit (a stop came between the two).
    pub fn has_prepared_batch(&self, scope: &str) -> Result<bool, StoreError> {
        let connection = self.reading();
        let found =
            connection.query_row("SELECT 1 FROM prepared_batches WHERE scope = ?1", [scope], |_| Ok(())).optional()?;
        Ok(found.is_some())
    }

    /// Settles `scope`'s prepared batch, if it has one, against the
    /// checkpoints its table holds: it landed when the store's checkpoints
    /// (advanced by the batch) are the table's. `None` when there was no
    /// batch, else whether it landed.
    pub fn settle_prepared_against(
        &self,
        scope: &str,
        in_table: &HashMap<String, ShardCheckpoint>,
    ) -> Result<Option<bool>, StoreError> {
        let landed = &self.checkpoints(scope)? == in_table;
        Ok(self.settle_prepared(scope, landed)?.then_some(landed))
    }

    /// Settles `scope`'s prepared batch, if it has one: kept (and its
    /// counters added) when its table commit `landed`, otherwise its
    /// error-log and manifest rows are taken back (its checkpoints are the
    /// caller's to restore from the table). Returns whether there was one.
    pub fn settle_prepared(&self, scope: &str, landed: bool) -> Result<bool, StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let prepared = transaction
            .query_row(
                "SELECT source, errors_after, errors_through, manifest_after, manifest_through, counts, max_event_micros
                 FROM prepared_batches WHERE scope = ?1",
                [scope],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, i64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, Option<i64>>(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((source, errors_after, errors_through, manifest_after, manifest_through, counts, max_event)) =
            prepared
        else {
            return Ok(false);
        };
        if landed {
            if let Some(max_event) = max_event {
                raise_event_time(&transaction, scope, max_event, now_micros())?;
            }
            for line in counts.lines() {
                let mut parts = line.split('\t');
                let shard = parts.next().unwrap_or_default();
                let numbers: Vec<u64> = parts.map(|part| part.parse().unwrap_or(0)).collect();
                let [rows, rejected, filtered, late] = numbers[..] else {
                    return Err(StoreError::Corrupt { what: "prepared batch counts", detail: line.to_owned() });
                };
                let counts = ShardCounts { shard_id: shard.to_owned(), rows, rejected, filtered, late };
                add_counts(&transaction, &source, &counts)?;
            }
        } else {
            transaction
                .execute("DELETE FROM error_log WHERE id > ?1 AND id <= ?2", params![errors_after, errors_through])?;
            transaction.execute(
                "DELETE FROM manifest WHERE id > ?1 AND id <= ?2",
                params![manifest_after, manifest_through],
            )?;
        }
        transaction.execute("DELETE FROM prepared_batches WHERE scope = ?1", [scope])?;
        transaction.commit()?;
        Ok(true)
    }
}

/// Whether a recorded batch is known to have landed: only then do its
/// counters and event time move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Yes,
    No,
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Raises `scope`'s largest event time to `max_event` (never lowers it).
fn raise_event_time(transaction: &Transaction<'_>, scope: &str, max_event: i64, now: i64) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO event_times (scope, max_event_micros, updated_at_micros) VALUES (?1, ?2, ?3)
         ON CONFLICT (scope) DO UPDATE SET
           max_event_micros = MAX(max_event_micros, excluded.max_event_micros),
           updated_at_micros = excluded.updated_at_micros",
        params![scope, max_event, now],
    )?;
    Ok(())
}

/// Everything `batch` changes, inside `transaction`.
fn record_batch(
    transaction: &Transaction<'_>,
    batch: &BatchCommit<'_>,
    now: DateTime<Utc>,
    settled: Settled,
) -> Result<(), StoreError> {
    apply_advances(transaction, batch.scope, batch.advances)?;
    for file in batch.files {
        transaction.execute(
            "INSERT INTO manifest (dataset, path, source, version, rows, bytes, committed_at_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                file.dataset,
                file.path,
                batch.source,
                batch.version as i64,
                file.rows as i64,
                file.bytes as i64,
                now.timestamp_micros()
            ],
        )?;
    }
    error_log::insert(transaction, batch.source, batch.version, now, batch.rejected)?;
    error_log::prune_by_age(transaction, batch.source, batch.retention, now)?;
    if !batch.rejected.is_empty() {
        error_log::prune_by_count(transaction, batch.source, batch.retention)?;
    }
    if settled == Settled::Yes {
        for counts in batch.counts {
            add_counts(transaction, batch.source, counts)?;
        }
        if let Some(max_event) = batch.max_event_micros {
            raise_event_time(transaction, batch.scope, max_event, now.timestamp_micros())?;
        }
    }
    Ok(())
}

pub(crate) fn add_counts(transaction: &Transaction<'_>, source: &str, counts: &ShardCounts) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO shard_counts (source, shard_id, rows, rejected, filtered, late) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (source, shard_id) DO UPDATE SET
           rows = rows + excluded.rows, rejected = rejected + excluded.rejected,
           filtered = filtered + excluded.filtered, late = late + excluded.late",
        params![
            source,
            counts.shard_id,
            counts.rows as i64,
            counts.rejected as i64,
            counts.filtered as i64,
            counts.late as i64
        ],
    )?;
    Ok(())
}

impl Store {
    /// The largest event time (µs) committed under a checkpoint scope.
    pub fn max_event_time(&self, scope: &str) -> Result<Option<i64>, StoreError> {
        let connection = self.reading();
        let found = connection.query_row("SELECT max_event_micros FROM event_times WHERE scope = ?1", [scope], |row| {
            row.get::<_, i64>(0)
        });
        match found {
            Ok(micros) => Ok(Some(micros)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Paths (relative to the data directory) of a dataset's committed files.
    pub fn manifest_paths(&self, dataset: &str) -> Result<HashSet<String>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare("SELECT path FROM manifest WHERE dataset = ?1")?;
        let paths = statement.query_map([dataset], |row| row.get(0))?;
        Ok(paths.collect::<Result<_, _>>()?)
    }

    /// Rows and bytes of a dataset's committed files (not those of a batch
    /// still waiting for its table commit).
    pub fn dataset_totals(&self, dataset: &str) -> Result<(u64, u64), StoreError> {
        let connection = self.reading();
        let (rows, bytes): (i64, i64) = connection.query_row(
            "SELECT COALESCE(SUM(rows), 0), COALESCE(SUM(bytes), 0) FROM manifest
             WHERE dataset = ?1 AND NOT EXISTS (
               SELECT 1 FROM prepared_batches p WHERE manifest.id > p.manifest_after AND manifest.id <= p.manifest_through)",
            [dataset],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((rows as u64, bytes as u64))
    }

    /// Rows written and records rejected per shard of a source, since it was first committed.
    pub fn shard_counts(&self, source: &str) -> Result<Vec<ShardCounts>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare(
            "SELECT shard_id, rows, rejected, filtered, late FROM shard_counts WHERE source = ?1 ORDER BY shard_id",
        )?;
        let rows = statement.query_map([source], |row| {
            Ok(ShardCounts {
                shard_id: row.get(0)?,
                rows: row.get::<_, i64>(1)? as u64,
                rejected: row.get::<_, i64>(2)? as u64,
                filtered: row.get::<_, i64>(3)? as u64,
                late: row.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_log::ErrorQuery;
    use tributary_reader::{SequenceNumber, ShardCheckpoint};

    fn to(sequence: &str) -> ShardCheckpoint {
        ShardCheckpoint::after(SequenceNumber::new(sequence).expect("digits"))
    }

    fn rejected(sequence: &str, reason: &str) -> NewErrorRow {
        NewErrorRow {
            shard_id: "shard-0".into(),
            sequence_number: sequence.into(),
            sub_sequence: None,
            arrival_time: Utc::now(),
            reason: reason.into(),
            field: "id".into(),
            message: "expected int64".into(),
            payload: b"{\"id\": \"x\"}".to_vec(),
            payload_length: 11,
        }
    }

    #[test]
    fn a_batch_commits_whole_or_not_at_all() {
        let store = Store::open_in_memory().expect("store");
        let files = [ManifestFile { dataset: "d".into(), path: "datasets/d/a.parquet".into(), rows: 10, bytes: 100 }];
        let advances = [ShardAdvance { shard_id: "shard-0".into(), from: ShardCheckpoint::default(), to: to("10") }];
        let rows = [rejected("7", "TYPE_MISMATCH"), rejected("9", "MALFORMED")];
        let counts = [ShardCounts { shard_id: "shard-0".into(), rows: 10, rejected: 2, filtered: 1, late: 3 }];
        let batch = BatchCommit {
            source: "s",
            version: 1,
            scope: "s@stream",
            files: &files,
            advances: &advances,
            rejected: &rows,
            counts: &counts,
            retention: ErrorRetention::default(),
            max_event_micros: Some(1_700_000_000_000_000),
        };
        store.commit_batch(&batch, Utc::now()).expect("first commit");
        assert_eq!(store.max_event_time("s@stream").expect("read"), Some(1_700_000_000_000_000));
        assert_eq!(store.max_event_time("other").expect("read"), None);
        // The same batch again (a replay after a crash): refused, nothing doubled.
        let replay = BatchCommit {
            files: &[ManifestFile { path: "datasets/d/b.parquet".into(), ..files[0].clone() }],
            ..batch.clone()
        };
        assert!(matches!(store.commit_batch(&replay, Utc::now()), Err(StoreError::CheckpointConflict { .. })));
        assert_eq!(store.manifest_paths("d").expect("manifest"), HashSet::from(["datasets/d/a.parquet".to_owned()]));
        assert_eq!(store.dataset_totals("d").expect("totals"), (10, 100));
        assert_eq!(store.shard_counts("s").expect("counts"), counts);
        let query = ErrorQuery { source: "s".into(), limit: 10, ..ErrorQuery::default() };
        let logged = store.errors(&query).expect("errors");
        assert_eq!(
            logged.iter().map(|r| r.row.sequence_number.as_str()).collect::<Vec<_>>(),
            ["9", "7"],
            "newest first"
        );
        let only = store.errors(&ErrorQuery { reason: Some("MALFORMED".into()), ..query.clone() }).expect("errors");
        assert_eq!(only.len(), 1);
        let older = store.errors(&ErrorQuery { before: Some(logged[0].id), ..query.clone() }).expect("errors");
        assert_eq!(older[0].row.sequence_number, "7");
        // The console's filters: field, shard, rejection time; counts by reason.
        let by_field = store.errors(&ErrorQuery { field: Some(logged[1].row.field.clone()), ..query.clone() });
        assert!(by_field.expect("errors").iter().all(|row| row.row.field == logged[1].row.field));
        let other_shard = ErrorQuery { shard_id: Some("shard-9".into()), ..query.clone() };
        assert!(store.errors(&other_shard).expect("errors").is_empty());
        let later = ErrorQuery { since: Some(Utc::now() + chrono::Duration::hours(1)), ..query.clone() };
        assert!(store.errors(&later).expect("errors").is_empty());
        let earlier = ErrorQuery { until: Some(Utc::now() + chrono::Duration::hours(1)), ..query.clone() };
        assert_eq!(store.errors(&earlier).expect("errors").len(), 2);
        let mut counts = store.error_counts(&query).expect("counts");
        counts.sort();
        let mut expected: Vec<(String, u64)> = logged.iter().map(|row| (row.row.reason.clone(), 1)).collect();
        expected.sort();
        assert_eq!(counts, expected);
    }

    #[test]
    fn a_prepared_batch_is_kept_when_its_table_commit_landed_and_taken_back_when_not() {
        let store = Store::open_in_memory().expect("store");
        let files = [ManifestFile { dataset: "d".into(), path: "file:///w/d/a.parquet".into(), rows: 10, bytes: 100 }];
        let advances = [ShardAdvance { shard_id: "shard-0".into(), from: ShardCheckpoint::default(), to: to("10") }];
        let rows = [rejected("7", "TYPE_MISMATCH")];
        let counts = [ShardCounts { shard_id: "shard-0".into(), rows: 10, rejected: 1, filtered: 2, late: 0 }];
        let batch = BatchCommit {
            source: "s",
            version: 1,
            scope: "s@stream",
            files: &files,
            advances: &advances,
            rejected: &rows,
            counts: &counts,
            retention: ErrorRetention::default(),
            max_event_micros: None,
        };
        store.prepare_batch(&batch, Utc::now()).expect("prepare");
        assert!(store.shard_counts("s").expect("counts").is_empty(), "not counted before the table has it");
        assert_eq!(store.dataset_totals("d").expect("totals"), (0, 0), "nor its files");
        assert!(store.has_prepared_batch("s@stream").expect("read"));
        assert!(store.settle_prepared("s@stream", true).expect("settle"), "there was one");
        assert!(!store.has_prepared_batch("s@stream").expect("read"));
        assert_eq!(store.dataset_totals("d").expect("totals"), (10, 100));
        assert_eq!(store.shard_counts("s").expect("counts"), counts);
        assert!(!store.settle_prepared("s@stream", false).expect("settle"), "settled once");
        assert_eq!(store.error_count("s").expect("count"), 1);

        let second_files = [ManifestFile { path: "file:///w/d/b.parquet".into(), ..files[0].clone() }];
        let second = [ShardAdvance { shard_id: "shard-0".into(), from: to("10"), to: to("20") }];
        let rows = [rejected("15", "MALFORMED")];
        let batch = BatchCommit { files: &second_files, advances: &second, rejected: &rows, ..batch };
        store.prepare_batch(&batch, Utc::now()).expect("prepare");
        assert!(store.settle_prepared("s@stream", false).expect("take back"));
        assert_eq!(store.error_count("s").expect("count"), 1, "the second batch's rejection is taken back");
        assert_eq!(store.manifest_paths("d").expect("manifest"), HashSet::from([files[0].path.clone()]));
        assert_eq!(store.shard_counts("s").expect("counts"), counts, "counters as after the first batch");
    }

    /// The review's loss: a prepared batch raised the scope's event time before its
    /// table commit, so after a failed commit the batch read again was judged late
    /// against a watermark it had set itself.
    #[test]
    fn a_prepared_batch_moves_the_event_time_only_when_it_lands() {
        let store = Store::open_in_memory().expect("store");
        let advances = [ShardAdvance { shard_id: "shard-0".into(), from: ShardCheckpoint::default(), to: to("10") }];
        let batch = BatchCommit {
            source: "s",
            version: 1,
            scope: "s@stream",
            files: &[],
            advances: &advances,
            rejected: &[],
            counts: &[],
            retention: ErrorRetention::default(),
            max_event_micros: Some(1_700_000_000_000_000),
        };
        store.prepare_batch(&batch, Utc::now()).expect("prepare");
        assert_eq!(store.max_event_time("s@stream").expect("read"), None, "not before the table commit");
        assert!(store.settle_prepared("s@stream", false).expect("take back"));
        assert_eq!(store.max_event_time("s@stream").expect("read"), None, "nor after it failed");
        // The table is the truth for checkpoints and event time: none there, none here.
        store.restore_checkpoints("s@stream", &std::collections::HashMap::new(), None).expect("restore");
        assert!(store.checkpoints("s@stream").expect("read").is_empty());

        store.prepare_batch(&batch, Utc::now()).expect("prepare again");
        assert!(store.settle_prepared("s@stream", true).expect("landed"));
        assert_eq!(store.max_event_time("s@stream").expect("read"), Some(1_700_000_000_000_000));
        store.restore_checkpoints("s@stream", &std::collections::HashMap::new(), None).expect("restore");
        assert_eq!(store.max_event_time("s@stream").expect("read"), None, "a table without one clears it");
    }

    #[test]
    fn error_log_retention_keeps_the_newest_rows() {
        let store = Store::open_in_memory().expect("store");
        let rows: Vec<NewErrorRow> = (0..10).map(|i| rejected(&i.to_string(), "MALFORMED")).collect();
        let batch = BatchCommit {
            source: "s",
            version: 1,
            scope: "s@stream",
            files: &[],
            advances: &[],
            rejected: &rows,
            counts: &[],
            retention: ErrorRetention { max_rows: 4, max_age: std::time::Duration::from_secs(3600) },
            max_event_micros: None,
        };
        store.commit_batch(&batch, Utc::now()).expect("commit");
        assert_eq!(store.error_count("s").expect("count"), 4);
        let query = ErrorQuery { source: "s".into(), limit: 10, ..ErrorQuery::default() };
        assert_eq!(store.errors(&query).expect("errors")[3].row.sequence_number, "6");
        // Everything is older than a zero age at a later instant.
        let later = Utc::now() + chrono::Duration::seconds(5);
        let expire = BatchCommit {
            rejected: &rows[..1],
            retention: ErrorRetention { max_rows: 100, max_age: std::time::Duration::from_secs(1) },
            ..batch
        };
        store.commit_batch(&expire, later).expect("commit");
        assert_eq!(store.error_count("s").expect("count"), 1, "only the row rejected 'now' is younger than 1 s");
        // Rows expire on later commits even when those reject nothing.
        let quiet = BatchCommit { rejected: &[], ..expire };
        store.commit_batch(&quiet, later + chrono::Duration::seconds(5)).expect("commit");
        assert_eq!(store.error_count("s").expect("count"), 0);
    }
}
