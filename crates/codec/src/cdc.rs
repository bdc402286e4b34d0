//! Change data capture: the `_op`, `_sequence_number` and `_sub_sequence`
//! columns of `upsert` and `debezium` sources, and the Debezium envelope.
//!
//! A Debezium record (`{before, after, op, ts_ms}`, or the same under
//! `payload` when the converter adds its `schema`) is one change: `c`, `r` and
//! `u` give the `after` row as an upsert; `d` gives a delete row holding the
//! keys of `before`, its timestamp from `before` or else the envelope's
//! `ts_ms`, and NULL elsewhere. Deletes are decoded into their own narrow
//! columns and interleaved with the upserts at flush, so every other field
//! keeps its own type check for upserts.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{ArrayRef, new_null_array};
use arrow_schema::{ArrowError, Field as ArrowField, FieldRef, Schema};
use serde::Deserialize;
use serde_json::value::RawValue;
use tributary_source::{Cdc, DataType, Field, Source};

use crate::columns::{Column, Kind};
use crate::json::JsonFormat;
use crate::rejection::{Fault, Reason, RecordMeta};

/// The operation column of a cdc dataset.
pub const OP_COLUMN: &str = "_op";
/// The sequence-number column of a cdc dataset (shared with `include_metadata`).
pub const SEQUENCE_COLUMN: &str = "_sequence_number";
/// The KPL sub-sequence column of a cdc dataset (NULL for plain records).
pub const SUB_SEQUENCE_COLUMN: &str = "_sub_sequence";
/// Parquet key-value metadata naming a cdc dataset's keys (comma-separated).
pub const KEYS_METADATA: &str = "tributary.cdc.keys";

/// The change a record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Upsert,
    Delete,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// The columns a cdc source adds after the dataset's (and the metadata's).
#[derive(Debug)]
pub(crate) struct CdcColumns {
    op: Column,
    /// `None` when `include_metadata` already adds `_sequence_number`.
    sequence_number: Option<Column>,
    sub_sequence: Column,
}

impl CdcColumns {
    pub(crate) fn new(include_metadata: bool) -> CdcColumns {
        CdcColumns {
            op: Column::metadata_string(OP_COLUMN),
            sequence_number: (!include_metadata).then(|| Column::metadata_string(SEQUENCE_COLUMN)),
            sub_sequence: Column::new(&Field {
                name: SUB_SEQUENCE_COLUMN.to_owned(),
                data_type: DataType::Optional(Box::new(DataType::Int64)),
            }),
        }
    }

    pub(crate) fn arrow_fields(&self) -> Vec<Arc<ArrowField>> {
        self.columns().map(|column| Arc::new(column.arrow_field(&column.path))).collect()
    }

    fn columns(&self) -> impl Iterator<Item = &Column> {
        [Some(&self.op), self.sequence_number.as_ref(), Some(&self.sub_sequence)].into_iter().flatten()
    }

    pub(crate) fn push(&mut self, op: Op, meta: &RecordMeta<'_>) {
        self.op.push_str(op.as_str());
        if let Some(sequence_number) = &mut self.sequence_number {
            sequence_number.push_str(meta.sequence_number);
        }
        match meta.sub_sequence.and_then(|sub| i64::try_from(sub).ok()) {
            Some(sub) => self.sub_sequence.push_int64(sub),
            None => self.sub_sequence.push_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut arrays = vec![self.op.finish()?];
        if let Some(sequence_number) = &mut self.sequence_number {
            arrays.push(sequence_number.finish()?);
        }
        arrays.push(self.sub_sequence.finish()?);
        Ok(arrays)
    }
}

/// The envelope's fields we read; others (`source`, `transaction`, `schema`) are skipped.
/// `Some("null")` is an explicit null, `None` an absent key.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "raw")]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    before: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ts_ms: Option<&'a RawValue>,
}

/// A present key's raw value, `null` included (serde's `Option` would make it `None`).
fn raw<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// One Debezium change, borrowed from the payload.
#[derive(Debug)]
pub(crate) enum Change<'a> {
    /// The row to decode as the dataset's.
    Upsert(&'a [u8]),
    /// The row for the delete columns: the keys, and the timestamp.
    Delete(Vec<u8>),
}

