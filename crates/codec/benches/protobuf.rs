//! Protobuf and Glue-framed Avro throughput, side by side, one thread, one run:
//!
//! - Protobuf → Arrow: ours (a compiled program straight into the columns) vs
//!   prost-reflect's `DynamicMessage::decode` then appending each field to
//!   arrow-rs builders, the way a generic consumer would. Target: ≥ 3×.
//! - Glue-framed Avro (half of the records zlib-compressed, half not) vs the
//!   same datums raw. Target: within 5%; plus the uncompressed half alone,
//!   where the framing is the only difference.
//!
//! The records are the codec bench's events (`events/`: ten fields, strings,
//! a timestamp, a list, a nested struct, an optional), 8192-row batches. Each
//! variant runs `ROUNDS` times, interleaved; the best round counts.
//! `TRIBUTARY_BENCH_RECORDS` sets the record count (default 500,000).
//!
//! ```text
//! cargo bench -p tributary-codec --bench protobuf
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::Schema as AvroSchema;
use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, SchemaRef};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use tributary_codec::{Decoder, GlueSchemaSource, GlueSchemaVersion, Registries, RegistryError, glue_frame};

mod events;

use events::{BATCH, Event, WRITER, avro_datum, device_fields, events, ours, source};

const ROUNDS: usize = 5;

const PROTO: &str = r#"syntax = "proto3";
package bench;
import "google/protobuf/timestamp.proto";
message Device { string os = 1; string version = 2; bool mobile = 3; }
message Event {
  int64 id = 1;
  string user = 2;
  string event = 3;
  google.protobuf.Timestamp ts = 4;
  double amount = 5;
  string country = 6;
  repeated string tags = 7;
  Device device = 8;
  optional string referrer = 9;
  string session = 10;
}"#;

fn pool() -> DescriptorPool {
    struct Files;
    impl protox::file::FileResolver for Files {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            match name {
                "bench.proto" => protox::file::File::from_source(name, PROTO),
                _ => protox::file::GoogleFileResolver::new().open_file(name),
            }
        }
    }
    let mut compiler = protox::Compiler::with_file_resolver(Files);
    compiler.include_imports(true);
    compiler.open_file("bench.proto").expect("compiles");
    compiler.descriptor_pool()
}

fn protobuf_record(pool: &DescriptorPool, e: &Event) -> Vec<u8> {
    let message = |name: &str| DynamicMessage::new(pool.get_message_by_name(name).expect("message"));
    let mut event = message("bench.Event");
    event.set_field_by_name("id", Value::I64(e.id));
    event.set_field_by_name("user", Value::String(e.user.clone()));
    event.set_field_by_name("event", Value::String(e.event.to_owned()));
    let mut ts = message("google.protobuf.Timestamp");
    ts.set_field_by_name("seconds", Value::I64(e.ts_micros.div_euclid(1_000_000)));
    ts.set_field_by_name("nanos", Value::I32((e.ts_micros.rem_euclid(1_000_000) * 1_000) as i32));
    event.set_field_by_name("ts", Value::Message(ts));
    event.set_field_by_name("amount", Value::F64(e.amount));
    event.set_field_by_name("country", Value::String(e.country.to_owned()));
    event.set_field_by_name("tags", Value::List(e.tags.iter().map(|t| Value::String((*t).to_owned())).collect()));
    let mut device = message("bench.Device");
    device.set_field_by_name("os", Value::String(e.os.to_owned()));
    device.set_field_by_name("version", Value::String(e.version.clone()));
    device.set_field_by_name("mobile", Value::Bool(e.mobile));
    event.set_field_by_name("device", Value::Message(device));
    if let Some(referrer) = &e.referrer {
        event.set_field_by_name("referrer", Value::String(referrer.clone()));
    }
    event.set_field_by_name("session", Value::String(e.session.clone()));
    event.encode_to_vec()
}

/// Every version id names the bench's Avro writer schema.
#[derive(Debug)]
struct OneSchema;

