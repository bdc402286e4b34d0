//! Codec throughput, side by side with the peers, single-threaded, on a
//! realistic event schema (~250 B per JSON record):
//!
//! - JSON: ours vs arrow-json's `Decoder` (same schema), at 0% and 1% malformed.
//!   arrow-json fails a whole batch on one bad row, so at 1% it runs the
//!   workaround a user would write: on a failed batch, find the bad lines one
//!   by one and decode the rest again.
//! - Avro (Confluent-framed): ours (schemas from a registry on 127.0.0.1) vs
//!   apache-avro (`from_avro_datum` → `Value` → Arrow builders) vs arrow-avro's
//!   `Decoder`; at 1% malformed arrow-avro rebuilds and replays the batch
//!   without the bad record (it cannot roll back a half-decoded one).
//!
//! - The source's rules on whole batches (`json_rules`): decoding alone, then
//!   with a 50%-selective `where`, with `sample: {rate: 0.5, using: [user]}`,
//!   and with `sample: 0.5` hashing every field but the timestamp.
//!
//! Every variant decodes the same records into 8192-row batches.
//! `TRIBUTARY_BENCH_RECORDS` sets the record count (default 1,000,000).
//!
//! ```text
//! cargo bench -p tributary-codec --bench codec
//! ```

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;

use apache_avro::types::Value;
use apache_avro::{Schema as AvroSchema, from_avro_datum};
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tributary_codec::{Decoder, RecordMeta, SourceRules};

mod events;

use events::{BATCH, Event, WRITER, avro_datum, device_fields, events, ours, source, source_with};

const SCHEMA_ID: u32 = 1;

fn json_record(e: &Event) -> Vec<u8> {
    let ts = chrono::DateTime::<Utc>::from_timestamp_micros(e.ts_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default();
    let value = serde_json::json!({
        "id": e.id, "user": e.user, "event": e.event, "ts": ts, "amount": e.amount, "country": e.country,
        "tags": e.tags, "device": {"os": e.os, "version": e.version, "mobile": e.mobile},
        "referrer": e.referrer, "session": e.session,
    });
    serde_json::to_vec(&value).expect("serialise")
}

fn avro_record(schema: &AvroSchema, e: &Event) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&SCHEMA_ID.to_be_bytes());
    framed.extend_from_slice(&avro_datum(schema, e));
    framed
}

/// Every 100th record cut in half: malformed for every decoder.
fn corrupt(records: &[Vec<u8>]) -> Vec<Vec<u8>> {
    records.iter().enumerate().map(|(i, r)| if i % 100 == 50 { r[..r.len() / 2].to_vec() } else { r.clone() }).collect()
}

fn registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let body = serde_json::json!({ "schema": WRITER }).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = &stream;
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    url
}

/// [`ours`], then the source's rules on each batch, as the worker applies them.
fn ours_with_rules(decoder: &mut Decoder, rules: &mut SourceRules, records: &[Vec<u8>]) -> (usize, usize) {
    let meta = RecordMeta { shard_id: "shardId-000000000000", sequence_number: "1", ..RecordMeta::default() };
    let (mut rows, mut left_out) = (0, 0);
    for chunk in records.chunks(BATCH) {
        for record in chunk {
            decoder.decode(record, &meta).expect("no transient error");
        }
        let out = decoder.flush().expect("flush");
        let applied = rules.apply(&out.batch).expect("rules apply");
        rows += applied.batch.num_rows();
        left_out += out.batch.num_rows() - applied.batch.num_rows();
        black_box(applied);
    }
    (rows, left_out)
}

/// arrow-json as a user would drive it: the batch's records joined by newlines, decoded in one call.
fn arrow_json_decode(schema: &SchemaRef, lines: &[&[u8]]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut buffer = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        buffer.extend_from_slice(line);
        buffer.push(b'\n');
    }
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(BATCH).build_decoder()?;
    let mut rest = buffer.as_slice();
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    decoder.flush()?.ok_or_else(|| arrow_schema::ArrowError::JsonError("no rows".into()))
}

/// arrow-json on 8192-line batches; a failed batch is redone without its bad lines.
fn arrow_json(schema: &SchemaRef, records: &[Vec<u8>]) -> (usize, usize) {
    let (mut rows, mut rejected) = (0, 0);
    for chunk in records.chunks(BATCH) {
        let lines: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        match arrow_json_decode(schema, &lines) {
            Ok(batch) => rows += black_box(batch).num_rows(),
            Err(_) => {
                let good: Vec<&[u8]> =
                    lines.iter().copied().filter(|l| arrow_json_decode(schema, &[l]).is_ok()).collect();
                rejected += lines.len() - good.len();
                rows += black_box(arrow_json_decode(schema, &good).expect("good lines decode")).num_rows();
            }
        }
    }
    (rows, rejected)
}

