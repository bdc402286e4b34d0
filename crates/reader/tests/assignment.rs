//! Cluster mode reads a stream's shards in parts: a reader given an
//! assignment reads those shards, all of their records, and no other shard.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tributary_reader::{CheckpointStore, MemoryCheckpointStore, ReadTarget, Reader, StartPosition};

/// Reads (committing) until `expected` records arrived: records per shard.
async fn records_per_shard(
    reader: &mut Reader,
    store: &Arc<MemoryCheckpointStore>,
    expected: usize,
) -> BTreeMap<String, usize> {
    let mut per_shard: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while per_shard.values().sum::<usize>() < expected {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let batch = tokio::time::timeout(left, reader.next())
            .await
            .unwrap_or_else(|_| panic!("read {per_shard:?} of {expected} records within a minute"))
            .expect("running")
            .expect("no reader error");
        store.commit("s", &[batch.advance()]).await.expect("commit");
        *per_shard.entry(batch.shard_id.to_string()).or_default() += batch.records.len();
    }
    per_shard
}

#[tokio::test]
async fn an_assigned_reader_reads_its_shards_whole_and_no_other() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("assigned"), 4).await;
    let records: Vec<(String, Vec<u8>)> = (0..400).map(|i| (format!("k{i}"), format!("r{i}").into_bytes())).collect();
    put(&kinesis, &stream_arn, &records).await;
    let target = ReadTarget { stream_arn, start: StartPosition::TrimHorizon, scope: "s".into() };

    // Everything, to learn where the records are.
    let all_store = Arc::new(MemoryCheckpointStore::new());
    let mut all = Reader::start(client(&endpoint), target.clone(), all_store.clone(), test_config());
    let everywhere = records_per_shard(&mut all, &all_store, records.len()).await;
    all.stop().await;
    assert_eq!(everywhere.len(), 4, "the records spread over every shard: {everywhere:?}");

    // Two of the four shards.
    let assigned: BTreeSet<String> = everywhere.keys().step_by(2).cloned().collect();
    let expected: usize = assigned.iter().map(|shard| everywhere[shard]).sum();
    let store = Arc::new(MemoryCheckpointStore::new());
    let mut part =
        Reader::start_assigned(client(&endpoint), target, store.clone(), test_config(), Some(assigned.clone()));
    let read = records_per_shard(&mut part, &store, expected).await;
    // Linger: nothing else comes.
    let more = tokio::time::timeout(Duration::from_millis(1500), part.next()).await;
    assert!(more.is_err(), "a batch beyond the assigned records: {more:?}");
    let read_shards: BTreeSet<String> = read.keys().cloned().collect();
    assert_eq!(read_shards, assigned);
    assert!(read.iter().all(|(shard, count)| everywhere[shard] == *count), "{read:?} vs {everywhere:?}");
    let started: BTreeSet<String> = part.metrics().snapshot().keys().cloned().collect();
    assert_eq!(started, assigned, "no other shard was even started");
    part.stop().await;
}
