//! Reader-only throughput against kinesis-local, side by side with a plain
//! boto3 GetRecords loop over the same stream (benches/boto3_reader.py).
//!
//! ```text
//! ./scripts/bench-reader.sh            # starts the emulators, fills a stream, runs this, stops them
//! TRIBUTARY_BENCH_RECORDS=100000 TRIBUTARY_BENCH_SHARDS=16 ./scripts/bench-reader.sh
//! ```
//!
//! Both sides read every record of a freshly filled stream from TRIM_HORIZON.
//! The emulator's own CPU dominates wall time, so the comparison is each
//! consumer's CPU seconds (user + system) per 1M records. Our reader runs on a
//! current-thread tokio runtime: one core.
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use tributary_reader::{MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, StartPosition};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system, all threads) this process has used so far,
/// from /proc/self/stat (in USER_HZ ticks, 100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_KINESIS").expect("run through scripts/bench-reader.sh");
    let python = std::env::var("TRIBUTARY_TEST_MOTO_PYTHON").expect("moto's venv python (has boto3)");
    let records = env_or("TRIBUTARY_BENCH_RECORDS", 100_000);
    let shards = env_or("TRIBUTARY_BENCH_SHARDS", 16) as i32;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .build();
    let client = aws_sdk_kinesis::Client::from_conf(config);
    // scripts/bench-reader.sh fills the stream (examples/producer.rs --kind events);
    // filling kinesis-local takes minutes per 100k records, so a filled stream is reused.
    let stream_arn =
        std::env::var("TRIBUTARY_BENCH_STREAM_ARN").expect("TRIBUTARY_BENCH_STREAM_ARN: run scripts/bench-reader.sh");

    // Ours: every shard from TRIM_HORIZON until all records are handed out.
    let (cpu_before, wall_before) = (cpu_seconds(), Instant::now());
    let (read, bytes, calls) = runtime.block_on(async {
        let target =
            ReadTarget { stream_arn: stream_arn.clone(), start: StartPosition::TrimHorizon, scope: "bench".into() };
        let mut reader =
            Reader::start(client.clone(), target, Arc::new(MemoryCheckpointStore::new()), ReaderConfig::default());
        let (mut read, mut bytes) = (0usize, 0usize);
        while read < records {
            let batch = reader.next().await.unwrap().unwrap();
            read += batch.records.len();
            bytes += batch.payload_bytes();
        }
        let calls: u64 = reader.metrics().snapshot().values().map(|shard| shard.calls).sum();
        reader.stop().await;
        (read, bytes, calls)
    });
    let (ours_cpu, ours_wall) = (cpu_seconds() - cpu_before, wall_before.elapsed().as_secs_f64());
    let mb = bytes as f64 / 1e6;
    let per_million = |cpu: f64| cpu * 1e6 / read as f64;
    println!(
        "reader benchmark: {read} records ({mb:.1} MB) over {shards} shards, kinesis-local; {calls} GetRecords calls"
    );
    println!(
        "  tributary-reader: {ours_wall:6.2} s wall, {ours_cpu:6.2} CPU s, {:7.2} CPU s per 1M records, {:8.0} records per CPU s",
        per_million(ours_cpu),
        read as f64 / ours_cpu
    );

    // The peer, on the same stream.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../benches/boto3_reader.py");
    let output = Command::new(&python).arg(script).arg(&stream_arn).arg(records.to_string()).output().unwrap();
    assert!(output.status.success(), "boto3 loop failed: {}", String::from_utf8_lossy(&output.stderr));
    let peer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let number = |name: &str| peer[name].as_f64().unwrap();
    let (peer_cpu, peer_wall) = (number("cpu_seconds"), number("wall_seconds"));
    assert_eq!(number("records") as usize, read, "both read the whole stream");

    println!(
        "  boto3 loop:       {:6.2} s wall, {:6.2} CPU s, {:7.2} CPU s per 1M records, {:8.0} records per CPU s",
        peer_wall,
        peer_cpu,
        per_million(peer_cpu),
        read as f64 / peer_cpu
    );
    println!("  CPU per record: boto3 / tributary = {:.1}x", peer_cpu / ours_cpu);
}
