//! One lease row, in KCL 2.x's attribute names and types.
//!
//! | attribute | type | |
//! |---|---|---|
//! | `leaseKey` | S | the shard id (hash key) |
//! | `leaseOwner` | S | absent when unowned |
//! | `leaseCounter` | N | +1 on every renew, take, checkpoint and release |
//! | `checkpoint` | S | a sequence number, or `TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`, `SHARD_END` |
//! | `checkpointSubSequenceNumber` | N | KPL sub-sequence; 0 for the sentinels |
//! | `ownerSwitchesSinceCheckpoint` | N | +1 when the owner changes, 0 on a checkpoint |
//! | `parentShardId`, `childShardIds` | SS | never written empty (DynamoDB refuses empty sets) |
//! | `startingHashKey`, `endingHashKey` | S | decimal strings |
//! | `tributaryEpoch` | N | ours: raised by every take (KCL ignores attributes it does not know) |
//! | `tributaryLagMillis`, `tributaryRecordsPerSecond`, `tributaryOwnerAddress` | N, N, S | ours: written with each renewal |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub(crate) const KEY: &str = "leaseKey";
pub(crate) const OWNER: &str = "leaseOwner";
pub(crate) const COUNTER: &str = "leaseCounter";
pub(crate) const CHECKPOINT: &str = "checkpoint";
pub(crate) const SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
pub(crate) const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
pub(crate) const PARENTS: &str = "parentShardId";
pub(crate) const CHILDREN: &str = "childShardIds";
pub(crate) const STARTING_HASH_KEY: &str = "startingHashKey";
pub(crate) const ENDING_HASH_KEY: &str = "endingHashKey";
pub(crate) const EPOCH: &str = "tributaryEpoch";
pub(crate) const LAG_MILLIS: &str = "tributaryLagMillis";
pub(crate) const RECORDS_PER_SECOND: &str = "tributaryRecordsPerSecond";
pub(crate) const OWNER_ADDRESS: &str = "tributaryOwnerAddress";
pub(crate) const DONE: &str = "tributaryDone";
/// KCL 3.5's single-table format marks each row's kind; leases are `LEASE`.
pub(crate) const ENTITY_TYPE: &str = "entityType";

/// Where a shard's reading stands, as KCL writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseCheckpoint {
    /// From the oldest record (new leases, children of a reshard).
    TrimHorizon,
    /// From the newest record.
    Latest,
    /// From a time kept in the application's configuration, not in the row.
    AtTimestamp,
    /// The shard is closed and read to its end.
    ShardEnd,
    /// After this record (and KPL sub-record).
    Sequence {
        /// The decimal sequence number.
        sequence_number: String,
        /// The KPL sub-sequence (0 for a record that is not aggregated).
        sub_sequence: u64,
    },
}

impl LeaseCheckpoint {
    /// The `checkpoint` and `checkpointSubSequenceNumber` values.
    pub(crate) fn attributes(&self) -> (&str, u64) {
        match self {
            LeaseCheckpoint::TrimHorizon => ("TRIM_HORIZON", 0),
            LeaseCheckpoint::Latest => ("LATEST", 0),
            LeaseCheckpoint::AtTimestamp => ("AT_TIMESTAMP", 0),
            LeaseCheckpoint::ShardEnd => ("SHARD_END", 0),
            LeaseCheckpoint::Sequence { sequence_number, sub_sequence } => (sequence_number, *sub_sequence),
        }
    }

    /// Parses the two attributes; `None` for a value KCL never writes.
    pub(crate) fn parse(checkpoint: &str, sub_sequence: u64) -> Option<LeaseCheckpoint> {
        Some(match checkpoint {
            "TRIM_HORIZON" => LeaseCheckpoint::TrimHorizon,
            "LATEST" => LeaseCheckpoint::Latest,
            "AT_TIMESTAMP" => LeaseCheckpoint::AtTimestamp,
            "SHARD_END" => LeaseCheckpoint::ShardEnd,
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                LeaseCheckpoint::Sequence { sequence_number: digits.to_owned(), sub_sequence }
            }
            _ => return None,
        })
    }
}

/// How a shard's reading goes, as its owner publishes it with each renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseReport {
    /// `MillisBehindLatest` of the shard's last read.
    pub lag_millis: u64,
    /// Records read per second lately.
    pub records_per_second: u64,
    /// The owner's API address, where status for the shard is answered.
    pub owner_address: String,
    /// Why the owner has read all it will of the shard (a bounded source idle,
    /// `until` passed), if it has: the source ends when every shard says so.
    pub done: Option<String>,
}

