//! `tributary decode`: records from a file through the codec, rows to Parquet
//! (read back here with the parquet crate), rejections to JSON lines.

#![allow(missing_docs)]

mod support;

use std::fs::File;
use std::path::Path;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use support::{DEBEZIUM_LINES, stdout, tributary};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

fn read_parquet_rows(path: &std::path::Path) -> usize {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).expect("parquet file"))
        .expect("parquet metadata")
        .build()
        .expect("reader");
    reader.map(|batch| batch.expect("batch").num_rows()).sum()
}

/// `tributary decode` of `input` with `source` of `definition`; it must succeed.
fn decode(definition: &Path, source: &str, input: &Path, output: &Path, errors: &Path) -> std::process::Output {
    let path = |path: &Path| path.to_str().expect("utf-8").to_owned();
    let args = ["decode", "--definition", &path(definition), "--source", source, "--input", &path(input)];
    let outputs = ["--output", &path(output), "--errors", &path(errors)];
    let run = tributary(&[&args[..], &outputs[..]].concat(), &[]);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    run
}

#[test]
fn json_records_to_parquet_and_rejections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("orders.jsonl");
    let good = r#"{"order_id": 1, "amount": 10.5, "ts": "2024-06-01T12:00:00Z", "tags": ["web"], "customer": {"id": 3}, "address": {"country": "DE"}, "price": "12.30", "attributes": {"a": "b"}}"#;
    let lines = [good, r#"{"order_id": 2, "amount": "#, r#"{"order_id": "x", "ts": 1}"#, good, "\u{1}"];
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    // The example samples a tenth of the orders: without it, both good lines are rows.
    let example = std::fs::read_to_string(format!("{EXAMPLES}/orders.yaml")).expect("example");
    assert!(example.contains("    sample: 0.1\n"));
    let definition = dir.path().join("orders.yaml");
    std::fs::write(&definition, example.replace("    sample: 0.1\n", "")).expect("write definition");
    let (output, errors) = (dir.path().join("out.parquet"), dir.path().join("errors.jsonl"));
    let run = decode(&definition, "orders", &input, &output, &errors);
    assert_eq!(stdout(&run).lines().last(), Some("rows=2 rejected=3 filtered=0 late=0"));
    assert_eq!(read_parquet_rows(&output), 2);
    let rejections: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .expect("errors file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let codes: Vec<(&str, &str, &str)> = rejections
        .iter()
        .map(|r| {
            (r["line"].as_str().unwrap_or(""), r["code"].as_str().unwrap_or(""), r["field"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(codes, [("2", "MALFORMED", "amount"), ("3", "TYPE_MISMATCH", "order_id"), ("5", "MALFORMED", "")]);
    assert_eq!(rejections[1]["payload"], r#"{"order_id": "x", "ts": 1}"#);
}

#[test]
fn avro_base64_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    // examples/clicks.json: record {url: string, at: timestamp-millis}.
    // Datum: url "a" = [2, 'a'], at = 1 ms = zigzag 2.
    let lines = ["AmEC", "not base64!", "AmE=", "AmECAA=="];
    let input = dir.path().join("clicks.b64");
    std::fs::write(&input, lines.join("\n")).expect("write input");
    let run = tributary(
        &[
            "decode",
            "--definition",
            &format!("{EXAMPLES}/clicks.json"),
            "--source",
            "clicks",
            "--input",
            input.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(stdout(&run).trim(), "rows=1 rejected=3 filtered=0 late=0");
}

#[test]
fn a_missing_source_or_input_is_a_usage_error() {
    let run = tributary(
        &["decode", "--definition", &format!("{EXAMPLES}/orders.yaml"), "--source", "nope", "--input", "/dev/null"],
        &[],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no source `nope`"));
    let run = tributary(
        &[
            "decode",
            "--definition",
            &format!("{EXAMPLES}/orders.yaml"),
            "--source",
            "orders",
            "--input",
            "/nonexistent",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn decode_applies_the_whole_definition_and_counts_every_line_in_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("changes.jsonl");
    let lines: Vec<&str> = DEBEZIUM_LINES.iter().map(|(line, _)| *line).collect();
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let (output, errors) = (dir.path().join("out.parquet"), dir.path().join("errors.jsonl"));
    let definition = std::path::PathBuf::from(format!("{EXAMPLES}/customers_debezium.yaml"));
    let run = decode(&definition, "customers", &input, &output, &errors);
    // 1, 3 and 10 upserts, 5 a delete; 2 (where), 4 (since) and 7 (until) filtered; 6 late (an
    // hour and a half behind 11:30); 8 and 9 rejected.
    assert_eq!(stdout(&run).lines().last(), Some("rows=4 rejected=2 filtered=3 late=1"));

    let file = File::open(&output).expect("parquet file");
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet metadata");
    let batches: Vec<_> = builder.build().expect("reader").map(|b| b.expect("batch")).collect();
    let batch = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).expect("concat");
    let column = |name: &str| -> Vec<String> {
        let array = batch.column_by_name(name).unwrap_or_else(|| panic!("no {name}"));
        (0..batch.num_rows())
            .map(|row| arrow_cast::display::array_value_to_string(array, row).expect("shows"))
            .collect()
    };
    let expected: Vec<&str> = DEBEZIUM_LINES
        .iter()
        .map(|(_, what)| *what)
        .filter(|w| w.starts_with("upsert") || w.starts_with("delete"))
        .collect();
    let found: Vec<String> = column("_op").iter().zip(column("id")).map(|(op, id)| format!("{op} {id}")).collect();
    assert_eq!(found, expected);
    // eval runs after the ref; a delete's NULL tier is not >= 2; `'gold-' || NULL` is NULL.
    assert_eq!(column("label"), ["gold-DE", "basic", "basic", ""]);
    assert_eq!(column("_sequence_number"), ["1", "3", "5", "10"], "the line numbers");

    let rejections: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .expect("errors file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let codes: Vec<(&str, &str)> =
        rejections.iter().map(|r| (r["line"].as_str().unwrap_or(""), r["code"].as_str().unwrap_or(""))).collect();
    assert_eq!(codes, [("8", "CDC_TOMBSTONE"), ("9", "CDC_UNKNOWN_OP")]);
}
