//! What the sink's moto-backed catalog tests (Glue, DynamoDB) share: the
//! emulator check, names no other run uses, a dataset's rows and rejections,
//! and one batch committed to a table and its rejected table.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{TimeZone, Utc};
use tributary_reader::{SequenceNumber, ShardAdvance, ShardCheckpoint};
use tributary_sink::table::{TableError, TableWriter, rejected_batch};
use tributary_store::NewErrorRow;

pub const JUNE_FIRST: i64 = 19_875 * 86_400_000_000;
pub const SCOPE: &str = "orders@arn:aws:kinesis:us-east-1:000000000000:stream/orders";
pub const SHARD: &str = "shardId-000000000000";

/// moto's endpoints for `services` (`AWS_ENDPOINT_URL_{service}`) are set, as
/// `./scripts/test.sh` sets them; with `CI=true` their absence fails the test.
pub fn moto_is_up(services: &[&str]) -> bool {
    let set = |service: &str| std::env::var(format!("AWS_ENDPOINT_URL_{service}")).is_ok_and(|v| !v.is_empty());
    if services.iter().all(|service| set(service)) {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let opted_out = std::env::var("TRIBUTARY_SKIP_EMULATOR_TESTS").is_ok_and(|v| v == "1");
    assert!(
        opted_out && !in_ci,
        "this test needs moto ({services:?}): run it through ./scripts/test.sh (TRIBUTARY_SKIP_EMULATOR_TESTS=1 skips it outside CI)"
    );
    eprintln!("SKIPPED: emulators not running and TRIBUTARY_SKIP_EMULATOR_TESTS=1");
    false
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{}{nanos}", std::process::id())
}

/// Rows `ids` of the test dataset (`id`, `ts`).
pub fn rows(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    let ts = TimestampMicrosecondArray::from_iter_values(ids.iter().map(|id| JUNE_FIRST + id)).with_timezone("UTC");
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(ts)]).expect("batch")
}

/// The rejection of the record at `sequence`.
pub fn rejection(sequence: &str) -> NewErrorRow {
    NewErrorRow {
        shard_id: SHARD.to_owned(),
        sequence_number: sequence.to_owned(),
        sub_sequence: None,
        arrival_time: Utc.timestamp_opt(1_717_200_000, 0).single().expect("time"),
        reason: "TYPE_MISMATCH".to_owned(),
        field: "id".to_owned(),
        message: "expected an integer".to_owned(),
        payload: b"{\"id\": \"x\"}".to_vec(),
        payload_length: 11,
    }
}

pub fn at(sequence: &str) -> ShardCheckpoint {
    ShardCheckpoint::after(SequenceNumber::new(sequence).expect("digits"))
}

pub fn advance(from: ShardCheckpoint, to: &str) -> ShardAdvance {
    ShardAdvance { shard_id: SHARD.to_owned(), from, to: at(to) }
}

/// Writes, uploads and commits one batch (rows `ids`, the record at
/// `rejected_sequence` rejected) to `table` and its `rejected` table.
pub async fn commit_batch(
    table: &TableWriter,
    rejected: &TableWriter,
    ids: &[i64],
    rejected_sequence: &str,
    advance: ShardAdvance,
) -> Result<(), TableError> {
    commit_batch_rejecting(table, rejected, ids, Some(rejected_sequence), advance).await
}

/// [`commit_batch`], with the rejection of record `rejected_sequence`, or none.
pub async fn commit_batch_rejecting(
    table: &TableWriter,
    rejected: &TableWriter,
    ids: &[i64],
    rejected_sequence: Option<&str>,
    advance: ShardAdvance,
) -> Result<(), TableError> {
    let files = table.write(&rows(ids), &[])?;
    let rejections: Vec<_> = rejected_sequence.into_iter().map(rejection).collect();
    let rejected_rows = rejected_batch(&rejections, Utc::now()).expect("rejected rows");
    let rejected_files = rejected.write(&rejected_rows, &[])?;
    table.upload(&files).await?;
    rejected.upload(&rejected_files).await?;
    let files = files.into_iter().map(|file| file.data_file).collect();
    let rejected_files = rejected_files.into_iter().map(|file| file.data_file).collect();
    table.commit(SCOPE, files, &[advance], Some(JUNE_FIRST), Some((rejected, rejected_files))).await.map(drop)
}
