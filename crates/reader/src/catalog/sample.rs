//! Sample data: [`GetShardIterator`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html)
//! and [`GetRecords`](https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html)
//! on the open shards, a few records each.
//!
//! Shards are read in waves spread over the hash-key range (records are
//! spread over it by partition-key hash, so a spread few show what the stream
//! carries): a first wave of a few shards, then twice as many of those left
//! while the sample is short, none after a wave that found nothing, and never
//! more shards than records asked for. A wide stream, empty or not, costs
//! about what a narrow one does. Each shard reads at most its share of what
//! is still missing (with `Limit` set to it), starting at `AT_TIMESTAMP` a while ago so the
//! sample shows what the stream carries now; when nothing that recent exists
//! anywhere in the stream, the oldest data (`TRIM_HORIZON`) is sampled
//! instead (and at once, for a stream younger than the look-back: there the two
//! are the same data, and one pass costs half the calls). KPL aggregates are unpacked: a sampled message is one user
//! record's payload, never a producer's envelope.

use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::types::ShardIteratorType;
use aws_smithy_types::DateTime;
use bytes::Bytes;

use super::{Catalog, CatalogError, Failure};
use crate::kpl::{Unpacked, unpack};

/// Shards read in the first wave (all of them, for a stream this narrow).
const FIRST_WAVE: usize = 3;

/// How much to sample and from when.
#[derive(Debug, Clone)]
pub struct SampleSettings {
    /// At most this many records per stream.
    pub records: usize,
    /// Start this long before now.
    pub lookback: Duration,
    /// `GetRecords` calls per shard that may come back empty (but behind) before it is left.
    pub empty_reads: u32,
}

impl Default for SampleSettings {
    fn default() -> Self {
        SampleSettings { records: 10, lookback: Duration::from_secs(3600), empty_reads: 3 }
    }
}

/// One sampled user record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledRecord {
    /// The shard it was read from.
    pub shard_id: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its payload, exactly as the producer wrote it.
    pub data: Bytes,
}

#[derive(Clone, Copy)]
enum From {
    Recent(SystemTime),
    Oldest,
}

impl Catalog {
    /// Up to `settings.records` records of `stream_arn`, spread over
    /// `open_shards` (in hash-key order: the first waves pick shards evenly
    /// spaced along it); `created` is the stream's creation time, when known.
    pub async fn sample(
        &self,
        stream_arn: &str,
        open_shards: &[String],
        settings: &SampleSettings,
        created: Option<SystemTime>,
    ) -> Result<Vec<SampledRecord>, CatalogError> {
        if settings.records == 0 || open_shards.is_empty() {
            return Ok(Vec::new());
        }
        let since = SystemTime::now() - settings.lookback;
        if created.is_some_and(|created| created >= since) {
            return self.sample_from(stream_arn, open_shards, settings, From::Oldest).await;
        }
        let recent = From::Recent(since);
        let sampled = self.sample_from(stream_arn, open_shards, settings, recent).await?;
        if !sampled.is_empty() {
            return Ok(sampled);
        }
        self.sample_from(stream_arn, open_shards, settings, From::Oldest).await
    }

    async fn sample_from(
        &self,
        stream_arn: &str,
        open_shards: &[String],
        settings: &SampleSettings,
        from: From,
    ) -> Result<Vec<SampledRecord>, CatalogError> {
        let mut unread: Vec<&String> = open_shards.iter().collect();
        let mut per_shard: Vec<std::vec::IntoIter<SampledRecord>> = Vec::new();
        let (mut found, mut shards_read) = (0, 0);
        let mut wave = FIRST_WAVE.min(unread.len()).min(settings.records);
        while wave > 0 {
            let picked = take_spread(&mut unread, wave);
            shards_read += picked.len();
            let share = (settings.records - found).div_ceil(picked.len());
            let reads = picked.iter().map(|shard_id| self.sample_shard(stream_arn, shard_id, share, settings, from));
            let read = futures_util::future::join_all(reads).await.into_iter().collect::<Result<Vec<_>, _>>()?;
            let found_now: usize = read.iter().map(Vec::len).sum();
            found += found_now;
            per_shard.extend(read.into_iter().map(Vec::into_iter));
            // A spread wave that found nothing says the stream holds (next to) nothing.
            if found_now == 0 || found >= settings.records {
                break;
            }
            wave = (wave * 2).min(unread.len()).min(settings.records.saturating_sub(shards_read));
        }
        // The shares are dealt in turn, so that the first shards do not crowd the others out.
        let mut sampled = Vec::with_capacity(settings.records);
        while sampled.len() < settings.records {
            let before = sampled.len();
            for records in &mut per_shard {
                if sampled.len() == settings.records {
                    break;
                }
                sampled.extend(records.next());
            }
            if sampled.len() == before {
                break;
            }
        }
        Ok(sampled)
    }

