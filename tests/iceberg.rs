//! Datasets as Iceberg tables, end to end against kinesis-local: exactly once
//! across `kill -9` and resharding, across a crash on either side of the
//! table commit, and across a lost store, in a local warehouse and on moto S3
//! with moto's Glue or an Iceberg DynamoDB catalog on moto; read back by pyiceberg (through the catalog there).

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::Value;
use support::lakehouse::{MALFORMED_EVERY, create_bucket, ids, moto_python, payload, pyiceberg, valid_ids};
use support::server::ServerProcess;
use support::{
    Emulators, create_stream, kinesis_client, merge_third_and_fourth, put_indexed, split_first_shard, stdout,
    tributary, unique,
};

async fn put(client: &aws_sdk_kinesis::Client, stream_arn: &str, range: std::ops::Range<usize>) {
    put_indexed(client, stream_arn, range, payload).await;
}

fn definition(dir: &Path, source: &str, stream_arn: &str, extra_field: &str) -> std::path::PathBuf {
    let text = format!(
        "sources:\n  - name: {source}\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n      include_metadata: true\n    dataset:\n      name: {source}_rows\n      format: iceberg\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n        - {{name: name, type: \"optional<string>\"}}\n{extra_field}      timestamp: ts\n"
    );
    let path = dir.join(format!("{source}-{}.yaml", extra_field.len()));
    std::fs::write(&path, text).expect("write definition");
    path
}

fn commit(server: &ServerProcess, file: &Path) -> std::process::Output {
    tributary(&["commit", &file.to_string_lossy(), "--server", &server.url(), "-m", "test"], &[])
}

fn commit_ok(server: &ServerProcess, file: &Path) {
    let output = commit(server, file);
    assert!(output.status.success(), "commit failed: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Every valid record once in the table; every malformed one once in the
/// error log and once in the rejected table, the same ones.
fn assert_exactly_once(server: &ServerProcess, source: &str, table: &str, records: usize) {
    let errors = server.errors(source);
    let logged: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            format!("{}/{}/{}", field("shard_id"), field("sequence_number"), field("reason"))
        })
        .collect();
    let unique_logged: HashSet<&String> = logged.iter().collect();
    assert_eq!(unique_logged.len(), logged.len(), "no rejection is logged twice");
    assert_eq!(logged.len(), records / MALFORMED_EVERY, "every malformed record is logged");
    assert!(errors.iter().all(|e| e["reason"] == "TYPE_MISMATCH"), "{errors:?}");
    let Some(read) = pyiceberg(table, None) else { return };
    assert_eq!(ids(&read), valid_ids(0..records), "pyiceberg reads every valid record exactly once");
    assert!(read["spec"].as_str().is_some_and(|spec| spec.contains("day")), "{read}");
    let rejected = pyiceberg(format!("{table}__rejected"), None).expect("read above");
    let mut in_table: Vec<String> =
        rejected["rejected"].as_array().expect("rows").iter().filter_map(|r| r.as_str().map(str::to_owned)).collect();
    let mut in_log = logged.clone();
    in_table.sort();
    in_log.sort();
    assert_eq!(in_table, in_log, "the rejected table holds exactly the error log's records, each once");
}

#[test]
fn kill_9_during_resharding_and_a_lost_store_land_every_record_once_in_the_table() {
    let Some(emulators) = Emulators::from_env() else { return };
    crash_resharding_and_store_loss(&emulators, None);
}

#[test]
fn on_s3_with_glue_as_the_catalog_kill_9_and_a_lost_store_land_every_record_once_in_the_table() {
    let Some(emulators) = Emulators::from_env() else { return };
    let bucket = create_bucket(&emulators);
    let shared = Shared::glue(format!("s3://{bucket}/tables"), unique("icecrash_"));
    crash_resharding_and_store_loss(&emulators, Some(&shared));
}

/// The same on Iceberg's DynamoDB catalog (moto's DynamoDB enforces its conditions),
/// read back by pyiceberg's `DynamoDbCatalog`.
#[test]
fn on_s3_with_dynamodb_as_the_catalog_kill_9_and_a_lost_store_land_every_record_once_in_the_table() {
    let Some(emulators) = Emulators::from_env() else { return };
    let bucket = create_bucket(&emulators);
    let shared = Shared::dynamodb(format!("s3://{bucket}/tables"), unique("icecrash_"));
    crash_resharding_and_store_loss(&emulators, Some(&shared));
}

