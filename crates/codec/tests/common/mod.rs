//! Helpers shared by the codec's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tributary_codec::{DecodedBatch, Decoder, RecordMeta};
use tributary_source::{Source, parse_text, validate_raw_sources};

/// A validated source with these dataset fields (`name: type` pairs), timestamp `ts`,
/// and `format` given as YAML (e.g. `json`).
pub fn source(fields: &[(&str, &str)], format: &str, extra: &str) -> Source {
    let fields: String = fields.iter().map(|(n, t)| format!("        - {{name: {n}, type: \"{t}\"}}\n")).collect();
    let yaml = format!(
        "sources:\n  - name: t\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/t\n      init_position: trim_horizon\n      format: {format}\n    dataset:\n      fields:\n{fields}      timestamp: ts\n{extra}"
    );
    let file = parse_text(&yaml, false).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    validate_raw_sources(&file.sources, Utc::now()).unwrap_or_else(|e| panic!("{e:#?}\n{yaml}")).remove(0)
}

/// Metadata for the `n`th record of a test.
pub fn meta(sequence: &str) -> RecordMeta<'_> {
    RecordMeta {
        shard_id: "shardId-000000000001",
        sequence_number: sequence,
        sub_sequence: None,
        partition_key: "pk",
        arrival_time_micros: 1_700_000_000_000_000,
    }
}

/// Decodes every payload (sequence numbers "1", "2", ...) and flushes.
pub fn decode_all(decoder: &mut Decoder, payloads: &[Vec<u8>]) -> DecodedBatch {
    let sequences: Vec<String> = (1..=payloads.len()).map(|i| i.to_string()).collect();
    for (payload, sequence) in payloads.iter().zip(&sequences) {
        decoder.decode(payload, &meta(sequence)).expect("no transient error");
    }
    decoder.flush().expect("flush")
}

/// A schema registry on 127.0.0.1: serves `schemas` by id, demands `authorization`, counts requests.
pub struct Registry {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub seen_auth: Arc<Mutex<Vec<String>>>,
}

pub fn registry(schemas: Vec<(u32, String)>, authorization: Option<&'static str>) -> Registry {
    typed_registry(schemas.into_iter().map(|(id, schema)| (id, "AVRO", schema)).collect(), authorization)
}

/// As [`registry`], with each schema's type (`AVRO`, `PROTOBUF`, `JSON`); Avro's is left out, as registries do.
pub fn typed_registry(schemas: Vec<(u32, &'static str, String)>, authorization: Option<&'static str>) -> Registry {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let seen_auth = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (requests.clone(), seen_auth.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("header");
                if line.trim().is_empty() {
                    break;
                }
                if let Some(value) =
                    line.strip_prefix("authorization: ").or_else(|| line.strip_prefix("Authorization: "))
                {
                    auth = value.trim().to_owned();
                }
            }
            seen.lock().expect("lock").push(auth.clone());
            let id: Option<u32> = request_line
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.strip_prefix("/schemas/ids/"))
                .and_then(|i| i.parse().ok());
            let (status, body) = if authorization.is_some_and(|expected| expected != auth) {
                ("401 Unauthorized", r#"{"error_code": 401, "message": "Unauthorized"}"#.to_owned())
            } else {
                match id.and_then(|id| schemas.iter().find(|(i, _, _)| *i == id)) {
                    Some((_, "AVRO", schema)) => ("200 OK", serde_json::json!({ "schema": schema }).to_string()),
                    Some((_, kind, schema)) => {
                        ("200 OK", serde_json::json!({ "schema": schema, "schemaType": kind }).to_string())
                    }
                    None => ("404 Not Found", r#"{"error_code": 40403, "message": "Schema not found"}"#.to_owned()),
                }
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Registry { url, requests, seen_auth }
}

/// Glue schema versions held in memory, counting look-ups: the codec's side
/// of the registry (the server's real client is tested against moto).
#[derive(Debug, Default)]
pub struct GlueVersions {
    pub versions: Mutex<Vec<(u128, tributary_codec::GlueSchemaVersion)>>,
    pub lookups: AtomicUsize,
    pub unavailable: std::sync::atomic::AtomicBool,
}

impl GlueVersions {
    pub fn with(versions: Vec<(u128, &str, &str, String)>) -> Arc<GlueVersions> {
        let versions = versions
            .into_iter()
            .map(|(id, format, status, definition)| {
                (
                    id,
                    tributary_codec::GlueSchemaVersion {
                        data_format: format.to_owned(),
                        status: status.to_owned(),
                        definition,
                    },
                )
            })
            .collect();
        Arc::new(GlueVersions { versions: Mutex::new(versions), ..GlueVersions::default() })
    }
}

impl tributary_codec::GlueSchemaSource for GlueVersions {
    fn schema_version(
        &self,
        id: u128,
    ) -> Result<Option<tributary_codec::GlueSchemaVersion>, tributary_codec::RegistryError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(tributary_codec::RegistryError::Unavailable("the registry is down".into()));
        }
        Ok(self.versions.lock().expect("lock").iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone()))
    }
}
