//! Shard checkpoints as table properties: the table is their truth, so a
//! commit that appends rows also moves the checkpoints they came from.
//!
//! `tributary.checkpoint.{scope}#{shard}` holds one shard's checkpoint (JSON);
//! `tributary.max-event-micros.{scope}` the largest event time committed;
//! `tributary.rejected-through.{scope}#{shard}`, on a rejected table that was
//! committed ahead of its rows table (a catalog that moves one table at a
//! time) and brought back in step, how far it already holds that shard's
//! rejections (the batch read again adds only those past it);
//! `tributary.epoch.{scope}#{shard}`, in cluster mode, the ownership epoch of
//! the process that last claimed the shard (the fence every commit checks).
//! Scopes and shard ids never contain `#` (source, stream and shard names do not allow it).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tributary_reader::{RecordPosition, SequenceNumber, ShardCheckpoint};

const CHECKPOINT_PREFIX: &str = "tributary.checkpoint.";
const MAX_EVENT_PREFIX: &str = "tributary.max-event-micros.";
/// Written by earlier versions (a single writer's undo); removed where found.
const UNDO_PREFIX: &str = "tributary.undo.";
const THROUGH_PREFIX: &str = "tributary.rejected-through.";
const EPOCH_PREFIX: &str = "tributary.epoch.";

#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<u64>,
    #[serde(default = "yes")]
    complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
    #[serde(default)]
    finished: bool,
}

fn yes() -> bool {
    true
}

/// The property holding `shard_id`'s checkpoint in `scope`.
pub(crate) fn checkpoint_key(scope: &str, shard_id: &str) -> String {
    format!("{CHECKPOINT_PREFIX}{scope}#{shard_id}")
}

/// The property holding `scope`'s largest committed event time.
pub(crate) fn max_event_key(scope: &str) -> String {
    format!("{MAX_EVENT_PREFIX}{scope}")
}

/// The property an earlier version's single-writer undo of `scope` was kept in.
pub(crate) fn undo_key(scope: &str) -> String {
    format!("{UNDO_PREFIX}{scope}")
}

/// The property holding how far a rejected table already holds `shard_id`'s rejections in `scope`.
pub(crate) fn through_key(scope: &str, shard_id: &str) -> String {
    format!("{THROUGH_PREFIX}{scope}#{shard_id}")
}

/// A checkpoint as a property value.
pub(crate) fn encode(checkpoint: &ShardCheckpoint) -> String {
    let position = checkpoint.position.as_ref();
    let stored = Stored {
        sequence: position.map(|p| p.sequence_number.as_str().to_owned()),
        sub: position.and_then(|p| p.sub_sequence),
        complete: position.is_none_or(|p| p.record_complete),
        previous: position.and_then(|p| p.previous_sequence_number.as_ref()).map(|s| s.as_str().to_owned()),
        finished: checkpoint.finished,
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// A property value as a checkpoint; `None` for a value this code did not write.
pub(crate) fn decode(value: &str) -> Option<ShardCheckpoint> {
    let stored: Stored = serde_json::from_str(value).ok()?;
    let position = match stored.sequence {
        None => None,
        Some(sequence) => Some(RecordPosition {
            sequence_number: SequenceNumber::new(&sequence).ok()?,
            sub_sequence: stored.sub,
            record_complete: stored.complete,
            previous_sequence_number: stored.previous.map(|p| SequenceNumber::new(&p)).transpose().ok()?,
        }),
    };
    Some(ShardCheckpoint { position, finished: stored.finished })
}

/// Every shard checkpoint of `scope` in `properties`. A value that does not
/// parse is an error: silently reading it as "no checkpoint" would re-read the shard.
pub(crate) fn checkpoints_in(
    properties: &HashMap<String, String>,
    scope: &str,
) -> Result<HashMap<String, ShardCheckpoint>, String> {
    marks_in(properties, &format!("{CHECKPOINT_PREFIX}{scope}#"))
}

/// Every shard's rejected-through mark of `scope` in `properties`.
pub(crate) fn throughs_in(
    properties: &HashMap<String, String>,
    scope: &str,
) -> Result<HashMap<String, ShardCheckpoint>, String> {
    marks_in(properties, &format!("{THROUGH_PREFIX}{scope}#"))
}

fn marks_in(properties: &HashMap<String, String>, prefix: &str) -> Result<HashMap<String, ShardCheckpoint>, String> {
    properties
        .iter()
        .filter_map(|(key, value)| key.strip_prefix(prefix).map(|shard| (shard, key, value)))
        .map(|(shard, key, value)| {
            decode(value)
                .map(|checkpoint| (shard.to_owned(), checkpoint))
                .ok_or_else(|| format!("{key}: not a checkpoint"))
        })
        .collect()
}

/// The property holding `shard_id`'s ownership epoch in `scope`.
pub(crate) fn epoch_key(scope: &str, shard_id: &str) -> String {
    format!("{EPOCH_PREFIX}{scope}#{shard_id}")
}

/// `shard_id`'s ownership epoch in `properties` (0: never claimed); `Err` for a value this code did not write.
pub(crate) fn epoch_in(properties: &HashMap<String, String>, scope: &str, shard_id: &str) -> Result<u64, String> {
    let key = epoch_key(scope, shard_id);
    properties.get(&key).map_or(Ok(0), |value| value.parse().map_err(|_| format!("{key}: {value:?} is not an epoch")))
}

/// `scope`'s largest committed event time in `properties`.
pub(crate) fn max_event_in(properties: &HashMap<String, String>, scope: &str) -> Option<i64> {
    properties.get(&max_event_key(scope)).and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_through_properties() {
        let mid_aggregate = ShardCheckpoint {
            position: Some(RecordPosition {
                sequence_number: SequenceNumber::new("49590338271490256608559692538361571095921575989136588898")
                    .expect("digits"),
                sub_sequence: Some(3),
                record_complete: false,
                previous_sequence_number: Some(SequenceNumber::new("12").expect("digits")),
            }),
            finished: false,
        };
        let closed = ShardCheckpoint { position: None, finished: true };
        let scope = "orders@arn:aws:kinesis:us-east-1:000000000000:stream/orders";
        let properties = HashMap::from([
            (checkpoint_key(scope, "shardId-000000000000"), encode(&mid_aggregate)),
            (checkpoint_key(scope, "shardId-000000000001"), encode(&closed)),
            (checkpoint_key("other@x", "shardId-000000000000"), encode(&closed)),
            (max_event_key(scope), "1700000000000000".to_owned()),
        ]);
        let found = checkpoints_in(&properties, scope).expect("checkpoints");
        assert_eq!(found.len(), 2);
        assert_eq!(found["shardId-000000000000"], mid_aggregate);
        assert_eq!(found["shardId-000000000001"], closed);
        assert_eq!(max_event_in(&properties, scope), Some(1_700_000_000_000_000));
        let broken = HashMap::from([(checkpoint_key(scope, "s"), "{\"sequence\": \"x1\"}".to_owned())]);
        assert!(checkpoints_in(&broken, scope).is_err(), "a checkpoint that does not parse is never read as none");
    }
}