/// A warehouse on moto S3 whose tables moto's Glue, or an Iceberg DynamoDB catalog on moto, records.
struct Shared {
    warehouse: String,
    /// `--catalog glue` or `dynamodb`.
    kind: &'static str,
    /// The Glue database, or the DynamoDB catalog's table.
    name: String,
}

impl Shared {
    fn glue(warehouse: String, database: String) -> Shared {
        Shared { warehouse, kind: "glue", name: database }
    }

    fn dynamodb(warehouse: String, table: String) -> Shared {
        Shared { warehouse, kind: "dynamodb", name: table }
    }

    fn flags(&self) -> Vec<&str> {
        let name_flag = if self.kind == "glue" { "--glue-database" } else { "--dynamodb-catalog-table" };
        vec!["--warehouse", &self.warehouse, "--catalog", self.kind, name_flag, &self.name]
    }

    /// Where pyiceberg finds table `name`: through the catalog.
    fn table(&self, name: &str) -> String {
        format!("{}:{}/{name}", self.kind, self.name)
    }

    /// What status calls the catalog.
    fn catalog(&self) -> String {
        if self.kind == "glue" { format!("glue:{}", self.name) } else { format!("dynamodb:{}/tributary", self.name) }
    }
}

/// A new bucket on moto; its name.
/// The server, with moto as Glue's endpoint whatever the environment says.
fn start_server(emulators: &Emulators, data_dir: &Path, flags: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    let mut env = env.to_vec();
    env.push(("AWS_ENDPOINT_URL_GLUE", &emulators.moto));
    ServerProcess::start_with_env(data_dir, flags, &env)
}

/// The crash test (split, merge, five `kill -9`, maintenance after every
/// commit) and then a lost store, on a local warehouse or a `shared` one.
fn crash_resharding_and_store_loss(emulators: &Emulators, shared: Option<&Shared>) {
    const RECORDS: usize = 12_000;
    let rt = runtime();
    let name = unique("icecrash");
    let emulators = emulators.clone();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &name, 4, true));
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let file = definition(dir.path(), "icy", &stream_arn, "");
    // Maintenance after every commit: the kills also land in compactions and expiries.
    let mut flags = vec![
        "--flush-rows",
        "700",
        "--table-maintenance-seconds",
        "0",
        "--compact-min-files",
        "4",
        "--snapshot-min-count",
        "3",
        "--snapshot-max-age-hours",
        "0",
    ];
    if let Some(shared) = shared {
        flags.extend(shared.flags());
    }
    let mut server = start_server(&emulators, &data_dir, &flags, &[]);
    commit_ok(&server, &file);

    let endpoint = emulators.kinesis.clone();
    let producer_stream = stream_arn.clone();
    let producer = std::thread::spawn(move || {
        runtime().block_on(async move {
            let client = kinesis_client(&endpoint);
            let third = RECORDS / 3;
            put(&client, &producer_stream, 0..third).await;
            let shards = split_first_shard(&client, &endpoint, &producer_stream).await;
            put(&client, &producer_stream, third..2 * third).await;
            merge_third_and_fourth(&client, &endpoint, &producer_stream, &shards).await;
            put(&client, &producer_stream, 2 * third..RECORDS).await;
        })
    });
    let seed = fastrand::u64(..);
    let mut random = fastrand::Rng::with_seed(seed);
    eprintln!("crash moments seeded with {seed}");
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(random.u64(500..4000)));
        server.crash_and_restart();
    }
    producer.join().expect("producer");
    let status = server.wait_for_records("icy", RECORDS as u64, Duration::from_secs(180));
    assert_eq!(status["rows"].as_u64(), Some(valid_ids(0..RECORDS).len() as u64), "{status:#}");
    let (location, table) = match shared {
        Some(shared) => (format!("{}/icy_rows", shared.warehouse), shared.table("icy_rows")),
        None => {
            let table = data_dir.join("warehouse").join("icy_rows");
            assert!(table.join("metadata/version-hint.text").is_file(), "path-based readers find the latest metadata");
            (table.display().to_string(), table.display().to_string())
        }
    };
    assert!(
        status["table"]["location"].as_str().is_some_and(|l| l.ends_with(location.trim_start_matches('/'))),
        "{status:#}"
    );
    // Status and `tributary tables` show the table as its metadata says.
    let valid = valid_ids(0..RECORDS).len() as u64;
    eprintln!("TABLE ROWS {:?} vs {valid}", status["table"]["rows"]);
    assert!(status["table"]["snapshots"].as_u64() <= Some(8), "old snapshots expire: {status:#}");
    assert!(status["table"]["snapshot_id"].as_i64().is_some() && status["table"]["files"].as_u64() > Some(0));
    let catalog = shared.map_or_else(|| "embedded".to_owned(), Shared::catalog);
    assert_eq!(status["table"]["catalog"], Value::from(catalog.as_str()), "{status:#}");
    let listed = tributary(&["tables", "--server", &server.url()], &[]);
    let listed = stdout(&listed);
    assert!(listed.starts_with(&format!("catalog {catalog}, warehouse ")), "{listed}");
    assert!(listed.lines().any(|line| line.starts_with("icy_rows") && line.contains(&valid.to_string())), "{listed}");
    let shown = stdout(&tributary(&["tables", "icy_rows", "--rows", "3", "--server", &server.url()], &[]));
    let sample: Vec<&str> = shown.lines().filter(|line| line.starts_with("  {")).collect();
    assert_eq!(sample.len(), 3, "{shown}");
    assert!(sample.iter().all(|line| line.contains("\"id\"") && line.contains("\"_shard_id\"")), "{shown}");
    assert_exactly_once(&server, "icy", &table, RECORDS);
    assert!(server.stop());

    // The store is lost: the table has the checkpoints, found again through
    // Glue (the version hints are deleted, so nothing else could tell), or
    // without a shared catalog through its version hint.
    for name in ["tributary.db", "tributary.db-wal", "tributary.db-shm"] {
        let _ = std::fs::remove_file(data_dir.join(name));
    }
    if let Some(shared) = shared {
        let (bucket, prefix) =
            shared.warehouse.trim_start_matches("s3://").split_once('/').expect("s3://bucket/prefix");
        moto_python(
            &emulators,
            &format!(
                "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL_S3'], region_name='us-east-1')\nfor t in ['icy_rows', 'icy_rows__rejected']:\n    s3.delete_object(Bucket='{bucket}', Key='{prefix}/' + t + '/metadata/version-hint.text')"
            ),
        );
    }
    // A new store is another catalog: with the embedded catalog the server refuses the
    // warehouse until told the old store is gone; servers sharing a Glue database do not.
    let mut flags = flags.clone();
    if shared.is_none() {
        let refused = tributary(
            &["serve", "--data-dir", &data_dir.to_string_lossy(), "--listen", "127.0.0.1:0"],
            &[("AWS_ENDPOINT_URL_GLUE", &emulators.moto)],
        );
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && said.contains("--take-over-warehouse"), "{said}");
        flags.push("--take-over-warehouse");
    }
    let server = start_server(&emulators, &data_dir, &flags, &[]);
    commit_ok(&server, &file);
    wait_until_every_open_shard_answered(&server, "icy", 2);
    assert_eq!(server.records_read(), 0, "nothing is read again: the checkpoints came back from the table");
    if let Some(read) = pyiceberg(&table, None) {
        assert_eq!(ids(&read), valid_ids(0..RECORDS), "the table is unchanged");
    }
    assert!(server.stop());
}