/// Reads a Debezium JSON envelope.
pub(crate) fn open_json<'a>(payload: &'a [u8], deletes: &DeleteRows) -> Result<Change<'a>, Box<Fault>> {
    let text = payload.trim_ascii();
    if text.is_empty() || text == b"null" {
        return Err(Fault::record(Reason::CdcTombstone));
    }
    let mut envelope: Envelope<'a> = serde_json::from_slice(text)
        .map_err(|_| Fault::record(Reason::CdcNoEnvelope("the payload is not a JSON object")))?;
    if envelope.op.is_none()
        && let Some(inner) = envelope.payload
    {
        if inner.get() == "null" {
            return Err(Fault::record(Reason::CdcTombstone));
        }
        envelope = serde_json::from_str(inner.get())
            .map_err(|_| Fault::record(Reason::CdcNoEnvelope("`payload` is not an object")))?;
    }
    let Some(op) = envelope.op else {
        return Err(Fault::record(Reason::CdcNoEnvelope("no `op`")));
    };
    let present = |value: Option<&'a RawValue>| value.filter(|raw| raw.get() != "null");
    match op.as_ref() {
        "c" | "r" | "u" => match present(envelope.after) {
            Some(after) => Ok(Change::Upsert(after.get().as_bytes())),
            None => Err(Fault::record(Reason::CdcNoEnvelope("no `after` row for a create, read or update"))),
        },
        "d" => {
            let before = present(envelope.before).ok_or_else(|| Fault::record(Reason::CdcDeleteWithoutKeys))?;
            deletes.key_object(before.get(), envelope.ts_ms).map(Change::Delete)
        }
        other => Err(Fault::record(Reason::CdcUnknownOp(Arc::from(other.chars().take(32).collect::<String>())))),
    }
}

/// The rows of deletes: the keys and the timestamp, decoded into their own
/// columns and widened to the dataset at flush.
#[derive(Debug)]
pub(crate) struct DeleteRows {
    root: Column,
    format: JsonFormat,
    keys: Vec<String>,
    timestamp: String,
    /// The timestamp's place among the delete columns.
    timestamp_index: usize,
    /// Per accepted row since the last flush, whether it is a delete.
    is_delete: Vec<bool>,
}

impl DeleteRows {
    pub(crate) fn new(source: &Source) -> DeleteRows {
        let dataset = &source.dataset;
        // The timestamp may be absent from `before`: the envelope's `ts_ms` stands in (see `complete`).
        let fields: Vec<Field> = dataset
            .fields
            .iter()
            .filter(|f| dataset.keys.contains(&f.name) || f.name == dataset.timestamp)
            .map(|f| match dataset.keys.contains(&f.name) {
                true => f.clone(),
                false => Field { name: f.name.clone(), data_type: DataType::Optional(Box::new(f.data_type.clone())) },
            })
            .collect();
        let timestamp_index = fields.iter().position(|f| f.name == dataset.timestamp).unwrap_or(0);
        DeleteRows {
            root: Column::root(&fields),
            timestamp_index,
            format: JsonFormat::default(),
            keys: dataset.keys.clone(),
            timestamp: dataset.timestamp.clone(),
            is_delete: Vec::new(),
        }
    }

    /// `{key: ..., timestamp: ...}` from `before` (and `ts_ms` when `before` has no timestamp).
    fn key_object(&self, before: &str, ts_ms: Option<&RawValue>) -> Result<Vec<u8>, Box<Fault>> {
        let row: std::collections::HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(before)
            .map_err(|_| Fault::record(Reason::CdcNoEnvelope("`before` is not an object")))?;
        // The raw values are valid JSON already: the object is written around them, not re-parsed.
        let mut object = Vec::with_capacity(before.len() + 2);
        object.push(b'{');
        let mut member = |name: &str, value: &RawValue| {
            if object.len() > 1 {
                object.push(b',');
            }
            // Field names match `[A-Za-z_][A-Za-z0-9_]*` (definition grammar): no escaping needed.
            object.extend_from_slice(format!("\"{name}\":").as_bytes());
            object.extend_from_slice(value.get().as_bytes());
        };
        for key in &self.keys {
            let value = row.get(key.as_str()).filter(|raw| raw.get() != "null");
            member(key, value.ok_or_else(|| Fault::record(Reason::CdcDeleteWithoutKeys))?);
        }
        if !self.keys.contains(&self.timestamp) {
            let at = row.get(self.timestamp.as_str()).copied().filter(|raw| raw.get() != "null").or(ts_ms);
            if let Some(at) = at {
                member(&self.timestamp, at);
            }
        }
        object.push(b'}');
        Ok(object)
    }

