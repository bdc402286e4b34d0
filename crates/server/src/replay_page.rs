//! A page of stored rejected rows, column by column, for dry runs and
//! replays: read from the error log without a copy per row, decoded again
//! from its payload column, and turned into the rejected table's marks by
//! selecting its rows rather than rebuilding each one.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{
    Array, ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow_schema::ArrowError;
use chrono::{DateTime, Utc};
use tributary_sink::table::{REPLAYED_REASON, rejected_schema};
use tributary_store::{ErrorLogReader, ErrorPage, ErrorRowRef, NewErrorRow, Store, StoreError};

/// How many stored rows a dry run or a replay reads at once (a page of the error log).
pub(crate) const PAGE_ROWS: u32 = 4096;

/// Sizes a page's columns start with, per row: a shard id (`shardId-000000000012`),
/// a sequence number (56 digits), a reason code or field name, a message, a payload.
const TYPICAL_SHARD_ID_BYTES: usize = 20;
const TYPICAL_SEQUENCE_NUMBER_BYTES: usize = 56;
const TYPICAL_REASON_BYTES: usize = 16;
const TYPICAL_MESSAGE_BYTES: usize = 64;
const TYPICAL_PAYLOAD_BYTES: usize = 512;

/// Rejected rows as stored, in the order read.
#[derive(Debug)]
pub(crate) struct RejectedPage {
    /// Their ids in this node's error log (none when read from the rejected table).
    ids: Vec<Option<i64>>,
    /// The source versions that rejected them, when known.
    versions: Vec<Option<u64>>,
    shard_id: StringArray,
    sequence_number: StringArray,
    sub_sequence: Int64Array,
    arrival_time: TimestampMicrosecondArray,
    reason: StringArray,
    field: StringArray,
    message: StringArray,
    payload: BinaryArray,
    payload_length: Int64Array,
}

/// What a replayed row says in the rejected table.
#[derive(Debug)]
pub(crate) enum Mark {
    /// It landed (`landed`) or the rules left it out (`filtered`): a
    /// `REPLAYED` row with the record's key, its payload being in the row it marks.
    Replayed { landed: bool },
    /// Still refused, for a reason other than the one it was logged with: the row again, with it.
    Reason { reason: String, field: String, message: String },
}

impl RejectedPage {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(crate) fn id(&self, row: usize) -> Option<i64> {
        self.ids[row]
    }

    pub(crate) fn version(&self, row: usize) -> Option<u64> {
        self.versions[row]
    }

    pub(crate) fn shard_id(&self, row: usize) -> &str {
        self.shard_id.value(row)
    }

    pub(crate) fn sequence_number(&self, row: usize) -> &str {
        self.sequence_number.value(row)
    }

    pub(crate) fn sub_sequence(&self, row: usize) -> Option<u64> {
        self.sub_sequence.is_valid(row).then(|| self.sub_sequence.value(row) as u64)
    }

    pub(crate) fn arrival_time_micros(&self, row: usize) -> i64 {
        self.arrival_time.value(row)
    }

    pub(crate) fn reason(&self, row: usize) -> &str {
        self.reason.value(row)
    }

    pub(crate) fn field(&self, row: usize) -> &str {
        self.field.value(row)
    }

    pub(crate) fn message(&self, row: usize) -> &str {
        self.message.value(row)
    }

    pub(crate) fn payload(&self, row: usize) -> &[u8] {
        self.payload.value(row)
    }

    /// The record's full length (the payload may be kept in part).
    pub(crate) fn payload_length(&self, row: usize) -> u64 {
        self.payload_length.value(row) as u64
    }

    /// Whether the error log kept only part of the row's payload.
    pub(crate) fn truncated(&self, row: usize) -> bool {
        (self.payload(row).len() as u64) < self.payload_length(row)
    }

    /// The payloads' bytes, all rows together.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload.values().len()
    }

    /// The rejected table's rows for the rows given `marks` (by row index),
    /// stamped `replayed_at`.
    pub(crate) fn marks(&self, marks: &[(usize, Mark)], replayed_at: DateTime<Utc>) -> Result<RecordBatch, ArrowError> {
        let rows = UInt32Array::from_iter_values(marks.iter().map(|(row, _)| *row as u32));
        let take = |column: &dyn Array| arrow_select::take::take(column, &rows, None);
        let said = |what: fn(&Mark) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(marks.iter().map(|(_, mark)| what(mark))))
        };
        let (mut payload, mut payload_length) =
            (BinaryBuilder::with_capacity(marks.len(), 0), Int64Builder::with_capacity(marks.len()));
        for (row, mark) in marks {
            match mark {
                Mark::Replayed { .. } => {
                    payload.append_value([]);
                    payload_length.append_value(0);
                }
                Mark::Reason { .. } => {
                    payload.append_value(self.payload(*row));
                    payload_length.append_value(self.payload_length.value(*row));
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            said(|mark| match mark {
                Mark::Replayed { .. } => REPLAYED_REASON,
                Mark::Reason { reason, .. } => reason,
            }),
            said(|mark| match mark {
                Mark::Replayed { .. } => "",
                Mark::Reason { field, .. } => field,
            }),
            said(|mark| match mark {
                Mark::Replayed { landed: true } => "landed",
                Mark::Replayed { landed: false } => "filtered",
                Mark::Reason { message, .. } => message,
            }),
            take(&self.shard_id)?,
            take(&self.sequence_number)?,
            take(&self.sub_sequence)?,
            take(&self.arrival_time)?,
            Arc::new(
                TimestampMicrosecondArray::from_value(replayed_at.timestamp_micros(), marks.len()).with_timezone("UTC"),
            ),
            Arc::new(payload.finish()),
            Arc::new(payload_length.finish()),
        ];
        RecordBatch::try_new(Arc::new(rejected_schema()), columns)
    }
}

