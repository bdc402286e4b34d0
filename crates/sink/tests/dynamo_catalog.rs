//! Tables recorded in an Iceberg DynamoDB catalog (moto's DynamoDB, which
//! enforces conditions) over an S3 warehouse (moto): the item layout Iceberg's
//! own DynamoDB catalogs read, both tables of a batch moved in one
//! transaction, and of two processes committing from one checkpoint exactly
//! one landing.
#![allow(missing_docs)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use support::{SCOPE, SHARD, advance, at, commit_batch, commit_batch_rejecting, rows, unique};
use tributary_reader::{ShardAdvance, ShardCheckpoint};
use tributary_sink::table::{
    DynamoCatalog, REJECTED_TIMESTAMP, TableCatalog, TableError, TableWriter, commit_retries, rejected_schema,
};
use tributary_source::{AwsSettings, ClientFactory};
use tributary_store::Store;

/// A process: its own store, the shared DynamoDB catalog and warehouse.
struct Process {
    table: TableWriter,
    rejected: TableWriter,
    _spool: tempfile::TempDir,
}

async fn process(aws: &ClientFactory, warehouse: &str, catalog_table: &str) -> Process {
    let spool = tempfile::tempdir().expect("spool");
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let dynamo = DynamoCatalog::new(aws.dynamodb(), catalog_table, "tributary");
    dynamo.ensure().await.expect("catalog table");
    let catalog =
        TableCatalog::s3(store, aws.s3(), warehouse, spool.path().to_owned()).expect("catalog").with_dynamo(dynamo);
    let table = TableWriter::open(catalog.clone(), "orders", "ts", &rows(&[]).schema(), &[]).await.expect("open");
    let rejected = TableWriter::open(catalog, "orders__rejected", REJECTED_TIMESTAMP, &rejected_schema(), &[])
        .await
        .expect("open the rejected table");
    Process { table, rejected, _spool: spool }
}

/// pyiceberg's own DynamoDbCatalog reads table `name`: its ids, or `None` without pyiceberg outside CI.
fn pyiceberg_ids(catalog_table: &str, name: &str) -> Option<Vec<i64>> {
    let python = match std::env::var("TRIBUTARY_TEST_PYICEBERG_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!in_ci, "TRIBUTARY_TEST_PYICEBERG_PYTHON is not set: run through ./scripts/test.sh");
            return None;
        }
    };
    let script = r#"
import sys, json, os
from pyiceberg.catalog.dynamodb import DynamoDbCatalog
catalog = DynamoDbCatalog("dynamodb", **{
    "table-name": sys.argv[1],
    "dynamodb.region": os.environ.get("AWS_REGION", "us-east-1"),
    "dynamodb.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
    "dynamodb.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    "s3.endpoint": os.environ["AWS_ENDPOINT_URL_S3"],
    "s3.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
    "s3.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
    "s3.force-virtual-addressing": False,
})
assert ("tributary", sys.argv[2]) in catalog.list_tables("tributary"), catalog.list_tables("tributary")
table = catalog.load_table(("tributary", sys.argv[2]))
rows = table.scan().to_arrow()
column = "id" if "id" in rows.column_names else "sequence_number"
print(json.dumps(sorted(int(v) for v in rows.column(column).to_pylist())))
"#;
    let output = std::process::Command::new(python).args(["-c", script, catalog_table, name]).output().expect("python");
    assert!(output.status.success(), "pyiceberg: {}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("ids"))
}

async fn snapshot_count(writer: &TableWriter) -> usize {
    writer.load().await.expect("load").metadata().snapshots().count()
}

