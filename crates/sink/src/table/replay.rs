//! Replays of rejected rows into a dataset's table, exactly once.
//!
//! Each replay chunk's commit raises the table's replay marker of the
//! source (`tributary.replayed.{source}`, a count of chunks), only while the
//! table still holds the marker the chunk began from. The store remembers a
//! chunk before its commit; afterwards the marker says whether it landed.
//!
//! The rejected table is a log: a replayed row gains a `REPLAYED` row there
//! (same shard, sequence and sub-sequence), a row still rejected for a new
//! reason gains a row with it; a record's current state is its latest row
//! ([`current_rejections`]).

use std::collections::HashMap;

use iceberg::ErrorKind;
use iceberg::spec::{DataFile, TableMetadata};

use super::{TableError, TableWriter};
use crate::table::rejected::RejectedRow;

/// The reason of a rejected table's row saying its record was replayed.
pub const REPLAYED_REASON: &str = "REPLAYED";

/// The property holding how many replay chunks of `source` a table holds.
fn marker_key(source: &str) -> String {
    format!("tributary.replayed.{source}")
}

fn marker_in(metadata: &TableMetadata, source: &str) -> Result<u64, String> {
    let key = marker_key(source);
    match metadata.properties().get(&key) {
        None => Ok(0),
        Some(value) => value.parse().map_err(|_| format!("{key}: `{value}` is not a count")),
    }
}

impl TableWriter {
    /// The replay marker of `source` the table holds (0 before any replay).
    pub async fn replay_marker(&self, source: &str) -> Result<u64, TableError> {
        let table = self.load().await?;
        marker_in(table.metadata(), source).map_err(TableError::Iceberg)
    }

    /// Commits replay chunk `marker` of `source` (the table holding `marker
    /// - 1`): `files` to this table, `marks` (its rows' `REPLAYED` and new
    /// reasons) to `rejected`, both or neither where the catalog moves
    /// tables together. Otherwise this table first (the truth), then the
    /// rejected table; [`TableWriter::commit_replay_marks`] finishes a stop
    /// in between. Refused with [`TableError::CheckpointConflict`] when
    /// this table's marker is not `marker - 1` (another replay moved it).
    pub async fn commit_replay(
        &self,
        scope: &str,
        source: &str,
        marker: u64,
        files: Vec<DataFile>,
        rejected: &TableWriter,
        marks: Vec<DataFile>,
    ) -> Result<(), TableError> {
        let guard = |metadata: &TableMetadata| -> iceberg::Result<()> {
            let found =
                marker_in(metadata, source).map_err(|error| iceberg::Error::new(ErrorKind::DataInvalid, error))?;
            if found + 1 == marker {
                Ok(())
            } else {
                Err(iceberg::Error::new(ErrorKind::PreconditionFailed, super::conflict_message("")))
            }
        };
        let properties = HashMap::from([(marker_key(source), marker.to_string())]);
        if self.catalog.commits_tables_together() {
            self.commit_guarded(files, &properties, scope, None, &guard, Some((rejected, marks))).await?;
            return Ok(());
        }
        self.commit_guarded(files, &properties, scope, None, &guard, None).await?;
        crate::failpoint("between-replay-commits");
        rejected.commit_replay_marks(scope, source, marker, marks).await
    }

    /// Appends chunk `marker`'s `marks` to this rejected table unless it
    /// holds them already (its marker is `marker` or more).
    pub async fn commit_replay_marks(
        &self,
        scope: &str,
        source: &str,
        marker: u64,
        marks: Vec<DataFile>,
    ) -> Result<(), TableError> {
        let guard = |metadata: &TableMetadata| -> iceberg::Result<()> {
            let found =
                marker_in(metadata, source).map_err(|error| iceberg::Error::new(ErrorKind::DataInvalid, error))?;
            if found < marker {
                Ok(())
            } else {
                Err(iceberg::Error::new(ErrorKind::PreconditionFailed, super::conflict_message("")))
            }
        };
        let properties = HashMap::from([(marker_key(source), marker.to_string())]);
        match self.commit_guarded(marks, &properties, scope, None, &guard, None).await {
            Ok(_) | Err(TableError::CheckpointConflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The current state of each record in a rejected table's rows: its latest
/// row, left out when that says it was replayed. In the rows' order.
pub fn current_rejections(rows: Vec<RejectedRow>) -> Vec<RejectedRow> {
    type Key = (String, String, Option<u64>);
    let key = |row: &RejectedRow| -> Key {
        (row.row.shard_id.clone(), row.row.sequence_number.clone(), row.row.sub_sequence)
    };
    // The latest row of each record: the last one of the latest time.
    let mut latest: HashMap<Key, usize> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        let entry = latest.entry(key(row)).or_insert(index);
        if rows[*entry].rejected_at <= row.rejected_at {
            *entry = index;
        }
    }
    rows.into_iter()
        .enumerate()
        .filter(|(index, row)| latest.get(&key(row)) == Some(index) && row.row.reason != REPLAYED_REASON)
        .map(|(_, row)| row)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration};
    use tributary_store::NewErrorRow;

    use super::*;

    fn row(sequence_number: &str, reason: &str, seconds: i64) -> RejectedRow {
        let at = DateTime::from_timestamp(1_717_243_200, 0).expect("time");
        RejectedRow {
            row: NewErrorRow {
                shard_id: "shardId-0".into(),
                sequence_number: sequence_number.into(),
                sub_sequence: None,
                arrival_time: at,
                reason: reason.into(),
                field: String::new(),
                message: String::new(),
                payload: Vec::new(),
                payload_length: 0,
            },
            rejected_at: at + Duration::seconds(seconds),
        }
    }

    #[test]
    fn a_record_is_what_its_latest_row_says_and_replayed_ones_are_gone() {
        let rows = vec![
            row("1", "TYPE_MISMATCH", 0),
            row("2", "MALFORMED", 0),
            row("3", "MISSING_FIELD", 0),
            // Read in another order than written: the time decides.
            row("2", REPLAYED_REASON, 10),
            row("3", "TYPE_MISMATCH", 10),
            row("1", REPLAYED_REASON, -5),
        ];
        let current = current_rejections(rows);
        let seen: Vec<(&str, &str)> =
            current.iter().map(|r| (r.row.sequence_number.as_str(), r.row.reason.as_str())).collect();
        assert_eq!(seen, [("1", "TYPE_MISMATCH"), ("3", "TYPE_MISMATCH")]);
    }
}
