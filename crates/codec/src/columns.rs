//! Column builders that can roll back a half-written row.
//!
//! Arrow's own builders cannot forget what was appended, and a record can fail
//! after some of its fields were written (a bad value in the tenth field). So
//! the decoders write into these builders, and a rejected row is undone with
//! [`Column::truncate`] to the row count before it: the batch holds exactly the
//! accepted rows, in order, and neighbours of a bad row are untouched.
//!
//! A [`Column`] is compiled once from a dataset field and doubles as the
//! decoding plan: its kind says what to expect, its `path` names it in
//! rejections, and its buffers are reused batch after batch.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int32Array,
    Int64Array, ListArray, MapArray, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType as ArrowType, Field as ArrowField, Fields, TimeUnit};
use tributary_source::{DataType, Field};

/// The time zone of every timestamp column: instants are stored in UTC.
pub(crate) const UTC: &str = "UTC";

/// One column of a batch being built.
#[derive(Debug)]
pub(crate) struct Column {
    pub(crate) kind: Kind,
    /// Tracks nulls; only optional columns may append one.
    pub(crate) nulls: NullBufferBuilder,
    pub(crate) nullable: bool,
    /// The field's path for rejections: `customer.email`, `tags[]`.
    pub(crate) path: Arc<str>,
    /// The dataset type, canonical spelling, for type-mismatch messages.
    pub(crate) type_name: Arc<str>,
}

