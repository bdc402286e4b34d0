//! Fennel's source semantics end to end against kinesis-local: a Debezium
//! source with preproc, where and since/until lands exactly the expected rows
//! with `_op`; the watermark survives a restart; `sample` keeps the same set
//! of rows across runs and across `kill -9`.

mod support;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use parquet::file::reader::{FileReader, SerializedFileReader};
use support::server::{ServerProcess, dataset_rows, id_counts};
use support::{DEBEZIUM_LINES, Emulators, create_stream, kinesis_client, stdout, tributary, unique};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Puts `payloads` in order under one partition key (one shard, so arrival order is theirs).
fn put_in_order(rt: &tokio::runtime::Runtime, endpoint: &str, stream_arn: &str, payloads: &[&str]) {
    let client = kinesis_client(endpoint);
    let entries: Vec<PutRecordsRequestEntry> = payloads
        .iter()
        .map(|payload| {
            PutRecordsRequestEntry::builder()
                .partition_key("one")
                .data(Blob::new(payload.as_bytes().to_vec()))
                .build()
                .expect("entry")
        })
        .collect();
    let output =
        rt.block_on(client.put_records().stream_arn(stream_arn).set_records(Some(entries)).send()).expect("PutRecords");
    assert_eq!(output.failed_record_count(), Some(0));
}

fn commit(server: &ServerProcess, file: &Path) {
    let output = tributary(&["commit", &file.to_string_lossy(), "--server", &server.url(), "-m", "test"], &[]);
    assert!(output.status.success(), "commit failed: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
}

fn parquet_files(data_dir: &Path, dataset: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let root = data_dir.join("datasets").join(dataset);
    for partition in std::fs::read_dir(root).expect("dataset directory") {
        let partition = partition.expect("entry").path();
        if partition.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("date=")) {
            for file in std::fs::read_dir(partition).expect("partition") {
                files.push(file.expect("entry").path());
            }
        }
    }
    files.sort();
    files
}

fn key_value(path: &Path, key: &str) -> Option<String> {
    let reader = SerializedFileReader::new(File::open(path).expect("open")).expect("a Parquet file");
    let metadata = reader.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    metadata.into_iter().find(|kv| kv.key == key).and_then(|kv| kv.value)
}

