//! Shared helpers for the emulator-backed tests: where the emulators are, and
//! how to make a fresh stream and run the binary against them.
//!
//! The emulators are started by `scripts/emulators.sh up` (which `scripts/test.sh`
//! runs); their addresses arrive in the environment. A test that needs them and
//! does not find them fails, unless the developer explicitly opts out with
//! `TRIBUTARY_SKIP_EMULATOR_TESTS=1` outside CI.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::config::{Credentials, Region};
use aws_sdk_kinesis::types::StreamStatus;

/// Where the emulators listen.
#[derive(Debug, Clone)]
pub struct Emulators {
    /// kinesis-local, streams ACTIVE in 10 ms.
    pub kinesis: String,
    /// kinesis-local whose streams stay CREATING for minutes.
    pub kinesis_slow: String,
    /// moto, without IAM enforcement (STS, IAM, ...).
    pub moto: String,
    /// moto reserved for the IAM-enforcement test.
    pub moto_auth: String,
    /// The Python of moto's venv (has boto3), for IAM fixtures.
    pub moto_python: String,
}

impl Emulators {
    /// The running emulators, or `None` when the developer opted out of these tests.
    pub fn from_env() -> Option<Emulators> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let found = (|| {
            Some(Emulators {
                kinesis: var("AWS_ENDPOINT_URL_KINESIS")?,
                kinesis_slow: var("TRIBUTARY_TEST_KINESIS_SLOW_ENDPOINT")?,
                moto: var("TRIBUTARY_TEST_MOTO_ENDPOINT")?,
                moto_auth: var("TRIBUTARY_TEST_MOTO_AUTH_ENDPOINT")?,
                moto_python: var("TRIBUTARY_TEST_MOTO_PYTHON")?,
            })
        })();
        if found.is_some() {
            return found;
        }
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let opted_out = std::env::var("TRIBUTARY_SKIP_EMULATOR_TESTS").is_ok_and(|v| v == "1");
        if opted_out && !in_ci {
            eprintln!("SKIPPED: emulators not running and TRIBUTARY_SKIP_EMULATOR_TESTS=1");
            return None;
        }
        panic!(
            "this test needs the local AWS emulators: run it through ./scripts/test.sh, or \
             `eval \"$(scripts/emulators.sh up)\"` first (TRIBUTARY_SKIP_EMULATOR_TESTS=1 skips it outside CI)"
        );
    }
}

/// Puts one record per index of `range` (500 per call, partition keys spread over 97),
/// with `payload(i)` as its data; returns each record's (shard, sequence number).
pub async fn put_indexed(
    client: &aws_sdk_kinesis::Client,
    stream_arn: &str,
    range: std::ops::Range<usize>,
    payload: impl Fn(usize) -> Vec<u8>,
) -> std::collections::HashMap<usize, (String, String)> {
    use aws_sdk_kinesis::primitives::Blob;
    use aws_sdk_kinesis::types::PutRecordsRequestEntry;
    let mut placed = std::collections::HashMap::new();
    let indexes: Vec<usize> = range.collect();
    for chunk in indexes.chunks(500) {
        let entries: Vec<PutRecordsRequestEntry> = chunk
            .iter()
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("key-{}", i % 97))
                    .data(Blob::new(payload(*i)))
                    .build()
                    .expect("entry")
            })
            .collect();
        let output =
            client.put_records().stream_arn(stream_arn).set_records(Some(entries)).send().await.expect("PutRecords");
        assert_eq!(output.failed_record_count(), Some(0));
        for (i, result) in chunk.iter().zip(output.records()) {
            placed.insert(
                *i,
                (result.shard_id().expect("shard").to_owned(), result.sequence_number().expect("sequence").to_owned()),
            );
        }
    }
    placed
}

