//! Versioned schema migrations: each runs once, in order, in its own transaction.

use rusqlite::Connection;

use crate::StoreError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: sources and their versions, checkpoints, manifest, error log.
    "CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        current_version INTEGER NOT NULL,
        deleted_at_micros INTEGER
    );
    CREATE TABLE source_versions (
        source TEXT NOT NULL REFERENCES sources(name),
        version INTEGER NOT NULL,
        definition TEXT NOT NULL,
        stream_arn TEXT NOT NULL,
        start_at_micros INTEGER,
        committed_at_micros INTEGER NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (source, version)
    );
    CREATE TABLE checkpoints (
        scope TEXT NOT NULL,
        shard_id TEXT NOT NULL,
        sequence_number TEXT,
        sub_sequence INTEGER,
        record_complete INTEGER NOT NULL,
        previous_sequence_number TEXT,
        finished INTEGER NOT NULL,
        updated_at_micros INTEGER NOT NULL,
        PRIMARY KEY (scope, shard_id)
    );
    CREATE TABLE shard_counts (
        source TEXT NOT NULL,
        shard_id TEXT NOT NULL,
        rows INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        filtered INTEGER NOT NULL,
        PRIMARY KEY (source, shard_id)
    );
    CREATE TABLE manifest (
        id INTEGER PRIMARY KEY,
        dataset TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        version INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        committed_at_micros INTEGER NOT NULL
    );
    CREATE INDEX manifest_by_dataset ON manifest (dataset);
    CREATE TABLE error_log (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        version INTEGER NOT NULL,
        shard_id TEXT NOT NULL,
        sequence_number TEXT NOT NULL,
        sub_sequence INTEGER,
        arrival_time_micros INTEGER NOT NULL,
        rejected_at_micros INTEGER NOT NULL,
        reason TEXT NOT NULL,
        field TEXT NOT NULL,
        message TEXT NOT NULL,
        payload BLOB NOT NULL,
        payload_length INTEGER NOT NULL
    );
    CREATE INDEX error_log_by_source ON error_log (source, id);",
    // 2: late rows per shard; each checkpoint scope's largest event time (its watermark +
    // disorder); finished versions (not started again).
    "ALTER TABLE shard_counts ADD COLUMN late INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE source_versions ADD COLUMN finished_at_micros INTEGER;
    ALTER TABLE source_versions ADD COLUMN finished_because TEXT;
    CREATE TABLE event_times (
        scope TEXT PRIMARY KEY,
        max_event_micros INTEGER NOT NULL,
        updated_at_micros INTEGER NOT NULL
    );",
    // 3: the embedded Iceberg catalog: each table's current metadata file; and what a
    // batch recorded here before its table commit (taken back if that commit never lands).
    "CREATE TABLE iceberg_tables (
        name TEXT PRIMARY KEY,
        metadata_location TEXT NOT NULL,
        updated_at_micros INTEGER NOT NULL
    );
    CREATE TABLE prepared_batches (
        scope TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        errors_after INTEGER NOT NULL,
        errors_through INTEGER NOT NULL,
        manifest_after INTEGER NOT NULL,
        manifest_through INTEGER NOT NULL,
        counts TEXT NOT NULL
    );",
    // 4: a prepared batch's largest event time, applied only when its table commit landed
    // (raising the watermark before the commit dropped the batch's own rows as late on a retry).
    "ALTER TABLE prepared_batches ADD COLUMN max_event_micros INTEGER;",
    // 5: who this store is, as the owner of a warehouse's tables (a lost store's
    // successor is another catalog until its operator says otherwise).
    "CREATE TABLE store_identity (id TEXT NOT NULL);
    INSERT INTO store_identity (id) VALUES (lower(hex(randomblob(16))));",
    // 6: replays of rejected rows: a replayed row stays in the log, marked (when, by which
    // version, what it gave); a replay chunk waiting for its table commit (settled like a
    // batch): its landed and filtered rows as id ranges, the still rejected ones row by row.
    "ALTER TABLE error_log ADD COLUMN replayed_at_micros INTEGER;
    ALTER TABLE error_log ADD COLUMN replayed_version INTEGER;
    ALTER TABLE error_log ADD COLUMN replay_outcome TEXT;
    CREATE TABLE prepared_replays (
        source TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        marker INTEGER NOT NULL,
        replayed_at_micros INTEGER NOT NULL,
        landed TEXT NOT NULL,
        filtered TEXT NOT NULL,
        counts TEXT NOT NULL
    );
    CREATE TABLE prepared_replay_rows (
        source TEXT NOT NULL,
        error_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        field TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (source, error_id)
    );
    CREATE TABLE prepared_replay_files (
        source TEXT NOT NULL,
        dataset TEXT NOT NULL,
        path TEXT NOT NULL,
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    );",
    // 7: replay marks as runs of consecutive error-log ids, one row per run, instead of
    // columns of each row (marking 100k rows rewrote every page of their payloads).
    "CREATE TABLE error_replays (
        first_id INTEGER PRIMARY KEY,
        last_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        replayed_at_micros INTEGER NOT NULL,
        replayed_version INTEGER NOT NULL,
        replay_outcome TEXT NOT NULL
    );
    CREATE INDEX error_replays_by_source ON error_replays (source, last_id);
    INSERT INTO error_replays (first_id, last_id, source, replayed_at_micros, replayed_version, replay_outcome)
        SELECT id, id, source, replayed_at_micros, replayed_version, replay_outcome FROM error_log
        WHERE replayed_at_micros IS NOT NULL;
    ALTER TABLE error_log DROP COLUMN replayed_at_micros;
    ALTER TABLE error_log DROP COLUMN replayed_version;
    ALTER TABLE error_log DROP COLUMN replay_outcome;",
];

pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_run_once_and_refuse_newer_files() {
        let mut connection = Connection::open_in_memory().expect("open");
        migrate(&mut connection).expect("first migration");
        migrate(&mut connection).expect("nothing left to do");
        connection.pragma_update(None, "user_version", 99).expect("bump");
        assert!(matches!(migrate(&mut connection), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn replay_marks_kept_on_rows_become_runs() {
        let mut connection = Connection::open_in_memory().expect("open");
        for migration in &MIGRATIONS[..6] {
            connection.execute_batch(migration).expect("an earlier migration");
        }
        connection.pragma_update(None, "user_version", 6).expect("version");
        connection
            .execute_batch(
                "INSERT INTO error_log (id, source, version, shard_id, sequence_number, arrival_time_micros,
                     rejected_at_micros, reason, field, message, payload, payload_length,
                     replayed_at_micros, replayed_version, replay_outcome)
                 VALUES (4, 's', 1, 'shard-0', '1', 0, 0, 'MISSING_FIELD', 'a', 'absent', x'7b7d', 2, 7, 2, 'landed'),
                        (5, 's', 1, 'shard-0', '2', 0, 0, 'MISSING_FIELD', 'a', 'absent', x'7b7d', 2, NULL, NULL, NULL);",
            )
            .expect("rows of version 6");
        migrate(&mut connection).expect("migration 7");
        let marks: Vec<(i64, i64, String, i64, i64, String)> = connection
            .prepare("SELECT first_id, last_id, source, replayed_at_micros, replayed_version, replay_outcome FROM error_replays")
            .expect("prepare")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(marks, [(4, 4, "s".to_owned(), 7, 2, "landed".to_owned())]);
        let columns: i64 = connection
            .query_row("SELECT COUNT(*) FROM pragma_table_info('error_log') WHERE name LIKE 'replay%'", [], |row| {
                row.get(0)
            })
            .expect("columns");
        assert_eq!(columns, 0, "the rows no longer carry marks");
    }
}