    async fn sample_shard(
        &self,
        stream_arn: &str,
        shard_id: &str,
        share: usize,
        settings: &SampleSettings,
        from: From,
    ) -> Result<Vec<SampledRecord>, CatalogError> {
        let target = format!("{stream_arn} {shard_id}");
        let iterator = self
            .retrying("GetShardIterator", &target, || {
                let request = self.client.get_shard_iterator().stream_arn(stream_arn).shard_id(shard_id);
                let request = match from {
                    From::Recent(at) => {
                        request.shard_iterator_type(ShardIteratorType::AtTimestamp).timestamp(DateTime::from(at))
                    }
                    From::Oldest => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                };
                async move { request.send().await.map_err(|e| Failure::of(&e, "GetShardIterator", shard_id)) }
            })
            .await?
            .shard_iterator;
        let mut iterator = iterator;
        let mut records = Vec::new();
        let mut empty_reads = 0;
        while let Some(current) = iterator.take() {
            let limit = i32::try_from(share - records.len()).unwrap_or(i32::MAX);
            let answer = self
                .retrying("GetRecords", &target, || {
                    let request =
                        self.client.get_records().shard_iterator(&current).stream_arn(stream_arn).limit(limit);
                    async move { request.send().await.map_err(|e| Failure::of(&e, "GetRecords", shard_id)) }
                })
                .await?;
            let behind = answer.millis_behind_latest().is_some_and(|millis| millis > 0);
            let read_nothing = answer.records().is_empty();
            for record in answer.records {
                let partition_key = record.partition_key;
                let data = Bytes::from(record.data.into_inner());
                match unpack(&data) {
                    Unpacked::Aggregated(sub_records) => {
                        records.extend(sub_records.into_iter().map(|sub| SampledRecord {
                            shard_id: shard_id.to_owned(),
                            partition_key: sub.partition_key.to_string(),
                            data: sub.data,
                        }))
                    }
                    Unpacked::Plain | Unpacked::Corrupt(_) => {
                        records.push(SampledRecord {
                            shard_id: shard_id.to_owned(),
                            partition_key: partition_key.clone(),
                            data,
                        });
                    }
                }
            }
            if records.len() >= share {
                records.truncate(share);
                break;
            }
            empty_reads += u32::from(read_nothing);
            // Caught up, or too many empty pages: this shard has given what it has.
            if !behind || empty_reads >= settings.empty_reads {
                break;
            }
            iterator = answer.next_shard_iterator;
        }
        Ok(records)
    }
}

/// Takes `count` of `shards` evenly spaced along them (they are in hash-key order).
fn take_spread<'a>(shards: &mut Vec<&'a String>, count: usize) -> Vec<&'a String> {
    let len = shards.len();
    let count = count.min(len);
    // Distinct, increasing positions: i * len / count for i < count.
    let positions: Vec<usize> = (0..count).map(|i| i * len / count).collect();
    let picked: Vec<&String> = positions.iter().map(|&at| shards[at]).collect();
    for &at in positions.iter().rev() {
        shards.remove(at);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_spread_over_the_hash_key_range() {
        let ids: Vec<String> = (0..120).map(|i| format!("shard-{i:03}")).collect();
        let mut unread: Vec<&String> = ids.iter().collect();
        let first = take_spread(&mut unread, 3);
        assert_eq!(first, [&ids[0], &ids[40], &ids[80]]);
        let second = take_spread(&mut unread, 6);
        assert_eq!(second.len(), 6);
        assert!(second.iter().all(|id| !first.contains(id)), "no shard is read twice");
        assert_eq!(unread.len(), 111);
        let mut two: Vec<&String> = ids[..2].iter().collect();
        assert_eq!(take_spread(&mut two, 5).len(), 2, "never more than there are");
    }
}
