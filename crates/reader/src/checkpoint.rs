//! Where checkpoints live: the [`CheckpointStore`] trait and an in-memory store.
//!
//! A commit is a compare-and-set per shard: each [`ShardAdvance`] names the
//! checkpoint the store must still hold (`from`) and the one to write (`to`),
//! and all of a commit's advances apply together or not at all. That is what
//! keeps a batch from being recorded twice, and it is exactly a DynamoDB
//! `TransactWriteItems` with a condition per lease item, so a lease table can
//! implement the trait later.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use parking_lot::Mutex;

use crate::position::ShardCheckpoint;

/// A boxed future, so the trait can be used as `dyn CheckpointStore`.
pub type CheckpointFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CheckpointError>> + Send + 'a>>;

/// Moves one shard's checkpoint forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardAdvance {
    /// The shard.
    pub shard_id: String,
    /// What the store must hold now (the default checkpoint when it holds none).
    pub from: ShardCheckpoint,
    /// What it holds afterwards.
    pub to: ShardCheckpoint,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Another writer moved the shard's checkpoint: this batch was already
    /// recorded, or another worker owns the shard.
    #[error(
        "checkpoint of shard {shard_id} is not where this batch began (already recorded, or owned by another worker)"
    )]
    Conflict {
        /// The shard whose checkpoint moved.
        shard_id: String,
    },
    /// The store itself failed.
    #[error("checkpoint store: {0}")]
    Store(String),
}

/// Durable per-shard checkpoints of one reading scope (a source reading one stream).
pub trait CheckpointStore: Send + Sync + 'static {
    /// Every shard checkpoint stored for `scope`.
    fn load<'a>(&'a self, scope: &'a str) -> CheckpointFuture<'a, HashMap<String, ShardCheckpoint>>;

    /// Applies all `advances` of `scope` atomically, or none of them.
    fn commit<'a>(&'a self, scope: &'a str, advances: &'a [ShardAdvance]) -> CheckpointFuture<'a, ()>;
}

/// Checkpoints held in memory: for tests and for one-off reads.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    scopes: Mutex<HashMap<String, HashMap<String, ShardCheckpoint>>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> MemoryCheckpointStore {
        MemoryCheckpointStore::default()
    }

    fn apply(&self, scope: &str, advances: &[ShardAdvance]) -> Result<(), CheckpointError> {
        let mut scopes = self.scopes.lock();
        let shards = scopes.entry(scope.to_owned()).or_default();
        let default = ShardCheckpoint::default();
        if let Some(moved) =
            advances.iter().find(|advance| shards.get(&advance.shard_id).unwrap_or(&default) != &advance.from)
        {
            return Err(CheckpointError::Conflict { shard_id: moved.shard_id.clone() });
        }
        for advance in advances {
            shards.insert(advance.shard_id.clone(), advance.to.clone());
        }
        Ok(())
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load<'a>(&'a self, scope: &'a str) -> CheckpointFuture<'a, HashMap<String, ShardCheckpoint>> {
        let shards = self.scopes.lock().get(scope).cloned().unwrap_or_default();
        Box::pin(async move { Ok(shards) })
    }

    fn commit<'a>(&'a self, scope: &'a str, advances: &'a [ShardAdvance]) -> CheckpointFuture<'a, ()> {
        let result = self.apply(scope, advances);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::SequenceNumber;

    fn at(sequence: &str) -> ShardCheckpoint {
        ShardCheckpoint::after(SequenceNumber::new(sequence).expect("digits"))
    }

    #[tokio::test]
    async fn commits_are_compare_and_set_and_all_or_nothing() {
        let store = MemoryCheckpointStore::new();
        let first = [ShardAdvance { shard_id: "a".into(), from: ShardCheckpoint::default(), to: at("10") }];
        store.commit("s", &first).await.expect("first commit");
        // The same batch again: refused, nothing changes.
        assert!(
            matches!(store.commit("s", &first).await, Err(CheckpointError::Conflict { shard_id }) if shard_id == "a")
        );

        let mixed = [
            ShardAdvance { shard_id: "b".into(), from: ShardCheckpoint::default(), to: at("5") },
            ShardAdvance { shard_id: "a".into(), from: at("9"), to: at("20") },
        ];
        assert!(store.commit("s", &mixed).await.is_err());
        let loaded = store.load("s").await.expect("load");
        assert_eq!(loaded.get("a"), Some(&at("10")));
        assert!(!loaded.contains_key("b"), "a refused commit applies nothing");
        assert!(store.load("other").await.expect("load").is_empty());
    }
}
