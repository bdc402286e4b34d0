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

/// A Kinesis record as a consumer received it, before KPL unpacking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IncomingRecord {
    pub(crate) sequence_number: SequenceNumber,
    pub(crate) partition_key: PartitionKey,
    pub(crate) arrival_time: Option<DateTime<Utc>>,
    pub(crate) data: Bytes,
    /// The payload starts with the KPL magic: checked where it was decoded
    /// (still in cache), not where it is handed on.
    pub(crate) kpl_magic: bool,
}

impl IncomingRecord {
    /// A record the SDK parsed (enhanced fan-out, or an answer we did not divert).
    pub(crate) fn from_sdk(
        record: aws_sdk_kinesis::types::Record,
        shard_id: &str,
    ) -> Result<IncomingRecord, DeliveryError> {
        let sequence_number = SequenceNumber::new(&record.sequence_number).map_err(|invalid| {
            DeliveryError::Fatal(ReaderError::InvalidResponse {
                shard_id: shard_id.to_owned(),
                detail: invalid.to_string(),
            })
        })?;
        Ok(IncomingRecord {
            sequence_number,
            partition_key: PartitionKey::from(record.partition_key.as_str()),
            arrival_time: record.approximate_arrival_timestamp.and_then(to_chrono),
            kpl_magic: record.data.as_ref().starts_with(&kpl::MAGIC),
            data: Bytes::from(record.data.into_inner()),
        })
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
            Some(sequence_number) => Resume::After(sequence_number.clone()),
            None => Resume::Start(self.start),
        }
    }

    /// Hands on the records of one response; `closes_shard` when it was the
    /// shard's last. Waits while the shard's in-flight batches are all held.
    pub(crate) async fn deliver(
        &mut self,
        records: Vec<IncomingRecord>,
        millis_behind_latest: Option<i64>,
        closes_shard: bool,
    ) -> Result<(), DeliveryError> {
        let read_at = Utc::now();
        let mut newest_arrival = None;
        // Sized once: a batch that grows record by record copies itself a dozen times.
        self.pending.reserve(records.len().min(self.max_batch_records).saturating_sub(self.pending.len()));
        for record in records {
            let IncomingRecord { sequence_number, partition_key, arrival_time, data, kpl_magic } = record;
            let arrival_time = arrival_time.unwrap_or(read_at);
            newest_arrival = Some(arrival_time);
            let unpacked = if kpl_magic { kpl::unpack(&data) } else { Unpacked::Plain };
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

    /// [`Self::deliver`] for records that may have failed to convert;
    /// `Ok(false)` when the reader is stopping.
    pub(crate) async fn hand_on(
        &mut self,
        records: Result<Vec<IncomingRecord>, DeliveryError>,
        millis_behind_latest: Option<i64>,
        closes_shard: bool,
    ) -> Result<bool, ReaderError> {
        let delivered = match records {
            Ok(records) => self.deliver(records, millis_behind_latest, closes_shard).await,
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
        let permit = Arc::clone(&self.in_flight).acquire_owned().await.map_err(|_| DeliveryError::Stopped)?;
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
