//! The error log: every record a source could not decode, with the reason.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::{Store, StoreError};

/// A rejected record about to be logged (the batch supplies source and version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewErrorRow {
    /// The shard it was read from.
    pub shard_id: String,
    /// Its sequence number.
    pub sequence_number: String,
    /// Its KPL sub-sequence, if any.
    pub sub_sequence: Option<u64>,
    /// When Kinesis received it.
    pub arrival_time: DateTime<Utc>,
    /// The reason code, e.g. `TYPE_MISMATCH`.
    pub reason: String,
    /// The dataset field at fault (empty for the whole record).
    pub field: String,
    /// The explanation.
    pub message: String,
    /// The payload, capped by the caller.
    pub payload: Vec<u8>,
    /// The payload's length before capping.
    pub payload_length: u64,
}

/// A logged rejected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRow {
    /// Its id; larger is newer.
    pub id: i64,
    /// The source that rejected it.
    pub source: String,
    /// The source version that rejected it.
    pub version: u64,
    /// When it was rejected.
    pub rejected_at: DateTime<Utc>,
    /// The record and the reason.
    pub row: NewErrorRow,
}

/// Which rows [`Store::errors`] returns: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorQuery {
    /// The source.
    pub source: String,
    /// At most this many rows.
    pub limit: u32,
    /// Only rows older than this id (for paging).
    pub before: Option<i64>,
    /// Only this reason code.
    pub reason: Option<String>,
    /// Only rows whose field at fault is this one.
    pub field: Option<String>,
    /// Only rows of this shard.
    pub shard_id: Option<String>,
    /// Only rows rejected at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows rejected before this time.
    pub until: Option<DateTime<Utc>>,
}

/// How much of a source's error log to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRetention {
    /// Newest rows kept.
    pub max_rows: u64,
    /// Rows older than this are dropped.
    pub max_age: std::time::Duration,
}

impl Default for ErrorRetention {
    fn default() -> ErrorRetention {
        ErrorRetention { max_rows: 100_000, max_age: std::time::Duration::from_secs(7 * 24 * 3600) }
    }
}

pub(crate) fn insert(
    transaction: &Transaction<'_>,
    source: &str,
    version: u64,
    now: DateTime<Utc>,
    rows: &[NewErrorRow],
) -> Result<(), StoreError> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO error_log (source, version, shard_id, sequence_number, sub_sequence, arrival_time_micros,
                                rejected_at_micros, reason, field, message, payload, payload_length)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for row in rows {
        statement.execute(params![
            source,
            version as i64,
            row.shard_id,
            row.sequence_number,
            row.sub_sequence.map(|sub| sub as i64),
            row.arrival_time.timestamp_micros(),
            now.timestamp_micros(),
            row.reason,
            row.field,
            row.message,
            row.payload,
            row.payload_length as i64
        ])?;
    }
    Ok(())
}

/// Drops a source's rows older than the retention's age: every commit, so
/// rows expire even when no new ones arrive. Rows go in in time order, so
/// the walk stops at the first young row: it costs what it deletes.
pub(crate) fn prune_by_age(
    transaction: &Transaction<'_>,
    source: &str,
    retention: ErrorRetention,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let oldest_kept = now.timestamp_micros() - i64::try_from(retention.max_age.as_micros()).unwrap_or(i64::MAX);
    transaction.execute(
        "DELETE FROM error_log WHERE source = ?1 AND id < COALESCE(
             (SELECT id FROM error_log WHERE source = ?1 AND rejected_at_micros >= ?2 ORDER BY id LIMIT 1),
             9223372036854775807)",
        params![source, oldest_kept],
    )?;
    forget_pruned_marks(transaction, source)
}

/// Drops a source's rows beyond the retention's count.
pub(crate) fn prune_by_count(
    transaction: &Transaction<'_>,
    source: &str,
    retention: ErrorRetention,
) -> Result<(), StoreError> {
    transaction.execute(
        "DELETE FROM error_log WHERE source = ?1 AND id <= (
             SELECT id FROM error_log WHERE source = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        params![source, i64::try_from(retention.max_rows).unwrap_or(i64::MAX)],
    )?;
    forget_pruned_marks(transaction, source)
}

/// Drops the replay marks of a source's rows that are all gone (pruned):
/// ids only grow, so a run ending before the oldest row kept marks nothing.
fn forget_pruned_marks(transaction: &Transaction<'_>, source: &str) -> Result<(), StoreError> {
    transaction.execute(
        "DELETE FROM error_replays WHERE source = ?1 AND last_id < COALESCE(
             (SELECT id FROM error_log WHERE source = ?1 ORDER BY id LIMIT 1), 9223372036854775807)",
        [source],
    )?;
    Ok(())
}

