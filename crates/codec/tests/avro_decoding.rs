//! Avro: raw datums with an inline writer schema and Confluent-framed datums
//! with a registry (a local HTTP server in the test). Resolution cases, a table
//! of rejections per reason code with neighbours intact, and registry behaviour.
#![allow(missing_docs)]

mod common;

use common::registry;

use std::net::TcpListener;
use std::sync::atomic::Ordering;

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType};
use tributary_codec::{CompileError, DecodeError, Decoder, ReasonCode};

const WRITER: &str = r#"{"type": "record", "name": "Event", "namespace": "t", "fields": [
  {"name": "id", "type": "int"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "amount", "type": "float"},
  {"name": "label", "type": "bytes"},
  {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
  {"name": "email", "type": ["null", "string"], "default": null},
  {"name": "ignored", "type": {"type": "array", "items": {"type": "map", "values": "double"}}},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "attrs", "type": {"type": "map", "values": "long"}},
  {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [{"name": "id", "type": "long"}]}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 1}},
  {"name": "maybe", "type": ["null", "long"]}
]}"#;

const READER: [(&str, &str); 13] = [
    ("id", "int64"),
    ("ts", "timestamp"),
    ("amount", "float64"),
    ("label", "string"),
    ("kind", "string"),
    ("email", "optional<string>"),
    ("tags", "list<string>"),
    ("attrs", "map<string, int64>"),
    ("customer", "struct<id: int64>"),
    ("day", "date"),
    ("price", "decimal(8, 2)"),
    ("maybe", "int64"),
    ("absent", "optional<string>"),
];

fn writer() -> Schema {
    Schema::parse_str(WRITER).expect("writer schema")
}

