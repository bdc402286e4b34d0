//! Any bytes as a record framed by the Glue Schema Registry (header version,
//! compression byte, version UUID, zlib or not) carrying an Avro datum: never
//! a panic, never an inflated payload past the bound, and a batch that
//! accounts for it. Every UUID resolves to the same writer schema, so the
//! bytes after the header reach the datum reader.
#![no_main]

mod common;

use std::cell::RefCell;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tributary_codec::{Decoder, GlueSchemaSource, GlueSchemaVersion, Registries, RegistryError};

const WRITER: &str = r#"{"type": "record", "name": "R", "fields": [
  {"name": "id", "type": "long"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "name", "type": ["null", "string"]},
  {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]}
]}"#;

#[derive(Debug)]
struct EveryVersion;

impl GlueSchemaSource for EveryVersion {
    fn schema_version(&self, _id: u128) -> Result<Option<GlueSchemaVersion>, RegistryError> {
        Ok(Some(GlueSchemaVersion {
            data_format: "AVRO".to_owned(),
            status: "AVAILABLE".to_owned(),
            definition: WRITER.to_owned(),
        }))
    }
}

thread_local! {
    static DECODER: RefCell<Decoder> = RefCell::new(
        Decoder::with_registries(
            &common::source("{avro: {registry: {glue: {registry_name: fuzz}}}}", "", ""),
            Registries { confluent: None, glue: Some(Arc::new(EveryVersion)) },
        )
        .expect("compiles"),
    );
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|decoder| common::check(&mut decoder.borrow_mut(), data));
});