    /// Decodes a delete's key object.
    pub(crate) fn decode(&mut self, key_object: &[u8]) -> Result<(), Box<Fault>> {
        let rows = self.root.len();
        let decoded = self.format.decode(key_object, &mut self.root);
        if decoded.is_err() {
            self.root.truncate(rows);
        }
        decoded.map_err(|fault| self.key_fault(fault))?;
        self.complete(rows, None)
    }

    /// The delete columns, for a format that reads `before` itself (Avro).
    pub(crate) fn root(&self) -> &Column {
        &self.root
    }

    pub(crate) fn root_mut(&mut self) -> &mut Column {
        &mut self.root
    }

    /// A NULL or absent key in `before` is a delete without keys.
    pub(crate) fn key_fault(&self, fault: Box<Fault>) -> Box<Fault> {
        let about_a_key = self.keys.iter().any(|key| **key == *fault.field);
        match fault.reason {
            Reason::NullNotAllowed | Reason::MissingField if about_a_key => Fault::record(Reason::CdcDeleteWithoutKeys),
            _ => fault,
        }
    }

    /// After the delete row `rows` was read: a missing timestamp becomes
    /// `ts_ms` (ms since the epoch), or rejects the row when there is none.
    pub(crate) fn complete(&mut self, rows: usize, ts_ms: Option<i64>) -> Result<(), Box<Fault>> {
        let Kind::Struct { fields, .. } = &mut self.root.kind else { return Ok(()) };
        let Some(timestamp) = fields.get_mut(self.timestamp_index) else { return Ok(()) };
        let column = &mut timestamp.column;
        if column.nulls.is_valid(rows) {
            return Ok(());
        }
        match ts_ms.and_then(|ms| ms.checked_mul(1_000)) {
            Some(micros) => {
                column.truncate(rows);
                column.push_timestamp(micros);
                Ok(())
            }
            None => {
                let path = Arc::clone(&column.path);
                self.root.truncate(rows);
                Err(Fault::new(Reason::MissingField, &path))
            }
        }
    }

    pub(crate) fn accepted(&mut self, is_delete: bool) {
        self.is_delete.push(is_delete);
    }

    /// Accepted deletes since the last flush.
    pub(crate) fn len(&self) -> usize {
        self.root.len()
    }

    /// The dataset's columns (`fields`) with the deletes interleaved among the
    /// upsert rows (`upserts`), in arrival order.
    pub(crate) fn merge(&mut self, upserts: Vec<ArrayRef>, fields: &[FieldRef]) -> Result<Vec<ArrayRef>, ArrowError> {
        let order = std::mem::take(&mut self.is_delete);
        let delete_columns = self.root.finish_children()?;
        if !order.contains(&true) {
            return Ok(upserts);
        }
        let delete_rows = order.iter().filter(|d| **d).count();
        let (mut upsert_at, mut delete_at) = (0usize, 0usize);
        let indices: Vec<(usize, usize)> = order
            .iter()
            .map(|is_delete| {
                let (array, at) = if *is_delete { (1, &mut delete_at) } else { (0, &mut upsert_at) };
                *at += 1;
                (array, *at - 1)
            })
            .collect();
        let delete_fields = self.root.child_fields();
        let mut columns = Vec::with_capacity(fields.len());
        for (field, upsert_column) in fields.iter().zip(&upserts) {
            let delete_column = match delete_fields.iter().position(|f| f.name() == field.name()) {
                Some(at) => Arc::clone(&delete_columns[at]),
                None => new_null_array(field.data_type(), delete_rows),
            };
            columns.push(arrow_select::interleave::interleave(
                &[upsert_column.as_ref(), delete_column.as_ref()],
                &indices,
            )?);
        }
        Ok(columns)
    }
}

/// Whether `source` adds the cdc columns.
pub(crate) fn has_columns(source: &Source) -> bool {
    source.cdc != Cdc::Append
}

/// The schema of a debezium source's batches: every dataset field but the keys
/// may be NULL (a delete carries only its keys and time).
pub(crate) fn relax(schema: &Schema, source: &Source) -> Schema {
    let fields: Vec<Arc<ArrowField>> = schema
        .fields()
        .iter()
        .map(|field| {
            let dataset_field = source.dataset.fields.iter().any(|f| f.name == *field.name());
            let keep = !dataset_field
                || source.dataset.keys.contains(field.name())
                || source.dataset.timestamp == *field.name();
            if keep { Arc::clone(field) } else { Arc::new(field.as_ref().clone().with_nullable(true)) }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}
