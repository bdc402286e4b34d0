//! Replays of rejected rows: which rows a replay chunk landed, filtered or
//! still rejects, recorded together with its files, exactly once.
//!
//! A replayed row stays in the error log, marked with when, by which version
//! and what it gave (a mark covers a run of consecutive ids, so marking a
//! chunk writes a row per run, not per row); [`Store::errors`] no longer
//! lists it. A row still
//! rejected takes its new reason. For a dataset whose truth is a table
//! commit, a chunk is first recorded as prepared ([`Store::prepare_replay`])
//! and settled once that commit is known to have landed or not, like a batch.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::batches::{ManifestFile, ShardCounts, add_counts};
use crate::error_log::{NOT_REPLAYED, time};
use crate::{Store, StoreError};

/// What replaying one stored rejected row gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// It decodes now and was written to the dataset.
    Landed,
    /// It decodes now, but the definition's rules leave it out.
    Filtered,
    /// It is still refused, for this reason.
    StillRejected {
        /// The reason code.
        reason: String,
        /// The field at fault (empty for the whole record).
        field: String,
        /// The explanation.
        message: String,
    },
}

impl Replayed {
    fn code(&self) -> &'static str {
        match self {
            Replayed::Landed => "landed",
            Replayed::Filtered => "filtered",
            Replayed::StillRejected { .. } => "rejected",
        }
    }
}

/// One row of a replay chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// The row's id in the error log.
    pub error_id: i64,
    /// What it gave.
    pub replayed: Replayed,
}

/// A replay chunk: rows decoded again and what they gave, and the files the
/// landed ones were written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayChunk {
    /// The source.
    pub source: String,
    /// The source version that replays.
    pub version: u64,
    /// The replay marker the chunk's table commit sets (a count of the
    /// source's replay chunks; a Parquet dataset's chunks carry 0).
    pub marker: u64,
    /// When it was replayed.
    pub replayed_at: DateTime<Utc>,
    /// Every row of the chunk.
    pub outcomes: Vec<ReplayOutcome>,
    /// Its rows landed (`rows`) and filtered per shard, for the shards' counters.
    pub counts: Vec<ShardCounts>,
    /// The files the landed rows were written to.
    pub files: Vec<ManifestFile>,
}

/// A replayed row as the error log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayMark {
    /// When it was replayed.
    pub replayed_at: DateTime<Utc>,
    /// The version that replayed it.
    pub version: u64,
    /// `landed` or `filtered`.
    pub outcome: String,
}