/// A [`RejectedPage`] being filled, row by row.
#[derive(Debug)]
struct PageBuilder {
    ids: Vec<Option<i64>>,
    versions: Vec<Option<u64>>,
    shard_id: StringBuilder,
    sequence_number: StringBuilder,
    sub_sequence: Int64Builder,
    arrival_time: TimestampMicrosecondBuilder,
    reason: StringBuilder,
    field: StringBuilder,
    message: StringBuilder,
    payload: BinaryBuilder,
    payload_length: Int64Builder,
}

impl PageBuilder {
    /// Room for `rows` rows of typical size, so filling a page grows no buffer
    /// (each growth copies what the page holds so far).
    fn with_capacity(rows: usize) -> PageBuilder {
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        PageBuilder {
            ids: Vec::with_capacity(rows),
            versions: Vec::with_capacity(rows),
            shard_id: text(TYPICAL_SHARD_ID_BYTES),
            sequence_number: text(TYPICAL_SEQUENCE_NUMBER_BYTES),
            sub_sequence: Int64Builder::with_capacity(rows),
            arrival_time: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            reason: text(TYPICAL_REASON_BYTES),
            field: text(TYPICAL_REASON_BYTES),
            message: text(TYPICAL_MESSAGE_BYTES),
            payload: BinaryBuilder::with_capacity(rows, rows * TYPICAL_PAYLOAD_BYTES),
            payload_length: Int64Builder::with_capacity(rows),
        }
    }

    /// A row of this node's error log.
    fn push_logged(&mut self, row: &ErrorRowRef<'_>) {
        self.ids.push(Some(row.id));
        self.versions.push(Some(row.version));
        self.push_record(
            (row.shard_id, row.sequence_number, row.sub_sequence, row.arrival_time_micros),
            (row.reason, row.field, row.message),
            (row.payload, row.payload_length),
        );
    }

    /// A rejected row known by its record alone (read from the rejected table).
    fn push_unlogged(&mut self, row: &NewErrorRow) {
        self.ids.push(None);
        self.versions.push(None);
        self.push_record(
            (&row.shard_id, &row.sequence_number, row.sub_sequence, row.arrival_time.timestamp_micros()),
            (&row.reason, &row.field, &row.message),
            (&row.payload, row.payload_length),
        );
    }

    fn push_record(
        &mut self,
        (shard_id, sequence_number, sub_sequence, arrival_time_micros): (&str, &str, Option<u64>, i64),
        (reason, field, message): (&str, &str, &str),
        (payload, payload_length): (&[u8], u64),
    ) {
        self.shard_id.append_value(shard_id);
        self.sequence_number.append_value(sequence_number);
        self.sub_sequence.append_option(sub_sequence.and_then(|sub| i64::try_from(sub).ok()));
        self.arrival_time.append_value(arrival_time_micros);
        self.reason.append_value(reason);
        self.field.append_value(field);
        self.message.append_value(message);
        self.payload.append_value(payload);
        self.payload_length.append_value(i64::try_from(payload_length).unwrap_or(i64::MAX));
    }

    fn finish(mut self) -> RejectedPage {
        RejectedPage {
            ids: self.ids,
            versions: self.versions,
            shard_id: self.shard_id.finish(),
            sequence_number: self.sequence_number.finish(),
            sub_sequence: self.sub_sequence.finish(),
            arrival_time: self.arrival_time.finish(),
            reason: self.reason.finish(),
            field: self.field.finish(),
            message: self.message.finish(),
            payload: self.payload.finish(),
            payload_length: self.payload_length.finish(),
        }
    }
}

/// A page of `source`'s stored rejected rows not replayed since (only
/// `reason`'s when given), older than error-log id `before`, newest first,
/// and where the next page begins (`None` after the last). A page holds at
/// most `rows` rows (at most [`PAGE_ROWS`]), and may hold none while others follow.
pub(crate) fn rejected_page(
    store: &Store,
    source: &str,
    reason: Option<&str>,
    before: Option<i64>,
    rows: u32,
) -> Result<(RejectedPage, Option<i64>), StoreError> {
    let rows = rows.clamp(1, PAGE_ROWS);
    let mut page = PageBuilder::with_capacity(rows as usize);
    let next = store.for_each_error_in_page(source, reason, before, rows, |row| {
        page.push_logged(&row);
        Ok(())
    })?;
    Ok((page.finish(), next))
}

/// The rows of `page` of `source`'s error log not replayed since (only `reason`'s when given).
pub(crate) fn read_rejected_page(
    reader: &ErrorLogReader,
    source: &str,
    reason: Option<&str>,
    page: &ErrorPage,
    rows: u32,
) -> Result<RejectedPage, StoreError> {
    let mut builder = PageBuilder::with_capacity(rows.min(PAGE_ROWS) as usize);
    reader.read_page(source, reason, page, |row| {
        builder.push_logged(&row);
        Ok(())
    })?;
    Ok(builder.finish())
}

/// `rows` (read from the rejected table) as a page.
pub(crate) fn unlogged_page<'a>(rows: impl IntoIterator<Item = &'a NewErrorRow>) -> RejectedPage {
    let rows = rows.into_iter();
    let mut page = PageBuilder::with_capacity(rows.size_hint().0);
    rows.for_each(|row| page.push_unlogged(row));
    page.finish()
}