impl GlueSchemaSource for OneSchema {
    fn schema_version(&self, _id: u128) -> Result<Option<GlueSchemaVersion>, RegistryError> {
        Ok(Some(GlueSchemaVersion {
            data_format: "AVRO".to_owned(),
            status: "AVAILABLE".to_owned(),
            definition: WRITER.to_owned(),
        }))
    }
}

/// The peer: `DynamicMessage::decode`, then each field appended to an arrow-rs builder.
fn dynamic_message(descriptor: &MessageDescriptor, schema: &SchemaRef, records: &[Vec<u8>]) -> (usize, usize) {
    let (mut rows, mut rejected) = (0, 0);
    let text = |value: Option<std::borrow::Cow<'_, Value>>| match value.as_deref() {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    for chunk in records.chunks(BATCH) {
        let mut id = Int64Builder::with_capacity(chunk.len());
        let mut user = StringBuilder::new();
        let mut event = StringBuilder::new();
        let mut ts = TimestampMicrosecondBuilder::with_capacity(chunk.len()).with_timezone("UTC");
        let mut amount = Float64Builder::with_capacity(chunk.len());
        let mut country = StringBuilder::new();
        let mut tags = ListBuilder::new(StringBuilder::new()).with_field(Field::new("item", DataType::Utf8, false));
        let mut device = StructBuilder::from_fields(device_fields(), chunk.len());
        let mut referrer = StringBuilder::new();
        let mut session = StringBuilder::new();
        for record in chunk {
            let Ok(message) = DynamicMessage::decode(descriptor.clone(), record.as_slice()) else {
                rejected += 1;
                continue;
            };
            id.append_value(message.get_field_by_name("id").and_then(|v| v.as_i64()).unwrap_or_default());
            user.append_value(text(message.get_field_by_name("user")));
            event.append_value(text(message.get_field_by_name("event")));
            let micros = match message.get_field_by_name("ts").as_deref() {
                Some(Value::Message(t)) => {
                    let seconds = t.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or_default();
                    let nanos = t.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or_default();
                    seconds * 1_000_000 + i64::from(nanos) / 1_000
                }
                _ => 0,
            };
            ts.append_value(micros);
            amount.append_value(message.get_field_by_name("amount").and_then(|v| v.as_f64()).unwrap_or_default());
            country.append_value(text(message.get_field_by_name("country")));
            if let Some(Value::List(items)) = message.get_field_by_name("tags").as_deref() {
                for item in items {
                    tags.values().append_value(item.as_str().unwrap_or_default());
                }
            }
            tags.append(true);
            if let Some(Value::Message(d)) = message.get_field_by_name("device").as_deref() {
                let os = device.field_builder::<StringBuilder>(0).expect("os");
                os.append_value(text(d.get_field_by_name("os")));
                let version = device.field_builder::<StringBuilder>(1).expect("version");
                version.append_value(text(d.get_field_by_name("version")));
                let mobile = device.field_builder::<BooleanBuilder>(2).expect("mobile");
                mobile.append_value(d.get_field_by_name("mobile").and_then(|v| v.as_bool()).unwrap_or_default());
            }
            device.append(true);
            match message.has_field_by_name("referrer") {
                true => referrer.append_value(text(message.get_field_by_name("referrer"))),
                false => referrer.append_null(),
            }
            session.append_value(text(message.get_field_by_name("session")));
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(user.finish()),
            Arc::new(event.finish()),
            Arc::new(ts.finish()),
            Arc::new(amount.finish()),
            Arc::new(country.finish()),
            Arc::new(tags.finish()),
            Arc::new(device.finish()),
            Arc::new(referrer.finish()),
            Arc::new(session.finish()),
        ];
        rows += black_box(RecordBatch::try_new(schema.clone(), columns).expect("batch")).num_rows();
    }
    (rows, rejected)
}

