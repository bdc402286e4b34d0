//! A rejected table is brought back in step with its rows table by the
//! shard's owner: at start-up (one process), or when it claims shards
//! (cluster mode). Both carry the same checkpoints after every batch; they
//! differ only when the rows commit failed after the rejected table's (a
//! catalog that moves one table at a time commits the rejected table first),
//! or when the rejected table predates its checkpoints. The rows table is the
//! truth.
//!
//! Nothing is rolled back (other writers may have committed to the table
//! since): the rejected table keeps what it holds, its checkpoint returns to
//! the rows table's, and `tributary.rejected-through.{scope}#{shard}` says how
//! far it already holds the shard's rejections, so the batch read again adds
//! only those past it.

use std::collections::{BTreeSet, HashMap};

use iceberg::ErrorKind;
use tributary_reader::ShardCheckpoint;

use super::{TableError, TableWriter, checkpoints};

/// Attempts when another writer's commit moved the table in between.
const FOLLOW_ATTEMPTS: usize = 8;

/// What [`TableWriter::follow`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The checkpoints were equal already.
    InStep,
    /// The checkpoints were set to the rows table's (it had none, or fewer).
    CheckpointsSet,
    /// It was ahead for `shards` shards: it keeps those rejections, marked.
    Forwarded {
        /// How many shards it was ahead on.
        shards: usize,
    },
}

impl TableWriter {
    /// Makes this table's checkpoints of `scope` equal `leader`'s (the rows
    /// table's): for every shard, or in cluster mode only for those of
    /// `claimed`, whose epochs must still be the table's (else
    /// [`TableError::Fenced`]). Where this table was ahead, it keeps the
    /// rejections it holds and marks how far (see the module).
    pub async fn follow(
        &self,
        scope: &str,
        leader: &HashMap<String, ShardCheckpoint>,
        claimed: Option<&HashMap<String, u64>>,
    ) -> Result<Followed, TableError> {
        let mut attempt = 0;
        loop {
            let table = self.load().await?;
            let metadata = table.metadata();
            let properties = metadata.properties();
            let mine = checkpoints::checkpoints_in(properties, scope).map_err(TableError::Iceberg)?;
            let throughs = checkpoints::throughs_in(properties, scope).map_err(TableError::Iceberg)?;
            let shards: BTreeSet<&String> = match claimed {
                Some(claimed) => claimed.keys().collect(),
                None => leader.keys().chain(mine.keys()).collect(),
            };
            if let Some(claimed) = claimed {
                for (shard, epoch) in claimed {
                    let in_table = checkpoints::epoch_in(properties, scope, shard).map_err(TableError::Iceberg)?;
                    if in_table != *epoch {
                        return Err(TableError::Fenced {
                            shard_id: shard.clone(),
                            table_epoch: in_table,
                            epoch: *epoch,
                        });
                    }
                }
            }
            let mut set = HashMap::new();
            let mut remove = Vec::new();
            let mut followed = Followed::InStep;
            for shard in shards {
                let (ours, theirs) = (mine.get(shard), leader.get(shard));
                let key = checkpoints::checkpoint_key(scope, shard);
                if ours == theirs {
                    // Read past the mark: it has done its work.
                    let passed = |mark: &ShardCheckpoint| theirs.is_some_and(|at| !is_behind(at, mark));
                    if throughs.get(shard).is_some_and(passed) {
                        remove.push(checkpoints::through_key(scope, shard));
                    }
                    continue;
                }
                if let Some(ahead) = ours.filter(|ours| ours.position.is_some()) {
                    set.insert(checkpoints::through_key(scope, shard), checkpoints::encode(ahead));
                    followed = match followed {
                        Followed::Forwarded { shards } => Followed::Forwarded { shards: shards + 1 },
                        _ => Followed::Forwarded { shards: 1 },
                    };
                } else if followed == Followed::InStep {
                    followed = Followed::CheckpointsSet;
                }
                match theirs {
                    Some(theirs) => {
                        set.insert(key, checkpoints::encode(theirs));
                    }
                    None => remove.push(key),
                }
            }
            let undo = checkpoints::undo_key(scope);
            if properties.contains_key(&undo) {
                remove.push(undo);
            }
            if set.is_empty() && remove.is_empty() {
                return Ok(followed);
            }
            let base_location = table.metadata_location_result()?.to_owned();
            let next = metadata
                .clone()
                .into_builder(Some(base_location))
                .set_properties(set)?
                .remove_properties(&remove)?
                .build()?
                .metadata;
            match self.catalog.replace_metadata(&table, next).await {
                Ok(_) => return Ok(followed),
                Err(error) if error.kind() == ErrorKind::CatalogCommitConflicts && attempt < FOLLOW_ATTEMPTS => {
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// How far this (rejected) table already holds each shard's rejections
    /// past the rows table's checkpoint (see the module).
    pub async fn rejected_through(&self, scope: &str) -> Result<HashMap<String, ShardCheckpoint>, TableError> {
        let table = self.load().await?;
        checkpoints::throughs_in(table.metadata().properties(), scope).map_err(TableError::Iceberg)
    }
}

/// Whether checkpoint `at` is before `mark` (records between them are still to be read).
fn is_behind(at: &ShardCheckpoint, mark: &ShardCheckpoint) -> bool {
    if at.finished {
        return false;
    }
    match (&at.position, &mark.position) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(at), Some(mark)) => {
            let same_record = at.sequence_number == mark.sequence_number;
            !at.covers(&mark.sequence_number, mark.sub_sequence)
                || (same_record && mark.record_complete && !at.record_complete)
        }
    }
}

/// Whether a rejection of record (`sequence_number`, `sub_sequence`) of a
/// shard is already in a rejected table marked `through` for that shard.
pub fn already_rejected(through: &ShardCheckpoint, sequence_number: &str, sub_sequence: Option<u64>) -> bool {
    let Ok(sequence_number) = tributary_reader::SequenceNumber::new(sequence_number) else { return false };
    through.position.as_ref().is_some_and(|position| position.covers(&sequence_number, sub_sequence))
}
