//! The lakehouse side of the emulator tests: buckets on moto's S3, and
//! tables read back by pyiceberg (directly or through Glue or a DynamoDB catalog).
#![allow(dead_code, unreachable_pub, missing_docs)]

use serde_json::Value;

use super::{Emulators, unique};

/// One record in this many is malformed (see [`payload`]).
pub const MALFORMED_EVERY: usize = 50;

/// Record `i`: valid JSON over three days, or (every 50th) a malformed one.
pub fn payload(i: usize) -> Vec<u8> {
    if i % MALFORMED_EVERY == MALFORMED_EVERY - 1 {
        return format!("{{\"id\": \"not-a-number-{i}\", \"ts\": \"2024-06-01T00:00:00Z\"}}").into_bytes();
    }
    format!("{{\"id\": {i}, \"ts\": \"2024-06-0{}T12:00:00Z\", \"name\": \"n{i}\"}}", 1 + i % 3).into_bytes()
}

/// The ids of the valid records of `records`.
pub fn valid_ids(records: std::ops::Range<usize>) -> Vec<i64> {
    records.filter(|i| i % MALFORMED_EVERY != MALFORMED_EVERY - 1).map(|i| i as i64).collect()
}

/// What pyiceberg reads from the table at `location`, either a table
/// directory (found through its version hint, as a path-based reader does)
/// or `glue:DATABASE/TABLE` (through pyiceberg's Glue catalog), or `dynamodb:CATALOG_TABLE/TABLE`
/// (through pyiceberg's DynamoDB catalog): the current snapshot's ids,
/// columns and snapshot count; with `snapshot`, that snapshot's columns
/// (read with its own schema): "first" (the newest written with the
/// table's first schema) or "last".
pub fn pyiceberg(location: impl AsRef<std::ffi::OsStr>, snapshot: Option<&str>) -> Option<Value> {
    let python = match std::env::var("TRIBUTARY_TEST_PYICEBERG_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!in_ci, "TRIBUTARY_TEST_PYICEBERG_PYTHON is not set: run through ./scripts/test.sh");
            eprintln!("SKIPPED the pyiceberg read: TRIBUTARY_TEST_PYICEBERG_PYTHON not set");
            return None;
        }
    };
    let script = r#"
import sys, json, os
from pyiceberg.table import StaticTable
# moto, as the server reached it (AWS_ENDPOINT_URL_S3 and the test keys).
s3 = {
    "s3.endpoint": os.environ.get("AWS_ENDPOINT_URL_S3", ""),
    "s3.access-key-id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
    "s3.secret-access-key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
    "s3.region": os.environ.get("AWS_REGION", "us-east-1"),
    "s3.force-virtual-addressing": False,
}
region = os.environ.get("AWS_REGION", "us-east-1")
properties = s3 if sys.argv[1].startswith("s3://") else {}
if sys.argv[1].startswith("glue:"):
    from pyiceberg.catalog.glue import GlueCatalog
    database, name = sys.argv[1][len("glue:"):].split("/")
    properties = {
        **s3,
        "glue.endpoint": os.environ["AWS_ENDPOINT_URL_GLUE"],
        "glue.region": region,
        "glue.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "glue.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    table = GlueCatalog("glue", **properties).load_table((database, name))
elif sys.argv[1].startswith("dynamodb:"):
    from pyiceberg.catalog.dynamodb import DynamoDbCatalog
    catalog_table, name = sys.argv[1][len("dynamodb:"):].split("/")
    properties = {
        **s3,
        "table-name": catalog_table,
        "dynamodb.region": region,
        "dynamodb.access-key-id": os.environ["AWS_ACCESS_KEY_ID"],
        "dynamodb.secret-access-key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    table = DynamoDbCatalog("dynamodb", **properties).load_table(("tributary", name))
else:
    table = StaticTable.from_metadata(sys.argv[1], properties)
snapshots = sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)
scan = table.scan()
if len(sys.argv) > 2:
    # "first": the newest snapshot written with the table's first schema.
    chosen = [s for s in snapshots if s.schema_id == snapshots[0].schema_id][-1] if sys.argv[2] == "first" else snapshots[-1]
    scan = table.scan(snapshot_id=chosen.snapshot_id)
rows = scan.to_arrow()
names = rows.column_names
print(json.dumps({
    "ids": sorted(rows.column("id").to_pylist()) if "id" in names else [],
    "rejected": sorted([s + "/" + q + "/" + r for s, q, r in zip(
        rows.column("shard_id").to_pylist(), rows.column("sequence_number").to_pylist(), rows.column("reason").to_pylist()
    )]) if "reason" in names else [],
    "columns": sorted(rows.column_names),
    "snapshots": len(snapshots),
    "spec": str(table.spec()),
    "identifier": sorted(table.schema().identifier_field_names()),
    "ops": sorted(set(rows.column("_op").to_pylist())) if "_op" in names else [],
    "files": sum(1 for _ in table.scan().plan_files()),
}))
"#;
    let mut command = std::process::Command::new(python);
    command.args(["-c", script]).arg(location.as_ref());
    if let Some(snapshot) = snapshot {
        command.arg(snapshot);
    }
    let output = command.output().expect("run python");
    assert!(output.status.success(), "pyiceberg could not read the table: {}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("pyiceberg's JSON"))
}

pub fn ids(read: &Value) -> Vec<i64> {
    read["ids"].as_array().expect("ids").iter().filter_map(Value::as_i64).collect()
}

/// A new bucket on moto's S3, for a warehouse.
pub fn create_bucket(emulators: &Emulators) -> String {
    let bucket = unique("warehouse").to_lowercase().replace('_', "-");
    moto_python(
        emulators,
        &format!(
            "import boto3, os\nboto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'], region_name='us-east-1').create_bucket(Bucket='{bucket}')"
        ),
    );
    bucket
}

/// Runs `script` with moto's Python (boto3), S3 and Glue pointed at moto.
pub fn moto_python(emulators: &Emulators, script: &str) {
    let output = std::process::Command::new(&emulators.moto_python)
        .args(["-c", script])
        .env("AWS_ENDPOINT_URL_S3", &emulators.moto)
        .env("AWS_ENDPOINT_URL_GLUE", &emulators.moto)
        .output()
        .expect("python");
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
}
