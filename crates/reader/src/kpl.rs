//! KPL de-aggregation.
//!
//! The Kinesis Producer Library packs many user records into one Kinesis
//! record: `F3 89 9A C2`, an `AggregatedRecord` protobuf
//! (`proto/kpl/aggregated_record.proto`), and the MD5 of that protobuf. Each
//! sub-record carries its own partition key and may carry an explicit hash
//! key; after a reshard, sub-records whose hash key falls outside the shard's
//! range belong to another shard and are dropped (KCL does the same).
//!
//! Anything that starts with the magic but fails the MD5 check or does not
//! decode is handed on as the plain record it then is: a producer's bytes are
//! never lost to our interpretation of them.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;
use tributary_proto::kpl::AggregatedRecord;

use crate::batch::PartitionKey;

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// An inclusive range of 128-bit hash keys, as a shard owns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKeyRange {
    /// First hash key of the range.
    pub start: u128,
    /// Last hash key of the range.
    pub end: u128,
}

impl HashKeyRange {
    /// The whole key space (a shard whose range is unknown keeps everything).
    pub const ALL: HashKeyRange = HashKeyRange { start: 0, end: u128::MAX };

    /// Parses Kinesis' decimal `StartingHashKey` / `EndingHashKey`.
    pub fn parse(start: &str, end: &str) -> Option<HashKeyRange> {
        Some(HashKeyRange { start: start.parse().ok()?, end: end.parse().ok()? })
    }

    /// Whether `hash_key` belongs to the range.
    pub fn contains(&self, hash_key: u128) -> bool {
        (self.start..=self.end).contains(&hash_key)
    }
}

/// The hash key Kinesis derives from a partition key: its MD5 as a big-endian integer.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// One user record out of an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRecord {
    /// Its partition key.
    pub partition_key: PartitionKey,
    /// The hash key that places it on a shard (explicit, or from the partition key).
    pub hash_key: u128,
    /// Its payload: a slice of the aggregated record, not a copy.
    pub data: Bytes,
}

/// What a Kinesis record's payload turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Unpacked {
    /// Not aggregated: use it as it is.
    Plain,
    /// Starts like an aggregated record but is not a valid one: use it as it is.
    Corrupt(&'static str),
    /// The sub-records, in order (their index is the sub-sequence number).
    Aggregated(Vec<SubRecord>),
}

/// Splits a KPL aggregated record into its sub-records.
pub fn unpack(data: &Bytes) -> Unpacked {
    if !data.starts_with(&MAGIC) {
        return Unpacked::Plain;
    }
    if data.len() < MAGIC.len() + DIGEST_LEN {
        return Unpacked::Corrupt("shorter than magic and digest");
    }
    let body = data.slice(MAGIC.len()..data.len() - DIGEST_LEN);
    if Md5::digest(&body).as_slice() != &data[data.len() - DIGEST_LEN..] {
        return Unpacked::Corrupt("MD5 digest does not match");
    }
    let Ok(aggregated) = AggregatedRecord::decode(body) else {
        return Unpacked::Corrupt("protobuf does not decode");
    };
    let partition_keys: Vec<PartitionKey> =
        aggregated.partition_key_table.iter().map(|key| PartitionKey::from(key.as_str())).collect();
    let mut explicit_hash_keys = Vec::with_capacity(aggregated.explicit_hash_key_table.len());
    for key in &aggregated.explicit_hash_key_table {
        let Ok(hash_key) = key.parse::<u128>() else {
            return Unpacked::Corrupt("explicit hash key is not a 128-bit decimal");
        };
        explicit_hash_keys.push(hash_key);
    }
    let mut records = Vec::with_capacity(aggregated.records.len());
    for record in aggregated.records {
        let Some(partition_key) = usize::try_from(record.partition_key_index).ok().and_then(|i| partition_keys.get(i))
        else {
            return Unpacked::Corrupt("partition key index out of range");
        };
        let hash_key = match record.explicit_hash_key_index {
            None => partition_key_hash(partition_key),
            Some(index) => match usize::try_from(index).ok().and_then(|i| explicit_hash_keys.get(i)) {
                Some(hash_key) => *hash_key,
                None => return Unpacked::Corrupt("explicit hash key index out of range"),
            },
        };
        records.push(SubRecord { partition_key: partition_key.clone(), hash_key, data: record.data });
    }
    Unpacked::Aggregated(records)
}

/// Builds an aggregated record the way the KPL does: for tests and producers.
///
/// Each entry is `(partition key, explicit hash key, payload)`.
pub fn pack(records: &[(&str, Option<u128>, &[u8])]) -> Vec<u8> {
    let mut aggregated = AggregatedRecord::default();
    for (partition_key, explicit_hash_key, data) in records {
        let partition_key_index = table_index(&mut aggregated.partition_key_table, partition_key);
        let explicit_hash_key_index =
            explicit_hash_key.map(|key| table_index(&mut aggregated.explicit_hash_key_table, &key.to_string()));
        aggregated.records.push(tributary_proto::kpl::Record {
            partition_key_index,
            explicit_hash_key_index,
            data: Bytes::copy_from_slice(data),
            tags: Vec::new(),
        });
    }
    let body = aggregated.encode_to_vec();
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

fn table_index(table: &mut Vec<String>, value: &str) -> u64 {
    let index = table.iter().position(|existing| existing == value).unwrap_or_else(|| {
        table.push(value.to_owned());
        table.len() - 1
    });
    index as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_with_hash_keys() {
        let packed = Bytes::from(pack(&[("a", None, b"one"), ("b", Some(7), b"two"), ("a", None, b"")]));
        let Unpacked::Aggregated(records) = unpack(&packed) else { panic!("not unpacked") };
        assert_eq!(records.len(), 3);
        assert_eq!(
            (&*records[0].partition_key, records[0].hash_key, &records[0].data[..]),
            ("a", partition_key_hash("a"), &b"one"[..])
        );
        assert_eq!((&*records[1].partition_key, records[1].hash_key, &records[1].data[..]), ("b", 7, &b"two"[..]));
        assert!(records[2].data.is_empty());
    }

    #[test]
    fn damaged_aggregates_pass_through() {
        let mut packed = pack(&[("a", None, b"one")]);
        let last = packed.len() - 1;
        packed[last] ^= 1;
        assert_eq!(unpack(&Bytes::from(packed)), Unpacked::Corrupt("MD5 digest does not match"));
        assert_eq!(
            unpack(&Bytes::from_static(&[0xF3, 0x89, 0x9A, 0xC2, 1])),
            Unpacked::Corrupt("shorter than magic and digest")
        );
        // Valid digest over bytes that are not an AggregatedRecord.
        let body = [0xFFu8; 8];
        let mut bad = MAGIC.to_vec();
        bad.extend_from_slice(&body);
        bad.extend_from_slice(&Md5::digest(body));
        assert_eq!(unpack(&Bytes::from(bad)), Unpacked::Corrupt("protobuf does not decode"));
        assert_eq!(unpack(&Bytes::from_static(b"{\"id\": 1}")), Unpacked::Plain);
    }

    #[test]
    fn hash_key_ranges_are_inclusive() {
        let range = HashKeyRange::parse("0", "170141183460469231731687303715884105727").expect("decimal");
        assert!(range.contains(0) && range.contains(u128::MAX / 2) && !range.contains(u128::MAX / 2 + 1));
        assert!(HashKeyRange::parse("x", "1").is_none());
        // The well-known MD5 of the empty string.
        assert_eq!(partition_key_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
