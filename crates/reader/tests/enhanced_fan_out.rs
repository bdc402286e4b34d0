//! Enhanced fan-out reads what polling reads, across subscription renewals.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tributary_reader::{ConsumerKind, MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, Record, StartPosition};

async fn read_all(endpoint: &str, stream_arn: &str, config: ReaderConfig, expected: usize) -> (Vec<Record>, u64) {
    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn: stream_arn.to_owned(), start: StartPosition::TrimHorizon, scope: "s".into() };
    let mut reader = Reader::start(client(endpoint), target, store.clone(), config);
    let records = read_committing(&mut reader, &store, "s", expected, Duration::from_secs(60)).await;
    let renewals = reader.metrics().snapshot().values().map(|shard| shard.iterator_renewals).sum();
    reader.stop().await;
    (records, renewals)
}

fn sorted_identities(records: &[Record]) -> Vec<(String, Option<u64>, Vec<u8>)> {
    let mut identities: Vec<_> =
        records.iter().map(|r| (r.sequence_number.to_string(), r.sub_sequence, r.data.to_vec())).collect();
    identities.sort();
    identities
}

#[tokio::test]
async fn enhanced_fan_out_reads_the_same_records_as_polling() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("efo"), 2).await;
    let first: Vec<(String, Vec<u8>)> =
        (0..150).map(|i| (format!("k{}", i % 11), format!("early-{i}").into_bytes())).collect();
    put(&kinesis, &stream_arn, &first).await;

    let efo = ReaderConfig {
        consumer: ConsumerKind::EnhancedFanOut { consumer_name: "tributary-test".into() },
        subscription_renewal: Duration::from_secs(1),
        ..test_config()
    };
    // More records arrive while the EFO reader runs, after at least one renewal.
    let later_stream = stream_arn.clone();
    let later_endpoint = endpoint.clone();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let later: Vec<(String, Vec<u8>)> =
            (0..100).map(|i| (format!("k{}", i % 11), format!("late-{i}").into_bytes())).collect();
        put(&client(&later_endpoint), &later_stream, &later).await;
    });
    let (pushed, renewals) = read_all(&endpoint, &stream_arn, efo, 250).await;
    producer.await.expect("producer");
    assert!(renewals >= 1, "the 1 s subscriptions were renewed");

    let (polled, _) = read_all(&endpoint, &stream_arn, test_config(), 250).await;
    assert_eq!(pushed.len(), 250);
    assert_eq!(sorted_identities(&pushed), sorted_identities(&polled));
}
