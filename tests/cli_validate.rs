//! `tributary validate` without AWS: exit codes, the error-line format, and
//! every bad case of the definition grammar producing its code.
#![allow(missing_docs)]

mod support;

use std::collections::BTreeSet;

use support::{stdout, tributary};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

#[test]
fn the_examples_are_valid() {
    // Templates (the quickstart's) get a sample stream and role filled in, as the script does.
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<String> = std::fs::read_dir(EXAMPLES)
        .expect("examples/")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read example");
            let filled = text
                .replace("${STREAM_ARN}", "arn:aws:kinesis:us-east-1:000000000000:stream/s")
                .replace("${ROLE_ARN}", "arn:aws:iam::000000000000:role/r");
            let copy = dir.path().join(path.file_name().expect("file name"));
            std::fs::write(&copy, filled).expect("write example");
            copy.to_string_lossy().into_owned()
        })
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    let args: Vec<&str> = std::iter::once("validate").chain(files.iter().map(String::as_str)).collect();
    let output = tributary(&args, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).starts_with("valid: "), "{}", stdout(&output));
}

#[test]
fn every_bad_case_prints_its_code() {
    let expected = [
        ("init_ms", "INVALID_INIT_POSITION", "kinesis.init_position", "milliseconds"),
        ("init_future", "INVALID_INIT_POSITION", "kinesis.init_position", "future"),
        ("init_negative", "INVALID_INIT_POSITION", "kinesis.init_position", "negative"),
        ("init_true", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("init_null", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("init_empty", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("init_now", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("init_today", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("init_latest_call", "INVALID_INIT_POSITION", "kinesis.init_position", "`trim_horizon`"),
        ("arn_service", "INVALID_ARN", "kinesis.stream_arn", "service is `sqs`"),
        ("arn_no_stream", "INVALID_ARN", "kinesis.stream_arn", "stream/NAME"),
        ("arn_short_account", "INVALID_ARN", "kinesis.stream_arn", "12 digits"),
        ("arn_user_role", "INVALID_ARN", "kinesis.role_arn", "`user`"),
        ("arn_partitions", "PARTITION_MISMATCH", "kinesis.role_arn", "aws-cn"),
        ("type_typo", "UNKNOWN_TYPE", "dataset.fields[1].type", "field `amount`: unknown type `strng`"),
        ("ts_missing", "UNKNOWN_FIELD", "dataset.timestamp", "created_at"),
        ("ts_not_timestamp", "INVALID_TIMESTAMP_FIELD", "dataset.timestamp", "int64"),
        ("key_missing", "UNKNOWN_FIELD", "dataset.keys[0]", "nope"),
        ("cdc_append_keys", "INVALID_CDC", "cdc", "append"),
        ("cdc_upsert_no_keys", "INVALID_CDC", "cdc", "upsert"),
        ("duration_unit", "INVALID_DURATION", "disorder", "unknown unit `x`"),
        ("since_after_until", "INVALID_TIME_RANGE", "until", "before"),
        ("preproc_unknown", "UNKNOWN_FIELD", "preproc.country", "country"),
        ("where_bad", "INVALID_WHERE", "where", "value"),
        ("where_not_bool", "INVALID_WHERE", "where", "not boolean"),
        ("dup", "DUPLICATE_NAME", "name", "more than once"),
        ("Bad-Name", "INVALID_NAME", "name", "a-z"),
    ];
    let output = tributary(&["validate", &format!("{FIXTURES}/invalid.yaml")], &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    let lines: BTreeSet<&str> = out.lines().collect();
    for (source, code, field, hint) in expected {
        let prefix = format!("{code} {source}.{field}: ");
        assert!(
            lines.iter().any(|line| line.starts_with(&prefix) && line.contains(hint)),
            "no line `{prefix}...{hint}...` in:\n{out}"
        );
    }
    // Each source is wrong in exactly one way (and `Bad-Name` also names its dataset).
    assert_eq!(lines.len(), expected.len() + 1, "{out}");
}

#[test]
fn an_unparsable_file_exits_2_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("typo.yaml");
    std::fs::write(&path, "sources:\n  - name: a\n    kinesis:\n      stream_arm: x\n").expect("write");
    let output = tributary(&["validate", path.to_str().expect("utf-8")], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("typo.yaml:4:7: ") && err.contains("stream_arm"), "{err}");

    let json = dir.path().join("broken.json");
    std::fs::write(&json, "{\"sources\": [\n  {\"name\": }\n]}").expect("write");
    let output = tributary(&["validate", json.to_str().expect("utf-8")], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("broken.json:2:"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn unreadable_files_and_usage_errors_exit_2() {
    let output = tributary(&["validate", "/nonexistent/definition.yaml"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/definition.yaml"));
    assert_eq!(tributary(&["validate"], &[]).status.code(), Some(2));
    assert_eq!(tributary(&["validate", "--bogus", "x.yaml"], &[]).status.code(), Some(2));
    let example = format!("{EXAMPLES}/orders.yaml");
    assert_eq!(tributary(&["validate", "--timeout", "-1", &example], &[]).status.code(), Some(2));
}

#[test]
fn an_inline_avro_schema_must_resolve_to_the_dataset() {
    let output = tributary(&["validate", &format!("{FIXTURES}/avro_incompatible.yaml")], &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.starts_with("SCHEMA_INCOMPATIBLE avro_incompatible.kinesis.format.avro.schema: "), "{out}");
    assert!(out.contains("`ts`"), "{out}");
}

#[test]
fn names_must_be_unique_across_files() {
    let example = format!("{EXAMPLES}/orders.yaml");
    let output = tributary(&["validate", &example, &example], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("DUPLICATE_NAME orders.name: "), "{}", stdout(&output));
}

#[test]
fn a_secret_may_name_only_prefixed_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/users_upsert.yaml")).expect("example");
    assert!(example.contains("{env: TRIBUTARY_SECRET_REGISTRY_PASSWORD}"));
    let stealing = dir.path().join("stealing.yaml");
    std::fs::write(&stealing, example.replace("TRIBUTARY_SECRET_REGISTRY_PASSWORD", "AWS_SECRET_ACCESS_KEY"))
        .expect("write");
    let path = stealing.to_str().expect("utf-8");
    let output = tributary(&["validate", path], &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.contains("INVALID_SECRET") && out.contains("AWS_SECRET_ACCESS_KEY") && out.contains("TRIBUTARY_SECRET_"),
        "{out}"
    );
    // The operator may choose another prefix (the same flag as `serve`'s).
    let output = tributary(&["validate", path, "--secret-env-prefix", "AWS_SECRET_"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let output = tributary(&["validate", path, "--secret-env-prefix", ""], &[]);
    assert_eq!(output.status.code(), Some(2), "an empty prefix would allow everything");
}

/// The review's crash: `tributary validate` of a `where` with 100,000 `OR`
/// terms aborted with a stack overflow; a type string nested 100,000 deep did too.
#[test]
fn an_expression_or_type_past_the_bounds_is_refused_with_its_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let terms: Vec<String> = (0..100_000).map(|i| format!("order_id = {i}")).collect();
    let deep_type = format!("{}int64{}", "list<".repeat(100_000), ">".repeat(100_000));
    let definition = format!(
        "sources:\n  - name: wide\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: wide\n      fields:\n        - {{name: order_id, type: int64}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n    where: \"{}\"\n  - name: deep\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n      init_position: trim_horizon\n      format: json\n    dataset:\n      name: deep\n      fields:\n        - {{name: tags, type: \"{deep_type}\"}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n",
        terms.join(" OR ")
    );
    let path = dir.path().join("huge.yaml");
    std::fs::write(&path, definition).expect("write");
    let output = tributary(&["validate", path.to_str().expect("utf-8")], &[]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.lines().any(|line| line.starts_with("TOO_COMPLEX wide.where: ")), "{out}");
    assert!(out.lines().any(|line| line.starts_with("TOO_COMPLEX deep.dataset.fields[0].type: ")), "{out}");
}
