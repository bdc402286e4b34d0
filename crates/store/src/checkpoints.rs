//! Shard checkpoints: the reader's [`CheckpointStore`], backed by SQLite.

use std::collections::HashMap;

use chrono::Utc;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use tributary_reader::{
    CheckpointError, CheckpointFuture, CheckpointStore, RecordPosition, SequenceNumber, ShardAdvance, ShardCheckpoint,
};

use crate::{Store, StoreError};

fn sequence(text: String) -> Result<SequenceNumber, StoreError> {
    SequenceNumber::new(&text)
        .map_err(|error| StoreError::Corrupt { what: "sequence number", detail: error.to_string() })
}

type CheckpointColumns = (Option<String>, Option<i64>, bool, Option<String>, bool);

fn columns(row: &Row<'_>) -> rusqlite::Result<CheckpointColumns> {
    Ok((
        row.get("sequence_number")?,
        row.get("sub_sequence")?,
        row.get("record_complete")?,
        row.get("previous_sequence_number")?,
        row.get("finished")?,
    ))
}

fn checkpoint(
    (sequence_number, sub_sequence, record_complete, previous, finished): CheckpointColumns,
) -> Result<ShardCheckpoint, StoreError> {
    let position = match sequence_number {
        None => None,
        Some(sequence_number) => Some(RecordPosition {
            sequence_number: sequence(sequence_number)?,
            sub_sequence: sub_sequence.map(|sub| sub as u64),
            record_complete,
            previous_sequence_number: previous.map(sequence).transpose()?,
        }),
    };
    Ok(ShardCheckpoint { position, finished })
}

/// Applies `advances` inside `transaction`, each only if the shard still holds its `from`.
pub(crate) fn apply_advances(
    transaction: &Transaction<'_>,
    scope: &str,
    advances: &[ShardAdvance],
) -> Result<(), StoreError> {
    let now = Utc::now().timestamp_micros();
    for advance in advances {
        let current = transaction
            .query_row(
                "SELECT sequence_number, sub_sequence, record_complete, previous_sequence_number, finished
                 FROM checkpoints WHERE scope = ?1 AND shard_id = ?2",
                params![scope, advance.shard_id],
                columns,
            )
            .optional()?
            .map(checkpoint)
            .transpose()?
            .unwrap_or_default();
        if current != advance.from {
            return Err(StoreError::CheckpointConflict { scope: scope.to_owned(), shard_id: advance.shard_id.clone() });
        }
        write_checkpoint(transaction, scope, &advance.shard_id, &advance.to, now)?;
    }
    Ok(())
}

fn write_checkpoint(
    transaction: &Transaction<'_>,
    scope: &str,
    shard_id: &str,
    to: &ShardCheckpoint,
    now: i64,
) -> Result<(), StoreError> {
    let position = to.position.as_ref();
    transaction.execute(
        "INSERT INTO checkpoints (scope, shard_id, sequence_number, sub_sequence, record_complete,
                                  previous_sequence_number, finished, updated_at_micros)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (scope, shard_id) DO UPDATE SET
           sequence_number = excluded.sequence_number, sub_sequence = excluded.sub_sequence,
           record_complete = excluded.record_complete, previous_sequence_number = excluded.previous_sequence_number,
           finished = excluded.finished, updated_at_micros = excluded.updated_at_micros",
        params![
            scope,
            shard_id,
            position.map(|p| p.sequence_number.as_str()),
            position.and_then(|p| p.sub_sequence).map(|sub| sub as i64),
            position.is_none_or(|p| p.record_complete),
            position.and_then(|p| p.previous_sequence_number.as_ref()).map(SequenceNumber::as_str),
            to.finished,
            now
        ],
    )?;
    Ok(())
}

