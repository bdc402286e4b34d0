//! Tables recorded in AWS Glue (moto) over an S3 warehouse (moto): Glue
//! holds each table as an Iceberg table, replays are refused, and a rejected
//! table committed ahead of a rows table that never followed is undone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::{TimeZone, Utc};
use iceberg::Catalog;
use tributary_reader::{SequenceNumber, ShardAdvance, ShardCheckpoint};
use tributary_sink::table::{
    Followed, GlueCatalog, REJECTED_TIMESTAMP, TableCatalog, TableError, TableWriter, rejected_batch, rejected_schema,
};
use tributary_source::{AwsSettings, ClientFactory};
use tributary_store::{NewErrorRow, Store};

const DAY: i64 = 86_400_000_000;
const JUNE_FIRST: i64 = 19_875 * DAY;
const SCOPE: &str = "orders@arn:aws:kinesis:us-east-1:000000000000:stream/orders";
const SHARD: &str = "shardId-000000000000";

/// moto's endpoints are set (`eval "$(scripts/emulators.sh up)"`, as `./scripts/test.sh` does).
fn moto_is_up() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    if set("AWS_ENDPOINT_URL_GLUE") && set("AWS_ENDPOINT_URL_S3") {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let opted_out = std::env::var("TRIBUTARY_SKIP_EMULATOR_TESTS").is_ok_and(|v| v == "1");
    assert!(
        opted_out && !in_ci,
        "this test needs moto's Glue and S3: run it through ./scripts/test.sh (TRIBUTARY_SKIP_EMULATOR_TESTS=1 skips it outside CI)"
    );
    eprintln!("SKIPPED: emulators not running and TRIBUTARY_SKIP_EMULATOR_TESTS=1");
    false
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}{}{nanos}", std::process::id())
}

fn rows(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]));
    let ts = TimestampMicrosecondArray::from_iter_values(ids.iter().map(|id| JUNE_FIRST + id)).with_timezone("UTC");
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(ts)]).expect("batch")
}

