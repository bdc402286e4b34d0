//! Round trip: for generated rows of generated schemas, encode each row to JSON
//! and to Avro, decode both with our decoders, and compare with each other and
//! with arrow-json's decoder reading the same JSON (an independent reference).
#![allow(missing_docs)]

mod common;

use std::sync::Arc;

use apache_avro::types::Value as AvroValue;
use apache_avro::{Schema as AvroSchema, to_avro_datum};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value as Json, json};
use tributary_codec::Decoder;

/// A generated type; a subset of the dataset types that every path supports.
#[derive(Debug, Clone)]
enum Ty {
    Bool,
    Int32,
    Int64,
    Float64,
    Str,
    Timestamp,
    Date,
    Decimal,
    Optional(Box<Ty>),
    List(Box<Ty>),
    Map(Box<Ty>),
    Struct(Vec<(String, Ty)>),
}

impl Ty {
    fn text(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int32 => "int32".into(),
            Ty::Int64 => "int64".into(),
            Ty::Float64 => "float64".into(),
            Ty::Str => "string".into(),
            Ty::Timestamp => "timestamp".into(),
            Ty::Date => "date".into(),
            Ty::Decimal => "decimal(10, 2)".into(),
            Ty::Optional(t) => format!("optional<{}>", t.text()),
            Ty::List(t) => format!("list<{}>", t.text()),
            Ty::Map(t) => format!("map<string, {}>", t.text()),
            Ty::Struct(fields) => {
                let inner: Vec<String> = fields.iter().map(|(n, t)| format!("{n}: {}", t.text())).collect();
                format!("struct<{}>", inner.join(", "))
            }
        }
    }

    fn avro(&self, names: &mut usize) -> Json {
        match self {
            Ty::Bool => json!("boolean"),
            Ty::Int32 => json!("int"),
            Ty::Int64 => json!("long"),
            Ty::Float64 => json!("double"),
            Ty::Str => json!("string"),
            Ty::Timestamp => json!({"type": "long", "logicalType": "timestamp-micros"}),
            Ty::Date => json!({"type": "int", "logicalType": "date"}),
            Ty::Decimal => json!({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}),
            Ty::Optional(t) => json!(["null", t.avro(names)]),
            Ty::List(t) => json!({"type": "array", "items": t.avro(names)}),
            Ty::Map(t) => json!({"type": "map", "values": t.avro(names)}),
            Ty::Struct(fields) => {
                *names += 1;
                let name = format!("S{names}");
                let fields: Vec<Json> = fields.iter().map(|(n, t)| json!({"name": n, "type": t.avro(names)})).collect();
                json!({"type": "record", "name": name, "fields": fields})
            }
        }
    }
}

fn scalar_ty() -> impl Strategy<Value = Ty> {
    prop_oneof![
        Just(Ty::Bool),
        Just(Ty::Int32),
        Just(Ty::Int64),
        Just(Ty::Float64),
        Just(Ty::Str),
        Just(Ty::Timestamp),
        Just(Ty::Date),
        Just(Ty::Decimal),
    ]
}

fn ty() -> impl Strategy<Value = Ty> {
    scalar_ty().prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| match t {
                Ty::Optional(_) => t,
                other => Ty::Optional(Box::new(other)),
            }),
            inner.clone().prop_map(|t| Ty::List(Box::new(t))),
            inner.clone().prop_map(|t| Ty::Map(Box::new(t))),
            prop::collection::vec(inner, 1..3)
                .prop_map(|ts| Ty::Struct(ts.into_iter().enumerate().map(|(i, t)| (format!("f{i}"), t)).collect())),
        ]
    })
}

/// A generated value: its JSON form and its Avro form.
fn value(ty: &Ty) -> BoxedStrategy<(Json, AvroValue)> {
    match ty {
        Ty::Bool => any::<bool>().prop_map(|b| (json!(b), AvroValue::Boolean(b))).boxed(),
        Ty::Int32 => any::<i32>().prop_map(|i| (json!(i), AvroValue::Int(i))).boxed(),
        Ty::Int64 => any::<i64>().prop_map(|i| (json!(i), AvroValue::Long(i))).boxed(),
        Ty::Float64 => (-1e12f64..1e12).prop_map(|f| (json!(f), AvroValue::Double(f))).boxed(),
        Ty::Str => "[a-zA-Z0-9 \"\\\\é😀\n]{0,12}".prop_map(|s| (json!(s.clone()), AvroValue::String(s))).boxed(),
        Ty::Timestamp => (0i64..4_102_444_800_000_000)
            .prop_map(|micros| {
                let text = DateTime::<Utc>::from_timestamp_micros(micros)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    .unwrap_or_default();
                (json!(text), AvroValue::TimestampMicros(micros))
            })
            .boxed(),
        Ty::Date => (0i32..50_000)
            .prop_map(|days| {
                let date = chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + days).unwrap_or_default();
                (json!(date.format("%Y-%m-%d").to_string()), AvroValue::Date(days))
            })
            .boxed(),
        Ty::Decimal => (-9_999_999_999i64..9_999_999_999)
            .prop_map(|cents| {
                let text = format!(
                    "{}{}.{:02}",
                    if cents < 0 { "-" } else { "" },
                    cents.unsigned_abs() / 100,
                    cents.unsigned_abs() % 100
                );
                let bytes = i128::from(cents).to_be_bytes().to_vec();
                (json!(text), AvroValue::Decimal(apache_avro::Decimal::from(bytes)))
            })
            .boxed(),
        Ty::Optional(inner) => prop_oneof![
            1 => Just((Json::Null, AvroValue::Union(0, Box::new(AvroValue::Null)))),
            3 => value(inner).prop_map(|(j, a)| (j, AvroValue::Union(1, Box::new(a)))),
        ]
        .boxed(),
        Ty::List(inner) => prop::collection::vec(value(inner), 0..3)
            .prop_map(|items| {
                let (json, avro): (Vec<_>, Vec<_>) = items.into_iter().unzip();
                (Json::Array(json), AvroValue::Array(avro))
            })
            .boxed(),
        // At most one entry: apache-avro writes a map in hash order, JSON in key order.
        Ty::Map(inner) => prop::collection::btree_map("[a-z]{1,3}", value(inner), 0..2)
            .prop_map(|entries| {
                let json = entries.iter().map(|(k, (j, _))| (k.clone(), j.clone())).collect();
                let avro = entries.into_iter().map(|(k, (_, a))| (k, a)).collect();
                (Json::Object(json), AvroValue::Map(avro))
            })
            .boxed(),
        Ty::Struct(fields) => {
            let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
            fields
                .iter()
                .map(|(_, t)| value(t))
                .collect::<Vec<_>>()
                .prop_map(move |values| {
                    let mut json = serde_json::Map::new();
                    let mut avro = Vec::new();
                    for (name, (j, a)) in names.iter().zip(values) {
                        json.insert(name.clone(), j);
                        avro.push((name.clone(), a));
                    }
                    (Json::Object(json), AvroValue::Record(avro))
                })
                .boxed()
        }
    }
}

