//! Any bytes as a Protobuf message of a schema that exercises every
//! resolution path (scalars of each wire type, enums, wrappers, Timestamp,
//! nested and repeated messages, maps, a `oneof`, a `preproc` ref): never a
//! panic, and a batch that accounts for it.
#![no_main]

mod common;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tributary_codec::Decoder;

const SCHEMA: &str = r#"syntax = "proto3";
package f;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
enum E { E_A = 0; E_B = 1; E_C = 2; }
message C { int64 id = 1; optional string email = 2; repeated string tags = 3; map<string, string> extra = 4; }
message R {
  sint64 id = 1;
  google.protobuf.Int32Value small = 2;
  oneof value { double amount = 3; sfixed64 whole = 15; }
  float f32 = 4;
  google.protobuf.Timestamp ts = 5;
  string day = 6;
  string price = 7;
  E name = 8;
  bytes blob = 9;
  optional bool flag = 10;
  repeated string tags = 11;
  C customer = 12;
  map<string, C> others = 13;
  repeated fixed32 skipped = 14;
}"#;

thread_local! {
    static DECODER: RefCell<Decoder> = RefCell::new(Decoder::new(
        &common::source(
            &format!("{{protobuf: {{message: f.R, schema: '{}'}}}}", SCHEMA.replace('\n', " ")),
            "",
            "    preproc:\n      blob: {ref: \"others[k][email]\"}\n",
        ),
        None,
    )
    .expect("compiles"));
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|decoder| common::check(&mut decoder.borrow_mut(), data));
});