#[tokio::test]
async fn two_processes_on_one_dynamodb_catalog_commit_exactly_once_in_its_layout() {
    if !support::moto_is_up(&["DYNAMODB", "S3"]) {
        return;
    }
    let aws = ClientFactory::load(AwsSettings::default(), Duration::from_secs(10)).await;
    let bucket = unique("dynamo-test-").to_lowercase();
    aws.s3().create_bucket().bucket(&bucket).send().await.expect("create the bucket");
    let warehouse = format!("s3://{bucket}/tables");
    let catalog_table = unique("iceberg_");
    let first = process(&aws, &warehouse, &catalog_table).await;
    let second = process(&aws, &warehouse, &catalog_table).await;

    // A batch moves both tables in one transaction.
    commit_batch(&first.table, &first.rejected, &[1, 2], "100", advance(ShardCheckpoint::default(), "10"))
        .await
        .expect("commit");
    let dynamodb = aws.dynamodb();
    let item = |identifier: &'static str| {
        let dynamodb = dynamodb.clone();
        let catalog_table = catalog_table.clone();
        async move {
            let found = dynamodb
                .get_item()
                .table_name(catalog_table)
                .key("identifier", AttributeValue::S(identifier.to_owned()))
                .key("namespace", AttributeValue::S("tributary".to_owned()))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem");
            found.item().cloned().expect("the item")
        }
    };
    let orders: HashMap<String, AttributeValue> = item("tributary.orders").await;
    assert_eq!(orders.get("p.table_type"), Some(&AttributeValue::S("ICEBERG".into())));
    let location = first.table.load().await.expect("load").metadata_location().map(str::to_owned).expect("location");
    assert_eq!(orders.get("p.metadata_location"), Some(&AttributeValue::S(location)));
    assert!(matches!(orders.get("v"), Some(AttributeValue::S(_))), "{orders:?}");
    assert!(matches!(orders.get("created_at"), Some(AttributeValue::N(_))), "{orders:?}");
    assert!(
        orders.values().all(|value| matches!(value, AttributeValue::S(_) | AttributeValue::N(_))),
        "only S and N attributes (pyiceberg reads no others): {orders:?}"
    );
    assert!(item("NAMESPACE").await.contains_key("v"), "the namespace's item");

    // Both processes read the same checkpoint and commit the next batch at once: exactly one lands.
    let from = first.table.checkpoints(SCOPE).await.expect("checkpoints").shards[SHARD].clone();
    let (a, b) = tokio::join!(
        commit_batch(&first.table, &first.rejected, &[3, 4], "200", advance(from.clone(), "20")),
        commit_batch(&second.table, &second.rejected, &[5, 6], "201", advance(from, "21")),
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one lands: {a:?} {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(TableError::CheckpointConflict { .. })));
    assert_eq!(snapshot_count(&second.table).await, 2);
    assert_eq!(snapshot_count(&second.rejected).await, 2, "the rejected table moved with its rows, once");

    if let Some(ids) = pyiceberg_ids(&catalog_table, "orders") {
        assert!(
            ids == [1, 2, 3, 4] || ids == [1, 2, 5, 6],
            "pyiceberg's DynamoDbCatalog reads one batch once: {ids:?}"
        );
        let rejected = pyiceberg_ids(&catalog_table, "orders__rejected").expect("read above");
        assert!(rejected == [100, 200] || rejected == [100, 201], "{rejected:?}");
    }

    // Two processes committing other shards at once both land, every time: the one whose
    // catalog condition failed loads the tables again and retries (and counts it).
    let retries_before = commit_retries();
    let shard_advance = |shard: &str, round: u64| ShardAdvance {
        shard_id: shard.to_owned(),
        from: if round == 0 { ShardCheckpoint::default() } else { at(&round.to_string()) },
        to: at(&(round + 1).to_string()),
    };
    for round in 0..4 {
        let id = 10 + 2 * round as i64;
        let (ids_a, ids_b) = ([id], [id + 1]);
        let (a, b) = tokio::join!(
            commit_batch_rejecting(&first.table, &first.rejected, &ids_a, None, shard_advance("shard-a", round)),
            commit_batch_rejecting(&second.table, &second.rejected, &ids_b, None, shard_advance("shard-b", round)),
        );
        a.expect("the first process's shard lands");
        b.expect("the second process's shard lands");
    }
    assert_eq!(snapshot_count(&first.table).await, 2 + 8, "every batch once");
    let checkpoints = first.table.checkpoints(SCOPE).await.expect("checkpoints").shards;
    assert_eq!((&checkpoints["shard-a"], &checkpoints["shard-b"]), (&at("4"), &at("4")));
    assert!(commit_retries() > retries_before, "four rounds of simultaneous commits and no retry");
}