fn record_count() -> usize {
    std::env::var("TRIBUTARY_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000)
}

/// A named variant: decodes every record, answering (rows, rejected).
type Variant<'a> = (&'a str, &'a mut dyn FnMut() -> (usize, usize));

/// Runs each variant `ROUNDS` times, interleaved; the best time of each.
fn race(variants: &mut [Variant<'_>]) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; variants.len()];
    for _ in 0..ROUNDS {
        for (i, (name, run)) in variants.iter_mut().enumerate() {
            let started = Instant::now();
            let (rows, rejected) = run();
            let took = started.elapsed();
            assert_eq!(rejected, 0, "{name} rejected records");
            black_box(rows);
            best[i] = best[i].min(took);
        }
    }
    best
}

fn report(records: usize, variants: &[&str], times: &[Duration]) {
    for (name, time) in variants.iter().zip(times) {
        println!("{name:<44} {:>10.0} rows/s  ({:.3} s)", records as f64 / time.as_secs_f64(), time.as_secs_f64());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` run of the bench target should stay quick.
    let count = if std::env::args().any(|a| a == "--bench") { record_count() } else { 2_000 };
    let data = events(count);

    let pool = pool();
    let descriptor = pool.get_message_by_name("bench.Event").expect("Event");
    let protobuf: Vec<Vec<u8>> = data.iter().map(|e| protobuf_record(&pool, e)).collect();
    let format =
        format!("{{protobuf: {{message: bench.Event, schema: {}}}}}", serde_json::to_string(PROTO).expect("json"));
    let mut decoder = Decoder::new(&source(&format), None).expect("compiles");
    decoder.expect_rows(BATCH);
    let arrow_schema = decoder.schema();
    let bytes: usize = protobuf.iter().map(Vec::len).sum();
    println!("Protobuf: {count} records, {:.0} B each on average", bytes as f64 / count as f64);
    let names = ["ours (compiled program → Arrow)", "prost-reflect DynamicMessage → Arrow builders"];
    let times = race(&mut [
        (names[0], &mut || ours(&mut decoder, &protobuf)),
        (names[1], &mut || dynamic_message(&descriptor, &arrow_schema, &protobuf)),
    ]);
    report(count, &names, &times);
    println!("ratio ours / prost-reflect: {:.2}x (target ≥ 3x)\n", times[1].as_secs_f64() / times[0].as_secs_f64());

    let avro = AvroSchema::parse_str(WRITER).expect("schema");
    let raw: Vec<Vec<u8>> = data.iter().map(|e| avro_datum(&avro, e)).collect();
    let id = 0x1234_5678_9abc_def0_1234_5678_9abc_def0;
    let framed_mixed: Vec<Vec<u8>> = raw.iter().enumerate().map(|(i, d)| glue_frame(id, d, i % 2 == 1)).collect();
    let framed_plain: Vec<Vec<u8>> = raw.iter().map(|d| glue_frame(id, d, false)).collect();
    let mut inline = Decoder::new(&source(&format!("{{avro: {{schema: '{}'}}}}", WRITER.replace('\n', " "))), None)
        .expect("compiles");
    let glue_source = source("{avro: {registry: {glue: {registry_name: bench}}}}");
    let registries = || Registries { confluent: None, glue: Some(Arc::new(OneSchema)) };
    let mut glue_mixed = Decoder::with_registries(&glue_source, registries()).expect("compiles");
    let mut glue_plain = Decoder::with_registries(&glue_source, registries()).expect("compiles");
    for decoder in [&mut inline, &mut glue_mixed, &mut glue_plain] {
        decoder.expect_rows(BATCH);
    }
    println!(
        "Avro: {count} records, {:.0} B each on average",
        raw.iter().map(Vec::len).sum::<usize>() as f64 / count as f64
    );
    let names = ["raw datums (inline schema)", "Glue-framed, half zlib", "Glue-framed, uncompressed"];
    let times = race(&mut [
        (names[0], &mut || ours(&mut inline, &raw)),
        (names[1], &mut || ours(&mut glue_mixed, &framed_mixed)),
        (names[2], &mut || ours(&mut glue_plain, &framed_plain)),
    ]);
    report(count, &names, &times);
    let slower = |t: Duration| (t.as_secs_f64() / times[0].as_secs_f64() - 1.0) * 100.0;
    println!(
        "Glue framing costs: uncompressed {:+.1}%, half zlib {:+.1}% (target: within 5%)",
        slower(times[2]),
        slower(times[1])
    );
}
