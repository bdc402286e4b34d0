//! JSON: a table of malformed and edge-case records, one per reason code and
//! shape, each decoded between two good neighbours. Each must be rejected with
//! its code and field path, and the neighbours must come out unchanged.
#![allow(missing_docs)]

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use tributary_codec::{Decoder, ReasonCode};

const FIELDS: [(&str, &str); 10] = [
    ("id", "int64"),
    ("small", "optional<int32>"),
    ("amount", "optional<float64>"),
    ("ts", "timestamp"),
    ("day", "optional<date>"),
    ("price", "optional<decimal(6, 2)>"),
    ("tags", "optional<list<string>>"),
    ("customer", "optional<struct<id: int64, email: optional<string>>>"),
    ("attrs", "optional<map<string, int64>>"),
    ("blob", "optional<bytes>"),
];

fn good(id: i64) -> Vec<u8> {
    format!(r#"{{"id": {id}, "ts": "2024-01-01T00:00:0{}Z", "tags": ["a"], "customer": {{"id": 7}}}}"#, id % 10)
        .into_bytes()
}

/// Decodes `[good(1), bad, good(2)]`; returns the batch and the one rejection's (code, field).
fn between_neighbours(bad: &[u8]) -> (RecordBatch, ReasonCode, String, Vec<u8>) {
    let source = common::source(&FIELDS, "json", "");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[good(1), bad.to_vec(), good(2)]);
    assert_eq!(out.rejections.len(), 1, "{:?}: {:?}", String::from_utf8_lossy(bad), out.rejections);
    let rejection = &out.rejections[0];
    assert_eq!(rejection.sequence_number, "2");
    (out.batch, rejection.code(), rejection.field.to_string(), rejection.payload.clone())
}

fn assert_neighbours_intact(batch: &RecordBatch) {
    let reference = {
        let source = common::source(&FIELDS, "json", "");
        let mut decoder = Decoder::new(&source, None).expect("compiles");
        common::decode_all(&mut decoder, &[good(1), good(2)]).batch
    };
    assert_eq!(batch, &reference);
}

