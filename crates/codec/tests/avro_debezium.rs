//! Debezium envelopes in Avro (inline writer schema, and Confluent-framed
//! through a registry): the same rows, `_op`s and reason codes as JSON.
#![allow(missing_docs)]

mod common;

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use tributary_codec::{Decoder, ReasonCode};

const ENVELOPE: &str = r#"{"type": "record", "name": "Envelope", "namespace": "shop.customers", "fields": [
  {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
    {"name": "id", "type": ["null", "long"]},
    {"name": "name", "type": ["null", "string"], "default": null},
    {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null}]}],
   "default": null},
  {"name": "after", "type": ["null", "Value"], "default": null},
  {"name": "source", "type": {"type": "record", "name": "Source", "fields": [{"name": "db", "type": "string"}]}},
  {"name": "op", "type": "string"},
  {"name": "ts_ms", "type": ["null", "long"], "default": null}
]}"#;

const FIELDS: [(&str, &str); 3] = [("id", "int64"), ("name", "string"), ("ts", "timestamp")];

fn row(id: Option<i64>, name: Option<&str>, ts_ms: Option<i64>) -> Value {
    let union = |value: Option<Value>| match value {
        Some(value) => Value::Union(1, Box::new(value)),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("id".into(), union(id.map(Value::Long))),
        ("name".into(), union(name.map(|n| Value::String(n.into())))),
        ("ts".into(), union(ts_ms.map(Value::TimestampMillis))),
    ])
}

fn envelope(op: &str, before: Option<Value>, after: Option<Value>, ts_ms: Option<i64>) -> Vec<u8> {
    let nullable = |value: Option<Value>| match value {
        Some(value) => Value::Union(1, Box::new(value)),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    let value = Value::Record(vec![
        ("before".into(), nullable(before)),
        ("after".into(), nullable(after)),
        ("source".into(), Value::Record(vec![("db".into(), Value::String("shop".into()))])),
        ("op".into(), Value::String(op.into())),
        ("ts_ms".into(), nullable(ts_ms.map(Value::Long))),
    ]);
    to_avro_datum(&Schema::parse_str(ENVELOPE).expect("schema"), value).expect("encodes")
}

const T1: i64 = 1_704_067_200_000;

fn changes() -> Vec<Vec<u8>> {
    vec![
        envelope("c", None, Some(row(Some(1), Some("a"), Some(T1))), Some(T1)),
        envelope("d", Some(row(Some(2), None, None)), None, Some(T1 + 5)),
        envelope("u", Some(row(Some(1), Some("a"), Some(T1))), Some(row(Some(1), Some("b"), Some(T1 + 1))), None),
        envelope("r", None, Some(row(Some(3), Some("c"), Some(T1 + 2))), None),
        envelope("d", Some(row(Some(3), Some("c"), Some(T1 + 3))), None, None),
    ]
}

fn check_changes(batch: &RecordBatch) {
    let ids: Vec<Option<i64>> = batch.column_by_name("id").expect("id").as_primitive::<Int64Type>().iter().collect();
    assert_eq!(ids, [Some(1), Some(2), Some(1), Some(3), Some(3)]);
    let ops: Vec<Option<&str>> = batch.column_by_name("_op").expect("_op").as_string::<i32>().iter().collect();
    assert_eq!(ops, ["upsert", "delete", "upsert", "upsert", "delete"].map(Some));
    let names: Vec<Option<&str>> = batch.column_by_name("name").expect("name").as_string::<i32>().iter().collect();
    assert_eq!(names, [Some("a"), None, Some("b"), Some("c"), None]);
    let times: Vec<Option<i64>> =
        batch.column_by_name("ts").expect("ts").as_primitive::<TimestampMicrosecondType>().iter().collect();
    let micros = |ms: i64| Some(ms * 1_000);
    assert_eq!(times, [micros(T1), micros(T1 + 5), micros(T1 + 1), micros(T1 + 2), micros(T1 + 3)]);
}

fn inline_source() -> tributary_source::Source {
    let schema = ENVELOPE.replace('\n', " ");
    common::source(&FIELDS, &format!("{{avro: {{schema: '{schema}'}}}}"), "      keys: [id]\n    cdc: debezium\n")
}

#[test]
fn inline_envelopes_give_upserts_and_deletes_with_the_envelope_time_when_before_has_none() {
    let mut decoder = Decoder::new(&inline_source(), None).expect("compiles");
    let out = common::decode_all(&mut decoder, &changes());
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    check_changes(&out.batch);
}

#[test]
fn envelopes_that_are_not_changes_are_rejected_with_their_codes() {
    let good = envelope("c", None, Some(row(Some(9), Some("z"), Some(T1))), None);
    let cases: [(Vec<u8>, ReasonCode, &str); 6] = [
        (envelope("x", None, Some(row(Some(1), Some("a"), Some(T1))), None), ReasonCode::CdcUnknownOp, ""),
        (envelope("c", None, None, None), ReasonCode::CdcNoEnvelope, ""),
        (envelope("d", None, None, Some(T1)), ReasonCode::CdcDeleteWithoutKeys, ""),
        (envelope("d", Some(row(None, Some("a"), Some(T1))), None, None), ReasonCode::CdcDeleteWithoutKeys, ""),
        (envelope("d", Some(row(Some(1), None, None)), None, None), ReasonCode::MissingField, "ts"),
        (envelope("u", None, Some(row(Some(1), None, Some(T1))), None), ReasonCode::NullNotAllowed, "name"),
    ];
    for (record, code, field) in cases {
        let mut decoder = Decoder::new(&inline_source(), None).expect("compiles");
        let out = common::decode_all(&mut decoder, &[good.clone(), record, good.clone()]);
        assert_eq!(out.batch.num_rows(), 2, "{code:?}: the neighbours stay");
        assert_eq!(out.rejections.len(), 1, "{code:?}");
        assert_eq!((out.rejections[0].code(), &*out.rejections[0].field), (code, field));
    }
}

#[test]
fn registry_envelopes_decode_alike_and_a_row_schema_is_no_envelope() {
    let row_only = r#"{"type": "record", "name": "Value", "fields": [{"name": "id", "type": "long"}]}"#;
    let server = common::registry(vec![(7, ENVELOPE.to_owned()), (8, row_only.to_owned())], None);
    let source = common::source(
        &FIELDS,
        &format!("{{avro: {{registry: confluent, url: \"{}\"}}}}", server.url),
        "      keys: [id]\n    cdc: debezium\n",
    );
    let framed = |id: u32, datum: &[u8]| {
        let mut payload = vec![0];
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(datum);
        payload
    };
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let mut payloads: Vec<Vec<u8>> = changes().iter().map(|datum| framed(7, datum)).collect();
    payloads.push(framed(8, &[2]));
    let out = common::decode_all(&mut decoder, &payloads);
    check_changes(&out.batch);
    assert_eq!(out.rejections.len(), 1);
    assert_eq!(out.rejections[0].code(), ReasonCode::SchemaMismatch);
    assert!(out.rejections[0].message().contains("not a Debezium envelope"), "{}", out.rejections[0].message());
}
