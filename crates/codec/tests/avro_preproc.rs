//! Avro `preproc`: refs through records, maps and unions (also from a field
//! that is a dataset field itself), constants and `eval`, with the same rules
//! as JSON for what is missing.
#![allow(missing_docs)]

mod common;

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use tributary_codec::{CompileError, Decoder, ReasonCode};

const WRITER: &str = r#"{"type": "record", "name": "Order", "fields": [
  {"name": "id", "type": "long"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
    {"name": "tier", "type": "int"},
    {"name": "address", "type": ["null", {"type": "record", "name": "Address", "fields": [
      {"name": "city", "type": "string"}, {"name": "country", "type": "string"}]}]}]}},
  {"name": "attrs", "type": {"type": "map", "values": "string"}},
  {"name": "extra", "type": ["null", {"type": "map", "values": "long"}]},
  {"name": "device", "type": {"type": "record", "name": "Device", "fields": [{"name": "os", "type": "string"}]}}
]}"#;

const READER: [(&str, &str); 10] = [
    ("id", "int64"),
    ("ts", "timestamp"),
    ("country", "optional<string>"),
    ("channel", "optional<string>"),
    ("score", "optional<int64>"),
    ("region", "string"),
    ("device", "struct<os: string>"),
    ("os", "string"),
    ("source", "string"),
    ("total", "optional<int64>"),
];

const PREPROC: &str = "    preproc:\n      country: {ref: \"customer[address][country]\"}\n      channel: {ref: \"attrs[channel]\"}\n      score: {ref: \"extra[score]\"}\n      region: {ref: \"attrs[region]\"}\n      os: {ref: \"device[os]\"}\n      source: {value: kinesis}\n      total: {eval: \"id * 10\"}\n";

fn source(preproc: &str) -> tributary_source::Source {
    let schema = WRITER.replace('\n', " ");
    common::source(&READER, &format!("{{avro: {{schema: '{schema}'}}}}"), preproc)
}

struct Order<'a> {
    id: i64,
    country: Option<&'a str>,
    attrs: &'a [(&'a str, &'a str)],
    score: Option<i64>,
    os: &'a str,
}

fn datum(order: &Order<'_>) -> Vec<u8> {
    let address = match order.country {
        Some(country) => Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("city".into(), Value::String("Berlin".into())),
                ("country".into(), Value::String(country.into())),
            ])),
        ),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let extra = match order.score {
        Some(score) => Value::Union(1, Box::new(Value::Map([("score".to_owned(), Value::Long(score))].into()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let value = Value::Record(vec![
        ("id".into(), Value::Long(order.id)),
        ("ts".into(), Value::TimestampMillis(1_704_067_200_000)),
        ("customer".into(), Value::Record(vec![("tier".into(), Value::Int(2)), ("address".into(), address)])),
        (
            "attrs".into(),
            Value::Map(order.attrs.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).into()))).collect()),
        ),
        ("extra".into(), extra),
        ("device".into(), Value::Record(vec![("os".into(), Value::String(order.os.into()))])),
    ]);
    to_avro_datum(&Schema::parse_str(WRITER).expect("schema"), value).expect("encodes")
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).unwrap_or_else(|| panic!("no {name}"));
    column.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    batch.column_by_name(name).unwrap_or_else(|| panic!("no {name}")).as_primitive::<Int64Type>().iter().collect()
}

#[test]
fn refs_walk_records_maps_and_unions_and_a_field_feeds_itself_and_a_ref() {
    let mut decoder = Decoder::new(&source(PREPROC), None).expect("compiles");
    let full = Order {
        id: 1,
        country: Some("DE"),
        attrs: &[("other", "x"), ("channel", "web"), ("region", "eu")],
        score: Some(5),
        os: "android",
    };
    let sparse = Order { id: 2, country: None, attrs: &[("region", "us")], score: None, os: "ios" };
    let out = common::decode_all(&mut decoder, &[datum(&full), datum(&sparse)]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let batch = out.batch;
    assert_eq!(strings(&batch, "country"), [Some("DE".into()), None], "record → union → record; a null on the way");
    assert_eq!(strings(&batch, "channel"), [Some("web".into()), None], "a map key, found or not");
    assert_eq!(ints(&batch, "score"), [Some(5), None], "union → map");
    assert_eq!(strings(&batch, "region"), [Some("eu".into()), Some("us".into())]);
    assert_eq!(strings(&batch, "os"), [Some("android".into()), Some("ios".into())], "walked from `device`");
    let device = batch.column_by_name("device").expect("device").as_struct();
    assert_eq!(device.column(0).as_string::<i32>().value(1), "ios", "and `device` still has its own value");
    assert_eq!(strings(&batch, "source"), [Some("kinesis".into()), Some("kinesis".into())]);
    assert_eq!(ints(&batch, "total"), [Some(10), Some(20)]);
    assert_eq!(ints(&batch, "id"), [Some(1), Some(2)]);
}

#[test]
fn a_required_ref_that_is_missing_rejects_that_record_only() {
    let mut decoder = Decoder::new(&source(PREPROC), None).expect("compiles");
    let good = |id| Order { id, country: None, attrs: &[("region", "eu")], score: None, os: "ios" };
    let missing = Order { id: 9, country: None, attrs: &[("channel", "web")], score: None, os: "ios" };
    let out = common::decode_all(&mut decoder, &[datum(&good(1)), datum(&missing), datum(&good(2))]);
    assert_eq!(ints(&out.batch, "id"), [Some(1), Some(2)]);
    assert_eq!(out.rejections.len(), 1);
    assert_eq!((out.rejections[0].code(), &*out.rejections[0].field), (ReasonCode::MissingField, "region"));
    assert_eq!(out.batch.column_by_name("channel").expect("channel").null_count(), 2);
}

#[test]
fn a_required_ref_the_writer_cannot_have_fails_the_commit() {
    let preproc = PREPROC.replace("attrs[region]", "nowhere[region]");
    match Decoder::new(&source(&preproc), None) {
        Err(CompileError::SchemaIncompatible(message)) => {
            assert!(message.contains("`region`") && message.contains("preproc"), "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}
