//! What a worker decoded and has not committed yet, shard by shard, so that
//! in cluster mode the shards it lost can be left out of its last commit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::BooleanArray;
use arrow_schema::ArrowError;
use tokio::time::Instant;
use tributary_codec::DecodedBatch;
use tributary_reader::{ShardAdvance, ShardBatch};
use tributary_store::ShardCounts;

/// Rows decoded but not yet committed, and the checkpoint moves they stand for.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) advances: BTreeMap<Arc<str>, ShardAdvance>,
    pub(crate) counts: BTreeMap<Arc<str>, ShardCounts>,
    /// The shards of the accepted rows, in decode order, as runs of (shard, rows).
    pub(crate) accepted: Vec<(Arc<str>, usize)>,
    pub(crate) rows: usize,
    pub(crate) since: Option<Instant>,
}

impl Pending {
    pub(crate) fn add(&mut self, batch: &ShardBatch) {
        self.advances
            .entry(Arc::clone(&batch.shard_id))
            .and_modify(|advance| advance.to = batch.to.clone())
            .or_insert_with(|| batch.advance());
        self.since.get_or_insert_with(Instant::now);
    }

    pub(crate) fn counts(&mut self, shard_id: &Arc<str>) -> &mut ShardCounts {
        self.counts
            .entry(Arc::clone(shard_id))
            .or_insert_with(|| ShardCounts { shard_id: shard_id.to_string(), ..ShardCounts::default() })
    }

    /// Leaves out of this batch, and of `decoded` (the decoder's rows of it),
    /// everything read from the shards in `lost`: their leases moved to
    /// another process, which reads them again from the table's checkpoints,
    /// and the fence would refuse a commit that advanced them (and with it
    /// the rows of every shard still held).
    pub(crate) fn drop_shards(
        &mut self,
        lost: &BTreeSet<String>,
        decoded: &mut DecodedBatch,
    ) -> Result<(), ArrowError> {
        let is_lost = |shard: &str| lost.contains(shard);
        if !self.advances.keys().any(|shard| is_lost(shard)) {
            return Ok(());
        }
        let keep: BooleanArray =
            self.accepted.iter().flat_map(|(shard, rows)| std::iter::repeat_n(Some(!is_lost(shard)), *rows)).collect();
        if keep.len() != decoded.batch.num_rows() {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{} decoded rows, but {} counted by shard",
                decoded.batch.num_rows(),
                keep.len()
            )));
        }
        decoded.batch = arrow_select::filter::filter_record_batch(&decoded.batch, &keep)?;
        decoded.rejections.retain(|rejection| !is_lost(&rejection.shard_id));
        self.accepted.retain(|(shard, _)| !is_lost(shard));
        self.advances.retain(|shard, _| !is_lost(shard));
        self.counts.retain(|shard, _| !is_lost(shard));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use tributary_codec::{Reason, Rejection};
    use tributary_reader::ShardCheckpoint;

    use super::*;

    fn rejection(shard: &str) -> Rejection {
        Rejection {
            reason: Reason::MissingField,
            field: Arc::from(""),
            shard_id: shard.to_owned(),
            sequence_number: "1".to_owned(),
            sub_sequence: None,
            arrival_time_micros: 0,
            payload: b"{".to_vec(),
        }
    }

    #[test]
    fn a_lost_shards_rows_rejections_and_checkpoint_leave_the_batch_and_the_others_stay_in_order() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("shard-a"), Arc::from("shard-b"));
        let mut pending = Pending::default();
        for shard in [&a, &b] {
            let advance = ShardAdvance {
                shard_id: shard.to_string(),
                from: ShardCheckpoint::default(),
                to: ShardCheckpoint::default(),
            };
            pending.advances.insert(Arc::clone(shard), advance);
            pending.counts(shard).rejected = 1;
        }
        // Runs as batches arrived: a 2 rows, b 1, a 1, b 2.
        pending.accepted = vec![(Arc::clone(&a), 2), (Arc::clone(&b), 1), (Arc::clone(&a), 1), (Arc::clone(&b), 2)];
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let ids = StringArray::from(vec!["a1", "a2", "b1", "a3", "b2", "b3"]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(ids)]).expect("batch");
        let mut decoded = DecodedBatch { batch, rejections: vec![rejection("shard-a"), rejection("shard-b")] };

        pending.drop_shards(&BTreeSet::from(["shard-a".to_owned()]), &mut decoded).expect("dropped");

        let kept = decoded.batch.column(0).as_any().downcast_ref::<StringArray>().expect("strings");
        assert_eq!(kept.iter().flatten().collect::<Vec<_>>(), ["b1", "b2", "b3"]);
        assert_eq!(decoded.rejections.iter().map(|r| r.shard_id.as_str()).collect::<Vec<_>>(), ["shard-b"]);
        assert_eq!(pending.advances.keys().map(|s| s.as_ref()).collect::<Vec<_>>(), ["shard-b"]);
        assert_eq!(pending.counts.keys().map(|s| s.as_ref()).collect::<Vec<_>>(), ["shard-b"]);
        assert_eq!(pending.accepted, vec![(Arc::clone(&b), 1), (Arc::clone(&b), 2)]);

        // A shard this batch holds nothing of changes nothing.
        pending.drop_shards(&BTreeSet::from(["shard-z".to_owned()]), &mut decoded).expect("nothing to drop");
        assert_eq!(decoded.batch.num_rows(), 3);
    }

    #[test]
    fn rows_that_do_not_match_their_shard_counts_are_refused_not_misattributed() {
        let a: Arc<str> = Arc::from("shard-a");
        let mut pending = Pending::default();
        let advance =
            ShardAdvance { shard_id: a.to_string(), from: ShardCheckpoint::default(), to: ShardCheckpoint::default() };
        pending.advances.insert(Arc::clone(&a), advance);
        pending.accepted = vec![(Arc::clone(&a), 2)];
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a1"]))]).expect("batch");
        let mut decoded = DecodedBatch { batch, rejections: Vec::new() };
        assert!(pending.drop_shards(&BTreeSet::from(["shard-a".to_owned()]), &mut decoded).is_err());
    }
}