/// Record `i` as [`payload`] has it, but its event time 6 s after record `i - 1`'s:
/// 600 records span an hour, far more than a short `disorder`.
fn payload_every_6s(i: usize) -> Vec<u8> {
    let ts = chrono::DateTime::from_timestamp(1_717_243_200 + 6 * i as i64, 0).expect("in range").to_rfc3339();
    if i % MALFORMED_EVERY == MALFORMED_EVERY - 1 {
        return format!("{{\"id\": \"not-a-number-{i}\", \"ts\": \"{ts}\"}}").into_bytes();
    }
    format!("{{\"id\": {i}, \"ts\": \"{ts}\", \"name\": \"n{i}\"}}").into_bytes()
}

/// With `disorder: 1m` over events an hour long on one shard: a batch read
/// again after a crash before its first table commit must not be judged
/// against a watermark it raised itself (the review saw 489 of 500 dropped as late).
#[test]
fn a_crash_on_either_side_of_the_table_commit_repeats_and_loses_nothing() {
    let Some(emulators) = Emulators::from_env() else { return };
    const RECORDS: usize = 600;
    let rt = runtime();
    for failpoint in ["before-table-commit", "after-table-commit"] {
        let name = unique("icefail");
        let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &name, 1, true));
        rt.block_on(put_indexed(&kinesis_client(&emulators.kinesis), &stream_arn, 0..RECORDS, payload_every_6s));
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let mut server =
            ServerProcess::start_with_env(&data_dir, &["--flush-rows", "200"], &[("TRIBUTARY_FAILPOINT", failpoint)]);
        let file = definition(dir.path(), "fail", &stream_arn, "");
        let text = std::fs::read_to_string(&file).expect("read definition");
        std::fs::write(&file, format!("{text}    disorder: 1m\n")).expect("write definition");
        // The commit's answer may race the abort it causes.
        let _ = commit(&server, &file);
        server.restart_after_exit(&[], Duration::from_secs(60));
        server.wait_for_records("fail", RECORDS as u64, Duration::from_secs(60));
        let table = data_dir.join("warehouse").join("fail_rows");
        assert_exactly_once(&server, "fail", &table.display().to_string(), RECORDS);
        let status = server.get("/api/v1/sources/fail/status");
        assert_eq!(status["rows"].as_u64(), Some(valid_ids(0..RECORDS).len() as u64), "{failpoint}: {status:#}");
        assert_eq!(status["late"].as_u64().unwrap_or(0), 0, "{failpoint}: {status:#}");
        assert!(server.stop());
    }
}