impl Store {
    /// Records a replay chunk of a Parquet dataset atomically: its files
    /// enter the manifest and its rows are marked (or take their new reason).
    pub fn commit_replay(&self, chunk: &ReplayChunk) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        apply_chunk(&transaction, chunk)?;
        transaction.commit()?;
        Ok(())
    }

    /// Remembers a replay chunk whose truth is a table commit still to come
    /// (one per source at a time); nothing is marked until it is settled.
    pub fn prepare_replay(&self, chunk: &ReplayChunk) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let ids = |wanted: &Replayed| -> String {
            id_ranges(chunk.outcomes.iter().filter(|o| &o.replayed == wanted).map(|o| o.error_id))
        };
        let counts: String = chunk
            .counts
            .iter()
            .map(|counts| format!("{}\t{}\t{}\n", counts.shard_id, counts.rows, counts.filtered))
            .collect();
        transaction.execute(
            "INSERT INTO prepared_replays (source, version, marker, replayed_at_micros, landed, filtered, counts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                chunk.source,
                chunk.version as i64,
                chunk.marker as i64,
                chunk.replayed_at.timestamp_micros(),
                ids(&Replayed::Landed),
                ids(&Replayed::Filtered),
                counts
            ],
        )?;
        let mut row = transaction.prepare_cached(
            "INSERT INTO prepared_replay_rows (source, error_id, reason, field, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for outcome in &chunk.outcomes {
            if let Replayed::StillRejected { reason, field, message } = &outcome.replayed {
                row.execute(params![chunk.source, outcome.error_id, reason, field, message])?;
            }
        }
        drop(row);
        for file in &chunk.files {
            transaction.execute(
                "INSERT INTO prepared_replay_files (source, dataset, path, rows, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![chunk.source, file.dataset, file.path, file.rows as i64, file.bytes as i64],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// The source's prepared replay chunk, if a stop came before it was
    /// settled (its outcomes in id order).
    pub fn prepared_replay(&self, source: &str) -> Result<Option<ReplayChunk>, StoreError> {
        let connection = self.connection.lock();
        let head = connection
            .query_row(
                "SELECT version, marker, replayed_at_micros, landed, filtered, counts FROM prepared_replays
                 WHERE source = ?1",
                [source],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        let Some((version, marker, replayed_at, landed, filtered, counts)) = head else { return Ok(None) };
        let mut outcomes = Vec::new();
        for (ranges, replayed) in [(&landed, Replayed::Landed), (&filtered, Replayed::Filtered)] {
            for error_id in parse_ranges(ranges)? {
                outcomes.push(ReplayOutcome { error_id, replayed: replayed.clone() });
            }
        }
        let mut rows = connection.prepare(
            "SELECT error_id, reason, field, message FROM prepared_replay_rows WHERE source = ?1 ORDER BY error_id",
        )?;
        let rejected = rows.query_map([source], |row| {
            Ok(ReplayOutcome {
                error_id: row.get(0)?,
                replayed: Replayed::StillRejected { reason: row.get(1)?, field: row.get(2)?, message: row.get(3)? },
            })
        })?;
        for outcome in rejected {
            outcomes.push(outcome?);
        }
        outcomes.sort_by_key(|outcome| outcome.error_id);
        let mut files = connection
            .prepare("SELECT dataset, path, rows, bytes FROM prepared_replay_files WHERE source = ?1 ORDER BY rowid")?;
        let files = files
            .query_map([source], |row| {
                Ok(ManifestFile {
                    dataset: row.get(0)?,
                    path: row.get(1)?,
                    rows: row.get::<_, i64>(2)? as u64,
                    bytes: row.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut shard_counts = Vec::new();
        for line in counts.lines() {
            let mut parts = line.split('\t');
            let shard_id = parts.next().unwrap_or_default().to_owned();
            let numbers: Vec<u64> = parts.map(|part| part.parse().unwrap_or(0)).collect();
            let [rows, filtered] = numbers[..] else {
                return Err(StoreError::Corrupt { what: "prepared replay counts", detail: line.to_owned() });
            };
            shard_counts.push(ShardCounts { shard_id, rows, filtered, ..ShardCounts::default() });
        }
        Ok(Some(ReplayChunk {
            source: source.to_owned(),
            version: version as u64,
            marker: marker as u64,
            replayed_at: time(replayed_at)?,
            outcomes,
            counts: shard_counts,
            files,
        }))
    }

    /// Settles the source's prepared replay chunk, if it has one: applied
    /// when its table commit `landed`, forgotten otherwise (its rows stay as
    /// they were, to be replayed again). Returns whether there was one.
    pub fn settle_replay(&self, source: &str, landed: bool) -> Result<bool, StoreError> {
        let prepared = self.prepared_replay(source)?;
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let Some(prepared) = prepared else { return Ok(false) };
        if landed {
            apply_chunk(&transaction, &prepared)?;
        }
        forget_prepared(&transaction, source)?;
        transaction.commit()?;
        Ok(true)
    }

    /// Settles `chunk`, the source's prepared chunk, as landed (its table
    /// commit just succeeded): [`Store::settle_replay`] with the chunk in hand,
    /// not read back.
    pub fn settle_replay_landed(&self, chunk: &ReplayChunk) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        apply_chunk(&transaction, chunk)?;
        forget_prepared(&transaction, &chunk.source)?;
        transaction.commit()?;
        Ok(())
    }

    /// How the error log marks row `error_id`, if it was replayed.
    pub fn replay_mark(&self, error_id: i64) -> Result<Option<ReplayMark>, StoreError> {
        let connection = self.reading();
        let found = connection
            .query_row(
                "SELECT replayed_at_micros, replayed_version, replay_outcome FROM
                     (SELECT * FROM error_replays WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1)
                 WHERE last_id >= ?1 AND EXISTS (SELECT 1 FROM error_log WHERE id = ?1)",
                [error_id],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?)),
            )
            .optional()?;
        found
            .map(|(at, version, outcome)| Ok(ReplayMark { replayed_at: time(at)?, version: version as u64, outcome }))
            .transpose()
    }

    /// How many of a source's rejected rows were replayed (landed or filtered).
    pub fn replayed_count(&self, source: &str) -> Result<u64, StoreError> {
        let connection = self.reading();
        let count: i64 = connection.query_row(
            &format!("SELECT COUNT(*) FROM error_log WHERE source = ?1 AND NOT ({NOT_REPLAYED})"),
            [source],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}

fn forget_prepared(transaction: &Transaction<'_>, source: &str) -> Result<(), StoreError> {
    for table in ["prepared_replays", "prepared_replay_rows", "prepared_replay_files"] {
        transaction.execute(&format!("DELETE FROM {table} WHERE source = ?1"), [source])?;
    }
    Ok(())
}

/// Marks the chunk's rows, enters its files in the manifest and adds its
/// counts. A chunk applied again (its rows marked already) marks and adds
/// nothing.
fn apply_chunk(transaction: &Transaction<'_>, chunk: &ReplayChunk) -> Result<(), StoreError> {
    let at = chunk.replayed_at.timestamp_micros();
    let mut marked = 0;
    // One row per run of consecutive ids, not a write to each row (its pages hold the payloads).
    let mut mark = transaction.prepare_cached(
        "INSERT INTO error_replays (first_id, last_id, source, replayed_at_micros, replayed_version, replay_outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    // The run starting last at or before a run's end overlaps it if any does (runs never overlap).
    let mut overlap = transaction
        .prepare_cached("SELECT last_id FROM error_replays WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1")?;
    for replayed in [Replayed::Landed, Replayed::Filtered] {
        let mut ids: Vec<i64> = chunk
            .outcomes
            .iter()
            .filter(|outcome| outcome.replayed == replayed)
            .map(|outcome| outcome.error_id)
            .collect();
        ids.sort_unstable();
        for (first, last) in runs(ids.into_iter()) {
            let marked_before: Option<i64> = overlap.query_row([last], |row| row.get(0)).optional()?;
            if marked_before.is_some_and(|marked_through| marked_through >= first) {
                continue;
            }
            mark.execute(params![first, last, chunk.source, at, chunk.version as i64, replayed.code()])?;
            marked += last - first + 1;
        }
    }
    let mut reason = transaction.prepare_cached(&format!(
        "UPDATE error_log SET reason = ?2, field = ?3, message = ?4, version = ?5 WHERE id = ?1 AND {NOT_REPLAYED}"
    ))?;
    for outcome in &chunk.outcomes {
        if let Replayed::StillRejected { reason: code, field, message } = &outcome.replayed {
            reason.execute(params![outcome.error_id, code, field, message, chunk.version as i64])?;
        }
    }
    for file in &chunk.files {
        transaction.execute(
            "INSERT INTO manifest (dataset, path, source, version, rows, bytes, committed_at_micros)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                file.dataset,
                file.path,
                chunk.source,
                chunk.version as i64,
                file.rows as i64,
                file.bytes as i64,
                at
            ],
        )?;
    }
    if marked > 0 {
        for shard in chunk.counts.iter().filter(|shard| shard.rows > 0 || shard.filtered > 0) {
            add_counts(transaction, &chunk.source, shard)?;
        }
    }
    Ok(())
}

/// `ids` (ascending) as runs of consecutive ids, first and last.
fn runs(ids: impl Iterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// `ids` as text: runs `first-last` joined by `,`.
fn id_ranges(ids: impl Iterator<Item = i64>) -> String {
    let mut sorted: Vec<i64> = ids.collect();
    sorted.sort_unstable();
    runs(sorted.into_iter()).iter().map(|(first, last)| format!("{first}-{last}")).collect::<Vec<_>>().join(",")
}

fn parse_ranges(text: &str) -> Result<Vec<i64>, StoreError> {
    let corrupt = || StoreError::Corrupt { what: "prepared replay ids", detail: text.to_owned() };
    let mut ids = Vec::new();
    for run in text.split(',').filter(|run| !run.is_empty()) {
        let (first, last) = run.split_once('-').ok_or_else(corrupt)?;
        let (first, last): (i64, i64) = (first.parse().map_err(|_| corrupt())?, last.parse().map_err(|_| corrupt())?);
        ids.extend(first..=last);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::{BatchCommit, ErrorQuery, ErrorRetention, NewErrorRow};

    fn rejected(sequence_number: &str) -> NewErrorRow {
        NewErrorRow {
            shard_id: "shard-0".into(),
            sequence_number: sequence_number.into(),
            sub_sequence: None,
            arrival_time: Utc::now(),
            reason: "TYPE_MISMATCH".into(),
            field: "id".into(),
            message: "not a number".into(),
            payload: b"{}".to_vec(),
            payload_length: 2,
        }
    }

    /// Commits a batch of `source` whose rows are rejected with these sequence numbers.
    fn commit_rejections(store: &Store, source: &str, sequence_numbers: &[&str], retention: ErrorRetention) {
        let rows: Vec<NewErrorRow> = sequence_numbers.iter().map(|sequence_number| rejected(sequence_number)).collect();
        let scope = format!("{source}@stream");
        let batch = BatchCommit {
            source,
            version: 1,
            scope: &scope,
            files: &[],
            advances: &[],
            rejected: &rows,
            counts: &[],
            retention,
            max_event_micros: None,
        };
        store.commit_batch(&batch, Utc::now()).expect("commit");
    }

    /// The ids of `source`'s rows in the log's view, ascending.
    fn ids(store: &Store, source: &str) -> Vec<i64> {
        let query = ErrorQuery { source: source.into(), limit: 100, ..ErrorQuery::default() };
        let mut ids: Vec<i64> = store.errors(&query).expect("errors").iter().map(|row| row.id).collect();
        ids.sort_unstable();
        ids
    }

    fn store_with_three_rejections() -> (Store, Vec<i64>) {
        let store = Store::open_in_memory().expect("store");
        commit_rejections(&store, "s", &["1", "2", "3"], ErrorRetention::default());
        let ids = ids(&store, "s");
        (store, ids)
    }

    fn all() -> ErrorQuery {
        ErrorQuery { source: "s".into(), limit: 10, ..ErrorQuery::default() }
    }

    fn chunk(ids: &[i64]) -> ReplayChunk {
        ReplayChunk {
            source: "s".into(),
            version: 2,
            marker: 1,
            replayed_at: Utc::now(),
            outcomes: vec![
                ReplayOutcome { error_id: ids[0], replayed: Replayed::Landed },
                ReplayOutcome { error_id: ids[1], replayed: Replayed::Filtered },
                ReplayOutcome {
                    error_id: ids[2],
                    replayed: Replayed::StillRejected {
                        reason: "MISSING_FIELD".into(),
                        field: "name".into(),
                        message: "absent".into(),
                    },
                },
            ],
            counts: vec![ShardCounts { shard_id: "shard-0".into(), rows: 1, filtered: 1, ..ShardCounts::default() }],
            files: vec![ManifestFile { dataset: "d".into(), path: "d/r.parquet".into(), rows: 1, bytes: 10 }],
        }
    }

    #[test]
    fn a_prepared_replay_marks_its_rows_only_once_its_commit_landed() {
        let (store, ids) = store_with_three_rejections();
        store.prepare_replay(&chunk(&ids)).expect("prepare");
        let prepared = store.prepared_replay("s").expect("read").expect("prepared");
        assert_eq!(prepared.outcomes, chunk(&ids).outcomes, "every row's outcome, in id order");
        assert_eq!(prepared.counts, chunk(&ids).counts);
        assert_eq!((prepared.marker, prepared.version, prepared.files.len()), (1, 2, 1));
        assert_eq!(store.errors(&all()).expect("errors").len(), 3, "nothing marked before it is settled");

        assert!(store.settle_replay("s", false).expect("settle"));
        assert!(store.prepared_replay("s").expect("read").is_none());
        assert_eq!(store.errors(&all()).expect("errors").len(), 3, "a chunk that did not land changes nothing");
        assert!(store.manifest_paths("d").expect("manifest").is_empty());

        store.prepare_replay(&chunk(&ids)).expect("prepare again");
        assert!(store.settle_replay("s", true).expect("settle"));
        assert!(!store.settle_replay("s", true).expect("nothing left"), "settled once");
        // Settling the chunk in hand does what settling the one read back does.
        let (in_hand, in_hand_ids) = store_with_three_rejections();
        in_hand.prepare_replay(&chunk(&in_hand_ids)).expect("prepare");
        in_hand.settle_replay_landed(&chunk(&in_hand_ids)).expect("settle");
        assert!(in_hand.prepared_replay("s").expect("read").is_none());
        assert_eq!(in_hand.errors(&all()).expect("errors").len(), 1);
        assert_eq!(in_hand.replayed_count("s").expect("count"), 2);
        let left = store.errors(&all()).expect("errors");
        assert_eq!(left.len(), 1, "landed and filtered rows leave the log's view");
        assert_eq!((left[0].id, left[0].version, left[0].row.reason.as_str()), (ids[2], 2, "MISSING_FIELD"));
        let mark = store.replay_mark(ids[0]).expect("mark").expect("marked");
        assert_eq!((mark.version, mark.outcome.as_str()), (2, "landed"));
        assert_eq!(store.replay_mark(ids[2]).expect("mark"), None);
        assert_eq!(store.replayed_count("s").expect("count"), 2);
        assert_eq!(store.error_count("s").expect("count"), 1);
        let counts = store.shard_counts("s").expect("counts");
        assert_eq!((counts[0].rows, counts[0].filtered), (1, 1));
        assert_eq!(store.dataset_totals("d").expect("totals"), (1, 10));
    }

    #[test]
    fn a_parquet_replay_commits_its_marks_and_files_together_and_a_second_is_a_no_op() {
        let (store, ids) = store_with_three_rejections();
        store.commit_replay(&chunk(&ids)).expect("commit");
        let first = store.replay_mark(ids[0]).expect("mark");
        // The same chunk again: rows already marked stay as they were.
        store.commit_replay(&ReplayChunk { version: 3, files: Vec::new(), ..chunk(&ids) }).expect("again");
        assert_eq!(store.replay_mark(ids[0]).expect("mark"), first);
        assert_eq!(store.errors(&all()).expect("errors").len(), 1);
        let counts = store.shard_counts("s").expect("counts");
        assert_eq!((counts[0].rows, counts[0].filtered), (1, 1), "rows already marked are not counted again");
    }

    fn landed(source: &str, ids: &[i64]) -> ReplayChunk {
        ReplayChunk {
            source: source.into(),
            version: 2,
            marker: 0,
            replayed_at: Utc::now(),
            outcomes: ids.iter().map(|&error_id| ReplayOutcome { error_id, replayed: Replayed::Landed }).collect(),
            counts: vec![ShardCounts { shard_id: "shard-0".into(), rows: ids.len() as u64, ..ShardCounts::default() }],
            files: Vec::new(),
        }
    }

    fn runs_kept(store: &Store) -> Vec<(i64, i64)> {
        let connection = store.connection.lock();
        let mut statement =
            connection.prepare("SELECT first_id, last_id FROM error_replays ORDER BY first_id").expect("prepare");
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("runs")
    }

    #[test]
    fn marks_are_runs_of_one_sources_ids_and_leave_the_other_sources_rows_alone() {
        let store = Store::open_in_memory().expect("store");
        // Two sources rejecting in turn: their ids interleave.
        for round in 0..3 {
            commit_rejections(&store, "a", &[&format!("{round}a1"), &format!("{round}a2")], ErrorRetention::default());
            commit_rejections(&store, "b", &[&format!("{round}b")], ErrorRetention::default());
        }
        let (a, b) = (ids(&store, "a"), ids(&store, "b"));
        store.commit_replay(&landed("a", &a)).expect("replay");
        assert_eq!(runs_kept(&store).len(), 3, "a run per pair of consecutive ids: {:?}", runs_kept(&store));
        assert!(ids(&store, "a").is_empty());
        assert_eq!(ids(&store, "b"), b, "the other source's rows between the runs stay");
        assert_eq!((store.error_count("a").expect("a"), store.error_count("b").expect("b")), (0, 3));
        assert_eq!(store.replayed_count("a").expect("a"), 6);
        assert_eq!(store.replay_mark(b[0]).expect("mark"), None);
        let counts = store.error_counts(&ErrorQuery { source: "b".into(), ..ErrorQuery::default() }).expect("counts");
        assert_eq!(counts, [("TYPE_MISMATCH".to_owned(), 3)]);
    }

    /// Every id `source`'s pages of `limit` rows give, in the order read, and how many pages.
    fn paged(store: &Store, source: &str, limit: u32) -> (Vec<i64>, usize) {
        let (mut ids, mut pages, mut before) = (Vec::new(), 0, None);
        loop {
            pages += 1;
            let next = store
                .for_each_error_in_page(source, None, before, limit, |row| {
                    ids.push(row.id);
                    Ok(())
                })
                .expect("page");
            let Some(next) = next else { return (ids, pages) };
            before = Some(next);
        }
    }

    #[test]
    fn pages_read_a_sources_rows_once_newest_first_whether_it_fills_the_log_or_not() {
        let store = Store::open_in_memory().expect("store");
        // `a` fills the log's first ids (read straight from the table); then `a` rejects two
        // rows to each of `b`'s, so `b`'s pages are read through its index.
        let alone: Vec<String> = (0..10).map(|i| format!("a{i}")).collect();
        commit_rejections(
            &store,
            "a",
            &alone.iter().map(String::as_str).collect::<Vec<_>>(),
            ErrorRetention::default(),
        );
        for round in 0..5 {
            commit_rejections(&store, "a", &[&format!("{round}a1"), &format!("{round}a2")], ErrorRetention::default());
            commit_rejections(&store, "b", &[&format!("{round}b")], ErrorRetention::default());
        }
        let (a, b) = (ids(&store, "a"), ids(&store, "b"));
        // Two of `a`'s rows replayed: no page gives them.
        store.commit_replay(&landed("a", &a[3..5])).expect("replay");
        for limit in [1, 3, 4, 100] {
            let (read, pages) = paged(&store, "a", limit);
            let mut expected: Vec<i64> = a.iter().copied().filter(|id| !a[3..5].contains(id)).collect();
            expected.reverse();
            assert_eq!(read, expected, "pages of {limit}");
            // A full page cannot tell it is the last: one more, empty, says so.
            assert_eq!(pages, a.len() / limit as usize + 1, "pages of {limit}");
        }
        for limit in [2, 100] {
            let (read, _) = paged(&store, "b", limit);
            assert_eq!(read, b.iter().rev().copied().collect::<Vec<_>>(), "pages of {limit}");
        }
        let (read, pages) = paged(&store, "nobody", 4);
        assert_eq!((read, pages), (Vec::new(), 1));
    }

    #[test]
    fn retention_drops_the_marks_of_rows_it_dropped() {
        let store = Store::open_in_memory().expect("store");
        commit_rejections(&store, "a", &["1", "2", "3"], ErrorRetention::default());
        let first = ids(&store, "a");
        store.commit_replay(&landed("a", &first[..2])).expect("replay");
        assert_eq!(runs_kept(&store), [(first[0], first[1])]);
        let keep_two = ErrorRetention { max_rows: 2, ..ErrorRetention::default() };
        commit_rejections(&store, "a", &["4"], keep_two);
        assert!(runs_kept(&store).is_empty(), "both marked rows were dropped, so is their mark");
        assert_eq!(ids(&store, "a").len(), 2);
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn ids_travel_as_runs_and_come_back_whole() {
        assert_eq!(runs([1, 2, 3, 7, 9, 10].into_iter()), [(1, 3), (7, 7), (9, 10)]);
        let text = id_ranges([10, 9, 1, 3, 2, 7].into_iter());
        assert_eq!(text, "1-3,7-7,9-10");
        assert_eq!(parse_ranges(&text).expect("parses"), [1, 2, 3, 7, 9, 10]);
        assert_eq!(parse_ranges("").expect("parses"), Vec::<i64>::new());
        assert!(parse_ranges("1-x").is_err());
    }
}
