//! Protobuf records, inline and from both registries' framings, decoded into
//! Arrow: messages are written by prost-reflect's `DynamicMessage` (an
//! encoder that is not ours) from `.proto` text compiled by protox.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MapKey, Value};
use tributary_codec::{Decoder, ReasonCode, Registries, glue_frame, glue_message_index};

const SCHEMA: &str = r#"
syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

enum Status { STATUS_UNSPECIFIED = 0; PAID = 1; SHIPPED = 2; }

message Address { string city = 1; optional string country = 2; }

message Order {
  int64 id = 1;
  string name = 2;
  optional string email = 3;
  Status status = 4;
  repeated string tags = 5;
  map<string, int32> counts = 6;
  Address address = 7;
  google.protobuf.Timestamp ts = 8;
  google.protobuf.Int64Value qty = 9;
  oneof payment { string card = 10; string iban = 11; }
  sint32 delta = 12;
  repeated int64 sizes = 13;
  string ignored = 14;
  uint64 big = 15;
}
"#;

const FIELDS: [(&str, &str); 15] = [
    ("id", "int64"),
    ("name", "string"),
    ("email", "optional<string>"),
    ("status", "string"),
    ("tags", "list<string>"),
    ("counts", "map<string, int32>"),
    ("address", "optional<struct<city: string, country: optional<string>>>"),
    ("ts", "timestamp"),
    ("qty", "optional<int64>"),
    ("card", "optional<string>"),
    ("iban", "optional<string>"),
    ("delta", "int32"),
    ("sizes", "list<int64>"),
    ("country", "optional<string>"),
    ("big", "optional<int64>"),
];

fn pool() -> DescriptorPool {
    let mut compiler = protox::Compiler::with_file_resolver(InlineSchema);
    compiler.include_imports(true);
    compiler.open_file("order.proto").expect("compiles");
    compiler.descriptor_pool()
}

struct InlineSchema;

impl protox::file::FileResolver for InlineSchema {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if name == "order.proto" {
            protox::file::File::from_source(name, SCHEMA)
        } else {
            protox::file::GoogleFileResolver::new().open_file(name)
        }
    }
}

fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("json")
}

fn inline_source(extra: &str) -> tributary_source::Source {
    let format = format!("{{protobuf: {{message: shop.v1.Order, schema: {}}}}}", yaml_string(SCHEMA));
    common::source(&FIELDS, &format, &format!("    preproc:\n      country: {{ref: \"address[country]\"}}\n{extra}"))
}

/// A full order, as encoded bytes.
fn full_order(pool: &DescriptorPool, id: i64) -> Vec<u8> {
    let order = pool.get_message_by_name("shop.v1.Order").expect("Order");
    let mut message = DynamicMessage::new(order.clone());
    message.set_field_by_name("id", Value::I64(id));
    message.set_field_by_name("name", Value::String(format!("order-{id}")));
    message.set_field_by_name("email", Value::String("a@example.com".into()));
    message.set_field_by_name("status", Value::EnumNumber(2));
    message.set_field_by_name("tags", Value::List(vec![Value::String("x".into()), Value::String("y".into())]));
    message.set_field_by_name(
        "counts",
        Value::Map([(MapKey::String("apples".into()), Value::I32(3))].into_iter().collect()),
    );
    let address = pool.get_message_by_name("shop.v1.Address").expect("Address");
    let mut address = DynamicMessage::new(address);
    address.set_field_by_name("city", Value::String("Lyon".into()));
    address.set_field_by_name("country", Value::String("FR".into()));
    message.set_field_by_name("address", Value::Message(address));
    let timestamp = pool.get_message_by_name("google.protobuf.Timestamp").expect("Timestamp");
    let mut ts = DynamicMessage::new(timestamp);
    ts.set_field_by_name("seconds", Value::I64(1_700_000_000));
    ts.set_field_by_name("nanos", Value::I32(123_456_000));
    message.set_field_by_name("ts", Value::Message(ts));
    let wrapper = pool.get_message_by_name("google.protobuf.Int64Value").expect("Int64Value");
    let mut qty = DynamicMessage::new(wrapper);
    qty.set_field_by_name("value", Value::I64(7));
    message.set_field_by_name("qty", Value::Message(qty));
    message.set_field_by_name("iban", Value::String("FR76".into()));
    message.set_field_by_name("delta", Value::I32(-5));
    message.set_field_by_name("sizes", Value::List(vec![Value::I64(1), Value::I64(-2), Value::I64(300)]));
    message.set_field_by_name("ignored", Value::String("not in the dataset".into()));
    message.encode_to_vec()
}

