//! Mutation fuzzing on stable Rust, in the test suite: valid JSON records and
//! Avro datums, mutated (bit flips, truncation, insertion, duplication), must
//! never panic, must be accounted for exactly (a row or a rejection), and must
//! leave the decoder able to decode the next good record. `scripts/fuzz.sh`
//! runs the coverage-guided cargo-fuzz targets for longer.
#![allow(missing_docs)]

mod common;

use apache_avro::types::Value;
use apache_avro::{Schema, to_avro_datum};
use proptest::prelude::*;
use tributary_codec::Decoder;

const FIELDS: [(&str, &str); 9] = [
    ("id", "int64"),
    ("ts", "timestamp"),
    ("amount", "optional<float64>"),
    ("price", "optional<decimal(10, 2)>"),
    ("name", "optional<string>"),
    ("tags", "optional<list<string>>"),
    ("attrs", "optional<map<string, int32>>"),
    ("customer", "optional<struct<id: int64, email: optional<string>>>"),
    ("day", "optional<date>"),
];

const JSON_SEED: &str = r#"{"id": 12, "ts": "2024-01-01T00:00:00.5Z", "amount": -1.5e3, "price": "12.30", "name": "a\"\u00e9b",
 "tags": ["x", "y"], "attrs": {"k": 1}, "customer": {"id": 3, "email": null}, "day": "2024-02-29"}"#;

const WRITER: &str = r#"{"type": "record", "name": "R", "fields": [
  {"name": "id", "type": "long"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "amount", "type": ["null", "double"]}, {"name": "name", "type": ["null", "string"]},
  {"name": "tags", "type": {"type": "array", "items": "string"}}, {"name": "attrs", "type": {"type": "map", "values": "int"}},
  {"name": "customer", "type": ["null", {"type": "record", "name": "C", "fields": [{"name": "id", "type": "long"}]}]}]}"#;

fn avro_seed() -> Vec<u8> {
    let schema = Schema::parse_str(WRITER).expect("schema");
    to_avro_datum(
        &schema,
        Value::Record(vec![
            ("id".into(), Value::Long(-77)),
            ("ts".into(), Value::TimestampMicros(1_704_067_200_000_000)),
            ("amount".into(), Value::Union(1, Box::new(Value::Double(2.5)))),
            ("name".into(), Value::Union(1, Box::new(Value::String("naïve".into())))),
            ("tags".into(), Value::Array(vec![Value::String("a".into()), Value::String("bc".into())])),
            ("attrs".into(), Value::Map([("k".to_owned(), Value::Int(5))].into())),
            ("customer".into(), Value::Union(1, Box::new(Value::Record(vec![("id".into(), Value::Long(9))])))),
        ]),
    )
    .expect("encodes")
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Duplicate { from: usize, len: usize, to: usize },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 0usize..16, any::<usize>()).prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for m in mutations {
        let n = bytes.len().max(1);
        match *m {
            Mutation::Flip { at, bit } => {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b ^= 1 << bit;
                }
            }
            Mutation::Truncate { at } => bytes.truncate(at % n),
            Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
            Mutation::Duplicate { from, len, to } => {
                let from = from % n;
                let slice: Vec<u8> = bytes.iter().skip(from).take(len).copied().collect();
                let to = to % (bytes.len() + 1);
                bytes.splice(to..to, slice);
            }
            Mutation::Remove { at } => {
                if !bytes.is_empty() {
                    bytes.remove(at % n);
                }
            }
        }
    }
    bytes
}

/// Decodes `[good, mutated, good]`: both good records come out whatever the mutated one does.
fn check(decoder: &mut Decoder, good: &[u8], mutated: &[u8]) -> Result<(), TestCaseError> {
    let out = common::decode_all(decoder, &[good.to_vec(), mutated.to_vec(), good.to_vec()]);
    prop_assert_eq!(out.batch.num_rows() + out.rejections.len(), 3);
    prop_assert!(out.rejections.iter().all(|r| r.sequence_number == "2" && r.payload == mutated));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_json_never_panics(mutations in prop::collection::vec(mutation(), 1..4)) {
        let mut decoder = Decoder::new(&common::source(&FIELDS, "json", ""), None).expect("compiles");
        check(&mut decoder, JSON_SEED.as_bytes(), &apply(JSON_SEED.as_bytes(), &mutations))?;
    }

    #[test]
    fn mutated_avro_never_panics(mutations in prop::collection::vec(mutation(), 1..4)) {
        let seed = avro_seed();
        let schema = WRITER.replace('\n', " ");
        let source = common::source(&FIELDS, &format!("{{avro: {{schema: '{schema}'}}}}"), "");
        let mut decoder = Decoder::new(&source, None).expect("compiles");
        check(&mut decoder, &seed, &apply(&seed, &mutations))?;
    }
}