impl Store {
    /// Replaces every checkpoint of `scope`, and its largest event time, with
    /// those of the table that is their truth (the store lost them or fell behind).
    pub fn restore_checkpoints(
        &self,
        scope: &str,
        checkpoints: &HashMap<String, ShardCheckpoint>,
        max_event_micros: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let now = Utc::now().timestamp_micros();
        transaction.execute("DELETE FROM checkpoints WHERE scope = ?1", [scope])?;
        for (shard_id, checkpoint) in checkpoints {
            write_checkpoint(&transaction, scope, shard_id, checkpoint, now)?;
        }
        // The table's event time, or none when it has none: a store ahead of its table
        // (a batch prepared but never committed) must not keep a watermark it set itself.
        match max_event_micros {
            Some(max_event) => {
                transaction.execute(
                    "INSERT INTO event_times (scope, max_event_micros, updated_at_micros) VALUES (?1, ?2, ?3)
                     ON CONFLICT (scope) DO UPDATE SET max_event_micros = excluded.max_event_micros,
                       updated_at_micros = excluded.updated_at_micros",
                    params![scope, max_event, now],
                )?;
            }
            None => {
                transaction.execute("DELETE FROM event_times WHERE scope = ?1", [scope])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Every shard checkpoint of `scope`.
    pub fn checkpoints(&self, scope: &str) -> Result<HashMap<String, ShardCheckpoint>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare(
            "SELECT shard_id, sequence_number, sub_sequence, record_complete, previous_sequence_number, finished
             FROM checkpoints WHERE scope = ?1",
        )?;
        let rows = statement.query_map([scope], |row| Ok((row.get::<_, String>("shard_id")?, columns(row)?)))?;
        rows.map(|row| {
            let (shard_id, columns) = row?;
            Ok((shard_id, checkpoint(columns)?))
        })
        .collect()
    }

    /// Advances checkpoints alone (no files, no rejections), all or none.
    pub fn advance_checkpoints(&self, scope: &str, advances: &[ShardAdvance]) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        apply_advances(&transaction, scope, advances)?;
        transaction.commit()?;
        Ok(())
    }
}

fn to_checkpoint_error(error: StoreError) -> CheckpointError {
    match error {
        StoreError::CheckpointConflict { shard_id, .. } => CheckpointError::Conflict { shard_id },
        other => CheckpointError::Store(other.to_string()),
    }
}

impl CheckpointStore for Store {
    fn load<'a>(&'a self, scope: &'a str) -> CheckpointFuture<'a, HashMap<String, ShardCheckpoint>> {
        let loaded = self.checkpoints(scope).map_err(to_checkpoint_error);
        Box::pin(async move { loaded })
    }

    fn commit<'a>(&'a self, scope: &'a str, advances: &'a [ShardAdvance]) -> CheckpointFuture<'a, ()> {
        let committed = self.advance_checkpoints(scope, advances).map_err(to_checkpoint_error);
        Box::pin(async move { committed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: &str, sub: Option<u64>, complete: bool, finished: bool) -> ShardCheckpoint {
        ShardCheckpoint {
            position: Some(RecordPosition {
                sequence_number: SequenceNumber::new(sequence).expect("digits"),
                sub_sequence: sub,
                record_complete: complete,
                previous_sequence_number: Some(SequenceNumber::new("1").expect("digits")),
            }),
            finished,
        }
    }

    #[tokio::test]
    async fn checkpoints_round_trip_and_refuse_a_stale_from() {
        let store = Store::open_in_memory().expect("store");
        let mid_aggregate = at("49590338271490256608559692538361571095921575989136588898", Some(3), false, false);
        let advance =
            ShardAdvance { shard_id: "shard-0".into(), from: ShardCheckpoint::default(), to: mid_aggregate.clone() };
        CheckpointStore::commit(&store, "s", std::slice::from_ref(&advance)).await.expect("commit");
        assert_eq!(CheckpointStore::load(&store, "s").await.expect("load").get("shard-0"), Some(&mid_aggregate));
        assert!(matches!(
            CheckpointStore::commit(&store, "s", &[advance]).await,
            Err(CheckpointError::Conflict { shard_id }) if shard_id == "shard-0"
        ));
        let finished = at("5", None, true, true);
        let next = ShardAdvance { shard_id: "shard-0".into(), from: mid_aggregate, to: finished.clone() };
        CheckpointStore::commit(&store, "s", &[next]).await.expect("commit");
        assert_eq!(store.checkpoints("s").expect("load").get("shard-0"), Some(&finished));
        assert!(store.checkpoints("other").expect("load").is_empty());
    }
}