/// apache-avro: each datum to a `Value`, then into Arrow builders.
fn apache_avro(schema: &AvroSchema, arrow: &SchemaRef, records: &[Vec<u8>]) -> (usize, usize) {
    let (mut rows, mut rejected) = (0, 0);
    for chunk in records.chunks(BATCH) {
        let mut builders = ValueBuilders::new();
        for record in chunk {
            let mut datum = &record[5..];
            match from_avro_datum(schema, &mut datum, None) {
                // A datum must be consumed exactly (0.2x can return a value for a truncated one).
                Ok(value) if datum.is_empty() && builders.accepts(&value) => builders.append(&value),
                _ => rejected += 1,
            }
        }
        let batch = builders.finish(arrow);
        rows += black_box(batch).num_rows();
    }
    (rows, rejected)
}

fn arrow_avro_decoder() -> arrow_avro::reader::Decoder {
    let mut store = arrow_avro::schema::SchemaStore::new_with_type(arrow_avro::schema::FingerprintAlgorithm::Id);
    store
        .set(arrow_avro::schema::Fingerprint::Id(SCHEMA_ID), arrow_avro::schema::AvroSchema::new(WRITER.to_owned()))
        .expect("store");
    arrow_avro::reader::ReaderBuilder::new()
        .with_writer_schema_store(store)
        .with_batch_size(BATCH)
        .build_decoder()
        .expect("arrow-avro decoder")
}

fn arrow_avro_batch(records: &[&[u8]]) -> Result<RecordBatch, String> {
    let mut decoder = arrow_avro_decoder();
    for record in records {
        let used = decoder.decode(record).map_err(|e| e.to_string())?;
        if used != record.len() {
            return Err("record not fully consumed".into());
        }
    }
    decoder.flush().map_err(|e| e.to_string())?.ok_or_else(|| "no rows".to_owned())
}

/// arrow-avro on 8192-record batches; a failed batch is rebuilt and replayed without its bad records.
fn arrow_avro(records: &[Vec<u8>]) -> (usize, usize) {
    let (mut rows, mut rejected) = (0, 0);
    for chunk in records.chunks(BATCH) {
        let all: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        match arrow_avro_batch(&all) {
            Ok(batch) => rows += black_box(batch).num_rows(),
            Err(_) => {
                let good: Vec<&[u8]> = all.iter().copied().filter(|r| arrow_avro_batch(&[r]).is_ok()).collect();
                rejected += all.len() - good.len();
                rows += black_box(arrow_avro_batch(&good).expect("good records decode")).num_rows();
            }
        }
    }
    (rows, rejected)
}

/// Arrow builders for the event schema, fed from apache-avro `Value`s.
struct ValueBuilders {
    id: Int64Builder,
    user: StringBuilder,
    event: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    amount: Float64Builder,
    country: StringBuilder,
    tags: ListBuilder<StringBuilder>,
    device: StructBuilder,
    referrer: StringBuilder,
    session: StringBuilder,
}

impl ValueBuilders {
    fn new() -> Self {
        ValueBuilders {
            id: Int64Builder::with_capacity(BATCH),
            user: StringBuilder::new(),
            event: StringBuilder::new(),
            ts: TimestampMicrosecondBuilder::with_capacity(BATCH).with_timezone("UTC"),
            amount: Float64Builder::with_capacity(BATCH),
            country: StringBuilder::new(),
            tags: ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
                "item",
                DataType::Utf8,
                false,
            ))),
            device: StructBuilder::from_fields(device_fields(), BATCH),
            referrer: StringBuilder::new(),
            session: StringBuilder::new(),
        }
    }

    /// Whether the value has the event's shape (checked before appending, so nothing is half-written).
    fn accepts(&self, value: &Value) -> bool {
        matches!(value, Value::Record(fields) if fields.len() == 10)
    }

    fn append(&mut self, value: &Value) {
        let Value::Record(fields) = value else { return };
        for (name, field) in fields {
            match (name.as_str(), field) {
                ("id", Value::Long(v)) => self.id.append_value(*v),
                ("user", Value::String(s)) => self.user.append_value(s),
                ("event", Value::String(s)) => self.event.append_value(s),
                ("ts", Value::TimestampMicros(v)) => self.ts.append_value(*v),
                ("amount", Value::Double(v)) => self.amount.append_value(*v),
                ("country", Value::String(s)) => self.country.append_value(s),
                ("tags", Value::Array(items)) => {
                    for item in items {
                        if let Value::String(s) = item {
                            self.tags.values().append_value(s);
                        }
                    }
                    self.tags.append(true);
                }
                ("device", Value::Record(device)) => {
                    for (name, v) in device {
                        match (name.as_str(), v) {
                            ("os", Value::String(s)) => {
                                self.device.field_builder::<StringBuilder>(0).expect("os").append_value(s)
                            }
                            ("version", Value::String(s)) => {
                                self.device.field_builder::<StringBuilder>(1).expect("version").append_value(s)
                            }
                            ("mobile", Value::Boolean(b)) => {
                                self.device.field_builder::<BooleanBuilder>(2).expect("mobile").append_value(*b)
                            }
                            _ => {}
                        }
                    }
                    self.device.append(true);
                }
                ("referrer", Value::Union(_, inner)) => match inner.as_ref() {
                    Value::String(s) => self.referrer.append_value(s),
                    _ => self.referrer.append_null(),
                },
                ("session", Value::String(s)) => self.session.append_value(s),
                _ => {}
            }
        }
    }

    fn finish(mut self, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.referrer.finish()),
            Arc::new(self.session.finish()),
        ];
        RecordBatch::try_new(schema.clone(), columns).expect("apache-avro batch")
    }
}