/// The values of a column, by type.
#[derive(Debug)]
pub(crate) enum Kind {
    Bool(BooleanBufferBuilder),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Utf8 {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Binary {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    Date32(Vec<i32>),
    /// Microseconds since the epoch, UTC.
    Timestamp(Vec<i64>),
    Decimal {
        values: Vec<i128>,
        precision: u8,
        scale: u8,
    },
    List {
        offsets: Vec<i32>,
        item: Box<Column>,
    },
    Map {
        offsets: Vec<i32>,
        keys: Box<Column>,
        values: Box<Column>,
    },
    /// `first_key`: the JSON decoder's guess of the field whose key comes first.
    Struct {
        fields: Vec<StructField>,
        first_key: usize,
    },
}

/// A field of a struct column.
#[derive(Debug)]
pub(crate) struct StructField {
    pub(crate) name: Arc<str>,
    /// The name followed by a closing quote, to match a JSON key in place.
    pub(crate) quoted_key: Box<[u8]>,
    pub(crate) column: Column,
    /// The JSON decoder's mark of the last object that set this field.
    pub(crate) seen: u64,
    /// The JSON decoder's guess of the field whose key follows this one,
    /// learned from the payloads (producers keep their key order).
    pub(crate) next_key: usize,
    /// Where the value comes from (only the root's fields use `preproc`).
    pub(crate) source: FieldSource,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldSource {
    /// The payload key of the same name.
    Key,
    /// A nested path of the payload (`preproc: {ref: ...}`).
    Ref,
    /// A constant, kept as JSON text (`preproc: {value: ...}`).
    Constant(Arc<[u8]>),
    /// Computed from the other fields at flush (`preproc: {eval: ...}`); NULL until then.
    Computed,
}

impl Column {
    /// Compiles a dataset field into an empty column.
    pub(crate) fn new(field: &Field) -> Column {
        Column::compile(&field.data_type, Arc::from(field.name.as_str()))
    }

    /// The root of a batch: a struct of the dataset's fields whose paths are the bare field names.
    pub(crate) fn root(fields: &[Field]) -> Column {
        let fields = fields
            .iter()
            .enumerate()
            .map(|(i, f)| StructField {
                name: Arc::from(f.name.as_str()),
                quoted_key: quoted_key(&f.name),
                column: Column::new(f),
                seen: 0,
                next_key: i + 1,
                source: FieldSource::Key,
            })
            .collect();
        Column {
            kind: Kind::Struct { fields, first_key: 0 },
            nulls: NullBufferBuilder::new(0),
            nullable: false,
            path: Arc::from(""),
            type_name: Arc::from("object"),
        }
    }

    /// A string column outside the dataset schema (record metadata).
    pub(crate) fn metadata_string(name: &str) -> Column {
        Column::compile(&DataType::String, Arc::from(name))
    }

    /// A timestamp column outside the dataset schema (record metadata).
    pub(crate) fn metadata_timestamp(name: &str) -> Column {
        Column::compile(&DataType::Timestamp, Arc::from(name))
    }

    /// Appends a valid string (record metadata, enum symbols).
    pub(crate) fn push_str(&mut self, value: &str) -> bool {
        let Kind::Utf8 { offsets, data } = &mut self.kind else { return false };
        data.extend_from_slice(value.as_bytes());
        let ok = push_offset(offsets, data.len());
        self.nulls.append_non_null();
        ok
    }

    /// Appends a valid int64 (record metadata).
    pub(crate) fn push_int64(&mut self, value: i64) {
        if let Kind::Int64(values) = &mut self.kind {
            values.push(value);
            self.nulls.append_non_null();
        }
    }

    /// Appends a valid timestamp (record metadata).
    pub(crate) fn push_timestamp(&mut self, micros: i64) {
        if let Kind::Timestamp(values) = &mut self.kind {
            values.push(micros);
            self.nulls.append_non_null();
        }
    }

    fn compile(data_type: &DataType, path: Arc<str>) -> Column {
        let nullable = data_type.is_optional();
        let type_name: Arc<str> = Arc::from(data_type.non_null().to_string());
        let kind = match data_type.non_null() {
            DataType::Bool => Kind::Bool(BooleanBufferBuilder::new(0)),
            DataType::Int32 => Kind::Int32(Vec::new()),
            DataType::Int64 => Kind::Int64(Vec::new()),
            DataType::Float32 => Kind::Float32(Vec::new()),
            DataType::Float64 => Kind::Float64(Vec::new()),
            DataType::String => Kind::Utf8 { offsets: vec![0], data: Vec::new() },
            DataType::Bytes => Kind::Binary { offsets: vec![0], data: Vec::new() },
            DataType::Date => Kind::Date32(Vec::new()),
            DataType::Timestamp => Kind::Timestamp(Vec::new()),
            DataType::Decimal { precision, scale } => {
                Kind::Decimal { values: Vec::new(), precision: *precision, scale: *scale }
            }
            DataType::List(item) => {
                Kind::List { offsets: vec![0], item: Box::new(Column::compile(item, Arc::from(format!("{path}[]")))) }
            }
            DataType::Map(value) => Kind::Map {
                offsets: vec![0],
                keys: Box::new(Column::compile(&DataType::String, Arc::from(format!("{path}{{}}")))),
                values: Box::new(Column::compile(value, Arc::from(format!("{path}{{}}")))),
            },
            DataType::Struct(fields) => Kind::Struct {
                fields: fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| StructField {
                        name: Arc::from(f.name.as_str()),
                        quoted_key: quoted_key(&f.name),
                        column: Column::compile(&f.data_type, Arc::from(format!("{path}.{}", f.name))),
                        seen: 0,
                        next_key: i + 1,
                        source: FieldSource::Key,
                    })
                    .collect(),
                first_key: 0,
            },
            DataType::Optional(_) => unreachable!("non_null() removed the optional wrapper"),
        };
        Column { kind, nulls: NullBufferBuilder::new(0), nullable, path, type_name }
    }

    /// The Arrow field this column finishes into.
    pub(crate) fn arrow_field(&self, name: &str) -> ArrowField {
        ArrowField::new(name, self.arrow_type(), self.nullable)
    }

    fn arrow_type(&self) -> ArrowType {
        match &self.kind {
            Kind::Bool(_) => ArrowType::Boolean,
            Kind::Int32(_) => ArrowType::Int32,
            Kind::Int64(_) => ArrowType::Int64,
            Kind::Float32(_) => ArrowType::Float32,
            Kind::Float64(_) => ArrowType::Float64,
            Kind::Utf8 { .. } => ArrowType::Utf8,
            Kind::Binary { .. } => ArrowType::Binary,
            Kind::Date32(_) => ArrowType::Date32,
            Kind::Timestamp(_) => ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            Kind::Decimal { precision, scale, .. } => {
                ArrowType::Decimal128(*precision, i8::try_from(*scale).unwrap_or(i8::MAX))
            }
            Kind::List { item, .. } => ArrowType::List(Arc::new(item.arrow_field("item"))),
            Kind::Map { keys, values, .. } => ArrowType::Map(Arc::new(map_entries_field(keys, values)), false),
            Kind::Struct { fields, .. } => ArrowType::Struct(struct_fields(fields)),
        }
    }

    /// The Arrow fields of a struct column's children (the batch schema, for the root).
    pub(crate) fn child_fields(&self) -> Fields {
        match &self.kind {
            Kind::Struct { fields, .. } => struct_fields(fields),
            _ => Fields::empty(),
        }
    }

    /// Finishes a struct column's children (the batch's columns, for the root).
    pub(crate) fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let _ = self.nulls.finish();
        match &mut self.kind {
            Kind::Struct { fields, .. } => fields.iter_mut().map(|f| f.column.finish()).collect(),
            _ => Ok(Vec::new()),
        }
    }

    /// Rows appended since the last finish.
    pub(crate) fn len(&self) -> usize {
        match &self.kind {
            Kind::Bool(values) => values.len(),
            Kind::Int32(values) => values.len(),
            Kind::Int64(values) => values.len(),
            Kind::Float32(values) => values.len(),
            Kind::Float64(values) => values.len(),
            Kind::Utf8 { offsets, .. } | Kind::Binary { offsets, .. } => offsets.len() - 1,
            Kind::Date32(values) => values.len(),
            Kind::Timestamp(values) => values.len(),
            Kind::Decimal { values, .. } => values.len(),
            Kind::List { offsets, .. } | Kind::Map { offsets, .. } => offsets.len() - 1,
            Kind::Struct { .. } => self.nulls.len(),
        }
    }

    /// Marks the row just written as valid.
    #[inline]
    pub(crate) fn mark_valid(&mut self) {
        self.nulls.append_non_null();
    }

    /// Appends a null (a placeholder value plus a null bit). Only for optional columns.
    pub(crate) fn push_null(&mut self) {
        debug_assert!(self.nullable, "{} is not optional", self.path);
        self.push_placeholder();
        self.nulls.append_null();
    }

    /// Appends a slot with no meaning, for a null or for a child of a null struct.
    fn push_placeholder(&mut self) {
        match &mut self.kind {
            Kind::Bool(values) => values.append(false),
            Kind::Int32(values) | Kind::Date32(values) => values.push(0),
            Kind::Int64(values) | Kind::Timestamp(values) => values.push(0),
            Kind::Float32(values) => values.push(0.0),
            Kind::Float64(values) => values.push(0.0),
            Kind::Decimal { values, .. } => values.push(0),
            Kind::Utf8 { offsets, .. }
            | Kind::Binary { offsets, .. }
            | Kind::List { offsets, .. }
            | Kind::Map { offsets, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
            }
            Kind::Struct { fields, .. } => {
                for field in fields {
                    field.column.push_placeholder();
                    field.column.nulls.append_null();
                }
            }
        }
    }

    /// Forgets every row from `rows` on.
    pub(crate) fn truncate(&mut self, rows: usize) {
        match &mut self.kind {
            Kind::Bool(values) => values.truncate(rows),
            Kind::Int32(values) | Kind::Date32(values) => values.truncate(rows),
            Kind::Int64(values) | Kind::Timestamp(values) => values.truncate(rows),
            Kind::Float32(values) => values.truncate(rows),
            Kind::Float64(values) => values.truncate(rows),
            Kind::Decimal { values, .. } => values.truncate(rows),
            Kind::Utf8 { offsets, data } | Kind::Binary { offsets, data } => {
                offsets.truncate(rows + 1);
                data.truncate(offset_to_len(offsets.last().copied()));
            }
            Kind::List { offsets, item } => {
                offsets.truncate(rows + 1);
                item.truncate(offset_to_len(offsets.last().copied()));
            }
            Kind::Map { offsets, keys, values } => {
                offsets.truncate(rows + 1);
                let entries = offset_to_len(offsets.last().copied());
                keys.truncate(entries);
                values.truncate(entries);
            }
            Kind::Struct { fields, .. } => {
                for field in fields {
                    field.column.truncate(rows);
                }
            }
        }
        self.nulls.truncate(rows);
    }

    /// Finishes the rows into an Arrow array and empties the builders (keeping their capacity).
    /// Makes room for `rows` rows, judging each buffer's size per row from the
    /// `sampled` rows it holds now: a batch's buffers then grow once, instead
    /// of doubling (copied and paged in again) a dozen times.
    pub(crate) fn reserve_like(&mut self, sampled: usize, rows: usize) {
        fn grow<T>(values: &mut Vec<T>, sampled: usize, rows: usize) {
            let wanted = values.len().saturating_mul(rows) / sampled.max(1);
            values.reserve_exact(wanted.saturating_sub(values.len()));
        }
        match &mut self.kind {
            Kind::Bool(values) => values.reserve(rows.saturating_sub(values.len())),
            Kind::Int32(values) | Kind::Date32(values) => grow(values, sampled, rows),
            Kind::Int64(values) | Kind::Timestamp(values) => grow(values, sampled, rows),
            Kind::Float32(values) => grow(values, sampled, rows),
            Kind::Float64(values) => grow(values, sampled, rows),
            Kind::Decimal { values, .. } => grow(values, sampled, rows),
            Kind::Utf8 { offsets, data } | Kind::Binary { offsets, data } => {
                grow(offsets, sampled, rows);
                grow(data, sampled, rows);
            }
            Kind::List { offsets, item } => {
                grow(offsets, sampled, rows);
                item.reserve_like(sampled, rows);
            }
            Kind::Map { offsets, keys, values } => {
                grow(offsets, sampled, rows);
                keys.reserve_like(sampled, rows);
                values.reserve_like(sampled, rows);
            }
            Kind::Struct { fields, .. } => fields.iter_mut().for_each(|field| field.column.reserve_like(sampled, rows)),
        }
    }

    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let rows = self.len();
        let nulls = self.nulls.finish();
        let array: ArrayRef = match &mut self.kind {
            Kind::Bool(values) => Arc::new(BooleanArray::new(values.finish(), nulls)),
            Kind::Int32(values) => Arc::new(Int32Array::new(take_scalars(values), nulls)),
            Kind::Int64(values) => Arc::new(Int64Array::new(take_scalars(values), nulls)),
            Kind::Float32(values) => Arc::new(Float32Array::new(take_scalars(values), nulls)),
            Kind::Float64(values) => Arc::new(Float64Array::new(take_scalars(values), nulls)),
            Kind::Date32(values) => Arc::new(Date32Array::new(take_scalars(values), nulls)),
            Kind::Timestamp(values) => {
                Arc::new(TimestampMicrosecondArray::new(take_scalars(values), nulls).with_timezone(UTC))
            }
            Kind::Decimal { values, precision, scale } => Arc::new(
                Decimal128Array::try_new(take_scalars(values), nulls)?
                    .with_precision_and_scale(*precision, i8::try_from(*scale).unwrap_or(i8::MAX))?,
            ),
            Kind::Utf8 { offsets, data } => {
                let (offsets, data) = take_var(offsets, data);
                Arc::new(utf8_array(offsets, data, nulls)?)
            }
            Kind::Binary { offsets, data } => {
                let (offsets, data) = take_var(offsets, data);
                Arc::new(BinaryArray::try_new(offsets, data, nulls)?)
            }
            Kind::List { offsets, item } => {
                let field = Arc::new(item.arrow_field("item"));
                let offsets = take_offsets(offsets);
                Arc::new(ListArray::try_new(field, offsets, item.finish()?, nulls)?)
            }
            Kind::Map { offsets, keys, values } => {
                let entries_field = map_entries_field(keys, values);
                let offsets = take_offsets(offsets);
                let ArrowType::Struct(entry_fields) = entries_field.data_type().clone() else {
                    return Err(ArrowError::SchemaError("map entries must be a struct".into()));
                };
                let entries = StructArray::try_new(entry_fields, vec![keys.finish()?, values.finish()?], None)?;
                Arc::new(MapArray::try_new(Arc::new(entries_field), offsets, entries, nulls, false)?)
            }
            Kind::Struct { fields, .. } => {
                let arrow_fields = struct_fields(fields);
                let children = fields.iter_mut().map(|f| f.column.finish()).collect::<Result<Vec<_>, _>>()?;
                if children.is_empty() {
                    Arc::new(StructArray::new_empty_fields(rows, nulls))
                } else {
                    Arc::new(StructArray::try_new(arrow_fields, children, nulls)?)
                }
            }
        };
        Ok(array)
    }
}

