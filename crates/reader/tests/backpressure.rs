//! A consumer that holds its batches stops the reading of their shard.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tributary_reader::{CheckpointStore, MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, StartPosition};

/// A new stream of `shards` holding `records` records, a store, and a target reading it from the start.
async fn filled_stream(
    endpoint: &str,
    name: &str,
    shards: i32,
    records: usize,
) -> (Arc<MemoryCheckpointStore>, ReadTarget) {
    let kinesis = client(endpoint);
    let stream_arn = create_stream(&kinesis, &unique(name), shards).await;
    let records: Vec<(String, Vec<u8>)> =
        (0..records).map(|i| (format!("k{i}"), format!("r{i}").into_bytes())).collect();
    put(&kinesis, &stream_arn, &records).await;
    let target = ReadTarget { stream_arn, start: StartPosition::TrimHorizon, scope: "s".into() };
    (Arc::new(MemoryCheckpointStore::new()), target)
}

#[tokio::test]
async fn held_batches_pause_their_shard_and_released_ones_resume_it() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let (store, target) = filled_stream(&endpoint, "pressure", 1, 300).await;
    let config = ReaderConfig {
        records_per_call: 10,
        max_batch_records: 10,
        max_in_flight_batches_per_shard: 2,
        channel_capacity: 1,
        ..test_config()
    };
    let mut reader = Reader::start(client(&endpoint), target, store.clone(), config);
    let mut held = Vec::new();
    for _ in 0..2 {
        let batch =
            tokio::time::timeout(Duration::from_secs(30), reader.next()).await.expect("a batch").expect("running");
        held.push(batch.expect("no reader error"));
    }
    // The shard read on and now waits for a commit: only then is "nothing more passed on" a finding.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !reader.metrics().snapshot().values().any(|shard| shard.waiting_for_commit) {
        assert!(tokio::time::Instant::now() < deadline, "the shard never waited for its held batches");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let passed_on: u64 = reader.metrics().snapshot().values().map(|shard| shard.records).sum();
    assert_eq!(passed_on, 20, "two held batches of 10 are all the shard may have out");

    let mut total: usize = held.iter().map(|batch| batch.records.len()).sum();
    for batch in held.drain(..) {
        store.commit("s", &[batch.advance()]).await.expect("commit");
    }
    let rest = read_committing(&mut reader, &store, "s", 300 - total, Duration::from_secs(60)).await;
    total += rest.len();
    reader.stop().await;
    assert_eq!(total, 300);
}

#[tokio::test]
async fn a_shard_held_back_does_not_keep_the_others_from_their_one_call_slot() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let (store, target) = filled_stream(&endpoint, "one-call", 2, 200).await;
    let config = ReaderConfig {
        records_per_call: 10,
        max_batch_records: 10,
        max_in_flight_batches_per_shard: 1,
        max_concurrent_calls: 1,
        channel_capacity: 1,
        ..test_config()
    };
    let mut reader = Reader::start(client(&endpoint), target, store.clone(), config);
    // Holding a batch pauses its shard (one batch in flight); the one call slot must keep
    // serving the other shard, call after call, instead of waiting with the paused one.
    let held = next_batch(&mut reader).await;
    let mut total = held.records.len();
    let mut others = 0;
    while others < 3 {
        let batch = next_batch(&mut reader).await;
        assert_ne!(batch.shard_id, held.shard_id, "the held shard stays paused");
        total += batch.records.len();
        others += 1;
        store.commit("s", &[batch.advance()]).await.expect("commit");
    }
    store.commit("s", &[held.advance()]).await.expect("commit");
    drop(held);
    total += read_committing(&mut reader, &store, "s", 200 - total, Duration::from_secs(60)).await.len();
    reader.stop().await;
    assert_eq!(total, 200, "every record, one call at a time");
}

async fn next_batch(reader: &mut Reader) -> tributary_reader::ShardBatch {
    let batch = tokio::time::timeout(Duration::from_secs(30), reader.next()).await;
    batch.expect("a batch in time").expect("running").expect("no reader error")
}