/// A dataset (fields `c0..`, then `ts`) and rows for it.
fn case() -> impl Strategy<Value = (Vec<Ty>, Vec<Vec<(Json, AvroValue)>>)> {
    prop::collection::vec(ty(), 1..5).prop_flat_map(|mut tys| {
        tys.push(Ty::Timestamp);
        let row = tys.iter().map(value).collect::<Vec<_>>();
        (Just(tys), prop::collection::vec(row, 1..12))
    })
}

fn names(tys: &[Ty]) -> Vec<String> {
    (0..tys.len()).map(|i| if i + 1 == tys.len() { "ts".to_owned() } else { format!("c{i}") }).collect()
}

/// Compares two batches column by column, naming the first column that differs.
fn assert_same(
    what: &str,
    left: &arrow_array::RecordBatch,
    right: &arrow_array::RecordBatch,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(left.schema(), right.schema(), "{}: schemas", what);
    for (i, (l, r)) in left.columns().iter().zip(right.columns()).enumerate() {
        prop_assert!(
            l.to_data() == r.to_data(),
            "{}: column {} differs:\n{:?}\n{:?}",
            what,
            left.schema().field(i).name(),
            l,
            r
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn json_and_avro_decode_to_the_same_batch_as_arrow_json((tys, rows) in case()) {
        let names = names(&tys);
        let texts: Vec<(String, String)> = names.iter().zip(&tys).map(|(n, t)| (n.clone(), t.text())).collect();
        let fields: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        let mut counter = 0;
        let avro_fields: Vec<Json> = names.iter().zip(&tys).map(|(n, t)| json!({"name": n, "type": t.avro(&mut counter)})).collect();
        let avro_schema_json = json!({"type": "record", "name": "Row", "fields": avro_fields}).to_string();
        let avro_schema = AvroSchema::parse_str(&avro_schema_json).expect("generated Avro schema parses");

        let json_lines: Vec<Vec<u8>> = rows.iter().map(|row| {
            let object: serde_json::Map<String, Json> = names.iter().zip(row).map(|(n, (j, _))| (n.clone(), j.clone())).collect();
            serde_json::to_vec(&Json::Object(object)).expect("serialise")
        }).collect();
        let avro_datums: Vec<Vec<u8>> = rows.iter().map(|row| {
            let record = AvroValue::Record(names.iter().zip(row).map(|(n, (_, a))| (n.clone(), a.clone())).collect());
            to_avro_datum(&avro_schema, record).expect("encodes")
        }).collect();

        let json_source = common::source(&fields, "json", "");
        let mut json_decoder = Decoder::new(&json_source, None).expect("compiles");
        let from_json = common::decode_all(&mut json_decoder, &json_lines);
        prop_assert!(from_json.rejections.is_empty(), "{:?}", from_json.rejections);

        let escaped = avro_schema_json.replace('\'', "''");
        let avro_source = common::source(&fields, &format!("{{avro: {{schema: '{escaped}'}}}}"), "");
        let mut avro_decoder = Decoder::new(&avro_source, None).expect("compiles");
        let from_avro = common::decode_all(&mut avro_decoder, &avro_datums);
        prop_assert!(from_avro.rejections.is_empty(), "{:?}", from_avro.rejections);
        assert_same("ours from JSON vs ours from Avro", &from_json.batch, &from_avro.batch)?;

        let mut reference = arrow_json::ReaderBuilder::new(Arc::clone(&from_json.batch.schema()))
            .with_batch_size(1024)
            .build_decoder()
            .expect("arrow-json decoder");
        let all: Vec<u8> = json_lines.iter().flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n'))).collect();
        reference.decode(&all).expect("arrow-json decodes");
        let expected = reference.flush().expect("flush").expect("rows");
        assert_same("ours from JSON vs arrow-json", &from_json.batch, &expected)?;
    }
}