/// A shard as the stream lists it, for creating its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    /// The shard id.
    pub shard_id: String,
    /// Its parent and adjacent parent (after a merge), if any.
    pub parent_shard_ids: Vec<String>,
    /// Its hash-key range (decimal strings).
    pub hash_key_range: Option<(String, String)>,
}

/// One shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `leaseKey`: the shard id.
    pub key: String,
    /// `leaseOwner`: the process holding it, if any.
    pub owner: Option<String>,
    /// `leaseCounter`.
    pub counter: u64,
    /// `checkpoint` and `checkpointSubSequenceNumber`.
    pub checkpoint: LeaseCheckpoint,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches_since_checkpoint: u64,
    /// `parentShardId`: the shard's parents (none, one, or two after a merge).
    pub parent_shard_ids: Vec<String>,
    /// `childShardIds`: written when the shard ends.
    pub child_shard_ids: Vec<String>,
    /// `startingHashKey` and `endingHashKey`.
    pub hash_key_range: Option<(String, String)>,
    /// `tributaryEpoch`: how many times the lease was taken.
    pub epoch: u64,
    /// What the owner last published, if it did.
    pub report: Option<LeaseReport>,
}

impl Lease {
    /// A new, unowned lease of `shard_id` reading from `TRIM_HORIZON`.
    pub fn new(shard_id: &str, parent_shard_ids: Vec<String>, hash_key_range: Option<(String, String)>) -> Lease {
        Lease {
            key: shard_id.to_owned(),
            owner: None,
            counter: 0,
            checkpoint: LeaseCheckpoint::TrimHorizon,
            owner_switches_since_checkpoint: 0,
            parent_shard_ids,
            child_shard_ids: Vec::new(),
            hash_key_range,
            epoch: 0,
            report: None,
        }
    }

    /// The whole row, as a create writes it.
    pub(crate) fn to_item(&self) -> HashMap<String, AttributeValue> {
        let (checkpoint, sub_sequence) = self.checkpoint.attributes();
        let mut item = HashMap::from([
            (KEY.to_owned(), AttributeValue::S(self.key.clone())),
            (COUNTER.to_owned(), number(self.counter)),
            (CHECKPOINT.to_owned(), AttributeValue::S(checkpoint.to_owned())),
            (SUB_SEQUENCE.to_owned(), number(sub_sequence)),
            (OWNER_SWITCHES.to_owned(), number(self.owner_switches_since_checkpoint)),
            (EPOCH.to_owned(), number(self.epoch)),
        ]);
        if let Some(owner) = &self.owner {
            item.insert(OWNER.to_owned(), AttributeValue::S(owner.clone()));
        }
        // DynamoDB refuses an empty set: no parents, no attribute.
        if !self.parent_shard_ids.is_empty() {
            item.insert(PARENTS.to_owned(), AttributeValue::Ss(self.parent_shard_ids.clone()));
        }
        if !self.child_shard_ids.is_empty() {
            item.insert(CHILDREN.to_owned(), AttributeValue::Ss(self.child_shard_ids.clone()));
        }
        if let Some((starting, ending)) = &self.hash_key_range {
            item.insert(STARTING_HASH_KEY.to_owned(), AttributeValue::S(starting.clone()));
            item.insert(ENDING_HASH_KEY.to_owned(), AttributeValue::S(ending.clone()));
        }
        if let Some(report) = &self.report {
            item.insert(LAG_MILLIS.to_owned(), number(report.lag_millis));
            item.insert(RECORDS_PER_SECOND.to_owned(), number(report.records_per_second));
            item.insert(OWNER_ADDRESS.to_owned(), AttributeValue::S(report.owner_address.clone()));
            if let Some(done) = &report.done {
                item.insert(DONE.to_owned(), AttributeValue::S(done.clone()));
            }
        }
        item
    }

