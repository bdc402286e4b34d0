//! A rejected table is brought back in step with its rows table at
//! start-up. Both carry the same checkpoints after every batch; they differ
//! only when a stop fell between the two commits of a catalog that moves one
//! table at a time (the rejected table is committed first), or when the
//! rejected table predates its checkpoints. The rows table is the truth.

use std::collections::HashMap;

use iceberg::spec::{MAIN_BRANCH, SnapshotReference, SnapshotRetention};
use tributary_reader::ShardCheckpoint;

use super::{TableError, TableWriter, checkpoints};

/// What [`TableWriter::follow`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The checkpoints were equal already.
    InStep,
    /// The checkpoints were set to the rows table's (no commit to undo).
    CheckpointsSet,
    /// A commit the rows table never followed was undone: its snapshot
    /// (`None`: it added no rows) removed, the table back where it was.
    Undone {
        /// The removed snapshot.
        snapshot_id: Option<i64>,
    },
}

impl TableWriter {
    /// Makes this table's checkpoints of `scope` equal `leader`'s (the rows
    /// table's). If this table was committed ahead (its undo names the
    /// snapshot that was current before), that commit is undone first, so
    /// that the batch, read again, is not rejected twice.
    pub async fn follow(&self, scope: &str, leader: &HashMap<String, ShardCheckpoint>) -> Result<Followed, TableError> {
        let table = self.load().await?;
        let metadata = table.metadata();
        let properties = metadata.properties();
        let mine = checkpoints::checkpoints_in(properties, scope).map_err(TableError::Iceberg)?;
        if &mine == leader {
            // In step, so an undo left by a stop after both commits names a batch both hold.
            self.clear_undo(scope).await?;
            return Ok(Followed::InStep);
        }
        let undo_key = checkpoints::undo_key(scope);
        let undo = properties
            .get(&undo_key)
            .map(|value| checkpoints::decode_undo(value).map_err(|e| TableError::Iceberg(format!("{undo_key}: {e}"))))
            .transpose()?;
        let base_location = table.metadata_location_result()?.to_owned();
        let mut builder = metadata.clone().into_builder(Some(base_location));
        let mut followed = Followed::CheckpointsSet;
        if let Some(before) = undo {
            let added = metadata.current_snapshot_id().filter(|current| Some(*current) != before);
            builder = match before {
                Some(before) => builder.set_ref(MAIN_BRANCH, SnapshotReference::new(before, branch()))?,
                None => builder.remove_ref(MAIN_BRANCH),
            };
            if let Some(added) = added {
                // Its files become orphans, which maintenance removes.
                builder = builder.remove_snapshots(&[added]);
            }
            followed = Followed::Undone { snapshot_id: added };
        }
        let stale: Vec<String> = mine
            .keys()
            .filter(|shard| !leader.contains_key(*shard))
            .map(|shard| checkpoints::checkpoint_key(scope, shard))
            .chain(undo.map(|_| undo_key))
            .collect();
        let set = leader
            .iter()
            .map(|(shard, checkpoint)| (checkpoints::checkpoint_key(scope, shard), checkpoints::encode(checkpoint)))
            .collect();
        let metadata = builder.set_properties(set)?.remove_properties(&stale)?.build()?.metadata;
        self.catalog.replace_metadata(&table, metadata).await?;
        Ok(followed)
    }
}

fn branch() -> SnapshotRetention {
    SnapshotRetention::branch(None, None, None)
}
