//! Tables recorded in AWS Glue (moto) over an S3 warehouse (moto): Glue
//! holds each table as an Iceberg table, replays are refused, and a rejected
//! table committed ahead of a rows table that never followed keeps what it
//! holds, marked, without rolling back anyone's commit.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iceberg::Catalog;
use support::{SCOPE, SHARD, advance, at, commit_batch, commit_batch_rejecting, rows, unique};
use tributary_reader::ShardCheckpoint;
use tributary_sink::table::{
    Followed, GlueCatalog, REJECTED_TIMESTAMP, TableCatalog, TableError, TableWriter, already_rejected, rejected_schema,
};
use tributary_source::{AwsSettings, ClientFactory};
use tributary_store::Store;

async fn snapshot_ids(writer: &TableWriter) -> (Option<i64>, usize) {
    let table = writer.load().await.expect("load");
    (table.metadata().current_snapshot_id(), table.metadata().snapshots().count())
}

#[tokio::test]
async fn glue_holds_the_tables_refuses_replays_and_a_rejected_commit_never_followed_is_kept_and_marked() {
    if !support::moto_is_up(&["GLUE", "S3"]) {
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
    // No undo is kept: rolling a table back would undo other writers' batches.
    let properties = rejected.load().await.expect("load").metadata().properties().clone();
    assert!(!properties.keys().any(|key| key.starts_with("tributary.undo.")), "{properties:?}");

    // A replay is refused by the table committed first: neither table moves.
    let replay = commit_batch(&table, &rejected, &[1, 2], "100", advance(ShardCheckpoint::default(), "10")).await;
    assert!(matches!(replay, Err(TableError::CheckpointConflict { .. })), "{replay:?}");
    assert_eq!(snapshot_ids(&rejected).await, after_first);

    // Another writer moves the rows table alone; this writer's next batch then lands in
    // the rejected table (committed first) and is refused by the rows table.
    table.commit(SCOPE, Vec::new(), &[advance(at("10"), "15")], None, None).await.expect("the other writer");
    let refused = commit_batch(&table, &rejected, &[3], "18", advance(at("10"), "20")).await;
    assert!(matches!(refused, Err(TableError::CheckpointConflict { .. })), "{refused:?}");
    let ahead = snapshot_ids(&rejected).await;
    assert_eq!(ahead.1, 2, "the rejected table took the batch");
    assert_eq!(rejected.checkpoints(SCOPE).await.expect("cp").shards[SHARD], at("20"));

    // The shard's owner brings it back in step with the rows table: nothing is rolled back
    // (another writer may have committed since); its checkpoint returns to the rows table's,
    // and a mark says how far it already holds the shard's rejections.
    let leader: HashMap<String, ShardCheckpoint> = table.checkpoints(SCOPE).await.expect("cp").shards;
    let followed = rejected.follow(SCOPE, &leader, None).await.expect("follow");
    assert_eq!(followed, Followed::Forwarded { shards: 1 });
    assert_eq!(snapshot_ids(&rejected).await, ahead, "the batch's rejections stay");
    assert_eq!(rejected.checkpoints(SCOPE).await.expect("cp").shards, leader);
    let through = rejected.rejected_through(SCOPE).await.expect("marks");
    assert_eq!(through.get(SHARD), Some(&at("20")));
    assert!(already_rejected(&through[SHARD], "18", None), "record 18 is in the rejected table");
    assert!(!already_rejected(&through[SHARD], "21", None));
    assert_eq!(rejected.follow(SCOPE, &leader, None).await.expect("follow"), Followed::InStep);
    let (rows_in_rejected, _) =
        tributary_sink::table::current_rows(&catalog, "orders__rejected", 100).await.expect("read").expect("a table");
    assert_eq!(rows_in_rejected, 2, "both batches' rejections, once each");

    // The batch, read again from the rows table's checkpoint, lands in both: its rejection
    // (record 18) is left out by the worker, as the mark says, so the rejected table gets none.
    commit_batch_rejecting(&table, &rejected, &[3], None, advance(at("15"), "20")).await.expect("commit after");
    let (rows_in_rejected, _) =
        tributary_sink::table::current_rows(&catalog, "orders__rejected", 100).await.expect("read").expect("a table");
    assert_eq!(rows_in_rejected, 2);
    // Once the rows table passed the mark, the next bringing in step removes it.
    assert_eq!(
        rejected.follow(SCOPE, &table.checkpoints(SCOPE).await.expect("cp").shards, None).await.expect("follow"),
        Followed::InStep
    );
    assert!(rejected.rejected_through(SCOPE).await.expect("marks").is_empty());
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
    assert_eq!(other.follow(SCOPE, &leader, None).await.expect("follow"), Followed::CheckpointsSet);
    assert_eq!(other.checkpoints(SCOPE).await.expect("cp").shards, leader);
}