pub(crate) fn time(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| rusqlite::Error::IntegralValueOutOfRange(0, micros))
}

/// True for an `error_log` row no replay marked: the run of marked ids
/// starting last at or before it (runs never overlap) ends before it.
pub(crate) const NOT_REPLAYED: &str = "COALESCE((SELECT marks.last_id FROM error_replays AS marks
     WHERE marks.first_id <= error_log.id ORDER BY marks.first_id DESC LIMIT 1), -1) < error_log.id";

/// Runs of replayed ids `(first, last)`, sorted and not overlapping, asked
/// about ids in descending order: each question moves a cursor back, so a
/// page's rows are checked in one pass over its runs.
struct ReplayedRuns {
    runs: Vec<(i64, i64)>,
    /// Runs before this index start at or below the last id asked about.
    below: usize,
}

impl ReplayedRuns {
    fn new(runs: Vec<(i64, i64)>) -> ReplayedRuns {
        ReplayedRuns { below: runs.len(), runs }
    }

    /// Whether a run holds `id`, no larger than the id asked about before.
    fn holds_descending(&mut self, id: i64) -> bool {
        while self.below > 0 && self.runs[self.below - 1].0 > id {
            self.below -= 1;
        }
        self.below > 0 && self.runs[self.below - 1].1 >= id
    }
}

/// The columns [`error_row_ref`] reads, in its order (by position: a name is looked up per row).
const ERROR_COLUMNS: &str = "id, source, version, rejected_at_micros, shard_id, sequence_number, sub_sequence, \
     arrival_time_micros, reason, field, message, payload, payload_length";

/// A logged rejected record as SQLite holds it while it is read: lent, not
/// copied, so reading many rows allocates nothing per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRowRef<'a> {
    /// Its id; larger is newer.
    pub id: i64,
    /// The source that rejected it.
    pub source: &'a str,
    /// The source version that rejected it.
    pub version: u64,
    /// When it was rejected, in microseconds since the epoch.
    pub rejected_at_micros: i64,
    /// The shard it was read from.
    pub shard_id: &'a str,
    /// Its sequence number.
    pub sequence_number: &'a str,
    /// Its KPL sub-sequence, if any.
    pub sub_sequence: Option<u64>,
    /// When Kinesis received it, in microseconds since the epoch.
    pub arrival_time_micros: i64,
    /// The reason code.
    pub reason: &'a str,
    /// The dataset field at fault (empty for the whole record).
    pub field: &'a str,
    /// The explanation.
    pub message: &'a str,
    /// The payload as kept (capped).
    pub payload: &'a [u8],
    /// The payload's length before capping.
    pub payload_length: u64,
}

impl ErrorRowRef<'_> {
    /// The row, copied out.
    pub fn to_row(&self) -> Result<ErrorRow, StoreError> {
        Ok(ErrorRow {
            id: self.id,
            source: self.source.to_owned(),
            version: self.version,
            rejected_at: time(self.rejected_at_micros)?,
            row: NewErrorRow {
                shard_id: self.shard_id.to_owned(),
                sequence_number: self.sequence_number.to_owned(),
                sub_sequence: self.sub_sequence,
                arrival_time: time(self.arrival_time_micros)?,
                reason: self.reason.to_owned(),
                field: self.field.to_owned(),
                message: self.message.to_owned(),
                payload: self.payload.to_vec(),
                payload_length: self.payload_length,
            },
        })
    }
}

fn error_row_ref<'a>(row: &'a Row<'_>) -> rusqlite::Result<ErrorRowRef<'a>> {
    let text = |index: usize| -> rusqlite::Result<&'a str> { Ok(row.get_ref(index)?.as_str()?) };
    Ok(ErrorRowRef {
        id: row.get(0)?,
        source: text(1)?,
        version: row.get::<_, i64>(2)? as u64,
        rejected_at_micros: row.get(3)?,
        shard_id: text(4)?,
        sequence_number: text(5)?,
        sub_sequence: row.get::<_, Option<i64>>(6)?.map(|sub| sub as u64),
        arrival_time_micros: row.get(7)?,
        reason: text(8)?,
        field: text(9)?,
        message: text(10)?,
        payload: row.get_ref(11)?.as_blob()?,
        payload_length: row.get::<_, i64>(12)? as u64,
    })
}

