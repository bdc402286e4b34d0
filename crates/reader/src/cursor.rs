//! A shard consumer's position and the hand-off of what it reads.
//!
//! Both consumers (polling and enhanced fan-out) feed Kinesis records into a
//! [`ShardCursor`], which unpacks KPL aggregates, skips what was already passed
//! on (after a resume, an iterator rebuild, or a possibly-applied call), drops
//! sub-records that belong to another shard, and sends batches that each know
//! the checkpoint range they cover.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc};

use crate::ReaderError;
use crate::batch::{PartitionKey, Record, ShardBatch};
use crate::kpl::{self, HashKeyRange, Unpacked};
use crate::metrics::ShardMetrics;
use crate::position::{RecordPosition, SequenceNumber, ShardCheckpoint, StartPosition};

/// The records of one response, before KPL unpacking.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) records: Vec<Record>,
    /// Some payload starts with the KPL magic: checked where the payloads were
    /// decoded (still in cache), so plain responses skip the look per record.
    pub(crate) aggregated: bool,
}

impl Received {
    /// Records the SDK parsed (enhanced fan-out, or an answer we did not divert).
    pub(crate) fn from_sdk(
        records: Vec<aws_sdk_kinesis::types::Record>,
        shard_id: &str,
    ) -> Result<Received, DeliveryError> {
        let read_at = Utc::now();
        let mut aggregated = false;
        let records = records
            .into_iter()
            .map(|record| {
                let sequence_number = SequenceNumber::new(&record.sequence_number).map_err(|invalid| {
                    DeliveryError::Fatal(ReaderError::InvalidResponse {
                        shard_id: shard_id.to_owned(),
                        detail: invalid.to_string(),
                    })
                })?;
                aggregated |= record.data.as_ref().starts_with(&kpl::MAGIC);
                Ok(Record {
                    sequence_number,
                    sub_sequence: None,
                    partition_key: PartitionKey::from(record.partition_key.as_str()),
                    arrival_time: record.approximate_arrival_timestamp.and_then(to_chrono).unwrap_or(read_at),
                    data: Bytes::from(record.data.into_inner()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Received { records, aggregated })
    }
}

/// Where the next iterator or subscription of a shard starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Nothing passed on yet: the source's start position.
    Start(StartPosition),
    /// `AFTER_SEQUENCE_NUMBER` this record.
    After(SequenceNumber),
}

/// Sending half of the reader's batch channel.
pub(crate) type BatchSender = mpsc::Sender<Result<ShardBatch, ReaderError>>;

pub(crate) struct ShardCursor {
    shard_id: Arc<str>,
    hash_range: HashKeyRange,
    start: StartPosition,
    /// Everything up to here has been passed on (or dropped as another shard's).
    checkpoint: ShardCheckpoint,
    /// The checkpoint at the start of the batch being built.
    batch_from: ShardCheckpoint,
    last_complete: Option<SequenceNumber>,
    /// A checkpoint found past the stream's retention: while nothing newer is
    /// passed on, reading restarts at `TRIM_HORIZON` (records up to the
    /// checkpoint are skipped as passed, should any still be there).
    past_retention: Option<SequenceNumber>,
    pending: Vec<Record>,
    max_batch_records: usize,
    metrics: Arc<ShardMetrics>,
    sender: BatchSender,
    in_flight: Arc<Semaphore>,
}

impl ShardCursor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shard_id: Arc<str>,
        hash_range: HashKeyRange,
        start: StartPosition,
        checkpoint: ShardCheckpoint,
        max_batch_records: usize,
        max_in_flight: usize,
        metrics: Arc<ShardMetrics>,
        sender: BatchSender,
    ) -> ShardCursor {
        let last_complete = checkpoint.position.as_ref().and_then(|position| position.resume_after().cloned());
        ShardCursor {
            shard_id,
            hash_range,
            start,
            batch_from: checkpoint.clone(),
            checkpoint,
            last_complete,
            past_retention: None,
            pending: Vec::new(),
            max_batch_records: max_batch_records.max(1),
            metrics,
            sender,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    pub(crate) fn shard_id(&self) -> &str {
        &self.shard_id
    }

    pub(crate) fn metrics(&self) -> &ShardMetrics {
        &self.metrics
    }

    /// Where to (re)start reading: never before what was passed on, never at
    /// `TRIM_HORIZON` once something was.
    pub(crate) fn resume(&self) -> Resume {
        match &self.last_complete {
            Some(sequence_number) if self.past_retention.as_ref() == Some(sequence_number) => {
                Resume::Start(StartPosition::TrimHorizon)
            }
            Some(sequence_number) => Resume::After(sequence_number.clone()),
            None => Resume::Start(self.start),
        }
    }

    /// The position `resume` gave is past the stream's retention: the records
    /// after it are gone. Reading goes on from the oldest record there is;
    /// `false` when this position was already given up once (then it is not
    /// a retention gap, and the caller fails instead of looping).
    pub(crate) fn skip_retention_gap(&mut self) -> bool {
        if self.last_complete.is_none() || self.past_retention == self.last_complete {
            return false;
        }
        self.past_retention = self.last_complete.clone();
        self.metrics.retention_gap();
        tracing::warn!(
            shard = %self.shard_id,
            checkpoint = ?self.last_complete,
            "the checkpoint is past the stream's retention: records after it were trimmed; reading on from TRIM_HORIZON"
        );
        true
    }

    /// Hands on the records of one response; `closes_shard` when it was the
    /// shard's last. Waits while the shard's in-flight batches are all held.
    pub(crate) async fn deliver(
        &mut self,
        received: Received,
        millis_behind_latest: Option<i64>,
        closes_shard: bool,
    ) -> Result<(), DeliveryError> {
        let read_at = Utc::now();
        let Received { mut records, aggregated } = received;
        let newest_arrival = records.last().map(|record| record.arrival_time);
        if aggregated || !self.take_whole(&mut records) {
            self.take_each(records, aggregated, millis_behind_latest).await?;
        }
        let arrival_lag = match newest_arrival {
            Some(arrival) => Some((read_at - arrival).num_milliseconds().max(0)),
            None if millis_behind_latest == Some(0) => Some(0),
            None => None,
        };
        self.metrics.lag(millis_behind_latest, arrival_lag);
        if closes_shard {
            self.checkpoint.finished = true;
        }
        if !self.pending.is_empty() || closes_shard || self.checkpoint != self.batch_from {
            self.send(millis_behind_latest, closes_shard).await?;
        }
        if closes_shard {
            self.metrics.finish();
        }
        Ok(())
    }

    /// The common case, without touching each record: plain records that all
    /// follow what was passed on, in order, and fit in one batch become the
    /// pending batch as they are, and the checkpoint moves once, to where the
    /// record-by-record path would have left it. False (nothing taken) otherwise.
    fn take_whole(&mut self, records: &mut Vec<Record>) -> bool {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return false;
        };
        if !self.pending.is_empty()
            || records.len() > self.max_batch_records
            || self.passed(&first.sequence_number, None)
            || !records.windows(2).all(|pair| pair[0].sequence_number < pair[1].sequence_number)
        {
            return false;
        }
        if let [.., before, _] = records.as_slice() {
            self.last_complete = Some(before.sequence_number.clone());
        }
        let last = last.sequence_number.clone();
        self.advance(&last, None, true);
        self.pending = std::mem::take(records);
        true
    }

    /// Record by record: skips what was passed on, unpacks KPL aggregates,
    /// drops sub-records of other shards, and sends full batches on the way.
    async fn take_each(
        &mut self,
        records: Vec<Record>,
        aggregated: bool,
        millis_behind_latest: Option<i64>,
    ) -> Result<(), DeliveryError> {
        // Sized once: a batch that grows record by record copies itself a dozen times.
        self.pending.reserve(records.len().min(self.max_batch_records).saturating_sub(self.pending.len()));
        for record in records {
            let Record { sequence_number, partition_key, arrival_time, data, .. } = record;
            let unpacked =
                if aggregated && data.starts_with(&kpl::MAGIC) { kpl::unpack(&data) } else { Unpacked::Plain };
            match unpacked {
                Unpacked::Aggregated(sub_records) => {
                    let count = sub_records.len() as u64;
                    for (index, sub_record) in (0u64..).zip(sub_records) {
                        if self.passed(&sequence_number, Some(index)) {
                            continue;
                        }
                        let complete = index + 1 == count;
                        if self.hash_range.contains(sub_record.hash_key) {
                            self.pending.push(Record {
                                sequence_number: sequence_number.clone(),
                                sub_sequence: Some(index),
                                partition_key: sub_record.partition_key,
                                arrival_time,
                                data: sub_record.data,
                            });
                        } else {
                            self.metrics.dropped(1);
                        }
                        self.advance(&sequence_number, Some(index), complete);
                        if self.pending.len() >= self.max_batch_records {
                            self.send(millis_behind_latest, false).await?;
                        }
                    }
                    if count == 0 && !self.passed(&sequence_number, None) {
                        self.advance(&sequence_number, None, true);
                    }
                }
                unpacked => {
                    if matches!(unpacked, Unpacked::Corrupt(_)) {
                        self.metrics.corrupt_aggregate();
                    }
                    if self.passed(&sequence_number, None) {
                        continue;
                    }
                    // Position first, so the record can take the sequence number without a clone.
                    self.advance(&sequence_number, None, true);
                    self.pending.push(Record {
                        sequence_number,
                        sub_sequence: None,
                        partition_key,
                        arrival_time,
                        data,
                    });
                    if self.pending.len() >= self.max_batch_records {
                        self.send(millis_behind_latest, false).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Self::deliver`] for records that may have failed to convert;
    /// `Ok(false)` when the reader is stopping.
    pub(crate) async fn hand_on(
        &mut self,
        received: Result<Received, DeliveryError>,
        millis_behind_latest: Option<i64>,
        closes_shard: bool,
    ) -> Result<bool, ReaderError> {
        let delivered = match received {
            Ok(received) => self.deliver(received, millis_behind_latest, closes_shard).await,
            Err(error) => Err(error),
        };
        match delivered {
            Ok(()) => Ok(true),
            Err(DeliveryError::Stopped) => Ok(false),
            Err(DeliveryError::Fatal(error)) => Err(error),
        }
    }

    fn passed(&self, sequence_number: &SequenceNumber, sub_sequence: Option<u64>) -> bool {
        self.checkpoint.position.as_ref().is_some_and(|position| position.covers(sequence_number, sub_sequence))
    }

    fn advance(&mut self, sequence_number: &SequenceNumber, sub_sequence: Option<u64>, complete: bool) {
        match &mut self.checkpoint.position {
            Some(position) if &position.sequence_number == sequence_number => {
                position.sub_sequence = sub_sequence;
                position.record_complete = complete;
            }
            slot => {
                *slot = Some(RecordPosition {
                    sequence_number: sequence_number.clone(),
                    sub_sequence,
                    record_complete: complete,
                    previous_sequence_number: self.last_complete.clone(),
                })
            }
        }
        if complete {
            self.last_complete = Some(sequence_number.clone());
        }
    }

    async fn send(&mut self, millis_behind_latest: Option<i64>, closes_shard: bool) -> Result<(), DeliveryError> {
        let permit = match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.metrics.waiting_for_commit(true);
                let permit = Arc::clone(&self.in_flight).acquire_owned().await;
                self.metrics.waiting_for_commit(false);
                permit.map_err(|_| DeliveryError::Stopped)?
            }
        };
        let records = std::mem::take(&mut self.pending);
        let bytes = records.iter().map(|record| record.data.len() as u64).sum();
        self.metrics.passed_on(records.len() as u64, bytes);
        let mut to = self.checkpoint.clone();
        to.finished = closes_shard;
        let batch = ShardBatch {
            shard_id: Arc::clone(&self.shard_id),
            records,
            from: std::mem::replace(&mut self.batch_from, to.clone()),
            to,
            millis_behind_latest,
            _in_flight: permit,
        };
        self.sender.send(Ok(batch)).await.map_err(|_| DeliveryError::Stopped)
    }
}

/// Why a delivery ended early.
#[derive(Debug)]
pub(crate) enum DeliveryError {
    /// The reader is shutting down.
    Stopped,
    /// Kinesis sent something that cannot be a record.
    Fatal(ReaderError),
}

fn to_chrono(time: aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Delivered = (Vec<(String, Option<u64>)>, ShardCheckpoint, ShardCheckpoint);

    fn record(sequence_number: &str, data: Vec<u8>) -> Record {
        Record {
            sequence_number: SequenceNumber::new(sequence_number).expect("digits"),
            sub_sequence: None,
            partition_key: PartitionKey::from("k"),
            arrival_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            data: Bytes::from(data),
        }
    }

    fn plain(sequence_numbers: &[&str]) -> Vec<Record> {
        sequence_numbers.iter().map(|number| record(number, b"{}".to_vec())).collect()
    }

    /// Delivers `answers` to a cursor starting at `checkpoint` and returns the
    /// batches it sent and where it would resume. `per_record` marks every
    /// answer as possibly aggregated, which takes the record-by-record path.
    async fn deliver_all(
        checkpoint: ShardCheckpoint,
        answers: Vec<Vec<Record>>,
        per_record: bool,
        max_batch_records: usize,
    ) -> (Vec<Delivered>, Resume) {
        let (sender, mut receiver) = mpsc::channel(64);
        let metrics = Arc::new(ShardMetrics::default());
        let mut cursor = ShardCursor::new(
            Arc::from("shardId-0"),
            HashKeyRange::ALL,
            StartPosition::TrimHorizon,
            checkpoint,
            max_batch_records,
            64,
            metrics,
            sender,
        );
        for records in answers {
            let aggregated = per_record || records.iter().any(|record| record.data.starts_with(&kpl::MAGIC));
            cursor.deliver(Received { records, aggregated }, Some(0), false).await.expect("delivered");
        }
        let resume = cursor.resume();
        drop(cursor);
        let mut batches = Vec::new();
        while let Some(batch) = receiver.recv().await {
            let batch = batch.expect("a batch");
            let records =
                batch.records.iter().map(|record| (record.sequence_number.to_string(), record.sub_sequence)).collect();
            batches.push((records, batch.from, batch.to));
        }
        (batches, resume)
    }

    /// Whole answers and the record-by-record path hand on the same records
    /// and leave the same checkpoints, previous sequence numbers included.
    async fn same_either_way(checkpoint: ShardCheckpoint, answers: Vec<Vec<Record>>) -> Vec<Delivered> {
        let whole = deliver_all(checkpoint.clone(), answers.clone(), false, 4).await;
        let each = deliver_all(checkpoint, answers, true, 4).await;
        assert_eq!(whole.0, each.0);
        assert_eq!(whole.1, each.1);
        whole.0
    }

    fn numbers(batches: &[Delivered]) -> Vec<Vec<&str>> {
        batches.iter().map(|(records, _, _)| records.iter().map(|(number, _)| number.as_str()).collect()).collect()
    }

    #[tokio::test]
    async fn whole_answers_match_the_record_by_record_path() {
        let batches = same_either_way(
            ShardCheckpoint::default(),
            vec![plain(&["1", "2", "3"]), plain(&["4"]), plain(&[]), plain(&["10", "11"])],
        )
        .await;
        assert_eq!(numbers(&batches), [vec!["1", "2", "3"], vec!["4"], vec!["10", "11"]]);
        let last = batches[2].2.position.as_ref().expect("a position");
        assert_eq!(last.previous_sequence_number.as_ref().map(SequenceNumber::as_str), Some("10"));
    }

    #[tokio::test]
    async fn answers_that_repeat_skip_or_overflow_go_record_by_record() {
        let resumed = ShardCheckpoint::after(SequenceNumber::new("3").expect("digits"));
        // Repeats what was passed on, out of order, then more than one batch holds.
        let batches = same_either_way(
            resumed,
            vec![plain(&["2", "3", "4"]), plain(&["7", "5", "9"]), plain(&["12", "13", "14", "15", "16"])],
        )
        .await;
        assert_eq!(numbers(&batches), [vec!["4"], vec!["7", "9"], vec!["12", "13", "14", "15"], vec!["16"]]);
    }

    #[tokio::test]
    async fn aggregates_among_plain_records_are_unpacked() {
        let aggregate = kpl::pack(&[("a", None, b"one"), ("b", None, b"two")]);
        let answers = vec![plain(&["1"]), vec![record("2", b"{}".to_vec()), record("3", aggregate)], plain(&["4"])];
        let (batches, resume) = deliver_all(ShardCheckpoint::default(), answers, false, 10).await;
        let expected: Vec<Vec<(String, Option<u64>)>> = vec![
            vec![("1".into(), None)],
            vec![("2".into(), None), ("3".into(), Some(0)), ("3".into(), Some(1))],
            vec![("4".into(), None)],
        ];
        assert_eq!(batches.iter().map(|(records, _, _)| records.clone()).collect::<Vec<_>>(), expected);
        assert_eq!(resume, Resume::After(SequenceNumber::new("4").expect("digits")));
    }
}
