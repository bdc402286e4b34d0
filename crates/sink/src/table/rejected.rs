//! Rejected records as rows of a dataset's `<dataset>__rejected` table,
//! committed with the batch that rejected them, so users query rejections
//! where they query data.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};
use tributary_store::NewErrorRow;

/// The rejected table of dataset `dataset`.
pub fn rejected_table_name(dataset: &str) -> String {
    format!("{dataset}{}", tributary_source::REJECTED_SUFFIX)
}

/// Its partition column: the day records arrived in the stream.
pub const REJECTED_TIMESTAMP: &str = "arrival_time";

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The rejected table's columns.
pub fn rejected_schema() -> Schema {
    Schema::new(vec![
        Field::new("reason", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new("shard_id", DataType::Utf8, false),
        Field::new("sequence_number", DataType::Utf8, false),
        Field::new("sub_sequence", DataType::Int64, true),
        Field::new(REJECTED_TIMESTAMP, utc(), false),
        Field::new("rejected_at", utc(), false),
        // Capped as in the error log; `payload_length` is the record's full length.
        Field::new("payload", DataType::Binary, false),
        Field::new("payload_length", DataType::Int64, false),
    ])
}

/// `rows`, rejected at `rejected_at`, as a batch of the rejected table.
pub fn rejected_batch(rows: &[NewErrorRow], rejected_at: DateTime<Utc>) -> Result<RecordBatch, ArrowError> {
    let strings = |value: fn(&NewErrorRow) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(value)))
    };
    let times =
        |values: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) };
    let columns: Vec<ArrayRef> = vec![
        strings(|row| &row.reason),
        strings(|row| &row.field),
        strings(|row| &row.message),
        strings(|row| &row.shard_id),
        strings(|row| &row.sequence_number),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|row| row.sub_sequence.and_then(|sub| i64::try_from(sub).ok())),
        )),
        times(rows.iter().map(|row| row.arrival_time.timestamp_micros()).collect()),
        times(vec![rejected_at.timestamp_micros(); rows.len()]),
        Arc::new(BinaryArray::from_iter_values(rows.iter().map(|row| row.payload.as_slice()))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|row| i64::try_from(row.payload_length).unwrap_or(i64::MAX)),
        )),
    ];
    RecordBatch::try_new(Arc::new(rejected_schema()), columns)
}

/// A row of a rejected table, read back: the record and its reason, and when it was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// The record and the reason.
    pub row: NewErrorRow,
    /// When its batch was rejected.
    pub rejected_at: DateTime<Utc>,
}

/// The rows of `batches` (read from a rejected table), in their order.
pub fn rejected_rows(batches: &[RecordBatch]) -> Result<Vec<RejectedRow>, ArrowError> {
    let mut rows = Vec::new();
    for batch in batches {
        let column = |name: &str| {
            batch.column_by_name(name).ok_or_else(|| ArrowError::SchemaError(format!("no `{name}` column")))
        };
        let strings = |name: &str| -> Result<&StringArray, ArrowError> {
            column(name)?
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| ArrowError::SchemaError(format!("`{name}` is not a string column")))
        };
        let integers = |name: &str| -> Result<&Int64Array, ArrowError> {
            column(name)?
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| ArrowError::SchemaError(format!("`{name}` is not an int64 column")))
        };
        let times = |name: &str| -> Result<&TimestampMicrosecondArray, ArrowError> {
            column(name)?
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .ok_or_else(|| ArrowError::SchemaError(format!("`{name}` is not a timestamp column")))
        };
        let (reason, field, message) = (strings("reason")?, strings("field")?, strings("message")?);
        let (shard_id, sequence_number) = (strings("shard_id")?, strings("sequence_number")?);
        let (sub_sequence, payload_length) = (integers("sub_sequence")?, integers("payload_length")?);
        let (arrival_time, rejected_at) = (times(REJECTED_TIMESTAMP)?, times("rejected_at")?);
        let payload = column("payload")?
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| ArrowError::SchemaError("`payload` is not a binary column".to_owned()))?;
        let time = |micros: i64| DateTime::from_timestamp_micros(micros).unwrap_or_default();
        for i in 0..batch.num_rows() {
            rows.push(RejectedRow {
                row: NewErrorRow {
                    shard_id: shard_id.value(i).to_owned(),
                    sequence_number: sequence_number.value(i).to_owned(),
                    sub_sequence: sub_sequence.is_valid(i).then(|| u64::try_from(sub_sequence.value(i)).unwrap_or(0)),
                    arrival_time: time(arrival_time.value(i)),
                    reason: reason.value(i).to_owned(),
                    field: field.value(i).to_owned(),
                    message: message.value(i).to_owned(),
                    payload: payload.value(i).to_vec(),
                    payload_length: u64::try_from(payload_length.value(i)).unwrap_or(0),
                },
                rejected_at: time(rejected_at.value(i)),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_rows_read_back_as_they_were_written() {
        let arrival = DateTime::from_timestamp_micros(1_717_243_200_000_000).expect("time");
        let row = NewErrorRow {
            shard_id: "shardId-000000000001".into(),
            sequence_number: "4959".into(),
            sub_sequence: Some(3),
            arrival_time: arrival,
            reason: "TYPE_MISMATCH".into(),
            field: "id".into(),
            message: "not an integer".into(),
            payload: b"{\"id\": \"x\"}".to_vec(),
            payload_length: 11,
        };
        let plain = NewErrorRow { sub_sequence: None, field: String::new(), ..row.clone() };
        let rejected_at = arrival + chrono::Duration::seconds(5);
        let batch = rejected_batch(&[row.clone(), plain.clone()], rejected_at).expect("batch");
        let read = rejected_rows(&[batch]).expect("rows");
        assert_eq!(read, [RejectedRow { row, rejected_at }, RejectedRow { row: plain, rejected_at }]);
    }
}
