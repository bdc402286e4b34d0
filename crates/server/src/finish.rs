//! When a source is done: every shard has passed `until` (by arrival time),
//! or a `bounded` source has seen no new record for its `idleness`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tributary_reader::{ShardBatch, ShardMetricsSnapshot};
use tributary_source::Source;

/// How often a source with an end is checked between batches.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The shortest wait between two checks without a batch.
const MIN_CHECK_GAP: Duration = Duration::from_millis(200);
/// A caught-up shard counts as past `until` only this long after it: shards
/// are polled at least every few seconds, so its last answer came after `until`.
const CAUGHT_UP_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Watches a source's progress toward its end, if it has one.
#[derive(Debug)]
pub(crate) struct FinishWatch {
    until: Option<DateTime<Utc>>,
    idleness: Option<Duration>,
    last_record: Instant,
    /// The newest arrival time read per shard.
    newest_arrival: HashMap<Arc<str>, DateTime<Utc>>,
}

impl FinishWatch {
    pub(crate) fn new(source: &Source) -> FinishWatch {
        FinishWatch {
            until: source.until,
            idleness: source.idleness,
            last_record: Instant::now(),
            newest_arrival: HashMap::new(),
        }
    }

    /// Whether the source can finish at all (`until` or `bounded`).
    pub(crate) fn has_end(&self) -> bool {
        self.until.is_some() || self.idleness.is_some()
    }

    /// Notes what a batch brought.
    pub(crate) fn saw(&mut self, batch: &ShardBatch) {
        if !self.has_end() {
            return;
        }
        if let Some(newest) = batch.records.iter().map(|record| record.arrival_time).max() {
            self.last_record = Instant::now();
            let seen = self.newest_arrival.entry(Arc::clone(&batch.shard_id)).or_insert(newest);
            *seen = (*seen).max(newest);
        }
    }

    /// When to check next without a batch; `None` for a source without an end.
    pub(crate) fn next_check(&self) -> Option<Instant> {
        // Never sooner than this: an idle end already passed whose source is not
        // finished yet (a shard still behind, or other nodes' shards) is not checked in a spin.
        let soonest = Instant::now() + MIN_CHECK_GAP;
        let idle_end = self.idleness.map(|idleness| (self.last_record + idleness).max(soonest));
        let until_check = self.until.map(|_| Instant::now() + CHECK_EVERY);
        match (idle_end, until_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Why the source is done, if it is.
    pub(crate) fn finished(
        &self,
        shards: &BTreeMap<String, ShardMetricsSnapshot>,
        now: DateTime<Utc>,
    ) -> Option<String> {
        // Idle only once every shard has answered and is caught up: a slow first read is not idleness.
        let caught_up = !shards.is_empty()
            && shards.values().all(|shard| shard.finished || (shard.calls > 0 && shard.millis_behind_latest == 0));
        if let Some(idleness) = self.idleness
            && caught_up
            && self.last_record.elapsed() >= idleness
        {
            return Some(format!("bounded: no new record for {idleness:?}"));
        }
        let until = self.until?;
        let passed = |(shard_id, shard): (&String, &ShardMetricsSnapshot)| {
            shard.finished
                || self.newest_arrival.get(shard_id.as_str()).is_some_and(|newest| *newest >= until)
                || (shard.calls > 0 && shard.millis_behind_latest == 0 && now >= until + CAUGHT_UP_MARGIN)
        };
        (!shards.is_empty() && shards.iter().all(passed)).then(|| format!("every shard has passed `until` ({until})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(calls: u64, behind: i64) -> ShardMetricsSnapshot {
        ShardMetricsSnapshot { calls, millis_behind_latest: behind, ..ShardMetricsSnapshot::default() }
    }

    #[test]
    fn until_is_passed_when_every_shard_read_past_it_or_caught_up_after_it() {
        let until = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z").expect("time").with_timezone(&Utc);
        let watch = FinishWatch {
            until: Some(until),
            idleness: None,
            last_record: Instant::now(),
            newest_arrival: HashMap::new(),
        };
        let shards = BTreeMap::from([("a".to_owned(), shard(3, 0)), ("b".to_owned(), shard(0, 0))]);
        let later = until + chrono::TimeDelta::seconds(60);
        assert_eq!(watch.finished(&shards, later), None, "shard b has not answered yet");
        let shards = BTreeMap::from([("a".to_owned(), shard(3, 0)), ("b".to_owned(), shard(1, 0))]);
        assert!(watch.finished(&shards, later).is_some());
        assert_eq!(watch.finished(&shards, until), None, "caught up, but maybe before `until`");
        let behind = BTreeMap::from([("a".to_owned(), shard(3, 60_000))]);
        assert_eq!(watch.finished(&behind, later), None, "still reading records from before `until`");
        assert_eq!(watch.finished(&BTreeMap::new(), later), None);
    }

    #[test]
    fn a_bounded_source_is_idle_only_once_caught_up() {
        let idle_since = Instant::now() - Duration::from_secs(5);
        let watch = FinishWatch {
            until: None,
            idleness: Some(Duration::from_secs(1)),
            last_record: idle_since,
            newest_arrival: HashMap::new(),
        };
        let now = Utc::now();
        assert_eq!(watch.finished(&BTreeMap::from([("a".to_owned(), shard(0, 0))]), now), None, "no answer yet");
        assert_eq!(watch.finished(&BTreeMap::from([("a".to_owned(), shard(2, 5_000))]), now), None, "behind");
        assert!(watch.finished(&BTreeMap::from([("a".to_owned(), shard(2, 0))]), now).is_some());
    }
}