fn string_at(batch: &RecordBatch, column: &str, row: usize) -> Option<String> {
    let array = batch.column_by_name(column).expect("column");
    array.is_valid(row).then(|| array.as_string::<i32>().value(row).to_owned())
}

fn check_full_order(batch: &RecordBatch, row: usize, id: i64) {
    assert_eq!(batch.column_by_name("id").expect("id").as_primitive::<Int64Type>().value(row), id);
    assert_eq!(string_at(batch, "name", row), Some(format!("order-{id}")));
    assert_eq!(string_at(batch, "email", row).as_deref(), Some("a@example.com"));
    assert_eq!(string_at(batch, "status", row).as_deref(), Some("SHIPPED"));
    let tags = batch.column_by_name("tags").expect("tags").as_list::<i32>().value(row);
    assert_eq!(tags.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["x", "y"]);
    let counts = batch.column_by_name("counts").expect("counts").as_map().value(row);
    assert_eq!(counts.column(0).as_string::<i32>().value(0), "apples");
    assert_eq!(counts.column(1).as_primitive::<Int32Type>().value(0), 3);
    let address = batch.column_by_name("address").expect("address").as_struct();
    assert_eq!(address.column(0).as_string::<i32>().value(row), "Lyon");
    assert_eq!(string_at(batch, "country", row).as_deref(), Some("FR"), "the preproc ref walked into address");
    let ts = batch.column_by_name("ts").expect("ts").as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(row), 1_700_000_000_123_456);
    assert_eq!(batch.column_by_name("qty").expect("qty").as_primitive::<Int64Type>().value(row), 7);
    assert_eq!(string_at(batch, "card", row), None, "the other member of the oneof");
    assert_eq!(string_at(batch, "iban", row).as_deref(), Some("FR76"));
    assert_eq!(batch.column_by_name("delta").expect("delta").as_primitive::<Int32Type>().value(row), -5);
    let sizes = batch.column_by_name("sizes").expect("sizes").as_list::<i32>().value(row);
    assert_eq!(sizes.as_primitive::<Int64Type>().values().to_vec(), vec![1, -2, 300], "packed");
}

