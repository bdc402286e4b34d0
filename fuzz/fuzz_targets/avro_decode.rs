//! Any bytes as an Avro datum of a writer schema that exercises every
//! resolution path: never a panic, and a batch that accounts for it.
#![no_main]

mod common;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tributary_codec::Decoder;

const WRITER: &str = r#"{"type": "record", "name": "R", "fields": [
  {"name": "id", "type": "int"},
  {"name": "small", "type": ["null", "int"]},
  {"name": "amount", "type": ["null", "float", "long"]},
  {"name": "f32", "type": ["null", "float"]},
  {"name": "ts", "type": ["string", {"type": "long", "logicalType": "timestamp-millis"}]},
  {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
  {"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 1}]},
  {"name": "name", "type": ["null", {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}, "string"]},
  {"name": "blob", "type": ["null", {"type": "fixed", "name": "F", "size": 3}, "bytes"]},
  {"name": "flag", "type": ["null", "boolean"]},
  {"name": "skipped", "type": {"type": "map", "values": {"type": "array", "items": ["null", "double", "string"]}}},
  {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]},
  {"name": "attrs", "type": ["null", {"type": "map", "values": {"type": "array", "items": "long"}}]},
  {"name": "customer", "type": ["null", {"type": "record", "name": "C", "fields": [
    {"name": "id", "type": "long"}, {"name": "tags", "type": {"type": "array", "items": ["null", "string"]}}]}]}
]}"#;

thread_local! {
    static DECODER: RefCell<Decoder> =
        RefCell::new(common::decoder(&format!("{{avro: {{schema: '{}'}}}}", WRITER.replace('\n', " "))));
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|decoder| common::check(&mut decoder.borrow_mut(), data));
});
