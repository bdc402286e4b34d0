//! A source's row filter: `where`, `since` / `until` and `sample`, applied to
//! decoded rows before they are written.
//!
//! `where` follows SQL: a row is kept only when the predicate is TRUE (NULL
//! drops it). Comparisons between numbers are made in the wider type;
//! arithmetic is done in float64 so a division by zero is a NULL-free
//! infinity rather than an error that would stop the source. A string
//! literal compared with a timestamp or date is read with the definition
//! grammar (`ts >= '2024-01-01'`). `sample` keeps a row when a hash of its
//! record's position falls under the fraction, so a record re-read after a
//! crash makes the same choice.

use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow_buffer::NullBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType};
use arrow_select::filter::filter_record_batch;
use chrono::{DateTime, Utc};
use tributary_source::{BinaryOp, Expr, Literal, Source, parse_date_time};

/// The compiled row filter of one source.
#[derive(Debug, Clone)]
pub struct RowFilter {
    predicate: Option<Expr>,
    timestamp: String,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    sample: Option<f64>,
}

impl RowFilter {
    /// The filter of `source`; `None` when it keeps every row.
    pub fn new(source: &Source) -> Option<RowFilter> {
        let filter = RowFilter {
            predicate: source.filter.as_ref().map(|p| p.expr().clone()),
            timestamp: source.dataset.timestamp.clone(),
            since: source.since,
            until: source.until,
            sample: source.sample.filter(|fraction| *fraction < 1.0),
        };
        let keeps_all =
            filter.predicate.is_none() && filter.since.is_none() && filter.until.is_none() && filter.sample.is_none();
        (!keeps_all).then_some(filter)
    }

    /// Whether `filter` needs each row's record key (for `sample`).
    pub fn samples(&self) -> bool {
        self.sample.is_some()
    }

    /// The rows of `batch` the filter keeps. `record_keys` holds one key per
    /// row (any stable hash of the record's position) when [`Self::samples`].
    pub fn apply(&self, batch: &RecordBatch, record_keys: &[u64]) -> Result<RecordBatch, ArrowError> {
        filter_record_batch(batch, &self.mask(batch, record_keys)?)
    }

    /// Which rows of `batch` the filter keeps (a NULL drops the row).
    pub fn mask(&self, batch: &RecordBatch, record_keys: &[u64]) -> Result<BooleanArray, ArrowError> {
        let rows = batch.num_rows();
        let mut keep = BooleanArray::from(vec![true; rows]);
        if let Some(predicate) = &self.predicate {
            keep = and_kleene(&keep, &as_boolean(&evaluate(predicate, batch)?)?)?;
        }
        if self.since.is_some() || self.until.is_some() {
            let column = batch
                .column_by_name(&self.timestamp)
                .ok_or_else(|| ArrowError::SchemaError(format!("no timestamp column `{}`", self.timestamp)))?;
            if let Some(since) = self.since {
                keep = and_kleene(&keep, &cmp::gt_eq(column, &timestamp_array(since, rows))?)?;
            }
            if let Some(until) = self.until {
                keep = and_kleene(&keep, &cmp::lt(column, &timestamp_array(until, rows))?)?;
            }
        }
        if let Some(fraction) = self.sample {
            if record_keys.len() != rows {
                return Err(ArrowError::InvalidArgumentError("sample needs one record key per row".into()));
            }
            let threshold = (fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
            let sampled: BooleanArray = record_keys.iter().map(|key| Some(*key < threshold)).collect();
            keep = and_kleene(&keep, &sampled)?;
        }
        // NULL means "not TRUE": dropped.
        Ok(BooleanArray::from_iter(keep.iter().map(|kept| Some(kept == Some(true)))))
    }
}

fn timestamp_array(at: DateTime<Utc>, rows: usize) -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from_value(at.timestamp_micros(), rows).with_timezone("UTC")
}

fn as_boolean(value: &ArrayRef) -> Result<BooleanArray, ArrowError> {
    match value.data_type() {
        DataType::Boolean => Ok(value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; value.len()]))),
        DataType::Null => Ok(BooleanArray::new_null(value.len())),
        other => Err(ArrowError::InvalidArgumentError(format!("`where` evaluated to {other}, not a boolean"))),
    }
}

