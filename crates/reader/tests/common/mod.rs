//! Helpers for the reader's tests against kinesis-local (started by
//! `scripts/emulators.sh up`, which `scripts/test.sh` runs).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use tributary_reader::{CheckpointStore, MemoryCheckpointStore, Reader, ReaderConfig, Record, SequenceNumber};

/// kinesis-local's address; panics unless the developer opted out outside CI.
pub fn kinesis_endpoint() -> Option<String> {
    if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_KINESIS").ok().filter(|v| !v.is_empty()) {
        return Some(endpoint);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !in_ci && std::env::var("TRIBUTARY_SKIP_EMULATOR_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: kinesis-local not running and TRIBUTARY_SKIP_EMULATOR_TESTS=1");
        return None;
    }
    panic!("this test needs kinesis-local: run ./scripts/test.sh, or `eval \"$(scripts/emulators.sh up)\"` first");
}

pub fn client(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test-access-key", "test-secret-key", None, None, "tests"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// Quick pacing so tests do not wait on production intervals.
pub fn test_config() -> ReaderConfig {
    ReaderConfig {
        idle_poll_interval: Duration::from_millis(100),
        idle_poll_max: Duration::from_millis(200),
        rediscovery_interval: Duration::from_millis(500),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        call_timeout: Duration::from_secs(5),
        ..ReaderConfig::default()
    }
}

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Creates a stream, waits for ACTIVE, returns its ARN.
pub async fn create_stream(client: &aws_sdk_kinesis::Client, name: &str, shards: i32) -> String {
    client.create_stream().stream_name(name).shard_count(shards).send().await.expect("CreateStream");
    wait_active(client, name).await
}

/// Waits (bounded) until the stream is ACTIVE again; returns its ARN.
pub async fn wait_active(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client.describe_stream_summary().stream_name(name).send().await.expect("DescribeStreamSummary");
        let description = summary.stream_description_summary().expect("a summary");
        if description.stream_status() == &StreamStatus::Active {
            return description.stream_arn().to_owned();
        }
        assert!(Instant::now() < deadline, "stream {name} not ACTIVE within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Puts `(partition key, payload)` records with PutRecords, 500 per call, in order.
pub async fn put(client: &aws_sdk_kinesis::Client, stream_arn: &str, records: &[(String, Vec<u8>)]) {
    for chunk in records.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.clone()))
                    .build()
                    .expect("entry")
            })
            .collect::<Vec<_>>();
        let output =
            client.put_records().stream_arn(stream_arn).set_records(Some(entries)).send().await.expect("PutRecords");
        assert_eq!(output.failed_record_count(), Some(0), "PutRecords failed some records");
    }
}

/// A record's identity: the same (sequence, sub-sequence) twice is a duplicate.
pub fn identity(record: &Record) -> (SequenceNumber, Option<u64>) {
    (record.sequence_number.clone(), record.sub_sequence)
}

/// Reads until `expected` records arrived (then lingers to catch duplicates),
/// committing every batch to `store` like a worker would. Panics on a
/// duplicate, a reader error, or a timeout.
pub async fn read_committing(
    reader: &mut Reader,
    store: &Arc<MemoryCheckpointStore>,
    scope: &str,
    expected: usize,
    limit: Duration,
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    let deadline = Instant::now() + limit;
    let mut linger_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let until = linger_until.unwrap_or(deadline);
        if now >= until {
            break;
        }
        let Ok(next) = tokio::time::timeout(until - now, reader.next()).await else { break };
        let batch = next.expect("the reader does not end by itself").expect("no reader error");
        store.commit(scope, &[batch.advance()]).await.expect("each batch commits exactly once");
        for record in &batch.records {
            assert!(seen.insert(identity(record)), "duplicate record {:?}", identity(record));
        }
        records.extend(batch.records.iter().cloned());
        if records.len() >= expected && linger_until.is_none() {
            linger_until = Some(Instant::now() + Duration::from_millis(1500));
        }
    }
    assert!(records.len() >= expected, "read {} of {expected} records within {limit:?}", records.len());
    records
}

pub fn payloads(records: &[Record]) -> Vec<String> {
    records.iter().map(|record| String::from_utf8_lossy(&record.data).into_owned()).collect()
}