#[test]
fn inline_messages_decode_every_kind_of_field() {
    let pool = pool();
    let mut decoder = Decoder::new(&inline_source(""), None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[full_order(&pool, 1), full_order(&pool, 2)]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    check_full_order(&out.batch, 0, 1);
    check_full_order(&out.batch, 1, 2);
}

#[test]
fn unset_fields_get_what_proto_says_they_are() {
    let pool = pool();
    let order = pool.get_message_by_name("shop.v1.Order").expect("Order");
    let mut message = DynamicMessage::new(order);
    message.set_field_by_name("id", Value::I64(0));
    let timestamp = pool.get_message_by_name("google.protobuf.Timestamp").expect("Timestamp");
    let mut ts = DynamicMessage::new(timestamp);
    ts.set_field_by_name("seconds", Value::I64(1));
    message.set_field_by_name("ts", Value::Message(ts));
    let mut decoder = Decoder::new(&inline_source(""), None).expect("compiles");
    let out = common::decode_all(&mut decoder, &[message.encode_to_vec()]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let batch = &out.batch;
    assert_eq!(string_at(batch, "name", 0).as_deref(), Some(""), "proto3 scalars default");
    assert_eq!(string_at(batch, "status", 0).as_deref(), Some("STATUS_UNSPECIFIED"), "enums default to 0's name");
    assert_eq!(string_at(batch, "email", 0), None, "an unset `optional` is null");
    assert!(batch.column_by_name("qty").expect("qty").is_null(0), "an unset wrapper is null");
    assert!(batch.column_by_name("address").expect("address").is_null(0), "an unset message is null");
    assert_eq!(batch.column_by_name("tags").expect("tags").as_list::<i32>().value(0).len(), 0);
    assert_eq!(string_at(batch, "country", 0), None);
    assert_eq!(batch.column_by_name("delta").expect("delta").as_primitive::<Int32Type>().value(0), 0);
}

#[test]
fn bad_messages_are_rejected_alone() {
    let pool = pool();
    let mut decoder = Decoder::new(&inline_source(""), None).expect("compiles");
    let good = full_order(&pool, 1);
    let truncated = good[..good.len() - 3].to_vec();
    // Field 1 (id, a varint) sent as a length-delimited value.
    let wrong_wire_type = vec![0x0a, 0x01, 0x41];
    // Field 15 (uint64) beyond int64.
    let mut too_big = vec![0x78];
    too_big.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // Field number 0.
    let field_zero = vec![0x00, 0x01];
    let out = common::decode_all(&mut decoder, &[truncated, good.clone(), wrong_wire_type, too_big, field_zero, good]);
    let codes: Vec<ReasonCode> = out.rejections.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [ReasonCode::Malformed, ReasonCode::Malformed, ReasonCode::OutOfRange, ReasonCode::Malformed],
        "{:?}",
        out.rejections
    );
    assert_eq!(&*out.rejections[2].field, "big");
    assert_eq!(out.batch.num_rows(), 2);
    check_full_order(&out.batch, 0, 1);
    check_full_order(&out.batch, 1, 1);
}

#[test]
fn later_occurrences_win_and_fields_come_in_any_order() {
    let pool = pool();
    let mut decoder = Decoder::new(&inline_source(""), None).expect("compiles");
    let mut bytes = full_order(&pool, 1);
    // Append a second `id` (last one wins) and more `sizes` unpacked (they add up).
    bytes.extend_from_slice(&[0x08, 0x09, 0x68, 0x04]);
    let out = common::decode_all(&mut decoder, &[bytes]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    assert_eq!(out.batch.column_by_name("id").expect("id").as_primitive::<Int64Type>().value(0), 9);
    let sizes = out.batch.column_by_name("sizes").expect("sizes").as_list::<i32>().value(0);
    assert_eq!(sizes.as_primitive::<Int64Type>().values().to_vec(), vec![1, -2, 300, 4]);
}

#[test]
fn schemas_that_cannot_fill_the_dataset_are_refused_at_compile() {
    let wrong_type = [("id", "string"), ("ts", "timestamp")];
    let format = format!("{{protobuf: {{message: shop.v1.Order, schema: {}}}}}", yaml_string(SCHEMA));
    let error = Decoder::new(&common::source(&wrong_type, &format, ""), None).expect_err("id is an int64");
    assert!(error.to_string().contains("field `id`: protobuf field `shop.v1.Order.id` (int64)"), "{error}");
    let missing = [("nope", "int64"), ("ts", "timestamp")];
    let error = Decoder::new(&common::source(&missing, &format, ""), None).expect_err("no field nope");
    assert!(error.to_string().contains("`nope` is not in message `shop.v1.Order`"), "{error}");
    let wrong_message = format!("{{protobuf: {{message: shop.v1.Nope, schema: {}}}}}", yaml_string(SCHEMA));
    let error = Decoder::new(&common::source(&[("ts", "timestamp")], &wrong_message, ""), None).expect_err("no type");
    assert!(error.to_string().contains("no message `shop.v1.Nope`"), "{error}");
    let check = tributary_codec::compile_check(&common::source(&wrong_type, &format, "")).expect_err("refused");
    assert_eq!((check.field.as_str(), check.code.as_str()), ("kinesis.format.protobuf.schema", "SCHEMA_INCOMPATIBLE"));
}

fn confluent_payload(id: u32, path: &[u8], message: &[u8]) -> Vec<u8> {
    let mut payload = vec![0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(path);
    payload.extend_from_slice(message);
    payload
}

#[test]
fn confluent_framing_names_the_schema_and_the_message() {
    let pool = pool();
    // Order is the file's second top-level message: path [1] = count 1, index 1 (zig-zag: 2, 2).
    assert_eq!(tributary_codec::confluent_message_path(SCHEMA, "shop.v1.Order"), Ok(vec![1]));
    let server = common::typed_registry(vec![(5, "PROTOBUF", SCHEMA.to_owned()), (6, "AVRO", "\"int\"".into())], None);
    let format = format!("{{protobuf: {{message: shop.v1.Order, registry: confluent, url: \"{}\"}}}}", server.url);
    let source = common::source(&FIELDS, &format, "    preproc:\n      country: {ref: \"address[country]\"}\n");
    let mut decoder = Decoder::new(&source, None).expect("compiles");
    let order = full_order(&pool, 1);
    let payloads = [
        confluent_payload(5, &[0x02, 0x02], &order),
        // [0], written as a single 0: the file's first message, Address.
        confluent_payload(5, &[0x00], &order),
        confluent_payload(6, &[0x00], &order),
        confluent_payload(7, &[0x00], &order),
        vec![1, 0, 0, 0, 5],
        confluent_payload(5, &[0x02, 0x02], &order),
    ];
    let out = common::decode_all(&mut decoder, &payloads);
    let codes: Vec<ReasonCode> = out.rejections.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [ReasonCode::SchemaMismatch, ReasonCode::SchemaMismatch, ReasonCode::UnknownSchemaId, ReasonCode::BadFraming],
        "{:?}",
        out.rejections
    );
    assert!(out.rejections[1].message().contains("schema 6 is AVRO, not PROTOBUF"), "{}", out.rejections[1].message());
    assert_eq!(out.batch.num_rows(), 2);
    check_full_order(&out.batch, 1, 1);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3, "one look-up per schema id");
}

const VERSION: u128 = 0x1111_2222_3333_4444_5555_6666_7777_8888;

fn glue_source(versions: &Arc<common::GlueVersions>, format: &str, fields: &[(&str, &str)], extra: &str) -> Decoder {
    let source = common::source(fields, format, extra);
    let registries = Registries { confluent: None, glue: Some(versions.clone()) };
    Decoder::with_registries(&source, registries).expect("compiles")
}

#[test]
fn glue_framing_finds_the_message_by_its_sorted_index() {
    let pool = pool();
    let index = glue_message_index(SCHEMA, "shop.v1.Order").expect("index");
    // Sorted: shop.v1.Address, shop.v1.Order, shop.v1.Order.CountsEntry.
    assert_eq!(index, 1);
    let versions = common::GlueVersions::with(vec![
        (VERSION, "PROTOBUF", "AVAILABLE", SCHEMA.to_owned()),
        (VERSION + 1, "PROTOBUF", "PENDING", SCHEMA.to_owned()),
        (VERSION + 2, "AVRO", "AVAILABLE", "\"int\"".to_owned()),
    ]);
    let format = "{protobuf: {message: shop.v1.Order, registry: {glue: {registry_name: shop}}}}";
    let mut decoder =
        glue_source(&versions, format, &FIELDS, "    preproc:\n      country: {ref: \"address[country]\"}\n");
    let mut body = vec![0x01];
    body.extend_from_slice(&full_order(&pool, 3));
    let mut wrong_index = vec![0x00];
    wrong_index.extend_from_slice(&full_order(&pool, 3));
    let payloads = [
        glue_frame(VERSION, &body, false),
        glue_frame(VERSION, &body, true),
        glue_frame(VERSION + 1, &body, false),
        glue_frame(VERSION + 2, &body, false),
        glue_frame(VERSION + 3, &body, false),
        glue_frame(VERSION, &wrong_index, false),
        body.clone(),
    ];
    let out = common::decode_all(&mut decoder, &payloads);
    let codes: Vec<ReasonCode> = out.rejections.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            ReasonCode::SchemaVersionNotAvailable,
            ReasonCode::SchemaMismatch,
            ReasonCode::UnknownSchemaVersion,
            ReasonCode::SchemaMismatch,
            ReasonCode::BadFraming,
        ],
        "{:?}",
        out.rejections
    );
    assert!(out.rejections[0].message().contains("11112222-3333-4444-5555-666677778889 is PENDING"));
    assert_eq!(out.batch.num_rows(), 2, "plain and zlib");
    check_full_order(&out.batch, 0, 3);
    check_full_order(&out.batch, 1, 3);
}

