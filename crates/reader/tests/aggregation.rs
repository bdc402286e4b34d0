//! KPL aggregated records: de-aggregation, sub-sequence numbers, hash-range
//! filtering, corrupt aggregates passed through, and resuming mid-aggregate.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use common::*;
use tributary_reader::kpl::pack;
use tributary_reader::{CheckpointStore, MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, StartPosition};

async fn shard_ranges(kinesis: &aws_sdk_kinesis::Client, stream_arn: &str) -> Vec<(u128, u128)> {
    let shards = kinesis.list_shards().stream_arn(stream_arn).send().await.expect("ListShards");
    shards
        .shards()
        .iter()
        .map(|shard| {
            let range = shard.hash_key_range().expect("range");
            (range.starting_hash_key().parse().expect("decimal"), range.ending_hash_key().parse().expect("decimal"))
        })
        .collect()
}

async fn put_at(kinesis: &aws_sdk_kinesis::Client, stream_arn: &str, hash_key: u128, data: Vec<u8>) {
    kinesis
        .put_record()
        .stream_arn(stream_arn)
        .partition_key("aggregate")
        .explicit_hash_key(hash_key.to_string())
        .data(Blob::new(data))
        .send()
        .await
        .expect("PutRecord");
}

#[tokio::test]
async fn aggregates_are_unpacked_filtered_by_hash_range_and_corrupt_ones_pass_through() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("kpl"), 2).await;
    let ranges = shard_ranges(&kinesis, &stream_arn).await;
    let (first, second) = (ranges[0], ranges[1]);

    // Sub-record 2 carries a hash key of the other shard: the KPL put it here
    // before a reshard; it belongs to the other shard's reader and is dropped.
    let aggregate = pack(&[
        ("a", Some(first.0), b"sub-0"),
        ("b", Some(first.0 + 1), b"sub-1"),
        ("c", Some(second.0), b"elsewhere"),
        ("d", Some(first.1), b"sub-3"),
    ]);
    put_at(&kinesis, &stream_arn, first.0, aggregate).await;
    let mut corrupt = pack(&[("a", Some(first.0), b"never unpacked")]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    put_at(&kinesis, &stream_arn, first.0, corrupt.clone()).await;

    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn, start: StartPosition::TrimHorizon, scope: "s".into() };
    let mut reader = Reader::start(client(&endpoint), target, store.clone(), test_config());
    let records = read_committing(&mut reader, &store, "s", 4, Duration::from_secs(30)).await;
    let metrics = reader.metrics().snapshot();
    reader.stop().await;

    let seen: Vec<(Option<u64>, &str, Vec<u8>)> =
        records.iter().map(|r| (r.sub_sequence, &*r.partition_key, r.data.to_vec())).collect();
    assert_eq!(
        seen,
        vec![
            (Some(0), "a", b"sub-0".to_vec()),
            (Some(1), "b", b"sub-1".to_vec()),
            (Some(3), "d", b"sub-3".to_vec()),
            (None, "aggregate", corrupt),
        ]
    );
    assert_eq!(records[0].sequence_number, records[2].sequence_number, "sub-records share their record's number");
    let totals = metrics.values().fold((0, 0), |(dropped, corrupt), shard| {
        (dropped + shard.dropped_sub_records, corrupt + shard.corrupt_aggregates)
    });
    assert_eq!(totals, (1, 1), "{metrics:#?}");
}

#[tokio::test]
async fn stopping_mid_aggregate_and_resuming_loses_and_repeats_nothing() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("resume"), 2).await;
    // 20 aggregates of 10 sub-records and 40 plain records, interleaved.
    let mut expected = HashSet::new();
    let mut records = Vec::new();
    for i in 0..20 {
        let key = format!("agg-{i}");
        let payloads: Vec<String> = (0..10).map(|j| format!("agg-{i}-{j}")).collect();
        let subs: Vec<(&str, Option<u128>, &[u8])> =
            payloads.iter().map(|p| (key.as_str(), None, p.as_bytes())).collect();
        records.push((key.clone(), pack(&subs)));
        expected.extend(payloads);
        for j in 0..2 {
            let payload = format!("plain-{i}-{j}");
            records.push((format!("plain-{i}"), payload.clone().into_bytes()));
            expected.insert(payload);
        }
    }
    put(&kinesis, &stream_arn, &records).await;

    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn, start: StartPosition::TrimHorizon, scope: "s".into() };
    // Batches of 7 split the aggregates of 10.
    let config = ReaderConfig { max_batch_records: 7, ..test_config() };

    // First run: commit batches until well into the stream and stopped inside an aggregate.
    let mut reader = Reader::start(client(&endpoint), target.clone(), store.clone(), config.clone());
    let mut committed = Vec::new();
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(30), reader.next())
            .await
            .expect("a batch within 30 s")
            .expect("reader running")
            .expect("no reader error");
        store.commit("s", &[batch.advance()]).await.expect("commit");
        committed.extend(batch.records.iter().cloned());
        let inside_aggregate = batch.to.position.as_ref().is_some_and(|position| !position.record_complete);
        if committed.len() >= 100 && inside_aggregate {
            break;
        }
    }
    // Batches handed out but not committed die with the reader: they must come again.
    reader.stop().await;
    let checkpoints = store.load("s").await.expect("load");
    assert!(
        checkpoints.values().any(|checkpoint| checkpoint.position.as_ref().is_some_and(|p| !p.record_complete)),
        "the test stops inside an aggregate: {checkpoints:#?}"
    );

    let mut reader = Reader::start(client(&endpoint), target, store.clone(), config);
    let rest =
        read_committing(&mut reader, &store, "s", expected.len() - committed.len(), Duration::from_secs(30)).await;
    reader.stop().await;

    let mut seen = HashSet::new();
    for record in committed.iter().chain(&rest) {
        assert!(seen.insert(identity(record)), "repeated after resume: {:?}", identity(record));
    }
    let read: HashSet<String> = payloads(&committed).into_iter().chain(payloads(&rest)).collect();
    assert_eq!(read.len(), committed.len() + rest.len());
    assert_eq!(read, expected, "every record exactly once across the restart");
}
