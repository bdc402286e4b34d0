//! What a source does with decoded rows before they are written: `where`,
//! `since` / `until`, `disorder` (the watermark and late rows) and `sample`,
//! applied to whole batches.
//!
//! Order: rows outside `since`/`until` or failing `where` are *filtered*;
//! among the rest, a row whose timestamp is older than the watermark
//! (the largest timestamp seen before it, minus `disorder`) is *late*:
//! counted, then dropped or kept (`late: keep`); the remaining rows advance
//! the watermark, and `sample` keeps those whose hash of the `using` columns
//! falls under the rate (the others count as filtered). The watermark is the
//! caller's to persist ([`SourceRules::max_event_time`]) so a restart goes on
//! from it.

use std::time::Duration;

use arrow_arith::boolean::and_kleene;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_ord::cmp;
use arrow_schema::ArrowError;
use arrow_select::filter::filter_record_batch;
use chrono::{DateTime, Utc};
use tributary_source::{Expr, LateRows, Sample, Source};

use crate::expr::{as_boolean, evaluate, timestamp_array};
use crate::sample_hash::hash_rows;

/// What became of one decoded row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    /// Written.
    Kept,
    /// Left out by `where`, `since`/`until` or `sample`.
    Filtered,
    /// Older than the watermark and dropped.
    LateDropped,
    /// Older than the watermark and written anyway (`late: keep`).
    LateKept,
}

impl RowOutcome {
    /// Whether the row is written.
    pub fn is_written(self) -> bool {
        matches!(self, RowOutcome::Kept | RowOutcome::LateKept)
    }

    /// Whether the row was late.
    pub fn is_late(self) -> bool {
        matches!(self, RowOutcome::LateDropped | RowOutcome::LateKept)
    }
}

/// The rows of a batch the rules keep, and what became of each decoded row.
#[derive(Debug)]
pub struct Applied {
    /// The written rows.
    pub batch: RecordBatch,
    /// One outcome per input row, in order.
    pub outcomes: Vec<RowOutcome>,
}

/// Totals of a run of outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Rows written (late kept ones included).
    pub rows: u64,
    /// Rows filtered out.
    pub filtered: u64,
    /// Late rows, dropped or kept.
    pub late: u64,
}

impl OutcomeCounts {
    /// Counts `outcome`.
    pub fn add(&mut self, outcome: RowOutcome) {
        self.rows += u64::from(outcome.is_written());
        self.filtered += u64::from(outcome == RowOutcome::Filtered);
        self.late += u64::from(outcome.is_late());
    }
}

/// The compiled rules of one source and its watermark.
#[derive(Debug, Clone)]
pub struct SourceRules {
    predicate: Option<Expr>,
    timestamp: String,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    disorder_micros: i64,
    late: LateRows,
    sample: Option<Sample>,
    /// The largest timestamp (µs) of a row that was neither filtered nor late.
    max_event_micros: Option<i64>,
    /// Whether rows older than the watermark are late (not for replayed rows).
    judges_lateness: bool,
}

impl SourceRules {
    /// The rules of `source`, continuing from a persisted `max_event_micros`.
    pub fn new(source: &Source, max_event_micros: Option<i64>) -> SourceRules {
        SourceRules {
            predicate: source.filter.as_ref().map(|p| p.expr().clone()),
            timestamp: source.dataset.timestamp.clone(),
            since: source.since,
            until: source.until,
            disorder_micros: duration_micros(source.disorder),
            late: source.late,
            sample: source.sample.clone().filter(|sample| sample.rate < 1.0),
            max_event_micros,
            judges_lateness: true,
        }
    }

    /// These rules with no row ever late: for rows replayed from the error
    /// log, old by nature and replayed at the user's explicit wish.
    pub fn without_lateness(mut self) -> SourceRules {
        self.judges_lateness = false;
        self
    }

    /// The largest event time seen (µs): what to persist with the checkpoints.
    pub fn max_event_time(&self) -> Option<i64> {
        self.max_event_micros
    }

    /// The watermark (µs): rows older than this are late.
    pub fn watermark(&self) -> Option<i64> {
        self.max_event_micros.map(|max| max.saturating_sub(self.disorder_micros))
    }

