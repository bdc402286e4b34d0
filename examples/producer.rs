//! A sample producer: creates a stream (optionally) and puts JSON order events,
//! a few of them deliberately malformed, so a source has something to read.
//!
//! ```text
//! cargo run --example producer -- --stream orders --create --shards 2 --records 1000 --malformed-every 100
//! cargo run --example producer -- --stream events --create --shards 64 --records 100000 --kind events
//! ```
//!
//! `--kind orders` (the quickstart's schema) or `--kind events`: ~250-byte
//! click events, the benchmarks' payload (`examples/events.yaml`).
//! `--aggregate N` packs N records into each Kinesis record the way the KPL
//! does (one partition key per aggregate), as high-volume producers send them.
//!
//! Endpoint, region and credentials come from the standard AWS environment
//! (`AWS_ENDPOINT_URL_KINESIS`, `AWS_REGION`, ...). Prints the stream ARN last.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// Create the stream first (and wait until it is ACTIVE).
    #[arg(long)]
    create: bool,
    /// Shard count when creating.
    #[arg(long, default_value_t = 1)]
    shards: i32,
    /// How many records to put.
    #[arg(long, default_value_t = 100)]
    records: usize,
    /// Every Nth record is malformed (0: none).
    #[arg(long, default_value_t = 0)]
    malformed_every: usize,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Kind::Orders)]
    kind: Kind,
    /// PutRecords calls in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Records per Kinesis record, KPL-aggregated (1: not aggregated).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    aggregate: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Kind {
    Orders,
    Events,
}

/// PutRecords takes at most 500 entries per call.
const BATCH: usize = 500;

/// PutRecords takes at most 5 MiB per call; aggregates are sized to stay well under it.
const CALL_BYTES: usize = 4 << 20;

/// A ~250-byte click event.
fn click(i: usize) -> String {
    format!(
        r#"{{"id":{i},"user":"user-{:06}","event":"page_view","ts":"2024-06-01T12:{:02}:{:02}.{:06}Z","amount":{}.{:02},"country":"DE","tags":["web","promo"],"device":{{"os":"android","version":"14.{}","mobile":true}},"referrer":null,"session":"s-{:016x}"}}"#,
        i % 999_983,
        (i / 60) % 60,
        i % 60,
        i % 1_000_000,
        i % 5000,
        i % 100,
        i % 10,
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

fn event(i: usize, malformed_every: usize, kind: Kind) -> String {
    if let Kind::Events = kind {
        if malformed_every > 0 && i % malformed_every == malformed_every - 1 {
            return format!("{{\"id\": \"#{i}\"}}");
        }
        return click(i);
    }
    if malformed_every > 0 && i % malformed_every == malformed_every - 1 {
        // Alternate between broken JSON and a wrong type, the two mistakes producers make.
        return if i.is_multiple_of(2) {
            format!("{{\"order_id\": {i}, \"amount\": ")
        } else {
            format!("{{\"order_id\": \"#{i}\"}}")
        };
    }
    let countries = ["US", "DE", "IN", "BR", "JP"];
    // Every 50th order is a refund (negative amount): a `where: amount > 0` leaves it out.
    let amount = if i % 50 == 25 { -5.0 } else { 10.0 + (i % 90) as f64 * 1.5 };
    format!(
        "{{\"order_id\": {i}, \"amount\": {amount:.2}, \"ts\": \"2024-06-01T12:{:02}:{:02}Z\", \"tags\": [\"web\"], \"address\": {{\"country\": \"{}\"}}}}",
        (i / 60) % 60,
        i % 60,
        countries[i % countries.len()]
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_kinesis::Client::new(&config);
    if args.create {
        client.create_stream().stream_name(&args.stream).shard_count(args.shards).send().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream_arn = loop {
        let summary = client.describe_stream_summary().stream_name(&args.stream).send().await?;
        let description = summary.stream_description_summary().ok_or("DescribeStreamSummary gave no summary")?;
        if description.stream_status() == &StreamStatus::Active {
            break description.stream_arn().to_owned();
        }
        if Instant::now() > deadline {
            return Err(format!("stream {} is not ACTIVE after 60 s", args.stream).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    let mut put = 0;
    let aggregate = usize::try_from(args.aggregate)?;
    // Records per call: 500 entries, or fewer aggregates when 500 would pass the call's byte limit.
    let per_call = if aggregate == 1 { BATCH } else { aggregate * (CALL_BYTES / (aggregate * 300)).clamp(1, BATCH) };
    for start in (0..args.records).step_by(per_call) {
        if calls.len() >= args.concurrency.max(1) {
            put += calls.join_next().await.ok_or("no call in flight")???;
        }
        let end = (start + per_call).min(args.records);
        let entries = (start..end)
            .step_by(aggregate)
            .map(|first| {
                let last = (first + aggregate).min(end);
                let partition_key = format!("customer-{}", (first / aggregate) % 97);
                let data = if aggregate == 1 {
                    event(first, args.malformed_every, args.kind).into_bytes()
                } else {
                    let payloads: Vec<String> =
                        (first..last).map(|i| event(i, args.malformed_every, args.kind)).collect();
                    let records: Vec<(&str, Option<u128>, &[u8])> =
                        payloads.iter().map(|payload| (partition_key.as_str(), None, payload.as_bytes())).collect();
                    tributary_reader::kpl::pack(&records)
                };
                PutRecordsRequestEntry::builder().data(Blob::new(data)).partition_key(partition_key).build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (client, stream_arn) = (client.clone(), stream_arn.clone());
        calls.spawn(async move {
            let output = client
                .put_records()
                .stream_arn(&stream_arn)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|error| format!("PutRecords: {}", aws_sdk_kinesis::error::DisplayErrorContext(error)))?;
            match output.failed_record_count().unwrap_or(0) {
                0 => Ok::<usize, String>(end - start),
                failed => Err(format!("{failed} records were refused")),
            }
        });
    }
    while let Some(done) = calls.join_next().await {
        put += done??;
    }
    eprintln!("put {put} records in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("put {put} records into {stream_arn}");
    println!("{stream_arn}");
    Ok(())
}