/// Splits the stream's first shard in two (by hash key), then waits until it is ACTIVE again;
/// returns the shards as they were before, for [`merge_third_and_fourth`].
pub async fn split_first_shard(
    client: &aws_sdk_kinesis::Client,
    endpoint: &str,
    stream_arn: &str,
) -> aws_sdk_kinesis::operation::list_shards::ListShardsOutput {
    let shards = client.list_shards().stream_arn(stream_arn).send().await.expect("ListShards");
    let first = &shards.shards()[0];
    let range = first.hash_key_range().expect("range");
    let (start, end): (u128, u128) =
        (range.starting_hash_key().parse().expect("decimal"), range.ending_hash_key().parse().expect("decimal"));
    client
        .split_shard()
        .stream_arn(stream_arn)
        .shard_to_split(first.shard_id())
        .new_starting_hash_key((start + (end - start) / 2 + 1).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(endpoint, stream_arn).await;
    shards
}

/// Merges the third and fourth of the stream's original `shards`, then waits until it is ACTIVE again.
pub async fn merge_third_and_fourth(
    client: &aws_sdk_kinesis::Client,
    endpoint: &str,
    stream_arn: &str,
    shards: &aws_sdk_kinesis::operation::list_shards::ListShardsOutput,
) {
    client
        .merge_shards()
        .stream_arn(stream_arn)
        .shard_to_merge(shards.shards()[2].shard_id())
        .adjacent_shard_to_merge(shards.shards()[3].shard_id())
        .send()
        .await
        .expect("MergeShards");
    wait_active(endpoint, stream_arn).await;
}

/// A name no other test (or earlier run against the same emulator) has used.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// A Kinesis client for `endpoint` with the test credentials.
pub fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test-access-key", "test-secret-key", None, None, "tests"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Creates a stream and returns its ARN; waits for ACTIVE (bounded) unless `wait` is false.
pub async fn create_stream(endpoint: &str, name: &str, shards: i32, wait: bool) -> String {
    let client = kinesis_client(endpoint);
    client.create_stream().stream_name(name).shard_count(shards).send().await.expect("CreateStream");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client.describe_stream_summary().stream_name(name).send().await.expect("DescribeStreamSummary");
        let description = summary.stream_description_summary().expect("a summary");
        if !wait || description.stream_status() == &StreamStatus::Active {
            return description.stream_arn().to_owned();
        }
        assert!(Instant::now() < deadline, "stream {name} not ACTIVE within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until a resharded stream is ACTIVE again.
pub async fn wait_active(endpoint: &str, stream_arn: &str) {
    let client = kinesis_client(endpoint);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary =
            client.describe_stream_summary().stream_arn(stream_arn).send().await.expect("DescribeStreamSummary");
        if summary.stream_description_summary().map(|d| d.stream_status()) == Some(&StreamStatus::Active) {
            return;
        }
        assert!(Instant::now() < deadline, "stream {stream_arn} not ACTIVE within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A one-source definition file reading `stream_arn`, optionally through `role_arn`.
pub fn write_definition(dir: &Path, source: &str, stream_arn: &str, role_arn: Option<&str>) -> std::path::PathBuf {
    let role = role_arn.map(|arn| format!("      role_arn: {arn}\n")).unwrap_or_default();
    let text = format!(
        "sources:\n  - name: {source}\n    kinesis:\n      stream_arn: {stream_arn}\n{role}      init_position: latest\n      format: json\n    dataset:\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n"
    );
    let path = dir.join(format!("{source}.yaml"));
    std::fs::write(&path, text).expect("write definition");
    path
}

/// Runs the `tributary` binary with extra environment.
pub fn tributary(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    command.args(args).env("AWS_EC2_METADATA_DISABLED", "true");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run tributary")
}

/// Standard output as text.
pub mod lakehouse;
pub mod openmetadata;
pub mod server;

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The arrival-ordered records of a Debezium stream for `examples/customers_debezium.yaml`,
/// and what becomes of each (shared by `tributary decode` and the end-to-end test).
pub const DEBEZIUM_LINES: [(&str, &str); 10] = [
    (
        r#"{"op": "c", "after": {"id": 1, "email": "a@x.io", "tier": 3, "address": {"country": "DE"}, "updated_at": "2024-06-01T10:00:00Z"}}"#,
        "upsert 1",
    ),
    (
        r#"{"op": "c", "after": {"id": 2, "email": "test@example.com", "updated_at": "2024-06-01T10:05:00Z"}}"#,
        "filtered",
    ),
    (
        r#"{"schema": {}, "payload": {"op": "u", "before": {"id": 1}, "after": {"id": 1, "email": "a@y.io", "tier": 1, "updated_at": "2024-06-01T11:00:00Z"}}}"#,
        "upsert 1",
    ),
    (r#"{"op": "c", "after": {"id": 3, "email": "old@x.io", "updated_at": "2023-12-01T00:00:00Z"}}"#, "filtered"),
    (r#"{"op": "d", "before": {"id": 2, "updated_at": "2024-06-01T11:30:00Z"}, "after": null}"#, "delete 2"),
    (r#"{"op": "c", "after": {"id": 4, "email": "late@x.io", "updated_at": "2024-06-01T09:00:00Z"}}"#, "late"),
    (r#"{"op": "c", "after": {"id": 8, "email": "future@x.io", "updated_at": "2100-06-01T00:00:00Z"}}"#, "filtered"),
    ("null", "CDC_TOMBSTONE"),
    (r#"{"op": "x", "after": {"id": 5}}"#, "CDC_UNKNOWN_OP"),
    (
        r#"{"op": "r", "after": {"id": 5, "email": "e@x.io", "tier": 2, "updated_at": "2024-06-01T12:00:00Z"}}"#,
        "upsert 5",
    ),
];