fn record_count() -> usize {
    std::env::var("TRIBUTARY_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn bench(c: &mut Criterion) {
    let count = record_count();
    let events = events(count);
    let json_clean: Vec<Vec<u8>> = events.iter().map(json_record).collect();
    let writer = AvroSchema::parse_str(WRITER).expect("writer schema");
    let avro_clean: Vec<Vec<u8>> = events.iter().map(|e| avro_record(&writer, e)).collect();
    drop(events);
    let json_bad = corrupt(&json_clean);
    let avro_bad = corrupt(&avro_clean);
    let json_bytes: usize = json_clean.iter().map(Vec::len).sum();
    let avro_bytes: usize = avro_clean.iter().map(Vec::len).sum();
    eprintln!(
        "{count} records; JSON {:.0} B/record, Avro {:.0} B/record",
        json_bytes as f64 / count as f64,
        avro_bytes as f64 / count as f64
    );

    let json_source = source("json");
    let arrow_schema = Decoder::new(&json_source, None).expect("compiles").schema();
    let url = registry();
    let avro_source = source(&format!("{{avro: {{registry: confluent, url: \"{url}\"}}}}"));

    for (label, json, avro) in [("0pct", &json_clean, &avro_clean), ("1pct", &json_bad, &avro_bad)] {
        let mut decoder = Decoder::new(&json_source, None).expect("compiles");
        let mut avro_decoder = Decoder::new(&avro_source, None).expect("compiles");
        // Sanity: every variant agrees on what is good (skippable when profiling one variant).
        if std::env::var_os("TRIBUTARY_BENCH_SKIP_CHECKS").is_none() {
            let expected_rejected = if label == "0pct" { 0 } else { (0..count).filter(|i| i % 100 == 50).count() };
            let expected = (count - expected_rejected, expected_rejected);
            assert_eq!(ours(&mut decoder, json), expected, "ours json");
            assert_eq!(arrow_json(&arrow_schema, json), expected, "arrow-json");
            assert_eq!(ours(&mut avro_decoder, avro), expected, "ours avro");
            assert_eq!(apache_avro(&writer, &arrow_schema, avro), expected, "apache-avro");
            assert_eq!(arrow_avro(avro), expected, "arrow-avro");
        }

        let mut group = c.benchmark_group(format!("json_{label}"));
        group.sample_size(10).throughput(Throughput::Bytes(json_bytes as u64));
        group.bench_function(BenchmarkId::new("tributary", count), |b| b.iter(|| ours(&mut decoder, json)));
        group.bench_function(BenchmarkId::new("arrow_json", count), |b| b.iter(|| arrow_json(&arrow_schema, json)));
        group.finish();

        let mut group = c.benchmark_group(format!("avro_{label}"));
        group.sample_size(10).throughput(Throughput::Bytes(avro_bytes as u64));
        group.bench_function(BenchmarkId::new("tributary", count), |b| b.iter(|| ours(&mut avro_decoder, avro)));
        group.bench_function(BenchmarkId::new("apache_avro", count), |b| {
            b.iter(|| apache_avro(&writer, &arrow_schema, avro))
        });
        group.bench_function(BenchmarkId::new("arrow_avro", count), |b| b.iter(|| arrow_avro(avro)));
        group.finish();
    }
}

/// The rules' cost over decoding alone (the worker's path, minus I/O).
fn bench_rules(c: &mut Criterion) {
    let count = record_count();
    let json: Vec<Vec<u8>> = events(count).iter().map(json_record).collect();
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    let variants = [
        ("where_50pct", "    where: \"id % 2 = 0\"\n"),
        ("sample_user_50pct", "    sample: {rate: 0.5, using: [user]}\n"),
        ("sample_all_fields_50pct", "    sample: 0.5\n"),
    ];
    let mut group = c.benchmark_group("json_rules");
    group.sample_size(10).throughput(Throughput::Bytes(json_bytes as u64));
    let mut decoder = Decoder::new(&source("json"), None).expect("compiles");
    group.bench_function(BenchmarkId::new("decode_only", count), |b| b.iter(|| ours(&mut decoder, &json)));
    for (name, rules) in variants {
        let source = source_with("json", rules);
        let mut decoder = Decoder::new(&source, None).expect("compiles");
        let mut rules = SourceRules::new(&source, None);
        let (kept, left_out) = ours_with_rules(&mut decoder, &mut rules, &json);
        eprintln!("{name}: {kept} kept, {left_out} left out");
        group.bench_function(BenchmarkId::new(name, count), |b| {
            b.iter(|| ours_with_rules(&mut decoder, &mut rules, &json))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_rules);
criterion_main!(benches);
