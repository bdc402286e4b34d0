//! Property: parsing and validating any generated definition never panics and
//! always ends in either valid sources or coded errors (a parse error carries
//! a location and becomes `MALFORMED_DEFINITION`).
#![allow(missing_docs)]

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tributary_source::{ErrorCode, parse_text, validate_raw_sources};

/// Scalars drawn from the grammars' edges, plus arbitrary text.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("latest")),
        Just(json!("TRIM_HORIZON")),
        Just(json!("2023-05-31 15:30:00")),
        Just(json!("1h 30m")),
        Just(json!("14d")),
        Just(json!("list<strng>")),
        Just(json!("struct<a: int, b: optional<list<map<string, decimal(10, 2)>>>>")),
        Just(json!("timestamp")),
        Just(json!("arn:aws:kinesis:us-east-1:000000000000:stream/s")),
        Just(json!("arn:aws:iam::000000000000:role/r")),
        Just(json!("amount > 0 AND (x <> 'y' OR NOT z IS NULL)")),
        Just(json!("json")),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
        "[a-z_<>\\[\\](), :0-9]{0,30}".prop_map(Value::from),
    ]
}

/// Keys a definition may have, in any place, so shapes are often almost right.
const KEYS: [&str; 24] = [
    "name",
    "kinesis",
    "dataset",
    "cdc",
    "disorder",
    "since",
    "until",
    "preproc",
    "where",
    "sample",
    "stream_arn",
    "role_arn",
    "init_position",
    "format",
    "include_metadata",
    "fields",
    "timestamp",
    "keys",
    "type",
    "avro",
    "schema",
    "registry",
    "ref",
    "value",
];

fn node() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(&KEYS[..]), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A definition of the right overall shape with generated values in every slot.
fn definition() -> impl Strategy<Value = Value> {
    (
        (scalar(), scalar(), scalar(), scalar(), node()),
        (prop::collection::vec((scalar(), scalar()), 0..4), scalar(), prop::collection::vec(scalar(), 0..3)),
        (scalar(), scalar(), scalar(), scalar(), scalar(), node()),
    )
        .prop_map(|((name, arn, role, position, format), (fields, timestamp, keys), (cdc, disorder, since, filter, sample, preproc))| {
            let fields: Vec<Value> = fields.into_iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
            json!({"sources": [{
                "name": name,
                "kinesis": {"stream_arn": arn, "role_arn": role, "init_position": position, "format": format},
                "dataset": {"fields": fields, "timestamp": timestamp, "keys": keys},
                "cdc": cdc, "disorder": disorder, "since": since, "where": filter, "sample": sample, "preproc": preproc,
            }]})
        })
}

/// Parses and validates `text`; panics (failing the property) on any outcome
/// other than a located parse error, valid sources, or coded errors.
fn check(text: &str, is_json: bool) {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid");
    match parse_text(text, is_json) {
        Err((_, _, message)) => assert!(!message.is_empty()),
        Ok(file) => match validate_raw_sources(&file.sources, now) {
            Ok(sources) => assert_eq!(sources.len(), file.sources.len()),
            Err(errors) => {
                assert!(!errors.is_empty());
                for error in errors {
                    assert!(!error.message.is_empty(), "{error:?}");
                    assert_ne!(error.code, ErrorCode::MalformedDefinition, "{error:?}");
                }
            }
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_definitions_validate_or_fail_with_codes(definition in definition()) {
        let json = serde_json::to_string(&definition).expect("serialise");
        check(&json, true);
        // The same document as YAML goes through the YAML parser and its scalar typing.
        let yaml = serde_norway::to_string(&definition).expect("serialise");
        check(&yaml, false);
    }

    #[test]
    fn arbitrary_trees_never_panic(tree in node()) {
        let mut top = Map::new();
        top.insert("sources".to_owned(), Value::Array(vec![tree]));
        check(&Value::Object(top).to_string(), true);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\n]{0,200}") {
        check(&text, false);
        check(&text, true);
    }
}

/// The generator does reach valid definitions, so the property is not only about errors.
#[test]
fn a_valid_generated_shape_is_accepted() {
    let definition = json!({"sources": [{
        "name": "s", "kinesis": {"stream_arn": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "init_position": "latest", "format": "json"},
        "dataset": {"fields": [{"name": "ts", "type": "timestamp"}], "timestamp": "ts", "keys": []},
    }]});
    let file = parse_text(&definition.to_string(), true).expect("parses");
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid");
    assert_eq!(validate_raw_sources(&file.sources, now).expect("valid").len(), 1);
}
