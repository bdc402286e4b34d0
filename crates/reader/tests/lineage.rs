//! Resharding while reading: every record exactly once, and per partition key
//! in put order from parent to child.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tributary_reader::{MemoryCheckpointStore, ReadTarget, Reader, StartPosition};

const KEYS: usize = 50;
const ROUNDS: usize = 40;

/// Round `round` of every key, `key-J:ROUND` (one PutRecords per round keeps each key's puts ordered).
fn round(round: usize) -> Vec<(String, Vec<u8>)> {
    (0..KEYS).map(|key| (format!("key-{key}"), format!("key-{key}:{round}").into_bytes())).collect()
}

async fn put_rounds(kinesis: &aws_sdk_kinesis::Client, stream_arn: &str, rounds: std::ops::Range<usize>) {
    for r in rounds {
        put(kinesis, stream_arn, &round(r)).await;
    }
}

#[tokio::test]
async fn split_and_merge_while_reading_keep_every_record_once_and_in_key_order() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let name = unique("lineage");
    let stream_arn = create_stream(&kinesis, &name, 4).await;
    put_rounds(&kinesis, &stream_arn, 0..ROUNDS / 2).await;

    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn: stream_arn.clone(), start: StartPosition::TrimHorizon, scope: "s".into() };
    let mut reader = Reader::start(client(&endpoint), target, store.clone(), test_config());
    let reading = tokio::spawn(async move {
        let records = read_committing(&mut reader, &store, "s", KEYS * ROUNDS, Duration::from_secs(90)).await;
        let metrics = reader.metrics().snapshot();
        reader.stop().await;
        (records, metrics)
    });

    // Reshard while the reader is busy: split shard 0 in the middle of its range, merge 2 and 3.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shards = kinesis.list_shards().stream_arn(&stream_arn).send().await.expect("ListShards");
    let first = &shards.shards()[0];
    let range = first.hash_key_range().expect("a hash key range");
    let start: u128 = range.starting_hash_key().parse().expect("decimal");
    let end: u128 = range.ending_hash_key().parse().expect("decimal");
    kinesis
        .split_shard()
        .stream_arn(&stream_arn)
        .shard_to_split(first.shard_id())
        .new_starting_hash_key((start + (end - start) / 2 + 1).to_string())
        .send()
        .await
        .expect("SplitShard");
    wait_active(&kinesis, &name).await;
    put_rounds(&kinesis, &stream_arn, ROUNDS / 2..ROUNDS * 3 / 4).await;
    kinesis
        .merge_shards()
        .stream_arn(&stream_arn)
        .shard_to_merge(shards.shards()[2].shard_id())
        .adjacent_shard_to_merge(shards.shards()[3].shard_id())
        .send()
        .await
        .expect("MergeShards");
    wait_active(&kinesis, &name).await;
    put_rounds(&kinesis, &stream_arn, ROUNDS * 3 / 4..ROUNDS).await;

    let (records, metrics) = reading.await.expect("reader task");
    assert_eq!(records.len(), KEYS * ROUNDS, "exactly once: no record missing, none repeated");
    let mut next_round: HashMap<String, usize> = HashMap::new();
    for payload in payloads(&records) {
        let (key, round) = payload.split_once(':').expect("key:round");
        let round: usize = round.parse().expect("a round number");
        let expected = next_round.entry(key.to_owned()).or_default();
        assert_eq!(round, *expected, "{key} read out of put order");
        *expected += 1;
    }
    assert_eq!(next_round.len(), KEYS);

    // 4 original shards, 2 children of the split, 1 of the merge; the 3 parents are finished.
    assert_eq!(metrics.len(), 7, "{metrics:#?}");
    assert_eq!(metrics.values().filter(|shard| shard.finished).count(), 3, "{metrics:#?}");
}