fn rejection(sequence: &str) -> NewErrorRow {
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

fn at(sequence: &str) -> ShardCheckpoint {
    ShardCheckpoint::after(SequenceNumber::new(sequence).expect("digits"))
}

fn advance(from: ShardCheckpoint, to: &str) -> ShardAdvance {
    ShardAdvance { shard_id: SHARD.to_owned(), from, to: at(to) }
}

/// Writes, uploads and commits one batch to both tables.
async fn commit_batch(
    table: &TableWriter,
    rejected: &TableWriter,
    ids: &[i64],
    rejected_sequence: &str,
    advance: ShardAdvance,
) -> Result<(), TableError> {
    let files = table.write(&rows(ids), &[])?;
    let rejected_rows = rejected_batch(&[rejection(rejected_sequence)], Utc::now()).expect("rejected rows");
    let rejected_files = rejected.write(&rejected_rows, &[])?;
    table.upload(&files).await?;
    rejected.upload(&rejected_files).await?;
    let files = files.into_iter().map(|file| file.data_file).collect();
    let rejected_files = rejected_files.into_iter().map(|file| file.data_file).collect();
    table.commit(SCOPE, files, &[advance], Some(JUNE_FIRST), Some((rejected, rejected_files))).await.map(drop)
}

async fn snapshot_ids(writer: &TableWriter) -> (Option<i64>, usize) {
    let table = writer.load().await.expect("load");
    (table.metadata().current_snapshot_id(), table.metadata().snapshots().count())
}

#[tokio::test]
async fn glue_holds_the_tables_refuses_replays_and_a_rejected_commit_never_followed_is_undone() {
    if !moto_is_up() {
        return;
    }
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(10)).await;
    let bucket = unique("glue-test-").to_lowercase();
    aws.s3().create_bucket().bucket(&bucket).send().await.expect("create the bucket");
    let warehouse = format!("s3://{bucket}/tables");
    let database = unique("glue_test_");
    let spool = tempfile::tempdir().expect("spool");
    let glue = GlueCatalog::new(aws.glue(), database.clone(), None);
    glue.ensure_database(&warehouse).await.expect("database");
    glue.ensure_database(&warehouse).await.expect("an existing database is fine");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let catalog =
        TableCatalog::s3(store, aws.s3(), &warehouse, spool.path().to_owned()).expect("catalog").with_glue(glue);
    assert_eq!(catalog.kind(), format!("glue:{database}"));
    let schema = rows(&[]).schema();
    let table = TableWriter::open(catalog.clone(), "orders", "ts", &schema, &["id".to_owned()]).await.expect("create");
    let rejected = TableWriter::open(catalog.clone(), "orders__rejected", REJECTED_TIMESTAMP, &rejected_schema(), &[])
        .await
        .expect("create the rejected table");

    // Glue holds it as an Iceberg table, its metadata file and its columns.
    let described = |name: &'static str| {
        let glue = aws.glue();
        let database = database.clone();
        async move {
            let found = glue.get_table().database_name(database).name(name).send().await.expect("GetTable");
            found.table().cloned().expect("a table")
        }
    };
    let orders = described("orders").await;
    let parameters = orders.parameters().cloned().unwrap_or_default();
    assert_eq!(parameters.get("table_type").map(String::as_str), Some("ICEBERG"));
    let created_at = table.load().await.expect("load").metadata_location().map(str::to_owned);
    assert_eq!(parameters.get("metadata_location"), created_at.as_ref());
    let columns: Vec<(String, String)> = orders
        .storage_descriptor()
        .map(|sd| {
            sd.columns().iter().map(|c| (c.name().to_owned(), c.r#type().unwrap_or_default().to_owned())).collect()
        })
        .unwrap_or_default();
    assert_eq!(columns, [("id".to_owned(), "bigint".to_owned()), ("ts".to_owned(), "timestamp".to_owned())]);
    assert_eq!(orders.storage_descriptor().and_then(|sd| sd.location()), Some(table.location().as_str()));

    // A batch moves both tables; Glue now names the new metadata, the old one as previous.
    commit_batch(&table, &rejected, &[1, 2], "100", advance(ShardCheckpoint::default(), "10")).await.expect("commit");
    let parameters = described("orders").await.parameters().cloned().unwrap_or_default();
    let now_at = table.load().await.expect("load").metadata_location().map(str::to_owned);
    assert_eq!(parameters.get("metadata_location"), now_at.as_ref());
    assert_eq!(parameters.get("previous_metadata_location"), created_at.as_ref());
    assert_eq!(table.checkpoints(SCOPE).await.expect("cp").shards[SHARD], at("10"));
    assert_eq!(rejected.checkpoints(SCOPE).await.expect("cp").shards[SHARD], at("10"), "both carry the checkpoints");
    let after_first = snapshot_ids(&rejected).await;
    assert_eq!(after_first.1, 1);
    // Once the rows table followed, the rejected table keeps no undo (a later divergence
    // must not roll it back to a snapshot before a batch both tables hold).
    let undo_key = format!("tributary.undo.{SCOPE}");
    let properties = rejected.load().await.expect("load").metadata().properties().clone();
    assert!(!properties.contains_key(&undo_key), "{properties:?}");

    // A replay is refused by the table committed first: neither table moves.
    let replay = commit_batch(&table, &rejected, &[1, 2], "100", advance(ShardCheckpoint::default(), "10")).await;
    assert!(matches!(replay, Err(TableError::CheckpointConflict { .. })), "{replay:?}");
    assert_eq!(snapshot_ids(&rejected).await, after_first);

    // Another writer moves the rows table alone; this writer's next batch then lands in
    // the rejected table (committed first) and is refused by the rows table.
    table.commit(SCOPE, Vec::new(), &[advance(at("10"), "15")], None, None).await.expect("the other writer");
    let refused = commit_batch(&table, &rejected, &[3], "200", advance(at("10"), "20")).await;
    assert!(matches!(refused, Err(TableError::CheckpointConflict { .. })), "{refused:?}");
    let ahead = snapshot_ids(&rejected).await;
    assert_eq!(ahead.1, 2, "the rejected table took the batch");
    assert_eq!(rejected.checkpoints(SCOPE).await.expect("cp").shards[SHARD], at("20"));

    // Start-up brings it back in step with the rows table: the batch's snapshot is gone.
    let leader: HashMap<String, ShardCheckpoint> = table.checkpoints(SCOPE).await.expect("cp").shards;
    let followed = rejected.follow(SCOPE, &leader).await.expect("follow");
    assert_eq!(followed, Followed::Undone { snapshot_id: ahead.0 });
    assert_eq!(snapshot_ids(&rejected).await, after_first, "back where the rows table left it");
    assert_eq!(rejected.checkpoints(SCOPE).await.expect("cp").shards, leader);
    assert_eq!(rejected.follow(SCOPE, &leader).await.expect("follow"), Followed::InStep);
    let (rows_in_rejected, _) =
        tributary_sink::table::current_rows(&catalog, "orders__rejected", 100).await.expect("read").expect("a table");
    assert_eq!(rows_in_rejected, 1, "only the first batch's rejection");

    // The next batch, read again from the rows table's checkpoint, lands in both.
    commit_batch(&table, &rejected, &[3], "200", advance(at("15"), "20")).await.expect("commit after");
    let (rows_in_table, _) =
        tributary_sink::table::current_rows(&catalog, "orders", 100).await.expect("read").expect("a table");
    assert_eq!(rows_in_table, 3);
    let namespace = iceberg::NamespaceIdent::new(tributary_sink::table::NAMESPACE.to_owned());
    let listed = catalog.list_tables(&namespace).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|ident| ident.name()).collect();
    assert_eq!(names, ["orders", "orders__rejected"]);

    // A rejected table without checkpoints (created before it carried them) takes the rows table's.
    let other = TableWriter::open(catalog.clone(), "older__rejected", REJECTED_TIMESTAMP, &rejected_schema(), &[])
        .await
        .expect("create");
    assert_eq!(other.follow(SCOPE, &leader).await.expect("follow"), Followed::CheckpointsSet);
    assert_eq!(other.checkpoints(SCOPE).await.expect("cp").shards, leader);
}
