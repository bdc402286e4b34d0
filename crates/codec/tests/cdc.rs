//! Change data capture: which rows (and `_op`s) each record gives, and the
//! reason code of each record that is not a change.
#![allow(missing_docs)]

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use tributary_codec::{Decoder, ReasonCode};

const FIELDS: [(&str, &str); 4] =
    [("id", "int64"), ("name", "string"), ("amount", "optional<float64>"), ("ts", "timestamp")];

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no {column}"));
    array.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    batch.column_by_name(column).unwrap_or_else(|| panic!("no {column}")).as_primitive::<Int64Type>().iter().collect()
}

/// Decodes `records`, none of which may be rejected.
fn decode_clean(decoder: &mut Decoder, records: &[&str]) -> RecordBatch {
    let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.as_bytes().to_vec()).collect();
    let out = common::decode_all(decoder, &payloads);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    out.batch
}

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).expect("a time").timestamp_micros()
}

#[test]
fn upsert_rows_carry_their_op_sequence_and_sub_sequence() {
    let source = common::source(&FIELDS, "json", "      keys: [id]\n    cdc: upsert\n");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let payload = br#"{"id": 1, "name": "a", "ts": "2024-01-01T00:00:00Z"}"#;
    let mut aggregated = common::meta("49590338271490256608559692538361571095921575989136588898");
    aggregated.sub_sequence = Some(3);
    assert!(decoder.decode(payload, &common::meta("7")).expect("decodes"));
    assert!(decoder.decode(payload, &aggregated).expect("decodes"));
    let batch = decoder.flush().expect("flush").batch;
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "amount", "ts", "_op", "_sequence_number", "_sub_sequence"]);
    assert_eq!(strings(&batch, "_op"), [Some("upsert".into()), Some("upsert".into())]);
    assert_eq!(
        strings(&batch, "_sequence_number"),
        [Some("7".into()), Some("49590338271490256608559692538361571095921575989136588898".into())]
    );
    assert_eq!(ints(&batch, "_sub_sequence"), [None, Some(3)]);
}

#[test]
fn debezium_envelopes_give_upserts_and_key_only_deletes_in_arrival_order() {
    let source = common::source(&FIELDS, "json", "      keys: [id]\n    cdc: debezium\n");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let records = [
        // create, snapshot read, update: the `after` row.
        r#"{"before": null, "after": {"id": 1, "name": "a", "amount": 1.5, "ts": "2024-01-01T00:00:00Z"}, "op": "c", "ts_ms": 1704067200000, "source": {"db": "shop"}}"#,
        r#"{"after": {"id": 2, "name": "b", "ts": "2024-01-01T00:00:01Z"}, "op": "r"}"#,
        // Wrapped by the JSON converter's `schema`/`payload`.
        r#"{"schema": {"type": "struct"}, "payload": {"before": {"id": 1, "name": "a", "ts": "2024-01-01T00:00:00Z"}, "after": {"id": 1, "name": "a2", "amount": 2.5, "ts": "2024-01-01T00:00:02Z"}, "op": "u"}}"#,
        // delete: the keys and time of `before`; other fields NULL.
        r#"{"before": {"id": 2, "name": "b", "amount": 9.0, "ts": "2024-01-01T00:00:01Z"}, "after": null, "op": "d", "ts_ms": 1704067300000}"#,
        // delete whose `before` holds only the key: the time is the envelope's ts_ms.
        r#"{"before": {"id": 1}, "after": null, "op": "d", "ts_ms": 1704067300000}"#,
    ];
    let batch = decode_clean(&mut decoder, &records);
    assert_eq!(ints(&batch, "id"), [Some(1), Some(2), Some(1), Some(2), Some(1)]);
    assert_eq!(
        strings(&batch, "_op"),
        ["upsert", "upsert", "upsert", "delete", "delete"].map(|op| Some(op.to_owned()))
    );
    assert_eq!(strings(&batch, "name"), [Some("a".into()), Some("b".into()), Some("a2".into()), None, None]);
    let amounts: Vec<Option<f64>> =
        batch.column_by_name("amount").expect("amount").as_primitive::<Float64Type>().iter().collect();
    assert_eq!(amounts, [Some(1.5), None, Some(2.5), None, None], "a delete does not carry `before`'s other values");
    let times: Vec<Option<i64>> =
        batch.column_by_name("ts").expect("ts").as_primitive::<TimestampMicrosecondType>().iter().collect();
    assert_eq!(times[3], Some(micros("2024-01-01T00:00:01Z")), "from `before`");
    assert_eq!(times[4], Some(1_704_067_300_000_000), "from the envelope's ts_ms");
    assert_eq!(strings(&batch, "_sequence_number"), ["1", "2", "3", "4", "5"].map(|s| Some(s.to_owned())));
    // A non-optional field may be NULL only because of deletes: the schema says so.
    let schema = batch.schema();
    assert!(schema.field_with_name("name").expect("name").is_nullable());
    assert!(!schema.field_with_name("id").expect("id").is_nullable(), "keys are never NULL");
    assert!(!schema.field_with_name("ts").expect("ts").is_nullable());
}