    /// Applies the rules to `batch`, advancing the watermark.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<Applied, ArrowError> {
        let candidates = self.candidates(batch)?;
        let column = batch
            .column_by_name(&self.timestamp)
            .ok_or_else(|| ArrowError::SchemaError(format!("no timestamp column `{}`", self.timestamp)))?;
        let times = column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| ArrowError::SchemaError(format!("`{}` is not a µs timestamp", self.timestamp)))?;
        let sampled = match &self.sample {
            Some(sample) => Some(self.sampled(sample, batch)?),
            None => None,
        };
        let mut outcomes = Vec::with_capacity(batch.num_rows());
        let mut written_rows = 0;
        for row in 0..batch.num_rows() {
            let outcome = if candidates.as_ref().is_some_and(|candidates| !candidates.value(row)) {
                RowOutcome::Filtered
            } else {
                // The timestamp column is never null: a row without one is rejected.
                let at = times.value(row);
                if self.judges_lateness && self.watermark().is_some_and(|watermark| at < watermark) {
                    match self.late {
                        LateRows::Drop => RowOutcome::LateDropped,
                        LateRows::Keep => RowOutcome::LateKept,
                    }
                } else {
                    self.max_event_micros = Some(self.max_event_micros.map_or(at, |max| max.max(at)));
                    match &sampled {
                        Some(sampled) if !sampled[row] => RowOutcome::Filtered,
                        _ => RowOutcome::Kept,
                    }
                }
            };
            written_rows += usize::from(outcome.is_written());
            outcomes.push(outcome);
        }
        // Nearly every batch of a source without rules keeps every row: no copy then.
        let batch = if written_rows == batch.num_rows() {
            batch.clone()
        } else {
            let written = BooleanArray::from_iter(outcomes.iter().map(|outcome| Some(outcome.is_written())));
            filter_record_batch(batch, &written)?
        };
        Ok(Applied { batch, outcomes })
    }

    /// Rows that pass `where` and `since`/`until` (a NULL drops the row);
    /// `None` when the source has neither (every row passes).
    fn candidates(&self, batch: &RecordBatch) -> Result<Option<BooleanArray>, ArrowError> {
        let rows = batch.num_rows();
        let mut keep: Option<BooleanArray> = None;
        let mut and = |mask: BooleanArray| -> Result<(), ArrowError> {
            keep = Some(match keep.take() {
                Some(kept) => and_kleene(&kept, &mask)?,
                None => mask,
            });
            Ok(())
        };
        if let Some(predicate) = &self.predicate {
            and(as_boolean(&evaluate(predicate, batch)?)?)?;
        }
        if self.since.is_some() || self.until.is_some() {
            let column = batch
                .column_by_name(&self.timestamp)
                .ok_or_else(|| ArrowError::SchemaError(format!("no timestamp column `{}`", self.timestamp)))?;
            if let Some(since) = self.since {
                and(cmp::gt_eq(column, &timestamp_array(since, rows))?)?;
            }
            if let Some(until) = self.until {
                and(cmp::lt(column, &timestamp_array(until, rows))?)?;
            }
        }
        Ok(keep.map(|kept| {
            // NULL means "not TRUE": dropped.
            if kept.null_count() > 0 {
                BooleanArray::from_iter(kept.iter().map(|kept| Some(kept == Some(true))))
            } else {
                kept
            }
        }))
    }

    /// Per row, whether its `using` columns hash under the rate.
    fn sampled(&self, sample: &Sample, batch: &RecordBatch) -> Result<Vec<bool>, ArrowError> {
        let columns = sample
            .using
            .iter()
            .map(|name| {
                batch.column_by_name(name).ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = (sample.rate.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
        Ok(hash_rows(&columns, batch.num_rows())?.into_iter().map(|hash| hash < threshold).collect())
    }
}

fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use arrow_array::Int64Array;

    use super::*;
    use crate::Decoder;

    const SCHEMA: &str = "    dataset:\n      fields:\n        - {name: id, type: int64}\n        - {name: amount, type: optional<float64>}\n        - {name: country, type: optional<string>}\n        - {name: ts, type: timestamp}\n        - {name: customer, type: \"optional<struct<tier: int32>>\"}\n      timestamp: ts\n";

    fn source(extra: &str) -> Source {
        let text = format!(
            "sources:\n  - name: s\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n      init_position: trim_horizon\n      format: json\n{SCHEMA}{extra}"
        );
        let file = tributary_source::parse_text(&text, false).expect("parses");
        tributary_source::validate_raw_sources(&file.sources, Utc::now()).expect("valid").remove(0)
    }

    fn decode(source: &Source, records: &[&str]) -> RecordBatch {
        let mut decoder = Decoder::new(source, None).expect("decoder");
        let meta = crate::decoder::tests::META;
        for record in records {
            assert!(decoder.decode(record.as_bytes(), &meta).expect("decodes"), "{record}");
        }
        decoder.flush().expect("flush").batch
    }

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        batch.column_by_name("id").expect("id").as_any().downcast_ref::<Int64Array>().expect("int64").values().to_vec()
    }

    /// The ids written; `disorder` is wide so that only the rule under test decides.
    fn kept_ids(extra: &str, records: &[&str]) -> Vec<i64> {
        let source = source(&format!("    disorder: 1000d\n{extra}"));
        ids(&SourceRules::new(&source, None).apply(&decode(&source, records)).expect("applies").batch)
    }

    const RECORDS: [&str; 5] = [
        r#"{"id": 1, "amount": 10.5, "country": "DE", "ts": "2024-01-01T00:00:00Z", "customer": {"tier": 2}}"#,
        r#"{"id": 2, "amount": -3, "country": "US", "ts": "2024-02-01T00:00:00Z", "customer": null}"#,
        r#"{"id": 3, "country": "DE", "ts": "2024-03-01T00:00:00Z", "customer": {"tier": 1}}"#,
        r#"{"id": 4, "amount": 0, "country": null, "ts": "2023-12-31T23:59:59Z"}"#,
        r#"{"id": 5, "amount": 7, "country": "FR", "ts": "2024-01-15T00:00:00Z", "customer": {"tier": 3}}"#,
    ];

    #[test]
    fn where_keeps_only_rows_where_the_predicate_is_true() {
        assert_eq!(kept_ids("    where: \"amount > 0\"\n", &RECORDS), [1, 5], "NULL amount is not > 0");
        assert_eq!(kept_ids("    where: \"country IN ('DE', 'FR') AND NOT amount IS NULL\"\n", &RECORDS), [1, 5]);
        assert_eq!(kept_ids("    where: \"country IS NULL OR amount * 2 + 1 < 0\"\n", &RECORDS), [2, 4]);
        assert_eq!(kept_ids("    where: \"ts >= '2024-01-15' AND ts < '2024-03-01'\"\n", &RECORDS), [2, 5]);
        assert_eq!(
            kept_ids("    where: \"customer.tier >= 2\"\n", &RECORDS),
            [1, 5],
            "a null struct's fields are null"
        );
        assert_eq!(
            kept_ids("    where: \"amount / 0 > 1 OR id % 2 = 0\"\n", &RECORDS),
            [1, 2, 4, 5],
            "no error on division by zero"
        );
        assert_eq!(kept_ids("    where: \"CASE WHEN country = 'DE' THEN id > 1 ELSE id = 5 END\"\n", &RECORDS), [3, 5]);
        assert_eq!(kept_ids("    where: \"country || '-' || country = 'DE-DE'\"\n", &RECORDS), [1, 3]);
        assert_eq!(
            kept_ids("    where: \"id * 9223372036854775807 IS NULL\"\n", &RECORDS),
            [2, 3, 4, 5],
            "an integer overflow is NULL, not an error"
        );
    }

    #[test]
    fn since_is_inclusive_and_until_exclusive() {
        let window = "    since: 2024-01-01T00:00:00Z\n    until: 2024-02-01T00:00:00Z\n";
        assert_eq!(kept_ids(window, &RECORDS), [1, 5]);
    }

    #[test]
    fn rows_older_than_the_watermark_are_late_and_the_watermark_goes_on_from_where_it_was() {
        // disorder 1d: id 4 (a day and a second before 2024-01-01, after it was seen) is late,
        // and so is id 5 (45 days behind 2024-03-01).
        let drop = source("    disorder: 1d\n");
        let mut rules = SourceRules::new(&drop, None);
        let applied = rules.apply(&decode(&drop, &RECORDS)).expect("applies");
        assert_eq!(ids(&applied.batch), [1, 2, 3]);
        use RowOutcome::*;
        assert_eq!(applied.outcomes, [Kept, Kept, Kept, LateDropped, LateDropped]);
        let march = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z").expect("date").timestamp_micros();
        assert_eq!(rules.max_event_time(), Some(march));
        assert_eq!(rules.watermark(), Some(march - 86_400_000_000));

        // A restart with the persisted maximum: id 1 is late at once.
        let mut restarted = SourceRules::new(&drop, rules.max_event_time());
        let again = restarted.apply(&decode(&drop, &RECORDS[..1])).expect("applies");
        assert_eq!(again.outcomes, [LateDropped]);
        // Rules for replayed rows judge no row late, however far behind.
        let mut replaying = SourceRules::new(&drop, rules.max_event_time()).without_lateness();
        assert_eq!(replaying.apply(&decode(&drop, &RECORDS)).expect("applies").outcomes, [Kept; 5]);
        // Fresh rules (what a reset would do) would have kept it.
        assert_eq!(
            SourceRules::new(&drop, None).apply(&decode(&drop, &RECORDS[..1])).expect("applies").outcomes,
            [Kept]
        );

        let keep = source("    disorder: 1d\n    late: keep\n");
        let applied = SourceRules::new(&keep, None).apply(&decode(&keep, &RECORDS)).expect("applies");
        assert_eq!(ids(&applied.batch), [1, 2, 3, 4, 5]);
        assert_eq!(applied.outcomes, [Kept, Kept, Kept, LateKept, LateKept]);
    }

    #[test]
    fn sample_hashes_the_using_columns_so_the_same_values_always_choose_alike() {
        let records: Vec<String> = (0..400)
            .map(|id| format!(r#"{{"id": {id}, "country": "C{}", "ts": "2024-01-01T00:00:00Z"}}"#, id % 7))
            .collect();
        let records: Vec<&str> = records.iter().map(String::as_str).collect();
        let by_id = kept_ids("    sample: {rate: 0.25, using: [id]}\n", &records);
        assert!((60..140).contains(&by_id.len()), "about a quarter: {}", by_id.len());
        // Stable: the same rows from another batch split, and from a new rules instance.
        let (first, second) = records.split_at(123);
        let mut split = kept_ids("    sample: {rate: 0.25, using: [id]}\n", first);
        split.extend(kept_ids("    sample: {rate: 0.25, using: [id]}\n", second));
        assert_eq!(split, by_id);
        // By country: whole countries are in or out.
        let by_country = kept_ids("    sample: {rate: 0.5, using: [country]}\n", &records);
        let countries: std::collections::BTreeSet<i64> = by_country.iter().map(|id| id % 7).collect();
        for id in 0..400 {
            assert_eq!(by_country.contains(&id), countries.contains(&(id % 7)), "id {id}");
        }
        // The fraction form hashes every field but the timestamp (no keys here).
        let plain = source("    disorder: 1000d\n    sample: 0.25\n");
        assert_eq!(
            plain.sample.as_ref().map(|s| s.using.clone()),
            Some(vec!["id".into(), "amount".into(), "country".into(), "customer".into()])
        );
        assert_eq!(kept_ids("    sample: 0\n", &records), Vec::<i64>::new());
        assert_eq!(kept_ids("    sample: 1\n", &records).len(), 400);
    }

    #[test]
    fn one_batch_counts_written_filtered_and_late_rows_each_in_its_place() {
        let source = source("    disorder: 1d\n    where: \"country IS NOT NULL\"\n");
        let applied = SourceRules::new(&source, None).apply(&decode(&source, &RECORDS)).expect("applies");
        let mut counts = OutcomeCounts::default();
        applied.outcomes.iter().for_each(|outcome| counts.add(*outcome));
        // id 4 has no country (filtered before it could be late); id 5 is late.
        assert_eq!(counts, OutcomeCounts { rows: 3, filtered: 1, late: 1 });
        assert_eq!(ids(&applied.batch), [1, 2, 3]);
    }
}
