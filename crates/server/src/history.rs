//! A bounded in-memory history of every source's lag, rows/s and
//! rejected/s, per source and per shard, so the console can chart the last
//! hours with no Prometheus. Sampled at a fixed interval; the oldest samples
//! go once the window is full. Lost on restart, by design.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tributary_store::Store;

use crate::supervisor::Supervisor;

/// How much history is kept.
pub(crate) const WINDOW: Duration = Duration::from_secs(6 * 3600);

/// One shard at one instant: its lag, and its committed rows and rejections so far.
#[derive(Debug, Clone, Copy, Default)]
struct ShardPoint {
    lag_millis: i64,
    rows: u64,
    rejected: u64,
}

/// Every shard of a source at one instant.
#[derive(Debug, Clone)]
struct Sample {
    at_millis: i64,
    shards: BTreeMap<Arc<str>, ShardPoint>,
}

/// The samples of every source.
#[derive(Debug)]
pub(crate) struct History {
    interval: Duration,
    capacity: usize,
    sources: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl History {
    /// A history sampled every `interval`, keeping [`WINDOW`].
    pub(crate) fn new(interval: Duration) -> History {
        let interval = interval.max(Duration::from_millis(100));
        let capacity =
            usize::try_from(WINDOW.as_millis() / interval.as_millis()).unwrap_or(usize::MAX).clamp(2, 21_600);
        History { interval, capacity, sources: Mutex::new(HashMap::new()) }
    }

    fn record(&self, source: &str, sample: Sample) {
        let mut sources = self.sources.lock();
        let samples = sources.entry(source.to_owned()).or_default();
        if samples.len() >= self.capacity {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Forgets sources no longer running here.
    fn retain(&self, running: &[String]) {
        self.sources.lock().retain(|name, _| running.contains(name));
    }

    /// `source`'s history as JSON: per sample its time, the largest lag and
    /// the rates since the sample before, for the source and each shard
    /// (columns of numbers, one per sample, to keep the answer small).
    /// Only samples within the last `window`.
    pub(crate) fn answer(&self, source: &str, window: Duration) -> Value {
        let samples: Vec<Sample> = {
            let sources = self.sources.lock();
            let since = Utc::now().timestamp_millis() - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
            sources
                .get(source)
                .map(|samples| samples.iter().filter(|sample| sample.at_millis >= since).cloned().collect())
                .unwrap_or_default()
        };
        let mut times = Vec::with_capacity(samples.len());
        let mut total = Series::default();
        let mut shards: BTreeMap<Arc<str>, Series> = BTreeMap::new();
        for (index, sample) in samples.iter().enumerate() {
            times.push(sample.at_millis);
            let before = index.checked_sub(1).map(|previous| &samples[previous]);
            let seconds = before.map(|before| (sample.at_millis - before.at_millis).max(1) as f64 / 1000.0);
            let mut sum = (0.0, 0.0, 0_i64);
            for (shard, point) in &sample.shards {
                let previous = before.and_then(|before| before.shards.get(shard)).copied();
                let (rows, rejected) = rates(point, previous, seconds);
                sum = (sum.0 + rows.unwrap_or(0.0), sum.1 + rejected.unwrap_or(0.0), sum.2.max(point.lag_millis));
                let series = shards.entry(Arc::clone(shard)).or_insert_with(|| Series::padded(index));
                series.push(Some(point.lag_millis), rows, rejected);
            }
            // Shards not in this sample (ended, or not yet there) have gaps.
            for series in shards.values_mut() {
                series.pad_to(index + 1);
            }
            let known = before.is_some();
            total.push(Some(sum.2), known.then_some(sum.0), known.then_some(sum.1));
        }
        json!({
            "source": source,
            "interval_ms": self.interval.as_millis() as u64,
            "window_ms": window.as_millis() as u64,
            "times": times,
            "source_series": total.json(),
            "shards": shards.iter().map(|(shard, series)| (shard.to_string(), series.json())).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// Rows/s and rejected/s of a shard between two samples (none for the first,
/// or when a counter went back: a new version's counts).
fn rates(point: &ShardPoint, previous: Option<ShardPoint>, seconds: Option<f64>) -> (Option<f64>, Option<f64>) {
    let (Some(previous), Some(seconds)) = (previous, seconds) else { return (None, None) };
    let rate = |now: u64, then: u64| now.checked_sub(then).map(|delta| round(delta as f64 / seconds));
    (rate(point.rows, previous.rows), rate(point.rejected, previous.rejected))
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Three columns of a chart: lag, rows/s, rejected/s.
#[derive(Debug, Default)]
struct Series {
    lag_millis: Vec<Option<i64>>,
    rows_per_second: Vec<Option<f64>>,
    rejected_per_second: Vec<Option<f64>>,
}

impl Series {
    fn padded(len: usize) -> Series {
        let mut series = Series::default();
        series.pad_to(len);
        series
    }

    fn pad_to(&mut self, len: usize) {
        self.lag_millis.resize(len, None);
        self.rows_per_second.resize(len, None);
        self.rejected_per_second.resize(len, None);
    }

    fn push(&mut self, lag: Option<i64>, rows: Option<f64>, rejected: Option<f64>) {
        self.lag_millis.push(lag);
        self.rows_per_second.push(rows);
        self.rejected_per_second.push(rejected);
    }

    fn json(&self) -> Value {
        json!({
            "lag_millis": self.lag_millis,
            "rows_per_second": self.rows_per_second,
            "rejected_per_second": self.rejected_per_second,
        })
    }
}

/// Samples every running source until the process ends.
pub(crate) async fn sample_forever(history: Arc<History>, store: Arc<Store>, supervisor: Arc<Supervisor>) {
    let mut ticks = tokio::time::interval(history.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let statuses = supervisor.statuses();
        let names: Vec<String> = statuses.iter().map(|(name, _)| name.clone()).collect();
        let counted = Arc::clone(&store);
        let counts = crate::api::off_runtime(move || {
            let mut counts = HashMap::new();
            for name in names {
                let shards = counted.shard_counts(&name)?;
                counts.insert(name, shards);
            }
            Ok(counts)
        })
        .await;
        let Ok(mut counts) = counts else { continue };
        let at_millis = Utc::now().timestamp_millis();
        let running: Vec<String> = statuses.iter().map(|(name, _)| name.clone()).collect();
        for (name, status) in statuses {
            let mut shards: BTreeMap<Arc<str>, ShardPoint> = BTreeMap::new();
            for count in counts.remove(&name).unwrap_or_default() {
                let point = shards.entry(Arc::from(count.shard_id.as_str())).or_default();
                (point.rows, point.rejected) = (count.rows, count.rejected);
            }
            if let Some(reader) = status.snapshot().reader {
                for (shard, metrics) in reader.snapshot() {
                    shards.entry(Arc::from(shard.as_str())).or_default().lag_millis = metrics.millis_behind_latest;
                }
            }
            history.record(&name, Sample { at_millis, shards });
        }
        history.retain(&running);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_millis: i64, shards: &[(&str, i64, u64, u64)]) -> Sample {
        Sample {
            at_millis,
            shards: shards
                .iter()
                .map(|(shard, lag_millis, rows, rejected)| {
                    (Arc::from(*shard), ShardPoint { lag_millis: *lag_millis, rows: *rows, rejected: *rejected })
                })
                .collect(),
        }
    }

    #[test]
    fn rates_come_from_consecutive_samples_and_the_window_is_bounded() {
        let history = History::new(Duration::from_secs(3600));
        assert_eq!(history.capacity, 6);
        let now = Utc::now().timestamp_millis();
        for i in 0..8 {
            history.record("s", sample(now - 8_000 + i * 1000, &[("a", 5, 100 * i as u64, 0)]));
        }
        history.record("s", sample(now, &[("a", 7, 900, 3), ("b", 40, 10, 0)]));
        let answer = history.answer("s", Duration::from_secs(3600));
        let times = answer["times"].as_array().expect("times");
        assert_eq!(times.len(), 6, "only the newest samples are kept");
        let source = &answer["source_series"];
        assert_eq!(source["rows_per_second"][0], Value::Null, "no rate for the first sample");
        assert_eq!(source["rows_per_second"][1], 100.0);
        assert_eq!(source["lag_millis"][5], 40, "the largest lag of any shard");
        assert_eq!(source["rejected_per_second"][5], 3.0);
        let b = &answer["shards"]["b"];
        assert_eq!(b["lag_millis"], json!([null, null, null, null, null, 40]), "a new shard has gaps before it");
        let recent = history.answer("s", Duration::from_millis(2_500));
        assert_eq!(recent["times"].as_array().map(Vec::len), Some(3), "the window asked for");
    }
}