fn evaluate(expr: &Expr, batch: &RecordBatch) -> Result<ArrayRef, ArrowError> {
    let rows = batch.num_rows();
    match expr {
        Expr::Field(path) => field(batch, path),
        Expr::Literal(literal) => Ok(literal_array(literal, rows)),
        Expr::Not(inner) => Ok(Arc::new(not(&as_boolean(&evaluate(inner, batch)?)?)?)),
        Expr::Negate(inner) => numeric::neg(&to_float(&evaluate(inner, batch)?)?),
        Expr::IsNull { expr, negated } => {
            let value = evaluate(expr, batch)?;
            Ok(Arc::new(if *negated { is_not_null(&value)? } else { is_null(&value)? }))
        }
        Expr::InList { expr, list, negated } => {
            let value = evaluate(expr, batch)?;
            let mut any: Option<BooleanArray> = None;
            for literal in list {
                let candidate = literal_like(literal, &value, rows);
                let (left, right) = coerce(&value, &candidate)?;
                let equal = cmp::eq(&left, &right)?;
                any = Some(match any {
                    Some(found) => or_kleene(&found, &equal)?,
                    None => equal,
                });
            }
            let found = any.unwrap_or_else(|| BooleanArray::from(vec![false; rows]));
            Ok(Arc::new(if *negated { not(&found)? } else { found }))
        }
        Expr::Binary(left, op, right) => {
            let (left_value, right_value) = (evaluate(left, batch)?, evaluate(right, batch)?);
            match op {
                BinaryOp::And => Ok(Arc::new(and_kleene(&as_boolean(&left_value)?, &as_boolean(&right_value)?)?)),
                BinaryOp::Or => Ok(Arc::new(or_kleene(&as_boolean(&left_value)?, &as_boolean(&right_value)?)?)),
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                    let (l, r) = (to_float(&left_value)?, to_float(&right_value)?);
                    match op {
                        BinaryOp::Add => numeric::add(&l, &r),
                        BinaryOp::Sub => numeric::sub(&l, &r),
                        BinaryOp::Mul => numeric::mul(&l, &r),
                        BinaryOp::Div => numeric::div(&l, &r),
                        _ => numeric::rem(&l, &r),
                    }
                }
                comparison => {
                    // A string literal beside a timestamp or date is an instant or a day.
                    let right_value = match right.as_ref() {
                        Expr::Literal(literal @ Literal::String(_)) => literal_like(literal, &left_value, rows),
                        _ => right_value,
                    };
                    let left_value = match left.as_ref() {
                        Expr::Literal(literal @ Literal::String(_)) => literal_like(literal, &right_value, rows),
                        _ => left_value,
                    };
                    let (l, r) = coerce(&left_value, &right_value)?;
                    let result = match comparison {
                        BinaryOp::Eq => cmp::eq(&l, &r),
                        BinaryOp::NotEq => cmp::neq(&l, &r),
                        BinaryOp::Lt => cmp::lt(&l, &r),
                        BinaryOp::LtEq => cmp::lt_eq(&l, &r),
                        BinaryOp::Gt => cmp::gt(&l, &r),
                        _ => cmp::gt_eq(&l, &r),
                    }?;
                    Ok(Arc::new(result))
                }
            }
        }
    }
}

/// A column by path; a null parent struct makes its children null.
fn field(batch: &RecordBatch, path: &[String]) -> Result<ArrayRef, ArrowError> {
    let missing = || ArrowError::SchemaError(format!("no column `{}`", path.join(".")));
    let (first, rest) = path.split_first().ok_or_else(missing)?;
    let mut current = Arc::clone(batch.column_by_name(first).ok_or_else(missing)?);
    for part in rest {
        let parent = current.as_any().downcast_ref::<StructArray>().ok_or_else(missing)?;
        let child = parent.column_by_name(part).ok_or_else(missing)?;
        let nulls = NullBuffer::union(parent.nulls(), child.nulls());
        current = arrow_array::make_array(child.to_data().into_builder().nulls(nulls).build()?);
    }
    Ok(current)
}

fn literal_array(literal: &Literal, rows: usize) -> ArrayRef {
    match literal {
        Literal::Null => new_null_array(&DataType::Null, rows),
        Literal::Bool(value) => Arc::new(BooleanArray::from(vec![*value; rows])),
        Literal::Int(value) => Arc::new(Int64Array::from_value(*value, rows)),
        Literal::Float(value) => Arc::new(Float64Array::from_value(*value, rows)),
        Literal::String(value) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, rows))),
    }
}

/// A literal in the type of `other` when it stands for an instant or a day.
fn literal_like(literal: &Literal, other: &ArrayRef, rows: usize) -> ArrayRef {
    let Literal::String(text) = literal else { return literal_array(literal, rows) };
    match other.data_type() {
        DataType::Timestamp(_, _) => match parse_date_time(text) {
            Some(at) => Arc::new(timestamp_array(at, rows)),
            None => new_null_array(other.data_type(), rows),
        },
        DataType::Date32 => match parse_date_time(text) {
            Some(at) => Arc::new(Date32Array::from_value((at.timestamp().div_euclid(86_400)) as i32, rows)),
            None => new_null_array(other.data_type(), rows),
        },
        _ => literal_array(literal, rows),
    }
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Int32 | DataType::Int64)
}

fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

fn to_float(value: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    arrow_cast::cast(value, &DataType::Float64)
}

/// Both sides in one type: int64 for two integers, float64 for other
/// numbers, the other side's type for a null literal.
fn coerce(left: &ArrayRef, right: &ArrayRef) -> Result<(ArrayRef, ArrayRef), ArrowError> {
    let (l, r) = (left.data_type(), right.data_type());
    if l == r {
        return Ok((Arc::clone(left), Arc::clone(right)));
    }
    if *l == DataType::Null {
        return Ok((new_null_array(r, left.len()), Arc::clone(right)));
    }
    if *r == DataType::Null {
        return Ok((Arc::clone(left), new_null_array(l, right.len())));
    }
    if is_integer(l) && is_integer(r) {
        return Ok((arrow_cast::cast(left, &DataType::Int64)?, arrow_cast::cast(right, &DataType::Int64)?));
    }
    if is_number(l) && is_number(r) {
        return Ok((to_float(left)?, to_float(right)?));
    }
    if matches!(l, DataType::Timestamp(_, _)) && matches!(r, DataType::Timestamp(_, _)) {
        return Ok((Arc::clone(left), arrow_cast::cast(right, l)?));
    }
    Err(ArrowError::InvalidArgumentError(format!("cannot compare {l} with {r}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;

    fn kept_ids(extra: &str, records: &[&str], keys: &[u64]) -> Vec<i64> {
        let text = format!(
            "sources:\n  - name: s\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/s\n      init_position: trim_horizon\n      format: json\n    dataset:\n      fields:\n        - {{name: id, type: int64}}\n        - {{name: amount, type: optional<float64>}}\n        - {{name: country, type: optional<string>}}\n        - {{name: ts, type: timestamp}}\n        - {{name: customer, type: \"optional<struct<tier: int32>>\"}}\n      timestamp: ts\n{extra}"
        );
        let file = tributary_source::parse_text(&text, false).expect("parses");
        let sources = tributary_source::validate_raw_sources(&file.sources, Utc::now()).expect("valid");
        let mut decoder = Decoder::new(&sources[0], None).expect("decoder");
        let meta = crate::decoder::tests::META;
        for record in records {
            assert!(decoder.decode(record.as_bytes(), &meta).expect("decodes"), "{record}");
        }
        let batch = decoder.flush().expect("flush").batch;
        let filter = RowFilter::new(&sources[0]).expect("a filter");
        let kept = filter.apply(&batch, keys).expect("filters");
        let ids = kept.column_by_name("id").expect("id").as_any().downcast_ref::<Int64Array>().expect("int64").clone();
        ids.values().to_vec()
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
        assert_eq!(kept_ids("    where: \"amount > 0\"\n", &RECORDS, &[]), [1, 5], "NULL amount is not > 0");
        assert_eq!(kept_ids("    where: \"country IN ('DE', 'FR') AND NOT amount IS NULL\"\n", &RECORDS, &[]), [1, 5]);
        assert_eq!(kept_ids("    where: \"country IS NULL OR amount * 2 + 1 < 0\"\n", &RECORDS, &[]), [2, 4]);
        assert_eq!(kept_ids("    where: \"ts >= '2024-01-15' AND ts < '2024-03-01'\"\n", &RECORDS, &[]), [2, 5]);
        assert_eq!(
            kept_ids("    where: \"customer.tier >= 2\"\n", &RECORDS, &[]),
            [1, 5],
            "a null struct's fields are null"
        );
        assert_eq!(
            kept_ids("    where: \"amount / 0 > 1 OR id % 2 = 0\"\n", &RECORDS, &[]),
            [1, 2, 4, 5],
            "no error on division by zero"
        );
    }

    #[test]
    fn since_until_and_sample_cut_rows() {
        let window = "    since: 2024-01-01T00:00:00Z\n    until: 2024-02-01T00:00:00Z\n";
        assert_eq!(kept_ids(window, &RECORDS, &[]), [1, 5], "since is inclusive, until exclusive");
        let keys = [0, u64::MAX, u64::MAX / 4, u64::MAX / 2 + 1, 1];
        assert_eq!(kept_ids("    sample: 0.5\n", &RECORDS, &keys), [1, 3, 5]);
    }
}
