//! Shard lineage: which shards may be read now.
//!
//! After a split or merge, a child's records continue its parents' partition
//! keys, so a child starts only when **every** parent is finished (a merged
//! child waits for both). A parent Kinesis no longer lists has aged out of
//! retention: there is nothing left to read there, so it counts as finished.

use std::collections::{BTreeMap, BTreeSet};

use crate::kpl::HashKeyRange;

/// What the reader knows about a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Its id, e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// Its parent and adjacent parent (after a merge), if any.
    pub parents: Vec<String>,
    /// The hash keys it owns.
    pub hash_range: HashKeyRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Finished,
}

/// Every shard seen so far and its state.
#[derive(Debug, Default)]
pub(crate) struct ShardGraph {
    shards: BTreeMap<String, (ShardInfo, State)>,
    /// Finished shards, including ones only the checkpoints still remember.
    finished: BTreeSet<String>,
}

impl ShardGraph {
    /// Adds a shard seen in `ListShards` or in a response's `ChildShards`.
    pub(crate) fn add(&mut self, info: ShardInfo) {
        let state = if self.finished.contains(&info.shard_id) { State::Finished } else { State::Waiting };
        self.shards.entry(info.shard_id.clone()).or_insert((info, state));
    }

    /// Records that `shard_id` is closed and fully read.
    pub(crate) fn finish(&mut self, shard_id: &str) {
        self.finished.insert(shard_id.to_owned());
        if let Some((_, state)) = self.shards.get_mut(shard_id) {
            *state = State::Finished;
        }
    }

    /// Shards whose parents are all finished (or gone), now marked running.
    pub(crate) fn take_ready(&mut self) -> Vec<ShardInfo> {
        let ready: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, (info, state))| {
                *state == State::Waiting && info.parents.iter().all(|parent| self.parent_done(parent))
            })
            .map(|(id, _)| id.clone())
            .collect();
        ready
            .into_iter()
            .filter_map(|id| {
                let (info, state) = self.shards.get_mut(&id)?;
                *state = State::Running;
                Some(info.clone())
            })
            .collect()
    }

    fn parent_done(&self, parent: &str) -> bool {
        self.finished.contains(parent) || !self.shards.contains_key(parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str]) -> ShardInfo {
        ShardInfo {
            shard_id: id.to_owned(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            hash_range: HashKeyRange::ALL,
        }
    }

    fn ids(shards: Vec<ShardInfo>) -> Vec<String> {
        shards.into_iter().map(|s| s.shard_id).collect()
    }

    #[test]
    fn children_wait_for_all_parents() {
        let mut graph = ShardGraph::default();
        for info in [shard("a", &[]), shard("b", &[]), shard("c", &["a"]), shard("d", &["a"]), shard("m", &["c", "b"])]
        {
            graph.add(info);
        }
        assert_eq!(ids(graph.take_ready()), ["a", "b"]);
        assert!(graph.take_ready().is_empty(), "running shards are not handed out twice");
        graph.finish("a");
        assert_eq!(ids(graph.take_ready()), ["c", "d"]);
        graph.finish("c");
        assert!(graph.take_ready().is_empty(), "the merged child waits for b too");
        graph.finish("b");
        assert_eq!(ids(graph.take_ready()), ["m"]);
    }

    #[test]
    fn parents_past_retention_or_checkpointed_as_finished_do_not_block() {
        let mut graph = ShardGraph::default();
        graph.finish("old");
        graph.add(shard("old", &[]));
        graph.add(shard("child", &["old", "expired"]));
        assert_eq!(ids(graph.take_ready()), ["child"]);
    }
}