/// A page of a source's error log: the id range holding its `limit` newest
/// rows older than some id, found through the source's index before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPage {
    lowest: i64,
    highest: i64,
    before: i64,
    /// The source's rows in the range (replayed ones included).
    rows: i64,
    limit: u32,
}

impl ErrorPage {
    /// Where the page after this one begins (`None` after the last).
    pub fn next(&self) -> Option<i64> {
        (self.rows >= i64::from(self.limit)).then_some(self.lowest)
    }
}

/// Reads pages of the error log, on a connection of its own where it can; see [`Store::error_log_reader`].
#[derive(Debug)]
pub struct ErrorLogReader {
    own: Option<Connection>,
    store: Arc<Store>,
}

impl ErrorLogReader {
    /// The page of `source`'s `limit` newest rows older than id `before` (the newest when `None`);
    /// `None` when there are none.
    pub fn find_page(&self, source: &str, before: Option<i64>, limit: u32) -> Result<Option<ErrorPage>, StoreError> {
        self.on_connection(|connection| find_page(connection, source, before, limit))
    }

    /// Lends `each` the rows of `page` not replayed since (only `reason`'s when given), newest first.
    pub fn read_page(
        &self,
        source: &str,
        reason: Option<&str>,
        page: &ErrorPage,
        each: impl FnMut(ErrorRowRef<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.on_connection(|connection| read_page(connection, source, reason, page, each))
    }

    /// Runs `read` on this reader's own connection, or the store's reading one.
    fn on_connection<T>(&self, read: impl FnOnce(&Connection) -> T) -> T {
        match &self.own {
            Some(connection) => read(connection),
            None => read(&self.store.reading()),
        }
    }
}

fn find_page(
    connection: &Connection,
    source: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<Option<ErrorPage>, StoreError> {
    let before = before.unwrap_or(i64::MAX);
    let (range, rows): (Option<(i64, i64)>, i64) = connection
        .prepare_cached(
            "SELECT MIN(id), MAX(id), COUNT(*) FROM
                 (SELECT id FROM error_log WHERE source = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3)",
        )?
        .query_row(params![source, before, limit], |row| {
            let (lowest, highest): (Option<i64>, Option<i64>) = (row.get(0)?, row.get(1)?);
            Ok((lowest.zip(highest), row.get(2)?))
        })?;
    Ok(range.map(|(lowest, highest)| ErrorPage { lowest, highest, before, rows, limit }))
}

/// A page is an id range found first through the source's index. When the
/// source holds most ids of the range (a log one source fills), the range is
/// read straight from the table in id order; a lookup through the index for
/// each row cost twice as much.
fn read_page(
    connection: &Connection,
    source: &str,
    reason: Option<&str>,
    page: &ErrorPage,
    mut each: impl FnMut(ErrorRowRef<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let dense = page.highest - page.lowest < 2 * page.rows;
    // The range's replayed runs, read once: a lookup of each row's run cost a seek per row.
    let mut replayed = ReplayedRuns::new(
        connection
            .prepare_cached(
                "SELECT first_id, last_id FROM error_replays
                 WHERE first_id >= COALESCE((SELECT MAX(first_id) FROM error_replays WHERE first_id <= ?1), ?1)
                   AND first_id < ?2
                 ORDER BY first_id",
            )?
            .query_map(params![page.lowest, page.before], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?,
    );
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {ERROR_COLUMNS} FROM error_log {}
         WHERE id >= ?1 AND id < ?2 AND source = ?3 AND (?4 IS NULL OR reason = ?4)
         ORDER BY id DESC",
        if dense { "NOT INDEXED" } else { "" }
    ))?;
    let mut found = statement.query(params![page.lowest, page.before, source, reason])?;
    while let Some(row) = found.next()? {
        if !replayed.holds_descending(row.get(0)?) {
            each(error_row_ref(row)?)?;
        }
    }
    Ok(())
}

impl Store {
    /// A source's rejected records not replayed since, newest first.
    pub fn errors(&self, query: &ErrorQuery) -> Result<Vec<ErrorRow>, StoreError> {
        let mut rows = Vec::new();
        self.for_each_error(query, |row| {
            rows.push(row.to_row()?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// [`Store::errors`], each row lent to `each` as SQLite holds it.
    fn for_each_error(
        &self,
        query: &ErrorQuery,
        mut each: impl FnMut(ErrorRowRef<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {ERROR_COLUMNS} FROM error_log
             WHERE source = ?1 AND (?2 IS NULL OR id < ?2) AND (?3 IS NULL OR reason = ?3)
               AND (?5 IS NULL OR field = ?5) AND (?6 IS NULL OR shard_id = ?6)
               AND (?7 IS NULL OR rejected_at_micros >= ?7) AND (?8 IS NULL OR rejected_at_micros < ?8)
               AND {NOT_REPLAYED}
             ORDER BY id DESC LIMIT ?4"
        ))?;
        let mut rows = statement.query(params![
            query.source,
            query.before,
            query.reason,
            query.limit,
            query.field,
            query.shard_id,
            query.since.map(|at| at.timestamp_micros()),
            query.until.map(|at| at.timestamp_micros())
        ])?;
        while let Some(row) = rows.next()? {
            each(error_row_ref(row)?)?;
        }
        Ok(())
    }

    /// A page of a source's rejected records not replayed since (only
    /// `reason`'s when given), for reading the whole log newest first: those
    /// among its `limit` newest rows older than id `before`, each lent to
    /// `each`. Returns where the next page begins (`None` after the last).
    pub fn for_each_error_in_page(
        &self,
        source: &str,
        reason: Option<&str>,
        before: Option<i64>,
        limit: u32,
        each: impl FnMut(ErrorRowRef<'_>) -> Result<(), StoreError>,
    ) -> Result<Option<i64>, StoreError> {
        let connection = self.reading();
        let Some(page) = find_page(&connection, source, before, limit)? else { return Ok(None) };
        read_page(&connection, source, reason, &page, each)?;
        Ok(page.next())
    }

    /// A reader of the error log with a connection of its own, so that
    /// several read pages side by side (an in-memory store, which a second
    /// connection cannot open, lends its reading connection instead).
    pub fn error_log_reader(self: &Arc<Store>) -> Result<ErrorLogReader, StoreError> {
        let own = match &self.path {
            Some(path) => Some(crate::open_reader(path)?),
            None => None,
        };
        Ok(ErrorLogReader { own, store: Arc::clone(self) })
    }

    /// How many of a source's rejected records (not replayed since) match
    /// `query`'s filters but its reason, by reason code, most first.
    pub fn error_counts(&self, query: &ErrorQuery) -> Result<Vec<(String, u64)>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare_cached(&format!(
            "SELECT reason, COUNT(*) AS rows FROM error_log
             WHERE source = ?1 AND (?2 IS NULL OR field = ?2) AND (?3 IS NULL OR shard_id = ?3)
               AND (?4 IS NULL OR rejected_at_micros >= ?4) AND (?5 IS NULL OR rejected_at_micros < ?5)
               AND {NOT_REPLAYED}
             GROUP BY reason ORDER BY rows DESC, reason"
        ))?;
        let counts = statement.query_map(
            params![
                query.source,
                query.field,
                query.shard_id,
                query.since.map(|at| at.timestamp_micros()),
                query.until.map(|at| at.timestamp_micros())
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64)),
        )?;
        Ok(counts.collect::<Result<_, _>>()?)
    }

    /// The rows of a source's error log with these ids (those still kept).
    pub fn errors_by_id(&self, source: &str, ids: &[i64]) -> Result<Vec<ErrorRow>, StoreError> {
        let connection = self.reading();
        let mut statement = connection
            .prepare_cached(&format!("SELECT {ERROR_COLUMNS} FROM error_log WHERE source = ?1 AND id = ?2"))?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            let found = statement.query_row(params![source, id], |row| Ok(error_row_ref(row)?.to_row())).optional()?;
            if let Some(row) = found {
                rows.push(row?);
            }
        }
        Ok(rows)
    }

    /// How many rejected records a source has in its log (not replayed since).
    pub fn error_count(&self, source: &str) -> Result<u64, StoreError> {
        let connection = self.reading();
        let count: i64 = connection.query_row(
            &format!("SELECT COUNT(*) FROM error_log WHERE source = ?1 AND {NOT_REPLAYED}"),
            [source],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayedRuns;

    #[test]
    fn replayed_runs_answer_ids_asked_in_descending_order() {
        let mut runs = ReplayedRuns::new(vec![(2, 3), (5, 5), (8, 10)]);
        let held: Vec<i64> = (0..=12).rev().filter(|&id| runs.holds_descending(id)).collect();
        assert_eq!(held, [10, 9, 8, 5, 3, 2]);
        let mut none = ReplayedRuns::new(Vec::new());
        assert!(!none.holds_descending(1));
    }
}