#[test]
fn glue_avro_and_json_read_their_versions_once() {
    let avro_schema = r#"{"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}, {"name": "ts", "type": "long"}]}"#;
    let versions = common::GlueVersions::with(vec![(VERSION, "AVRO", "AVAILABLE", avro_schema.to_owned())]);
    let fields = [("id", "int64"), ("ts", "timestamp")];
    let mut decoder = glue_source(&versions, "{avro: {registry: {glue: {registry_name: shop}}}}", &fields, "");
    // id 21, ts 1700000000 (zig-zag varints).
    let datum = [0x2a, 0x80, 0xd0, 0xc2, 0xd5, 0x0c];
    let payloads: Vec<Vec<u8>> = (0..10).map(|i| glue_frame(VERSION, &datum, i % 2 == 0)).collect();
    let out = common::decode_all(&mut decoder, &payloads);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    assert_eq!(out.batch.num_rows(), 10);
    assert_eq!(out.batch.column(0).as_primitive::<Int64Type>().value(9), 21);
    assert_eq!(versions.lookups.load(Ordering::SeqCst), 1);

    let json_schema = r#"{"type": "object", "properties": {"id": {"type": "integer"}, "ts": {"type": "string"}}}"#;
    let wrong_schema = r#"{"type": "object", "properties": {"id": {"type": "string"}}}"#;
    let versions = common::GlueVersions::with(vec![
        (VERSION, "JSON", "AVAILABLE", json_schema.to_owned()),
        (VERSION + 1, "JSON", "AVAILABLE", wrong_schema.to_owned()),
    ]);
    let mut decoder = glue_source(&versions, "{json: {registry: {glue: {registry_name: shop}}}}", &fields, "");
    let row = br#"{"id": 5, "ts": "2024-01-01T00:00:00Z"}"#;
    let payloads = [glue_frame(VERSION, row, true), glue_frame(VERSION + 1, row, false), row.to_vec()];
    let out = common::decode_all(&mut decoder, &payloads);
    let codes: Vec<ReasonCode> = out.rejections.iter().map(|r| r.code()).collect();
    assert_eq!(codes, [ReasonCode::SchemaMismatch, ReasonCode::BadFraming], "{:?}", out.rejections);
    assert!(out.rejections[0].message().contains("cannot be read as `int64`"), "{}", out.rejections[0].message());
    assert_eq!(out.batch.column(0).as_primitive::<Int64Type>().value(0), 5);
}