#[test]
fn with_glue_a_crash_between_the_rejected_and_the_rows_commit_is_kept_and_repeats_nothing() {
    let Some(emulators) = Emulators::from_env() else { return };
    const RECORDS: usize = 600;
    let rt = runtime();
    let name = unique("iceglue");
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &name, 2, true));
    rt.block_on(put(&kinesis_client(&emulators.kinesis), &stream_arn, 0..RECORDS));
    let shared = Shared::glue(format!("s3://{}/tables", create_bucket(&emulators)), unique("iceglue_"));
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let mut flags = vec!["--flush-rows", "200"];
    flags.extend(shared.flags());
    // Glue moves one table at a time: the rejected table's commit lands, then the process dies.
    let mut server = start_server(&emulators, &data_dir, &flags, &[("TRIBUTARY_FAILPOINT", "between-table-commits")]);
    let _ = commit(&server, &definition(dir.path(), "between", &stream_arn, ""));
    server.restart_after_exit(&[("AWS_ENDPOINT_URL_GLUE", &emulators.moto)], Duration::from_secs(60));
    server.wait_for_records("between", RECORDS as u64, Duration::from_secs(60));
    // The batch's rejections are in the rejected table once: its first commit stays, and the
    // batch read again adds only the rejections past the mark (none).
    assert_exactly_once(&server, "between", &shared.table("between_rows"), RECORDS);
    let status = server.get("/api/v1/sources/between/status");
    assert_eq!(status["rows"].as_u64(), Some(valid_ids(0..RECORDS).len() as u64), "{status:#}");
    let listed = server.get("/api/v1/tables");
    assert_eq!(listed["catalog"], Value::from(shared.catalog()), "{listed:#}");
    assert!(server.stop());
}

#[test]
fn serve_refuses_glue_without_an_s3_warehouse_or_when_glue_cannot_be_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data").display().to_string();
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["serve", "--data-dir", &data_dir, "--listen", "127.0.0.1:0", "--catalog", "glue"];
        args.extend(extra);
        let output = tributary(&args, env);
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, said) = serve(&[], &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("--catalog glue needs an s3:// --warehouse"), "{said}");

    // Nothing answers at Glue's endpoint: a clear error naming the call, and no secret in it.
    let secret = "glue-test-secret-key-never-printed";
    let env = [
        ("AWS_ENDPOINT_URL_GLUE", "http://127.0.0.1:1"),
        ("AWS_ACCESS_KEY_ID", "test-access-key"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let (code, said) = serve(&["--warehouse", "s3://nowhere/tables", "--glue-database", "unreachable"], &env);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("--catalog glue, database unreachable") && said.contains("GetDatabase"), "{said}");
    assert!(!said.contains(secret), "{said}");
}