#[test]
fn records_that_are_not_changes_are_rejected_each_with_its_own_code() {
    let source = common::source(&FIELDS, "json", "      keys: [id]\n    cdc: debezium\n");
    let good = r#"{"after": {"id": 9, "name": "z", "ts": "2024-01-01T00:00:00Z"}, "op": "c"}"#;
    let cases: [(&str, ReasonCode, &str); 11] = [
        ("", ReasonCode::CdcTombstone, ""),
        ("null", ReasonCode::CdcTombstone, ""),
        (r#"{"schema": null, "payload": null}"#, ReasonCode::CdcTombstone, ""),
        (r#"{"id": 1, "name": "a", "ts": "2024-01-01T00:00:00Z"}"#, ReasonCode::CdcNoEnvelope, ""),
        ("[1, 2]", ReasonCode::CdcNoEnvelope, ""),
        (r#"{"after": null, "op": "c"}"#, ReasonCode::CdcNoEnvelope, ""),
        (r#"{"after": {"id": 1}, "op": "t"}"#, ReasonCode::CdcUnknownOp, ""),
        (r#"{"before": null, "op": "d"}"#, ReasonCode::CdcDeleteWithoutKeys, ""),
        (r#"{"before": {"name": "a"}, "op": "d", "ts_ms": 1}"#, ReasonCode::CdcDeleteWithoutKeys, ""),
        // The row inside the envelope is checked as any row is.
        (r#"{"after": {"id": "x", "name": "a", "ts": 1}, "op": "u"}"#, ReasonCode::TypeMismatch, "id"),
        (r#"{"before": {"id": 1}, "op": "d"}"#, ReasonCode::MissingField, "ts"),
    ];
    for (record, code, field) in cases {
        let mut decoder = Decoder::new(&source, None).expect("compiles");
        let payloads = [good.as_bytes().to_vec(), record.as_bytes().to_vec(), good.as_bytes().to_vec()];
        let out = common::decode_all(&mut decoder, &payloads);
        assert_eq!(out.batch.num_rows(), 2, "{record}: the neighbours stay");
        assert_eq!(out.rejections.len(), 1, "{record}");
        assert_eq!((out.rejections[0].code(), &*out.rejections[0].field), (code, field), "{record}");
        assert_eq!(out.rejections[0].payload, record.as_bytes(), "the payload is kept whole");
        assert!(!out.rejections[0].message().is_empty());
    }
}

#[test]
fn eval_computes_a_field_from_the_others_after_their_own_preproc() {
    let fields = [
        ("id", "int64"),
        ("qty", "int64"),
        ("price", "float64"),
        ("country", "optional<string>"),
        ("ts", "timestamp"),
        ("total", "optional<float64>"),
        ("label", "optional<string>"),
        ("double_qty", "optional<int32>"),
    ];
    let extra = "    preproc:\n      country: {ref: \"address[country]\"}\n      total: {eval: \"qty * price\"}\n      label: {eval: \"CASE WHEN country = 'DE' THEN 'de-' || country ELSE 'other' END\"}\n      double_qty: {eval: \"qty * 2\"}\n";
    let source = common::source(&fields, "json", extra);
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let records = [
        r#"{"id": 1, "qty": 3, "price": 2.5, "ts": 0, "address": {"country": "DE"}, "total": 999}"#,
        r#"{"id": 2, "qty": 4611686018427387904, "price": 1.0, "ts": 0}"#,
    ];
    let batch = decode_clean(&mut decoder, &records);
    let totals: Vec<Option<f64>> =
        batch.column_by_name("total").expect("total").as_primitive::<Float64Type>().iter().collect();
    assert_eq!(totals[0], Some(7.5), "computed, never taken from the payload's `total`");
    assert_eq!(strings(&batch, "label"), [Some("de-DE".into()), Some("other".into())]);
    let doubled = batch.column_by_name("double_qty").expect("double_qty");
    assert_eq!(doubled.as_primitive::<arrow_array::types::Int32Type>().value(0), 6);
    assert!(doubled.is_null(1), "an overflow (of int64, then of int32) is NULL, not an error");
}