#[test]
fn a_debezium_source_lands_exactly_its_changes_and_a_restart_keeps_the_watermark() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("cdc"), 1, true));
    let lines: Vec<&str> = DEBEZIUM_LINES.iter().map(|(line, _)| *line).collect();
    put_in_order(&rt, &emulators.kinesis, &stream_arn, &lines);

    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let example = std::fs::read_to_string(format!("{EXAMPLES}/customers_debezium.yaml")).expect("example");
    let definition = dir.path().join("customers.yaml");
    let example_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/customers-cdc";
    assert!(example.contains(example_arn));
    // Plain files: this test reads them back with the parquet crate.
    let example = example.replace("    dataset:\n", "    dataset:\n      format: parquet\n");
    std::fs::write(&definition, example.replace(example_arn, &stream_arn)).expect("definition");

    let server = ServerProcess::start(&data_dir, &[]);
    commit(&server, &definition);
    let status = server.wait_for_records("customers", 10, Duration::from_secs(60));
    let counts = ["rows", "rejected", "filtered", "late"].map(|key| status[key].as_u64().unwrap_or(0));
    assert_eq!(counts, [4, 2, 3, 1], "{status:#}");
    assert_eq!(status["state"], "running", "`until` is in 2100: {status:#}");
    // The watermark: the latest `updated_at` kept (12:00) minus the hour of disorder.
    assert_eq!(status["watermark"], "2024-06-01T11:00:00.000Z", "{status:#}");
    let metrics = server.metrics();
    assert!(metrics.contains("tributary_source_watermark_seconds{source=\"customers\"} 1717239600"), "{metrics}");
    assert!(metrics.contains("tributary_rows_late_total{source=\"customers\"} 1\n"), "{metrics}");

    let mut rows = dataset_rows(&data_dir, "customers", Some("_op"));
    rows.sort_by_key(|row| row.sequence_number.as_deref().map(|s| (s.len(), s.to_owned())));
    let found: Vec<String> =
        rows.iter().map(|row| format!("{} {}", row.extra.as_deref().unwrap_or("?"), row.id)).collect();
    let expected: Vec<&str> = DEBEZIUM_LINES
        .iter()
        .map(|(_, what)| *what)
        .filter(|what| what.starts_with("upsert") || what.starts_with("delete"))
        .collect();
    assert_eq!(found, expected, "in stream order, each change once");
    for file in parquet_files(&data_dir, "customers") {
        assert_eq!(key_value(&file, "tributary.cdc.keys").as_deref(), Some("id"), "{}", file.display());
        assert!(key_value(&file, "tributary.watermark").is_some_and(|w| w.starts_with("2024-06-01T")));
    }
    let reasons: BTreeSet<String> =
        server.errors("customers").iter().map(|e| e["reason"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(reasons, BTreeSet::from(["CDC_TOMBSTONE".to_owned(), "CDC_UNKNOWN_OP".to_owned()]));
    assert!(server.stop());

    // After a restart, a change from 10:30 is behind the watermark (11:00): late, not written.
    // A reset watermark would have let it in as the first row it saw.
    let server = ServerProcess::start(&data_dir, &[]);
    assert_eq!(server.get("/api/v1/sources/customers/status")["watermark"], "2024-06-01T11:00:00.000Z");
    put_in_order(
        &rt,
        &emulators.kinesis,
        &stream_arn,
        &[
            r#"{"op": "u", "after": {"id": 6, "email": "f@x.io", "updated_at": "2024-06-01T10:30:00Z"}}"#,
            r#"{"op": "u", "after": {"id": 7, "email": "g@x.io", "updated_at": "2024-06-01T12:30:00Z"}}"#,
        ],
    );
    let status = server.wait_for_records("customers", 12, Duration::from_secs(60));
    let counts = ["rows", "rejected", "filtered", "late"].map(|key| status[key].as_u64().unwrap_or(0));
    assert_eq!(counts, [5, 2, 3, 2], "{status:#}");
    assert_eq!(status["watermark"], "2024-06-01T11:30:00.000Z", "{status:#}");
    let ids: Vec<i64> = dataset_rows(&data_dir, "customers", None).iter().map(|row| row.id).collect();
    assert!(ids.contains(&7) && !ids.contains(&6), "{ids:?}");
    assert!(server.stop());
}

fn sampled_definition(dir: &Path, stream_arn: &str) -> PathBuf {
    let text = format!(
        "sources:\n  - name: sampled\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: json\n    dataset:\n      format: parquet\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: user, type: string}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n    sample: {{rate: 0.3, using: [user]}}\n    ingest:\n      flush_rows: 50\n"
    );
    let path = dir.join("sampled.yaml");
    std::fs::write(&path, text).expect("write definition");
    path
}

/// The ids a run kept, checking none was written twice.
fn kept_ids(data_dir: &Path) -> BTreeSet<i64> {
    let rows = dataset_rows(data_dir, "sampled", None);
    assert!(id_counts(&rows).values().all(|count| *count == 1), "a row written twice");
    rows.iter().map(|row| row.id).collect()
}

#[test]
fn the_sampled_set_is_the_same_across_runs_and_across_kill_9() {
    let Some(emulators) = Emulators::from_env() else { return };
    let rt = runtime();
    let stream_arn = rt.block_on(create_stream(&emulators.kinesis, &unique("sample"), 2, true));
    let client = kinesis_client(&emulators.kinesis);
    const RECORDS: usize = 600;
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(200) {
        let entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .map(|i| {
                let payload = format!(r#"{{"id": {i}, "user": "u{}", "ts": "2024-06-01T12:00:00Z"}}"#, i % 40);
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(payload.into_bytes()))
                    .build()
                    .expect("entry")
            })
            .collect();
        rt.block_on(client.put_records().stream_arn(&stream_arn).set_records(Some(entries)).send()).expect("put");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let definition = sampled_definition(dir.path(), &stream_arn);

    let first_dir = dir.path().join("first");
    std::fs::create_dir_all(&first_dir).expect("data dir");
    let first = ServerProcess::start(&first_dir, &[]);
    commit(&first, &definition);
    first.wait_for_records("sampled", RECORDS as u64, Duration::from_secs(60));
    assert!(first.stop());
    let first_ids = kept_ids(&first_dir);
    // Whole users are in or out (it hashes `user`), about 30% of the 40.
    let users: BTreeSet<i64> = first_ids.iter().map(|id| id % 40).collect();
    assert!((4..=24).contains(&users.len()), "{} users sampled", users.len());
    assert_eq!(first_ids.len(), users.len() * RECORDS / 40);

    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).expect("data dir");
    let mut second = ServerProcess::start(&second_dir, &[]);
    commit(&second, &definition);
    second.wait_for_records("sampled", 100, Duration::from_secs(60));
    second.crash_and_restart();
    second.wait_for_records("sampled", RECORDS as u64, Duration::from_secs(60));
    assert!(second.stop());
    assert_eq!(kept_ids(&second_dir), first_ids, "the same rows, each once, after kill -9");
}
