//! Glue Schema Registry sources end to end: schemas registered in moto's Glue
//! by the reference Python serde, records framed by it (zlib included), read
//! from kinesis-local by `tributary serve`; the live commit checks of every
//! registered version; and `tributary decode` on the same framing.
#![allow(missing_docs)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use support::server::{ServerProcess, dataset_rows};
use support::{Emulators, create_stream, kinesis_client, stdout, tributary, unique};

/// Runs the fixture script with moto's Python (which has the serde).
fn glue_fixture(emulators: &Emulators, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/glue_registry.py");
    let output = Command::new(&emulators.moto_python)
        .arg(script)
        .arg(&emulators.moto)
        .args(args)
        .output()
        .expect("run glue_registry.py");
    assert!(output.status.success(), "glue_registry.py failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("fixture JSON")
}

fn base64_records(fixture: &Value) -> Vec<Vec<u8>> {
    fixture["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| base64::engine::general_purpose::STANDARD.decode(r.as_str().expect("text")).expect("base64"))
        .collect()
}

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `shop.Order {id, name, ts: Timestamp}` in Protobuf's wire format, after
/// Glue's message index (0: `shop.Order` sorts before `shop.Order.Line`).
fn protobuf_order(id: u64) -> Vec<u8> {
    let mut message = vec![0x08];
    varint(id, &mut message);
    let name = format!("proto-{id}");
    message.push(0x12);
    varint(name.len() as u64, &mut message);
    message.extend_from_slice(name.as_bytes());
    let mut ts = vec![0x08];
    varint(1_700_000_000 + id, &mut ts);
    message.push(0x1a);
    varint(ts.len() as u64, &mut message);
    message.extend_from_slice(&ts);
    let mut body = vec![0x00];
    body.extend_from_slice(&message);
    body
}

async fn put_all(endpoint: &str, stream_arn: &str, payloads: &[Vec<u8>]) {
    let client = kinesis_client(endpoint);
    for (i, payload) in payloads.iter().enumerate() {
        client
            .put_record()
            .stream_arn(stream_arn)
            .partition_key(format!("k{i}"))
            .data(aws_sdk_kinesis::primitives::Blob::new(payload.clone()))
            .send()
            .await
            .expect("PutRecord");
    }
}

fn source_yaml(name: &str, stream_arn: &str, format: &str) -> String {
    format!(
        "  - name: {name}\n    kinesis:\n      stream_arn: {stream_arn}\n      init_position: trim_horizon\n      format: {format}\n    dataset:\n      name: {name}\n      format: parquet\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: name, type: string}}\n        - {{name: ts, type: timestamp}}\n      timestamp: ts\n"
    )
}

fn commit(server: &ServerProcess, file: &Path) {
    let output = tributary(&["commit", &file.to_string_lossy(), "--server", &server.url(), "-m", "glue"], &[]);
    assert!(output.status.success(), "commit failed: {}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn glue_framed_avro_json_and_protobuf_land_and_bad_frames_are_rejected_with_their_reasons() {
    let Some(emulators) = Emulators::from_env() else { return };
    let registry = unique("shop").replace('-', "_");
    const RECORDS: usize = 20;
    let fixture = glue_fixture(&emulators, &["records", &registry, &RECORDS.to_string()]);

    let avro_stream = create_stream(&emulators.kinesis, &unique("glue-avro"), 1, true).await;
    let json_stream = create_stream(&emulators.kinesis, &unique("glue-json"), 1, true).await;
    let proto_stream = create_stream(&emulators.kinesis, &unique("glue-proto"), 1, true).await;
    let unknown = base64::engine::general_purpose::STANDARD
        .decode(fixture["unknown_version"].as_str().expect("text"))
        .expect("base64");
    let avro_version = tributary_codec::parse_uuid(fixture["avro"]["version_id"].as_str().expect("id")).expect("uuid");
    // 33 MiB of zeros deflate to a few dozen KiB: a bomb that fits a Kinesis record.
    let bomb = tributary_codec::glue_frame(avro_version, &vec![0u8; 33 * 1024 * 1024], true);
    // A datum the writer schema reads but the dataset cannot hold: a millisecond timestamp past i64 microseconds.
    let mut datum = Vec::new();
    for (value, text) in [(7i64, None), (0, Some("late")), (9_300_000_000_000_000, None)] {
        match text {
            Some(text) => {
                varint((text.len() as u64) << 1, &mut datum);
                datum.extend_from_slice(text.as_bytes());
            }
            None => varint(((value << 1) ^ (value >> 63)) as u64, &mut datum),
        }
    }
    let out_of_range = tributary_codec::glue_frame(avro_version, &datum, false);
    let mut avro_records = base64_records(&fixture["avro"]);
    avro_records.extend([unknown, bomb, br#"{"id": 1}"#.to_vec(), out_of_range]);
    put_all(&emulators.kinesis, &avro_stream, &avro_records).await;
    put_all(&emulators.kinesis, &json_stream, &base64_records(&fixture["json"])).await;
    let proto_version =
        tributary_codec::parse_uuid(fixture["protobuf"]["version_id"].as_str().expect("id")).expect("uuid");
    let proto_records: Vec<Vec<u8>> = (0..RECORDS as u64)
        .map(|i| tributary_codec::glue_frame(proto_version, &protobuf_order(i), i % 2 == 1))
        .collect();
    put_all(&emulators.kinesis, &proto_stream, &proto_records).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let glue = |schema: &str| format!("{{registry: {{glue: {{registry_name: {registry}, schema_name: {schema}}}}}}}");
    let definition = format!(
        "sources:\n{}{}{}",
        source_yaml("glue_avro", &avro_stream, &format!("{{avro: {}}}", glue("orders-avro"))),
        source_yaml("glue_json", &json_stream, &format!("{{json: {}}}", glue("orders-json"))),
        source_yaml(
            "glue_proto",
            &proto_stream,
            &format!(
                "{{protobuf: {{message: shop.Order, {}}}}}",
                &glue("orders-proto")[1..glue("orders-proto").len() - 1]
            )
        ),
    );
    let file = dir.path().join("glue.yaml");
    std::fs::write(&file, &definition).expect("write definition");
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start(&data_dir, &[]);
    // The commit's live checks read every registered version of each schema from moto.
    commit(&server, &file);

    server.wait_for_records("glue_avro", RECORDS as u64 + 4, Duration::from_secs(60));
    server.wait_for_records("glue_json", RECORDS as u64, Duration::from_secs(60));
    server.wait_for_records("glue_proto", RECORDS as u64, Duration::from_secs(60));
    for (dataset, prefix) in [("glue_avro", "avro"), ("glue_json", "json"), ("glue_proto", "proto")] {
        let rows = dataset_rows(&data_dir, dataset, Some("name"));
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        assert_eq!(ids, (0..RECORDS as i64).collect::<Vec<_>>(), "{dataset}: every record once, plain and zlib");
        assert!(rows.iter().all(|r| r.extra.as_deref() == Some(&format!("{prefix}-{}", r.id))), "{dataset}: {rows:?}");
    }
    let mut codes: Vec<String> =
        server.errors("glue_avro").iter().map(|e| e["reason"].as_str().unwrap_or_default().to_owned()).collect();
    codes.sort();
    assert_eq!(codes, ["BAD_FRAMING", "BAD_TIMESTAMP", "DECOMPRESSED_TOO_LARGE", "UNKNOWN_SCHEMA_VERSION"]);
    // The console's view of the rejected rows decodes each with its Glue writer schema.
    let errors = server.errors("glue_avro");
    let with = |code: &str| errors.iter().find(|e| e["reason"] == code).unwrap_or_else(|| panic!("{code}")).clone();
    assert_eq!(with("BAD_TIMESTAMP")["avro"]["id"], 7, "{:#}", with("BAD_TIMESTAMP"));
    assert!(
        with("UNKNOWN_SCHEMA_VERSION")["avro_error"].as_str().is_some_and(|e| e.contains("not in the Glue registry")),
        "{:#}",
        with("UNKNOWN_SCHEMA_VERSION")
    );
    assert!(server.errors("glue_json").is_empty() && server.errors("glue_proto").is_empty());

    // A dry run decodes the rejected records again, asking Glue from the API's blocking thread:
    // the same four stay rejected for the same reasons.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut response = agent
        .post(&format!("{}/api/v1/sources/glue_avro/replay", server.url()))
        .header("Content-Type", "application/json")
        .send(r#"{"dry_run": true}"#)
        .expect("POST");
    let text = response.body_mut().read_to_string().expect("body");
    assert_eq!(response.status().as_u16(), 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!((answer["examined"].as_u64(), answer["still_rejected"].as_u64()), (Some(4), Some(4)), "{answer:#}");

    // `tributary decode` reads the same framing, asking moto's Glue for the schema.
    let lines: String = fixture["avro"]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| format!("{}\n", r.as_str().expect("text")))
        .collect();
    let input = dir.path().join("avro.b64");
    std::fs::write(&input, lines).expect("write input");
    let output = tributary(
        &[
            "decode",
            "--definition",
            &file.to_string_lossy(),
            "--source",
            "glue_avro",
            "--input",
            &input.to_string_lossy(),
        ],
        &[],
    );
    assert!(output.status.success(), "{}{}", stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout(&output).trim(), format!("rows={RECORDS} rejected=0 filtered=0 late=0"));
}

#[tokio::test]
async fn live_checks_read_every_version_of_the_schema_and_name_the_one_that_does_not_fit() {
    let Some(emulators) = Emulators::from_env() else { return };
    let registry = unique("versions").replace('-', "_");
    glue_fixture(&emulators, &["versions", &registry]);
    let stream = create_stream(&emulators.kinesis, &unique("glue-live"), 1, true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let validate = |registry: &str, schema: Option<&str>| {
        let schema = schema.map(|s| format!(", schema_name: {s}")).unwrap_or_default();
        let format = format!("{{avro: {{registry: {{glue: {{registry_name: {registry}{schema}}}}}}}}}");
        let file = dir.path().join("live.yaml");
        std::fs::write(&file, format!("sources:\n{}", source_yaml("orders", &stream, &format))).expect("write");
        let output = tributary(&["validate", "--live", &file.to_string_lossy()], &[]);
        (output.status.code(), stdout(&output))
    };

    let (code, out) = validate(&registry, Some("orders"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("SCHEMA_INCOMPATIBLE orders.kinesis.format.avro.registry.glue: schema `orders` version 2:"),
        "{out}"
    );
    assert!(out.contains("`name`"), "the field at fault is named: {out}");

    let (code, out) = validate(&registry, Some("nope"));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("SCHEMA_NOT_FOUND orders.kinesis.format.avro.registry.glue: schema `nope`"), "{out}");

    let (code, out) = validate("no_such_registry", None);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("SCHEMA_REGISTRY_NOT_FOUND orders.kinesis.format.avro.registry.glue:"), "{out}");

    // Without a schema name the registry and the GetSchemaVersion permission are what can be proven.
    let (code, out) = validate(&registry, None);
    assert_eq!(code, Some(0), "{out}");
}