#[test]
fn an_added_optional_field_evolves_the_table_and_a_changed_type_is_refused() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let name = unique("iceschema");
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &name, 1, true));
    let client = kinesis_client(&emulators.kinesis);
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let server = ServerProcess::start(&data_dir, &[]);
    rt.block_on(put(&client, &stream_arn, 0..100));
    commit_ok(&server, &definition(dir.path(), "evolving", &stream_arn, ""));
    server.wait_for_records("evolving", 100, Duration::from_secs(60));

    let country = "        - {name: country, type: \"optional<string>\"}\n";
    commit_ok(&server, &definition(dir.path(), "evolving", &stream_arn, country));
    let records: Vec<PutRecordsRequestEntry> = (100..150)
        .map(|i| {
            let data = format!("{{\"id\": {i}, \"ts\": \"2024-06-02T00:00:00Z\", \"country\": \"C{i}\"}}");
            PutRecordsRequestEntry::builder().partition_key("k").data(Blob::new(data)).build().expect("entry")
        })
        .collect();
    rt.block_on(client.put_records().stream_arn(&stream_arn).set_records(Some(records)).send()).expect("PutRecords");
    server.wait_for_records("evolving", 150, Duration::from_secs(60));

    let table = data_dir.join("warehouse").join("evolving_rows");
    if let (Some(first), Some(now)) = (pyiceberg(&table, Some("first")), pyiceberg(&table, None)) {
        let columns = |read: &Value| -> Vec<String> {
            read["columns"].as_array().expect("columns").iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()
        };
        assert!(!columns(&first).contains(&"country".to_owned()), "the first snapshot reads with its schema: {first}");
        assert!(columns(&now).contains(&"country".to_owned()), "{now}");
        assert_eq!(ids(&first), valid_ids(0..100), "the first snapshot holds the first version's rows");
        let mut expected = valid_ids(0..100);
        expected.extend(100..150);
        assert_eq!(ids(&now), expected);
    }

    // id becomes a string: refused at commit, and the running version keeps going.
    let retyped = std::fs::read_to_string(definition(dir.path(), "evolving", &stream_arn, country))
        .expect("read")
        .replace("{name: id, type: int64}", "{name: id, type: string}");
    let retyped_path = dir.path().join("retyped.yaml");
    std::fs::write(&retyped_path, retyped).expect("write");
    let output = commit(&server, &retyped_path);
    assert!(!output.status.success(), "an incompatible change is refused");
    let said = format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert!(said.contains("SCHEMA_INCOMPATIBLE") && said.contains("id"), "{said}");
    // A new timestamp field as the timestamp: refused (a new field must be optional, a timestamp cannot be).
    let moved = std::fs::read_to_string(definition(dir.path(), "evolving", &stream_arn, country))
        .expect("read")
        .replace(
            "        - {name: ts, type: timestamp}\n",
            "        - {name: ts, type: timestamp}\n        - {name: ts2, type: timestamp}\n",
        )
        .replace("      timestamp: ts\n", "      timestamp: ts2\n");
    let moved_path = dir.path().join("moved.yaml");
    std::fs::write(&moved_path, moved).expect("write");
    let output = commit(&server, &moved_path);
    let said = format!("{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success() && said.contains("SCHEMA_INCOMPATIBLE") && said.contains("ts2"), "{said}");
    let status = server.get("/api/v1/sources/evolving/status");
    assert_eq!(status["version"].as_u64(), Some(2), "{status:#}");
    assert!(server.stop());
}

#[test]
fn a_cdc_sources_table_is_its_change_log_with_the_keys_as_identifier_fields() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let name = unique("icecdc");
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &name, 1, true));
    rt.block_on(put(&kinesis_client(&emulators.kinesis), &stream_arn, 0..60));
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let server = ServerProcess::start(&data_dir, &[]);
    let text = std::fs::read_to_string(definition(dir.path(), "changes", &stream_arn, ""))
        .expect("read")
        .replace("      timestamp: ts\n", "      timestamp: ts\n      keys: [id]\n    cdc: upsert\n");
    let path = dir.path().join("upsert.yaml");
    std::fs::write(&path, text).expect("write");
    commit_ok(&server, &path);
    server.wait_for_records("changes", 60, Duration::from_secs(60));
    if let Some(read) = pyiceberg(data_dir.join("warehouse").join("changes_rows"), None) {
        assert_eq!(ids(&read), valid_ids(0..60), "every change, in a change log");
        assert_eq!(read["identifier"], serde_json::json!(["id"]), "{read}");
        assert_eq!(read["ops"], serde_json::json!(["upsert"]), "{read}");
        let columns = read["columns"].as_array().expect("columns");
        assert!(columns.contains(&Value::from("_sequence_number")) && columns.contains(&Value::from("_sub_sequence")));
    }
    assert!(server.stop());
}

/// Waits until every open shard of `source` has received `answers` GetRecords answers.
fn wait_until_every_open_shard_answered(server: &ServerProcess, source: &str, answers: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = server.get(&format!("/api/v1/sources/{source}/status"));
        let calls = server.shard_calls(source);
        let open: Vec<String> = status["shards"]
            .as_array()
            .map(|shards| {
                shards
                    .iter()
                    .filter(|shard| shard["state"] != "finished")
                    .filter_map(|shard| shard["shard_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !open.is_empty() && open.iter().all(|shard| calls.get(shard).copied().unwrap_or(0) >= answers) {
            return;
        }
        let _: &HashMap<String, u64> = &calls;
        assert!(std::time::Instant::now() < deadline, "open shards {open:?} did not answer {answers} times: {calls:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