    /// A row read back; `Err` names what a KCL lease must have and this one lacks.
    pub(crate) fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Lease, (String, String)> {
        let key = match item.get(KEY) {
            Some(AttributeValue::S(key)) => key.clone(),
            _ => return Err((String::new(), format!("no string `{KEY}`"))),
        };
        let fail = |detail: String| (key.clone(), detail);
        let string = |name: &str| match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
            Some(_) => Err(fail(format!("`{name}` is not a string"))),
        };
        let number_of = |name: &str| match item.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(text)) => {
                text.parse::<u64>().map(Some).map_err(|_| fail(format!("`{name}` is not a count: {text}")))
            }
            Some(_) => Err(fail(format!("`{name}` is not a number"))),
        };
        let set = |name: &str| match item.get(name) {
            None => Ok(Vec::new()),
            Some(AttributeValue::Ss(values)) => Ok(values.clone()),
            Some(_) => Err(fail(format!("`{name}` is not a string set"))),
        };
        let required = |name: &str, value: Option<u64>| value.ok_or_else(|| fail(format!("no `{name}`")));
        let checkpoint_text = string(CHECKPOINT)?.ok_or_else(|| fail(format!("no `{CHECKPOINT}`")))?;
        let sub_sequence = number_of(SUB_SEQUENCE)?.unwrap_or(0);
        let checkpoint = LeaseCheckpoint::parse(&checkpoint_text, sub_sequence)
            .ok_or_else(|| fail(format!("`{CHECKPOINT}` is {checkpoint_text:?}, not a sequence number or sentinel")))?;
        let hash_key_range = match (string(STARTING_HASH_KEY)?, string(ENDING_HASH_KEY)?) {
            (Some(starting), Some(ending)) => Some((starting, ending)),
            _ => None,
        };
        let report = match (number_of(LAG_MILLIS)?, number_of(RECORDS_PER_SECOND)?, string(OWNER_ADDRESS)?) {
            (Some(lag_millis), Some(records_per_second), Some(owner_address)) => {
                Some(LeaseReport { lag_millis, records_per_second, owner_address, done: string(DONE)? })
            }
            _ => None,
        };
        Ok(Lease {
            report,
            owner: string(OWNER)?,
            counter: required(COUNTER, number_of(COUNTER)?)?,
            checkpoint,
            owner_switches_since_checkpoint: number_of(OWNER_SWITCHES)?.unwrap_or(0),
            parent_shard_ids: set(PARENTS)?,
            child_shard_ids: set(CHILDREN)?,
            hash_key_range,
            epoch: number_of(EPOCH)?.unwrap_or(0),
            key,
        })
    }
}

pub(crate) fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_through_its_row_without_empty_sets() {
        let mut lease = Lease::new(
            "shardId-000000000002",
            Vec::new(),
            Some(("0".into(), "170141183460469231731687303715884105727".into())),
        );
        let item = lease.to_item();
        assert!(!item.contains_key(PARENTS) && !item.contains_key(CHILDREN), "no empty string sets");
        assert!(!item.contains_key(OWNER));
        assert_eq!(Lease::from_item(&item), Ok(lease.clone()));
        lease.owner = Some("node-a".into());
        lease.parent_shard_ids = vec!["shardId-000000000000".into(), "shardId-000000000001".into()];
        lease.checkpoint = LeaseCheckpoint::Sequence { sequence_number: "4959".into(), sub_sequence: 3 };
        lease.counter = 12;
        lease.epoch = 4;
        lease.report = Some(LeaseReport {
            lag_millis: 250,
            records_per_second: 900,
            owner_address: "10.0.0.5:7878".into(),
            done: Some("bounded".into()),
        });
        assert_eq!(Lease::from_item(&lease.to_item()), Ok(lease));
    }

    #[test]
    fn checkpoints_are_sequence_numbers_or_kcl_sentinels() {
        for sentinel in [
            LeaseCheckpoint::TrimHorizon,
            LeaseCheckpoint::Latest,
            LeaseCheckpoint::AtTimestamp,
            LeaseCheckpoint::ShardEnd,
        ] {
            let (text, sub) = sentinel.attributes();
            assert_eq!(sub, 0);
            assert_eq!(LeaseCheckpoint::parse(text, 0), Some(sentinel));
        }
        assert_eq!(LeaseCheckpoint::parse("", 0), None);
        assert_eq!(LeaseCheckpoint::parse("12ab", 0), None);
        let mut item = Lease::new("s", Vec::new(), None).to_item();
        item.insert(CHECKPOINT.into(), AttributeValue::S("NOPE".into()));
        assert!(Lease::from_item(&item).expect_err("bad checkpoint").1.contains("NOPE"));
        item.remove(COUNTER);
        item.insert(CHECKPOINT.into(), AttributeValue::S("LATEST".into()));
        assert!(Lease::from_item(&item).expect_err("no counter").1.contains(COUNTER));
    }
}