fn quoted_key(name: &str) -> Box<[u8]> {
    let mut key = name.as_bytes().to_vec();
    key.push(b'"');
    key.into_boxed_slice()
}

/// Builds a string array without validating its bytes as UTF-8 a second time.
///
/// Arrow's safe constructor re-validates every byte, which costs a fifth of
/// Avro decoding. Every value appended to a `Kind::Utf8` column is already
/// UTF-8: JSON strings are copied between ASCII quotes of a payload that was
/// validated whole, or produced by `char::encode_utf8` for escapes; Avro
/// strings are validated one by one before they are appended; metadata,
/// enum symbols and map keys come from `&str`. Rollback truncates at value
/// boundaries (offsets), never inside a character. Offsets are checked.
#[allow(unsafe_code)]
fn utf8_array(
    offsets: OffsetBuffer<i32>,
    data: Buffer,
    nulls: Option<arrow_buffer::NullBuffer>,
) -> Result<StringArray, ArrowError> {
    let last = offsets.last();
    if usize::try_from(last).ok() != Some(data.len()) {
        return Err(ArrowError::InvalidArgumentError("string offsets do not match the data".into()));
    }
    if nulls.as_ref().is_some_and(|n| n.len() != offsets.len() - 1) {
        return Err(ArrowError::InvalidArgumentError("string nulls do not match the offsets".into()));
    }
    // SAFETY: offsets are monotonic from 0 (built by `push_offset`) and end at
    // `data.len()` (checked above); the bytes are UTF-8 and split only at value
    // boundaries, per the invariant above.
    Ok(unsafe { StringArray::new_unchecked(offsets, data, nulls) })
}