#[test]
fn rejections_by_reason_code() {
    let cases: &[(&str, ReasonCode, &str)] = &[
        // Not JSON / not an object / framing.
        ("not json", ReasonCode::Malformed, ""),
        ("", ReasonCode::Malformed, ""),
        ("[1, 2]", ReasonCode::Malformed, ""),
        ("42", ReasonCode::Malformed, ""),
        (r#"{"id": 3, "ts": "2024"#, ReasonCode::Malformed, "ts"),
        (r#"{"id": 3, "ts": 1700000000"#, ReasonCode::Malformed, ""),
        (r#"{"id": 3, "ts": 1700000000} x"#, ReasonCode::Malformed, ""),
        (r#"{"id": 3, "ts": 1700000000}{"id": 4, "ts": 1700000000}"#, ReasonCode::Malformed, ""),
        (r#"{"id": 3, "id": 4, "ts": 1700000000}"#, ReasonCode::Malformed, "id"),
        (r#"{"id": 3, "ts": 1700000000, "extra": [1, }"#, ReasonCode::Malformed, ""),
        (r#"{"id": 3, "ts": 1700000000, "tags": ["a" "b"]}"#, ReasonCode::Malformed, "tags[]"),
        (
            r#"{"id": 3, "ts": 1700000000, "customer": {"id": 1, "email": "x\q"}}"#,
            ReasonCode::Malformed,
            "customer.email",
        ),
        (
            r#"{"id": 3, "ts": 1700000000, "customer": {"id": 1, "email": "\ud800"}}"#,
            ReasonCode::Malformed,
            "customer.email",
        ),
        (r#"{"id": 03, "ts": 1700000000}"#, ReasonCode::Malformed, "id"),
        (r#"{id: 3, "ts": 1700000000}"#, ReasonCode::Malformed, ""),
        // Missing and null.
        (r#"{"ts": 1700000000}"#, ReasonCode::MissingField, "id"),
        (r#"{"id": 3}"#, ReasonCode::MissingField, "ts"),
        (r#"{"id": 3, "ts": 1700000000, "customer": {"email": "a@b"}}"#, ReasonCode::MissingField, "customer.id"),
        (r#"{"id": null, "ts": 1700000000}"#, ReasonCode::NullNotAllowed, "id"),
        (r#"{"id": 3, "ts": 1700000000, "tags": ["a", null]}"#, ReasonCode::NullNotAllowed, "tags[]"),
        (r#"{"id": 3, "ts": 1700000000, "attrs": {"k": null}}"#, ReasonCode::NullNotAllowed, "attrs{}"),
        // Type mismatches.
        (r#"{"id": "3", "ts": 1700000000}"#, ReasonCode::TypeMismatch, "id"),
        (r#"{"id": 3.5, "ts": 1700000000}"#, ReasonCode::TypeMismatch, "id"),
        (r#"{"id": true, "ts": 1700000000}"#, ReasonCode::TypeMismatch, "id"),
        (r#"{"id": 3, "ts": 1700000000, "amount": "12"}"#, ReasonCode::TypeMismatch, "amount"),
        (r#"{"id": 3, "ts": 1700000000, "tags": "a"}"#, ReasonCode::TypeMismatch, "tags"),
        (r#"{"id": 3, "ts": 1700000000, "tags": [1]}"#, ReasonCode::TypeMismatch, "tags[]"),
        (r#"{"id": 3, "ts": 1700000000, "customer": [1]}"#, ReasonCode::TypeMismatch, "customer"),
        (r#"{"id": 3, "ts": 1700000000, "attrs": {"k": "v"}}"#, ReasonCode::TypeMismatch, "attrs{}"),
        (r#"{"id": 3, "ts": 1700000000, "blob": "not base64!"}"#, ReasonCode::TypeMismatch, "blob"),
        (r#"{"id": 3, "ts": {}}"#, ReasonCode::TypeMismatch, "ts"),
        // Out of range.
        (r#"{"id": 3, "ts": 1700000000, "small": 1099511627776}"#, ReasonCode::OutOfRange, "small"),
        (r#"{"id": 99999999999999999999, "ts": 1700000000}"#, ReasonCode::OutOfRange, "id"),
        (r#"{"id": 3, "ts": 1700000000, "amount": 1e400}"#, ReasonCode::OutOfRange, "amount"),
        (r#"{"id": 3, "ts": 1700000000, "price": 12345.6}"#, ReasonCode::OutOfRange, "price"),
        (r#"{"id": 3, "ts": 1700000000, "price": "1.234"}"#, ReasonCode::OutOfRange, "price"),
        // Timestamps and dates.
        (r#"{"id": 3, "ts": "yesterday"}"#, ReasonCode::BadTimestamp, "ts"),
        (r#"{"id": 3, "ts": "2024-02-30T00:00:00Z"}"#, ReasonCode::BadTimestamp, "ts"),
        (r#"{"id": 3, "ts": 1700000000, "day": "2024-13-01"}"#, ReasonCode::BadTimestamp, "day"),
    ];
    for (bad, code, field) in cases {
        let (batch, found_code, found_field, payload) = between_neighbours(bad.as_bytes());
        assert_eq!((found_code, found_field.as_str()), (*code, *field), "{bad}");
        assert_eq!(payload, bad.as_bytes(), "the payload is kept whole");
        assert_neighbours_intact(&batch);
    }
}

#[test]
fn invalid_utf8_is_malformed() {
    let mut bad = br#"{"id": 3, "ts": 1700000000, "tags": [""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(br#""]}"#);
    let (batch, code, field, _) = between_neighbours(&bad);
    assert_eq!((code, field.as_str()), (ReasonCode::Malformed, ""));
    assert_neighbours_intact(&batch);
}

#[test]
fn accepted_edge_cases() {
    let source = common::source(&FIELDS, "json", "");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let payloads: Vec<Vec<u8>> = [
        // Extra fields ignored (nested too), keys in any order, whitespace.
        r#" { "zzz": {"a": [1, {"b": null}]}, "ts" : "2024-01-01T00:00:00Z" , "id" : -9223372036854775808 } "#,
        // Timestamps in every accepted spelling.
        r#"{"id": 1, "ts": 1704067200}"#,
        r#"{"id": 2, "ts": 1704067200000}"#,
        r#"{"id": 3, "ts": 1704067200000000}"#,
        r#"{"id": 4, "ts": 1704067200000000000}"#,
        r#"{"id": 5, "ts": "1704067200"}"#,
        r#"{"id": 6, "ts": "2024-01-01 00:00:00"}"#,
        r#"{"id": 7, "ts": "Mon, 01 Jan 2024 00:00:00 +0000"}"#,
        r#"{"id": 8, "ts": "2023-12-31T19:00:00-05:00"}"#,
        // Everything optional present, escapes, decimals from numbers and strings, base64.
        r#"{"id": 9, "ts": 1704067200, "small": -5, "amount": 1.5e3, "day": "2024-01-01", "price": "12.5",
            "tags": ["a\"b", "\u00e9\ud83d\ude00"], "customer": {"id": 1, "email": null}, "attrs": {"x": 1, "y": 2},
            "blob": "aGVsbG8="}"#,
        r#"{"id": 10, "ts": 1704067200, "price": 0.1, "tags": [], "attrs": {}, "customer": null}"#,
    ]
    .iter()
    .map(|p| p.as_bytes().to_vec())
    .collect();
    let out = common::decode_all(&mut decoder, &payloads);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let batch = out.batch;
    assert_eq!(batch.num_rows(), payloads.len());
    let ids = batch.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.value(0), i64::MIN);
    let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
    for row in 0..9 {
        assert_eq!(ts.value(row), 1_704_067_200_000_000, "row {row}");
    }
    let tags = batch.column(6).as_list::<i32>();
    let row9 = tags.value(9);
    let strings = row9.as_string::<i32>();
    assert_eq!(strings.value(0), "a\"b");
    assert_eq!(strings.value(1), "é😀");
    assert!(tags.is_null(0), "absent optional list is null");
    assert_eq!(tags.value(10).len(), 0, "empty list is empty, not null");
    let price = batch.column(5).as_primitive::<arrow_array::types::Decimal128Type>();
    assert_eq!((price.value(9), price.value(10)), (1250, 10));
    let blob = batch.column(9).as_binary::<i32>();
    assert_eq!(blob.value(9), b"hello");
    let customer = batch.column(7).as_struct();
    assert!(customer.is_null(10) && customer.is_valid(9));
}

#[test]
fn key_order_may_change_from_record_to_record() {
    // The decoder learns the producer's key order; a record in another order must decode the same.
    let source =
        common::source(&[("a", "int64"), ("b", "string"), ("ts", "timestamp"), ("c", "optional<bool>")], "json", "");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let orders = [
        r#"{"ts": 1, "c": true, "b": "x", "a": 1}"#,
        r#"{"ts": 2, "c": false, "b": "y", "a": 2}"#,
        r#"{"a": 3, "b": "z", "ts": 3}"#,
        r#"{"b": "w", "extra": 0, "ts": 4, "a": 4, "c": null}"#,
        r#"{"ts": 5, "c": true, "b": "v", "a": 5}"#,
    ];
    let out = common::decode_all(&mut decoder, &orders.iter().map(|o| o.as_bytes().to_vec()).collect::<Vec<_>>());
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let a = out.batch.column(0).as_primitive::<Int64Type>();
    let b = out.batch.column(1).as_string::<i32>();
    let c = out.batch.column(3).as_boolean();
    assert_eq!((1..=5).map(|i| a.value(i - 1)).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!((0..5).map(|i| b.value(i)).collect::<Vec<_>>(), ["x", "y", "z", "w", "v"]);
    assert_eq!((c.value(0), c.value(1), c.is_null(2), c.is_null(3), c.value(4)), (true, false, true, true, true));
}

#[test]
fn include_metadata_adds_the_record_columns() {
    let source = common::source(&[("id", "int64"), ("ts", "timestamp")], "json\n      include_metadata: true", "");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[br#"{"id": 1, "ts": 1}"#.to_vec(), b"bad".to_vec()]);
    let schema = out.batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "ts", "_shard_id", "_sequence_number", "_partition_key", "_arrival_time"]);
    assert_eq!(out.batch.num_rows(), 1);
    assert_eq!(out.batch.column(3).as_string::<i32>().value(0), "1");
    assert_eq!(out.rejections[0].shard_id, "shardId-000000000001");
}

#[test]
fn preproc_refs_and_constants() {
    let source = common::source(
        &[("id", "int64"), ("ts", "timestamp"), ("country", "optional<string>"), ("origin", "string")],
        "json",
        "    preproc:\n      country: {ref: \"address[country]\"}\n      origin: {value: \"kinesis\"}\n",
    );
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let out = common::decode_all(
        &mut decoder,
        &[
            br#"{"id": 1, "ts": 1, "address": {"street": {"n": 1}, "country": "DE"}, "country": "ignored", "origin": "x"}"#.to_vec(),
            br#"{"id": 2, "ts": 1, "address": "somewhere"}"#.to_vec(),
            br#"{"id": 3, "ts": 1, "address": {"country": 5}}"#.to_vec(),
        ],
    );
    assert_eq!(out.batch.num_rows(), 2);
    let country = out.batch.column(2).as_string::<i32>();
    assert_eq!(country.value(0), "DE");
    assert!(country.is_null(1));
    let origin = out.batch.column(3).as_string::<i32>();
    assert_eq!((origin.value(0), origin.value(1)), ("kinesis", "kinesis"));
    assert_eq!((out.rejections[0].code(), &*out.rejections[0].field), (ReasonCode::TypeMismatch, "country"));
}

#[test]
fn a_preproc_ref_may_start_at_a_key_that_is_also_a_dataset_field() {
    // `context` is a dataset field and `device` comes from inside it: both get their value.
    let source = common::source(
        &[
            ("id", "int64"),
            ("ts", "timestamp"),
            ("context", "struct<device: string, os: optional<string>>"),
            ("device", "optional<string>"),
        ],
        "json",
        "    preproc:\n      device: {ref: \"context[device]\"}\n",
    );
    let mut decoder = Decoder::new(&source, None).expect("compiles (refused before: `starts at context`)");
    let out = common::decode_all(
        &mut decoder,
        &[
            br#"{"id": 1, "ts": 1, "context": {"os": "17", "device": "ios"}}"#.to_vec(),
            br#"{"context": {"device": "android"}, "ts": 1, "id": 2}"#.to_vec(),
            br#"{"id": 3, "ts": 1, "context": {"device": 5}}"#.to_vec(),
        ],
    );
    assert_eq!(out.batch.num_rows(), 2, "{:?}", out.rejections);
    let context = out.batch.column(2).as_struct();
    let inner = context.column(0).as_string::<i32>();
    assert_eq!((inner.value(0), inner.value(1)), ("ios", "android"));
    let device = out.batch.column(3).as_string::<i32>();
    assert_eq!((device.value(0), device.value(1)), ("ios", "android"));
    assert_eq!(out.rejections[0].code(), ReasonCode::TypeMismatch);
}

#[test]
fn a_million_bad_rows_keep_the_batch_empty_and_flush_resets() {
    let source = common::source(&FIELDS, "json", "");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    for i in 0..1_000 {
        let payload = format!(r#"{{"id": {i}, "ts": 1700000000, "tags": ["a", "b", 3]}}"#);
        assert!(!decoder.decode(payload.as_bytes(), &common::meta("1")).expect("decode"));
    }
    let out = decoder.flush().expect("flush");
    assert_eq!((out.batch.num_rows(), out.rejections.len()), (0, 1_000));
    let next = common::decode_all(&mut decoder, &[good(5)]);
    assert_eq!((next.batch.num_rows(), next.rejections.len()), (1, 0));
}

#[test]
fn a_batch_sized_early_for_its_expected_rows_decodes_the_same() {
    // Rejections before and after the row at which buffers are sized, and a second batch.
    let payloads: Vec<Vec<u8>> =
        (0..3000).map(|i| if i % 997 == 3 { br#"{"id": "x"}"#.to_vec() } else { good(i) }).collect();
    let decode = |expected_rows: Option<usize>| {
        let source = common::source(&FIELDS, "json", "");
        let mut decoder = Decoder::new(&source, None).expect("compiles");
        if let Some(rows) = expected_rows {
            decoder.expect_rows(rows);
        }
        let first = common::decode_all(&mut decoder, &payloads[..2000]);
        let second = common::decode_all(&mut decoder, &payloads[2000..]);
        [first, second]
            .map(|out| (out.batch, out.rejections.iter().map(|r| r.sequence_number.clone()).collect::<Vec<_>>()))
    };
    let plain = decode(None);
    assert_eq!(plain[0].0.num_rows() + plain[1].0.num_rows(), 2996, "four rejected (3, 1000, 1997, 2994)");
    assert_eq!(decode(Some(100_000)), plain);
    assert_eq!(decode(Some(10)), plain);
}
