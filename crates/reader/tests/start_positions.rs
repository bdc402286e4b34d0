//! Where a new source starts: TRIM_HORIZON, AT_TIMESTAMP, and LATEST pinned to the commit time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use tributary_reader::{
    CheckpointStore, MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, SequenceNumber, ShardAdvance,
    ShardCheckpoint, StartPosition,
};

fn batch_of(prefix: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count).map(|i| (format!("key-{}", i % 7), format!("{prefix}-{i}").into_bytes())).collect()
}

async fn read_from(endpoint: &str, stream_arn: &str, start: StartPosition, expected: usize) -> Vec<String> {
    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn: stream_arn.to_owned(), start, scope: "s".into() };
    // One call at a time: the first shard's GetShardIterator (the SDK's) teaches the route,
    // so the other shard's goes through the reader's own call, start position and all.
    let config = ReaderConfig { max_concurrent_calls: 1, ..test_config() };
    let mut reader = Reader::start(client(endpoint), target, store.clone(), config);
    let records = read_committing(&mut reader, &store, "s", expected, Duration::from_secs(30)).await;
    reader.stop().await;
    let mut payloads = payloads(&records);
    payloads.sort();
    payloads
}

fn sorted(prefix: &str, count: usize) -> Vec<String> {
    let mut expected: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    expected.sort();
    expected
}

#[tokio::test]
async fn each_start_position_reads_what_it_promises() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("starts"), 2).await;

    put(&kinesis, &stream_arn, &batch_of("before", 40)).await;
    // Arrival times have millisecond precision: keep the instants well apart.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&kinesis, &stream_arn, &batch_of("middle", 30)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // A source committed with `latest` now: the server pins it to this instant.
    let committed_at = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    put(&kinesis, &stream_arn, &batch_of("after", 20)).await;

    // The readers start only now, after every put: LATEST must still see the
    // records put after its commit, which a plain LATEST iterator would miss.
    let all = read_from(&endpoint, &stream_arn, StartPosition::TrimHorizon, 90).await;
    let mut expected = [sorted("before", 40), sorted("middle", 30), sorted("after", 20)].concat();
    expected.sort();
    assert_eq!(all, expected);

    let since_between = read_from(&endpoint, &stream_arn, StartPosition::AtTimestamp(between), 50).await;
    let mut expected = [sorted("middle", 30), sorted("after", 20)].concat();
    expected.sort();
    assert_eq!(since_between, expected);

    let latest = read_from(&endpoint, &stream_arn, StartPosition::AtTimestamp(committed_at), 20).await;
    assert_eq!(latest, sorted("after", 20));
}

/// `number` + 1, in decimal (sequence numbers are wider than any integer type).
fn plus_one(number: &str) -> String {
    let mut digits: Vec<u8> = number.bytes().collect();
    for digit in digits.iter_mut().rev() {
        if *digit == b'9' {
            *digit = b'0';
        } else {
            *digit += 1;
            return String::from_utf8(digits).expect("digits");
        }
    }
    format!("1{}", String::from_utf8(digits).expect("digits"))
}

#[tokio::test]
async fn a_checkpoint_past_retention_reads_on_from_trim_horizon_without_repeats() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("trimmed"), 1).await;
    put(&kinesis, &stream_arn, &batch_of("kept", 10)).await;
    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn: stream_arn.clone(), start: StartPosition::TrimHorizon, scope: "s".into() };
    let mut reader = Reader::start(client(&endpoint), target.clone(), store.clone(), test_config());
    let mut first = read_committing(&mut reader, &store, "s", 10, Duration::from_secs(30)).await;
    let shard_id = reader.metrics().snapshot().into_keys().next().expect("the one shard");
    reader.stop().await;
    first.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));

    // A checkpoint just after the fifth record, at a position whose record is gone (as a
    // trimmed one is to the emulator, which refuses it).
    let gone = SequenceNumber::new(&plus_one(first[4].sequence_number.as_str())).expect("a sequence number");
    let store = Arc::new(MemoryCheckpointStore::new());
    let advance =
        ShardAdvance { shard_id: shard_id.clone(), from: ShardCheckpoint::default(), to: ShardCheckpoint::after(gone) };
    store.commit("s", &[advance]).await.expect("seed the checkpoint");
    let mut reader = Reader::start(client(&endpoint), target, store.clone(), test_config());
    let records = read_committing(&mut reader, &store, "s", 5, Duration::from_secs(30)).await;
    let gaps = reader.metrics().snapshot()[&shard_id].retention_gaps;
    reader.stop().await;
    let mut read = payloads(&records);
    read.sort();
    assert_eq!(read, payloads(&first[5..]), "from the oldest record there is, nothing up to the checkpoint again");
    assert_eq!(gaps, 1, "the gap is counted once");
}