fn struct_fields(fields: &[StructField]) -> Fields {
    fields.iter().map(|f| f.column.arrow_field(&f.name)).collect()
}

fn map_entries_field(keys: &Column, values: &Column) -> ArrowField {
    let entries = Fields::from(vec![keys.arrow_field("keys"), values.arrow_field("values")]);
    ArrowField::new("entries", ArrowType::Struct(entries), false)
}

fn offset_to_len(offset: Option<i32>) -> usize {
    offset.and_then(|o| usize::try_from(o).ok()).unwrap_or(0)
}

fn take_scalars<T: arrow_buffer::ArrowNativeType>(values: &mut Vec<T>) -> ScalarBuffer<T> {
    let capacity = values.capacity();
    ScalarBuffer::from(std::mem::replace(values, Vec::with_capacity(capacity)))
}

fn take_offsets(offsets: &mut Vec<i32>) -> OffsetBuffer<i32> {
    let capacity = offsets.capacity();
    let taken = std::mem::replace(offsets, Vec::with_capacity(capacity));
    offsets.push(0);
    // Offsets only ever grow from 0, so they are valid by construction.
    OffsetBuffer::new(ScalarBuffer::from(taken))
}

fn take_var(offsets: &mut Vec<i32>, data: &mut Vec<u8>) -> (OffsetBuffer<i32>, Buffer) {
    let capacity = data.capacity();
    let data = Buffer::from(std::mem::replace(data, Vec::with_capacity(capacity)));
    (take_offsets(offsets), data)
}

/// Appends one variable-length value's end offset; `false` when the batch
/// outgrew 32-bit offsets (the caller flushes before that can happen).
#[inline]
pub(crate) fn push_offset(offsets: &mut Vec<i32>, end: usize) -> bool {
    match i32::try_from(end) {
        Ok(end) => {
            offsets.push(end);
            true
        }
        Err(_) => false,
    }
}
