//! Rejected records as rows of a dataset's `<dataset>__rejected` table,
//! committed with the batch that rejected them, so users query rejections
//! where they query data.

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
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
