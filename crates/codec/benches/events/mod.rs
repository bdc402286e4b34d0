//! The benchmarks' records: a realistic event (~250 B as JSON), its dataset,
//! its Avro writer schema, generated deterministically. Shared by the codec
//! benches (`mod events;`).
#![allow(dead_code)]

use apache_avro::types::Value;
use apache_avro::{Schema as AvroSchema, to_avro_datum};
use arrow_schema::{DataType, Field, Fields};
use chrono::Utc;
use tributary_codec::{Decoder, RecordMeta};
use tributary_source::{Source, parse_text, validate_raw_sources};

/// Rows per flush, for every decoder in the benches.
pub(crate) const BATCH: usize = 8192;

/// Our decoder over every record, flushing every `BATCH` rows: (rows, rejected).
pub(crate) fn ours(decoder: &mut Decoder, records: &[Vec<u8>]) -> (usize, usize) {
    let meta = RecordMeta { shard_id: "shardId-000000000000", sequence_number: "1", ..RecordMeta::default() };
    let (mut rows, mut rejected) = (0, 0);
    for chunk in records.chunks(BATCH) {
        for record in chunk {
            decoder.decode(record, &meta).expect("no transient error");
        }
        let out = decoder.flush().expect("flush");
        rows += std::hint::black_box(out.batch).num_rows();
        rejected += out.rejections.len();
    }
    (rows, rejected)
}

pub(crate) const DATASET: &str = r#"
      fields:
        - {name: id, type: int64}
        - {name: user, type: string}
        - {name: event, type: string}
        - {name: ts, type: timestamp}
        - {name: amount, type: float64}
        - {name: country, type: string}
        - {name: tags, type: "list<string>"}
        - {name: device, type: "struct<os: string, version: string, mobile: bool>"}
        - {name: referrer, type: "optional<string>"}
        - {name: session, type: string}
      timestamp: ts
"#;

pub(crate) const WRITER: &str = r#"{"type": "record", "name": "Event", "fields": [
  {"name": "id", "type": "long"},
  {"name": "user", "type": "string"},
  {"name": "event", "type": "string"},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "amount", "type": "double"},
  {"name": "country", "type": "string"},
  {"name": "tags", "type": {"type": "array", "items": "string"}},
  {"name": "device", "type": {"type": "record", "name": "Device", "fields": [
    {"name": "os", "type": "string"}, {"name": "version", "type": "string"}, {"name": "mobile", "type": "boolean"}]}},
  {"name": "referrer", "type": ["null", "string"]},
  {"name": "session", "type": "string"}
]}"#;

const COUNTRIES: [&str; 50] = [
    "US", "DE", "IN", "BR", "JP", "FR", "GB", "IT", "ES", "CA", "AU", "MX", "KR", "NL", "SE", "CH", "PL", "BE", "AT",
    "NO", "DK", "FI", "IE", "PT", "GR", "CZ", "HU", "RO", "TR", "IL", "ZA", "NG", "EG", "KE", "AR", "CL", "CO", "PE",
    "VE", "NZ", "SG", "MY", "TH", "VN", "PH", "ID", "CN", "TW", "HK", "AE",
];
const EVENTS: [&str; 8] = ["page_view", "click", "add_to_cart", "checkout", "purchase", "search", "login", "logout"];
const TAGS: [&str; 6] = ["web", "mobile", "promo", "returning", "beta", "vip"];

/// One generated event.
pub(crate) struct Event {
    pub(crate) id: i64,
    pub(crate) user: String,
    pub(crate) event: &'static str,
    pub(crate) ts_micros: i64,
    pub(crate) amount: f64,
    pub(crate) country: &'static str,
    pub(crate) tags: Vec<&'static str>,
    pub(crate) os: &'static str,
    pub(crate) version: String,
    pub(crate) mobile: bool,
    pub(crate) referrer: Option<String>,
    pub(crate) session: String,
}

/// A deterministic pseudo-random sequence (xorshift), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn events(count: usize) -> Vec<Event> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    (0..count)
        .map(|i| {
            let tags = (0..rng.below(4)).map(|_| TAGS[rng.below(6) as usize]).collect();
            Event {
                id: i as i64,
                user: format!("user-{:06}", rng.below(1_000_000)),
                event: EVENTS[rng.below(8) as usize],
                ts_micros: 1_717_200_000_000_000 + (i as i64) * 1_000 + rng.below(1_000) as i64,
                amount: (rng.below(1_000_000) as f64) / 100.0,
                country: COUNTRIES[rng.below(50) as usize],
                tags,
                os: ["ios", "android", "linux", "windows", "macos"][rng.below(5) as usize],
                version: format!("{}.{}.{}", rng.below(20), rng.below(10), rng.below(100)),
                mobile: rng.below(2) == 0,
                referrer: (rng.below(10) != 0).then(|| format!("https://ref{}.example.com/landing", rng.below(100))),
                session: format!(
                    "{:08x}-{:04x}-{:04x}-{:012x}",
                    rng.next() as u32,
                    rng.below(65536),
                    rng.below(65536),
                    rng.next() & 0xffff_ffff_ffff
                ),
            }
        })
        .collect()
}

/// The event as an Avro datum of [`WRITER`].
pub(crate) fn avro_datum(schema: &AvroSchema, e: &Event) -> Vec<u8> {
    let value = Value::Record(vec![
        ("id".into(), Value::Long(e.id)),
        ("user".into(), Value::String(e.user.clone())),
        ("event".into(), Value::String(e.event.into())),
        ("ts".into(), Value::TimestampMicros(e.ts_micros)),
        ("amount".into(), Value::Double(e.amount)),
        ("country".into(), Value::String(e.country.into())),
        ("tags".into(), Value::Array(e.tags.iter().map(|t| Value::String((*t).into())).collect())),
        (
            "device".into(),
            Value::Record(vec![
                ("os".into(), Value::String(e.os.into())),
                ("version".into(), Value::String(e.version.clone())),
                ("mobile".into(), Value::Boolean(e.mobile)),
            ]),
        ),
        (
            "referrer".into(),
            match &e.referrer {
                Some(r) => Value::Union(1, Box::new(Value::String(r.clone()))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("session".into(), Value::String(e.session.clone())),
    ]);
    to_avro_datum(schema, value).expect("encodes")
}

pub(crate) fn source(format: &str) -> Source {
    source_with(format, "")
}

pub(crate) fn source_with(format: &str, rules: &str) -> Source {
    let yaml = format!(
        "sources:\n  - name: bench\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/b\n      init_position: trim_horizon\n      format: {format}\n    dataset:{DATASET}{rules}"
    );
    let file = parse_text(&yaml, false).expect("definition parses");
    validate_raw_sources(&file.sources, Utc::now()).expect("definition is valid").remove(0)
}

/// A registry on 127.0.0.1 serving the writer schema as id 1.
/// The Arrow fields of the event's `device` struct.
pub(crate) fn device_fields() -> Fields {
    Fields::from(vec![
        Field::new("os", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("mobile", DataType::Boolean, false),
    ])
}