fn record(id: i32, email: Option<&str>, maybe: Option<i64>) -> Value {
    Value::Record(vec![
        ("id".into(), Value::Int(id)),
        ("ts".into(), Value::TimestampMillis(1_704_067_200_000 + i64::from(id))),
        ("amount".into(), Value::Float(1.5)),
        ("label".into(), Value::Bytes(b"lbl".to_vec())),
        ("kind".into(), Value::Enum(1, "B".into())),
        (
            "email".into(),
            match email {
                Some(e) => Value::Union(1, Box::new(Value::String(e.into()))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("ignored".into(), Value::Array(vec![Value::Map([("x".to_owned(), Value::Double(1.0))].into())])),
        ("tags".into(), Value::Array(vec![Value::String("a".into()), Value::String("b".into())])),
        ("attrs".into(), Value::Map([("k".to_owned(), Value::Long(5))].into())),
        ("customer".into(), Value::Record(vec![("id".into(), Value::Long(77))])),
        ("day".into(), Value::Date(19_723)),
        ("price".into(), Value::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2]))),
        (
            "maybe".into(),
            match maybe {
                Some(v) => Value::Union(1, Box::new(Value::Long(v))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
    ])
}

fn datum(value: Value) -> Vec<u8> {
    to_avro_datum(&writer(), value).expect("encodes")
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut payload = vec![0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(datum);
    payload
}

fn inline_source() -> tributary_source::Source {
    let schema = WRITER.replace('\n', " ");
    common::source(&READER, &format!("{{avro: {{schema: '{schema}'}}}}"), "")
}

#[test]
fn resolution_promotes_and_converts() {
    let mut decoder = Decoder::new(&inline_source(), None).expect("compiles");
    let out =
        common::decode_all(&mut decoder, &[datum(record(1, Some("a@b"), Some(9))), datum(record(2, None, Some(10)))]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let batch = out.batch;
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(1), 2);
    assert_eq!(batch.column(1).as_primitive::<TimestampMicrosecondType>().value(0), 1_704_067_200_001_000);
    assert_eq!(batch.column(2).as_primitive::<Float64Type>().value(0), 1.5);
    assert_eq!(batch.column(3).as_string::<i32>().value(0), "lbl");
    assert_eq!(batch.column(4).as_string::<i32>().value(0), "B");
    let email = batch.column(5).as_string::<i32>();
    assert_eq!((email.value(0), email.is_null(1)), ("a@b", true));
    let tags = batch.column(6).as_list::<i32>();
    assert_eq!(tags.value(0).as_string::<i32>().value(1), "b");
    let attrs = batch.column(7).as_map();
    assert_eq!(attrs.keys().as_string::<i32>().value(0), "k");
    assert_eq!(attrs.values().as_primitive::<Int64Type>().value(0), 5);
    assert_eq!(batch.column(8).as_struct().column(0).as_primitive::<Int64Type>().value(0), 77);
    assert_eq!(batch.column(9).as_primitive::<Date32Type>().value(0), 19_723);
    // 123.4 at writer scale 1 becomes 12340 at scale 2.
    assert_eq!(batch.column(10).as_primitive::<Decimal128Type>().value(0), 12_340);
    assert_eq!(batch.column(11).as_primitive::<Int64Type>().value(1), 10);
    assert_eq!(batch.column(12).null_count(), 2, "a dataset field the writer lacks is null");
}

#[test]
fn rejections_by_reason_code_keep_neighbours() {
    let good1 = datum(record(1, None, Some(1)));
    let good2 = datum(record(2, None, Some(2)));
    let full = datum(record(3, Some("x"), Some(3)));
    let mut trailing = full.clone();
    trailing.push(0);
    let mut bad_utf8 = datum(record(3, Some("zz"), Some(3)));
    let at = bad_utf8.windows(2).rposition(|w| w == b"zz").expect("email bytes");
    bad_utf8[at] = 0xff;
    let cases: Vec<(Vec<u8>, ReasonCode, &str)> = vec![
        (full[..full.len() - 1].to_vec(), ReasonCode::Malformed, "maybe"),
        (Vec::new(), ReasonCode::Malformed, "id"),
        (trailing, ReasonCode::Malformed, ""),
        (vec![0xff; 11], ReasonCode::Malformed, "id"),
        (bad_utf8, ReasonCode::Malformed, "email"),
        (datum(record(3, None, None)), ReasonCode::NullNotAllowed, "maybe"),
    ];
    for (bad, code, field) in cases {
        let mut decoder = Decoder::new(&inline_source(), None).expect("compiles");
        let out = common::decode_all(&mut decoder, &[good1.clone(), bad.clone(), good2.clone()]);
        assert_eq!(out.rejections.len(), 1, "{bad:?}");
        assert_eq!((out.rejections[0].code(), &*out.rejections[0].field), (code, field), "{bad:?}");
        let mut reference = Decoder::new(&inline_source(), None).expect("compiles");
        assert_eq!(out.batch, common::decode_all(&mut reference, &[good1.clone(), good2.clone()]).batch);
    }
}

#[test]
fn union_index_and_negative_length_are_malformed() {
    let schema = r#"{"type": "record", "name": "R", "fields": [{"name": "ts", "type": "long"}, {"name": "s", "type": ["null", "string"]}]}"#;
    let source = common::source(
        &[("ts", "timestamp"), ("s", "optional<string>")],
        &format!("{{avro: {{schema: '{schema}'}}}}"),
        "",
    );
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    // ts = 1 (zigzag 2); union index 5 (zigzag 10); then index 1 with length -1 (zigzag 1).
    let out = common::decode_all(&mut decoder, &[vec![2, 10], vec![2, 2, 1], vec![2, 2, 4, b'o', b'k']]);
    let codes: Vec<_> = out.rejections.iter().map(|r| (r.code(), r.message())).collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes.iter().all(|(c, _)| *c == ReasonCode::Malformed), "{codes:?}");
    assert_eq!(out.batch.column(1).as_string::<i32>().value(0), "ok");
}

#[test]
fn decimal_out_of_range_and_bad_timestamp_strings() {
    let schema = r#"{"type": "record", "name": "R", "fields": [
        {"name": "ts", "type": "string"},
        {"name": "p", "type": {"type": "fixed", "name": "F", "size": 4, "logicalType": "decimal", "precision": 9, "scale": 0}}]}"#
        .replace('\n', " ");
    let source = common::source(
        &[("ts", "timestamp"), ("p", "decimal(4, 0)")],
        &format!("{{avro: {{schema: '{schema}'}}}}"),
        "",
    );
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let writer = Schema::parse_str(&schema).expect("schema");
    let make = |ts: &str, p: i32| {
        to_avro_datum(
            &writer,
            Value::Record(vec![
                ("ts".into(), Value::String(ts.into())),
                ("p".into(), Value::Decimal(apache_avro::Decimal::from(p.to_be_bytes().to_vec()))),
            ]),
        )
        .expect("encodes")
    };
    let out = common::decode_all(
        &mut decoder,
        &[make("2024-01-01T00:00:00Z", 12), make("never", 1), make("2024-01-01T00:00:00Z", 123_456)],
    );
    let codes: Vec<_> = out.rejections.iter().map(|r| (r.code(), r.field.to_string())).collect();
    assert_eq!(codes, [(ReasonCode::BadTimestamp, "ts".to_owned()), (ReasonCode::OutOfRange, "p".to_owned())]);
    assert_eq!(out.batch.num_rows(), 1);
}

#[test]
fn an_inline_schema_that_cannot_resolve_fails_to_compile() {
    let cases = [
        (
            r#"{"type": "record", "name": "R", "fields": [{"name": "ts", "type": "boolean"}]}"#,
            "cannot be read as `timestamp`",
        ),
        (
            r#"{"type": "record", "name": "R", "fields": [{"name": "other", "type": "long"}]}"#,
            "`ts` is not in the writer schema",
        ),
        (r#"{"type": "record", "name": "R", "fields": [{"name": "ts", "type": "lng"}]}"#, "invalid Avro schema"),
        (r#""long""#, "must be a record"),
    ];
    for (schema, expected) in cases {
        let source = common::source(&[("ts", "timestamp")], &format!("{{avro: {{schema: '{schema}'}}}}"), "");
        match Decoder::new(&source, None) {
            Err(CompileError::SchemaIncompatible(message)) => {
                assert!(message.contains(expected), "{schema}: {message}")
            }
            other => panic!("{schema}: {other:?}"),
        }
    }
}

fn registry_source(url: &str, auth: &str) -> tributary_source::Source {
    common::source(&READER, &format!("{{avro: {{registry: confluent, url: \"{url}\"{auth}}}}}"), "")
}

#[test]
fn confluent_framing_with_a_registry() {
    let incompatible = r#"{"type": "record", "name": "X", "fields": [{"name": "ts", "type": "boolean"}]}"#.to_owned();
    let server = registry(vec![(1, WRITER.to_owned()), (2, incompatible)], None);
    let mut decoder = Decoder::new(&registry_source(&server.url, ""), None).expect("compiles");
    let good = datum(record(1, None, Some(1)));
    let out = common::decode_all(
        &mut decoder,
        &[framed(1, &good), framed(7, &good), framed(2, &good), vec![1, 0, 0, 0, 1], vec![0, 0, 0], framed(1, &good)],
    );
    let codes: Vec<_> = out.rejections.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [ReasonCode::UnknownSchemaId, ReasonCode::SchemaMismatch, ReasonCode::Malformed, ReasonCode::Malformed]
    );
    assert_eq!(out.batch.num_rows(), 2);
    // Ids 1, 7 and 2 were asked for once each: answers, even "unknown", are cached.
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[test]
fn a_flood_of_made_up_schema_ids_costs_a_bounded_number_of_registry_calls() {
    let server = registry(vec![(1, WRITER.to_owned())], None);
    let mut decoder = Decoder::new(&registry_source(&server.url, ""), None).expect("compiles");
    let good = datum(record(1, None, Some(1)));
    // A schema in use before the flood keeps decoding through it (it stays cached).
    let mut payloads = vec![framed(1, &good)];
    payloads.extend((1_000..101_000).map(|id| framed(id, &good)));
    payloads.push(framed(1, &good));
    let out = common::decode_all(&mut decoder, &payloads);
    assert_eq!(out.rejections.len(), 100_000);
    assert!(out.rejections.iter().all(|r| r.code() == ReasonCode::UnknownSchemaId));
    assert_eq!(out.batch.num_rows(), 2, "the known id still decodes");
    // The burst of unknown-id lookups (100) plus refills while it ran, and id 1: not 100,000 calls.
    let asked = server.requests.load(Ordering::SeqCst);
    assert!(asked <= 200, "{asked} registry calls");
}

#[test]
fn registry_credentials_are_sent() {
    let server = registry(vec![(1, WRITER.to_owned())], Some("Basic dTpwdw=="));
    let mut decoder =
        Decoder::new(&registry_source(&server.url, ", username: u, password: pw"), None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[framed(1, &datum(record(1, None, Some(1))))]);
    assert_eq!((out.batch.num_rows(), out.rejections.len()), (1, 0));

    let server = registry(vec![(1, WRITER.to_owned())], Some("Bearer s3cret"));
    let mut decoder = Decoder::new(&registry_source(&server.url, ", token: s3cret"), None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[framed(1, &datum(record(1, None, Some(1))))]);
    assert_eq!((out.batch.num_rows(), out.rejections.len()), (1, 0));
    assert_eq!(server.seen_auth.lock().expect("lock").as_slice(), ["Bearer s3cret"]);
    assert!(!format!("{decoder:?}").contains("s3cret"), "the token must not be printed");

    // Wrong credentials: the registry is unusable, which is not the record's fault.
    let mut decoder = Decoder::new(&registry_source(&server.url, ", token: wrong"), None).expect("compiles");
    let err = decoder.decode(&framed(1, &datum(record(1, None, Some(1)))), &common::meta("1")).expect_err("refused");
    assert!(err.is_retryable(), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[test]
fn an_unreachable_registry_is_transient_and_loses_nothing() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut decoder = Decoder::new(&registry_source(&format!("http://127.0.0.1:{port}"), ""), None).expect("compiles");
    let payload = framed(1, &datum(record(1, None, Some(1))));
    match decoder.decode(&payload, &common::meta("1")) {
        Err(e @ DecodeError::RegistryUnavailable(_)) => assert!(e.is_retryable()),
        other => panic!("{other:?}"),
    }
    assert!(decoder.is_empty(), "nothing accepted or rejected");
    let out = decoder.flush().expect("flush");
    assert_eq!((out.batch.num_rows(), out.rejections.len()), (0, 0));
}

#[test]
fn schema_evolution_across_ids() {
    // v1 lacks `email`; v2 adds it; v3 widens `id` from int to long.
    let v1 =
        r#"{"type": "record", "name": "E", "fields": [{"name": "id", "type": "int"}, {"name": "ts", "type": "long"}]}"#;
    let v2 = r#"{"type": "record", "name": "E", "fields": [{"name": "id", "type": "int"}, {"name": "ts", "type": "long"}, {"name": "email", "type": ["null", "string"], "default": null}]}"#;
    let v3 = r#"{"type": "record", "name": "E", "fields": [{"name": "id", "type": "long"}, {"name": "ts", "type": "long"}, {"name": "email", "type": ["null", "string"], "default": null}]}"#;
    let server = registry(vec![(1, v1.to_owned()), (2, v2.to_owned()), (3, v3.to_owned())], None);
    let source = common::source(
        &[("id", "int64"), ("ts", "timestamp"), ("email", "optional<string>")],
        &format!("{{avro: {{registry: confluent, url: \"{}\"}}}}", server.url),
        "",
    );
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let enc = |schema: &str, fields: Vec<(&str, Value)>| {
        let schema = Schema::parse_str(schema).expect("schema");
        to_avro_datum(&schema, Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()))
            .expect("encodes")
    };
    let out = common::decode_all(
        &mut decoder,
        &[
            framed(1, &enc(v1, vec![("id", Value::Int(1)), ("ts", Value::Long(1_700_000_000))])),
            framed(
                2,
                &enc(
                    v2,
                    vec![
                        ("id", Value::Int(2)),
                        ("ts", Value::Long(1_700_000_000)),
                        ("email", Value::Union(1, Box::new(Value::String("e".into())))),
                    ],
                ),
            ),
            framed(
                3,
                &enc(
                    v3,
                    vec![
                        ("id", Value::Long(1 << 40)),
                        ("ts", Value::Long(1_700_000_000)),
                        ("email", Value::Union(0, Box::new(Value::Null))),
                    ],
                ),
            ),
        ],
    );
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let ids = out.batch.column(0).as_primitive::<Int64Type>();
    assert_eq!((ids.value(0), ids.value(1), ids.value(2)), (1, 2, 1 << 40));
    let email = out.batch.column(2).as_string::<i32>();
    assert_eq!((email.is_null(0), email.value(1), email.is_null(2)), (true, "e", true));
}