#[test]
fn an_unreachable_registry_is_retried_and_made_up_versions_cost_bounded_calls() {
    let versions = common::GlueVersions::with(Vec::new());
    let fields = [("id", "int64"), ("ts", "timestamp")];
    let mut decoder = glue_source(&versions, "{json: {registry: {glue: {registry_name: shop}}}}", &fields, "");
    versions.unavailable.store(true, Ordering::SeqCst);
    let error = decoder.decode(&glue_frame(VERSION, b"{}", false), &common::meta("1")).expect_err("retry later");
    assert!(error.is_retryable());
    versions.unavailable.store(false, Ordering::SeqCst);
    let before = versions.lookups.load(Ordering::SeqCst);
    for made_up in 0..2_000u128 {
        let accepted = decoder.decode(&glue_frame(made_up << 64, b"{}", false), &common::meta("2")).expect("decoded");
        assert!(!accepted);
    }
    let calls = versions.lookups.load(Ordering::SeqCst) - before;
    assert!((100..=110).contains(&calls), "{calls} look-ups for 2,000 made-up versions");
    let out = decoder.flush().expect("flush");
    assert!(out.rejections.iter().all(|r| r.code() == ReasonCode::UnknownSchemaVersion));
}

#[test]
fn imports_of_the_inline_schema_come_from_the_definition() {
    let money = "syntax = \"proto3\"; package m; message Money { int64 cents = 1; string currency = 2; }";
    let main =
        "syntax = \"proto3\"; package p; import \"money.proto\"; message Pay { m.Money total = 1; int64 ts = 2; }";
    let format = format!(
        "{{protobuf: {{message: p.Pay, schema: {}, imports: {{money.proto: {}}}}}}}",
        yaml_string(main),
        yaml_string(money)
    );
    let fields = [("total", "struct<cents: int64, currency: string>"), ("ts", "timestamp")];
    let mut decoder = Decoder::new(&common::source(&fields, &format, ""), None).expect("compiles");
    // total {cents: 250, currency: "EUR"}, ts 1700000000
    let bytes = [0x0a, 0x08, 0x08, 0xfa, 0x01, 0x12, 0x03, b'E', b'U', b'R', 0x10, 0x80, 0xe2, 0xcf, 0xaa, 0x06];
    let out = common::decode_all(&mut decoder, &[bytes.to_vec()]);
    assert!(out.rejections.is_empty(), "{:?}", out.rejections);
    let total = out.batch.column(0).as_struct();
    assert_eq!(total.column(0).as_primitive::<Int64Type>().value(0), 250);
    assert_eq!(total.column(1).as_string::<i32>().value(0), "EUR");
}
