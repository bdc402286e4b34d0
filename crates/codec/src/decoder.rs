//! The decoder: one per source, compiled once from its definition.
//!
//! `decode` takes one record payload with its metadata; `flush` returns the
//! accepted rows as a `RecordBatch` together with the rejections, in arrival
//! order. A rejected record changes nothing in the batch: its half-written
//! values are truncated away before `decode` returns.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, Field as ArrowField, Schema, SchemaRef};
use tributary_source::{AvroFormat, Cdc, Expression, Format, METADATA_COLUMNS, Preproc, ProtobufSchema, Source};

use crate::avro::{AvroState, Compiled, RegistryClient, WireFormat};
use crate::cdc::{CdcColumns, Change, DeleteRows, Op};
use crate::columns::{Column, FieldSource, Kind};
use crate::glue::GlueSchemaSource;
use crate::json::JsonFormat;
use crate::json_schema::GlueJsonFrames;
use crate::protobuf::ProtobufState;
use crate::rejection::{Fault, RecordMeta, Rejection};

/// Why a decoder could not be built for a definition.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The inline Avro writer schema does not parse or cannot resolve to the dataset schema.
    #[error("{0}")]
    SchemaIncompatible(String),
    /// A definition feature this decoder does not implement.
    #[error("{0}")]
    Unsupported(String),
}

/// A failure that is not the record's fault: the caller keeps the record and retries.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The schema registry could not be reached or answered with a server error.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The batch cannot take this record (32-bit offsets); flush, then decode it again.
    #[error("the batch is full; flush it and decode the record again")]
    BatchFull,
    /// Arrow refused the finished arrays (a bug, reported rather than panicking).
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

impl DecodeError {
    /// Whether decoding the same record again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DecodeError::RegistryUnavailable(_) | DecodeError::BatchFull => true,
            DecodeError::Arrow(_) => false,
        }
    }
}

/// What [`Decoder::flush`] returns: the accepted rows and the rejected records.
#[derive(Debug)]
pub struct DecodedBatch {
    /// Accepted rows, in the order they were decoded.
    pub batch: RecordBatch,
    /// Rejected records, in the order they were decoded.
    pub rejections: Vec<Rejection>,
}

#[derive(Debug)]
enum FormatState {
    Json(JsonFormat),
    /// JSON framed by the Glue Schema Registry.
    GlueJson(JsonFormat, GlueJsonFrames),
    Avro(AvroState),
    Protobuf(Box<ProtobufState>),
}

/// The registries a decoder may ask for writer schemas it has not met.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    /// A Confluent-compatible registry (the source's, when `None`).
    pub confluent: Option<RegistryClient>,
    /// The Glue Schema Registry's versions; Glue-framed sources need one.
    pub glue: Option<Arc<dyn GlueSchemaSource>>,
}

impl Registries {
    /// Only a Confluent registry.
    pub fn confluent(client: Option<RegistryClient>) -> Registries {
        Registries { confluent: client, glue: None }
    }
}

/// The four metadata columns `include_metadata` adds.
#[derive(Debug)]
struct MetadataColumns {
    shard_id: Column,
    sequence_number: Column,
    partition_key: Column,
    arrival_time: Column,
}

/// Decodes record payloads of one source into Arrow record batches.
#[derive(Debug)]
pub struct Decoder {
    format: FormatState,
    root: Column,
    metadata: Option<MetadataColumns>,
    /// `upsert` and `debezium` sources: `_op`, `_sequence_number`, `_sub_sequence`.
    cdc: Option<CdcColumns>,
    /// `debezium` sources: the delete rows.
    deletes: Option<DeleteRows>,
    /// `eval` fields: index in the batch and expression, computed at flush.
    computed: Vec<(usize, Expression)>,
    schema: SchemaRef,
    rejections: Vec<Rejection>,
    /// Payload bytes since the last flush: a bound on every variable-length buffer.
    buffered_bytes: usize,
    /// Rows a batch usually reaches (0: unknown); see [`Decoder::expect_rows`].
    expected_rows: usize,
}

/// The root fields fed by `preproc`.
#[derive(Default)]
struct PreprocPlan {
    /// Reference paths by field index.
    refs: Vec<(usize, Vec<String>)>,
    /// Computed fields by index.
    computed: Vec<(usize, Expression)>,
}

/// Marks the root fields fed by `preproc`.
fn apply_preproc(source: &Source, root: &mut Column) -> Result<PreprocPlan, CompileError> {
    let Kind::Struct { fields, .. } = &mut root.kind else { return Ok(PreprocPlan::default()) };
    let mut plan = PreprocPlan::default();
    for (name, preproc) in &source.preproc {
        let Some(index) = fields.iter().position(|f| &*f.name == name.as_str()) else {
            return Err(CompileError::Unsupported(format!("preproc names `{name}`, which is not a dataset field")));
        };
        match preproc {
            Preproc::Ref(path) => {
                fields[index].source = FieldSource::Ref;
                plan.refs.push((index, path.clone()));
            }
            Preproc::Eval(expression) => {
                fields[index].source = FieldSource::Computed;
                plan.computed.push((index, expression.clone()));
            }
            Preproc::Value(value) => {
                let text: Arc<[u8]> = Arc::from(value.to_string().into_bytes());
                // Decode the constant once now, so a constant that cannot fit fails here, not on every row.
                let mut probe = JsonFormat::default();
                let mut scratch_root = Column::root(&source.dataset.fields[index..=index]);
                let mut wrapped = format!("{{\"{name}\": ").into_bytes();
                wrapped.extend_from_slice(&text);
                wrapped.push(b'}');
                if let Err(fault) = probe.decode(&wrapped, &mut scratch_root) {
                    return Err(CompileError::Unsupported(format!("preproc constant for `{name}`: {}", fault.reason)));
                }
                fields[index].source = FieldSource::Constant(text);
            }
        }
    }
    Ok(plan)
}

/// Payload bytes a batch may hold before 32-bit offsets could overflow.
const MAX_BATCH_BYTES: usize = (i32::MAX as usize) / 2;
// The largest flush a definition may ask for, plus one more GetRecords answer, must fit.
const _: () = assert!(tributary_source::MAX_FLUSH_BYTES as usize + 16 * 1024 * 1024 <= MAX_BATCH_BYTES);
/// Rows after which a batch's buffers are sized for the expected batch.
const SIZED_AFTER: usize = 1024;
/// Bytes a batch's buffers may be sized for at once (the payloads' size, scaled).
const SIZED_AT_MOST: usize = 256 * 1024 * 1024;

impl Decoder {
    /// Compiles a decoder for `source`; a Confluent registry's client is made
    /// from the definition when `registry` is `None`.
    pub fn new(source: &Source, registry: Option<RegistryClient>) -> Result<Decoder, CompileError> {
        Decoder::with_registries(source, Registries::confluent(registry))
    }

    /// Compiles a decoder for `source`, with the registries it may ask.
    pub fn with_registries(source: &Source, registries: Registries) -> Result<Decoder, CompileError> {
        let mut root = Column::root(&source.dataset.fields);
        let plan = apply_preproc(source, &mut root)?;
        let deletes = (source.cdc == Cdc::Debezium).then(|| DeleteRows::new(source));
        let glue = |registries: Registries| {
            registries.glue.ok_or_else(|| {
                CompileError::Unsupported("a Glue Schema Registry source needs a Glue client to read schemas".into())
            })
        };
        let confluent = |registries: Registries, settings| match registries.confluent {
            Some(client) => Ok(client),
            None => RegistryClient::new(settings).map_err(|e| CompileError::Unsupported(e.to_string())),
        };
        let format = match &source.kinesis.format {
            Format::Json { glue: None } => {
                FormatState::Json(JsonFormat::with_refs(&plan.refs, &root).map_err(CompileError::Unsupported)?)
            }
            Format::Json { glue: Some(_) } => FormatState::GlueJson(
                JsonFormat::with_refs(&plan.refs, &root).map_err(CompileError::Unsupported)?,
                GlueJsonFrames::new(glue(registries)?),
            ),
            Format::Avro(AvroFormat::Glue(_)) => {
                FormatState::Avro(AvroState::new(WireFormat::Glue(glue(registries)?), plan.refs.clone()))
            }
            Format::Protobuf(protobuf) => {
                let wire = match &protobuf.schema {
                    ProtobufSchema::Inline { schema, imports } => {
                        crate::protobuf::Wire::inline(schema, imports, &protobuf.message, &root, &plan.refs)
                            .map_err(|e| CompileError::SchemaIncompatible(e.to_string()))?
                    }
                    ProtobufSchema::Registry(settings) => {
                        crate::protobuf::Wire::Confluent(Box::new(confluent(registries, settings)?))
                    }
                    ProtobufSchema::Glue(_) => crate::protobuf::Wire::Glue(glue(registries)?),
                };
                if deletes.is_some() {
                    return Err(CompileError::Unsupported(
                        "`cdc: debezium` reads JSON or Avro envelopes, not Protobuf".into(),
                    ));
                }
                FormatState::Protobuf(Box::new(ProtobufState::new(wire, &protobuf.message, plan.refs.clone())))
            }
            Format::Avro(AvroFormat::Inline(schema)) => {
                let compiled =
                    Compiled::compile(&schema.to_string(), &root, &plan.refs, deletes.as_ref().map(DeleteRows::root))
                        .map_err(|e| CompileError::SchemaIncompatible(e.to_string()))?;
                FormatState::Avro(AvroState::new(WireFormat::Raw(Arc::new(compiled)), plan.refs.clone()))
            }
            Format::Avro(AvroFormat::Registry(settings)) => FormatState::Avro(AvroState::new(
                WireFormat::Confluent(Box::new(confluent(registries, settings)?)),
                plan.refs.clone(),
            )),
        };
        let metadata = source.kinesis.include_metadata.then(|| MetadataColumns {
            shard_id: Column::metadata_string(METADATA_COLUMNS[0]),
            sequence_number: Column::metadata_string(METADATA_COLUMNS[1]),
            partition_key: Column::metadata_string(METADATA_COLUMNS[2]),
            arrival_time: Column::metadata_timestamp(METADATA_COLUMNS[3]),
        });
        let mut fields: Vec<Arc<ArrowField>> = root.child_fields().iter().cloned().collect();
        if let Some(meta) = &metadata {
            for column in [&meta.shard_id, &meta.sequence_number, &meta.partition_key, &meta.arrival_time] {
                fields.push(Arc::new(column.arrow_field(&column.path)));
            }
        }
        let cdc = crate::cdc::has_columns(source).then(|| CdcColumns::new(source.kinesis.include_metadata));
        if let Some(cdc) = &cdc {
            fields.extend(cdc.arrow_fields());
        }
        let schema = match &deletes {
            Some(_) => crate::cdc::relax(&Schema::new(fields), source),
            None => Schema::new(fields),
        };
        Ok(Decoder {
            format,
            root,
            metadata,
            cdc,
            deletes,
            computed: plan.computed,
            schema: Arc::new(schema),
            rejections: Vec::new(),
            buffered_bytes: 0,
            expected_rows: 0,
        })
    }

    /// Tells the decoder how many rows a batch usually reaches before it is
    /// flushed, so its buffers are sized once early in each batch.
    pub fn expect_rows(&mut self, rows: usize) {
        self.expected_rows = rows;
    }

    /// The schema of the batches this decoder produces.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Accepted rows since the last flush.
    pub fn len(&self) -> usize {
        self.root.len() + self.deletes.as_ref().map_or(0, DeleteRows::len)
    }

    /// Whether nothing was accepted or rejected since the last flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.rejections.is_empty()
    }

    /// Rejections since the last flush.
    pub fn rejected(&self) -> usize {
        self.rejections.len()
    }

    /// Whether records with `payload_bytes` in all fit the batch: when not,
    /// flush first (else [`DecodeError::BatchFull`] stops the batch midway).
    pub fn has_room_for(&self, payload_bytes: usize) -> bool {
        self.buffered_bytes == 0 || self.buffered_bytes.saturating_add(payload_bytes) <= MAX_BATCH_BYTES
    }

    /// Payload bytes taken since the last flush (accepted or rejected).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Decodes one record. `Ok(true)`: a row was added; `Ok(false)`: the record
    /// was rejected (see [`Decoder::flush`]); `Err`: nothing happened, retry later.
    pub fn decode(&mut self, payload: &[u8], meta: &RecordMeta<'_>) -> Result<bool, DecodeError> {
        if self.buffered_bytes + payload.len() > MAX_BATCH_BYTES && self.buffered_bytes > 0 {
            return Err(DecodeError::BatchFull);
        }
        let rows = self.root.len();
        let (result, op) = match (&mut self.format, &mut self.deletes) {
            (FormatState::Json(state), Some(deletes)) => match crate::cdc::open_json(payload, deletes) {
                Ok(Change::Upsert(row)) => (state.decode(row, &mut self.root), Op::Upsert),
                Ok(Change::Delete(keys)) => (deletes.decode(&keys), Op::Delete),
                Err(fault) => (Err(fault), Op::Upsert),
            },
            (FormatState::Json(state), None) => (state.decode(payload, &mut self.root), Op::Upsert),
            (FormatState::GlueJson(state, frames), deletes) => match frames.body(payload, &self.root)? {
                Err(fault) => (Err(fault), Op::Upsert),
                Ok(body) => match deletes {
                    Some(deletes) => match crate::cdc::open_json(body, deletes) {
                        Ok(Change::Upsert(row)) => (state.decode(row, &mut self.root), Op::Upsert),
                        Ok(Change::Delete(keys)) => (deletes.decode(&keys), Op::Delete),
                        Err(fault) => (Err(fault), Op::Upsert),
                    },
                    None => (state.decode(body, &mut self.root), Op::Upsert),
                },
            },
            (FormatState::Protobuf(state), _) => (state.decode(payload, &mut self.root)?, Op::Upsert),
            (FormatState::Avro(state), Some(deletes)) => {
                let delete_rows = deletes.len();
                match state.decode(payload, &mut self.root, Some(deletes.root_mut()))? {
                    Ok(change) if change.op == Op::Delete => (deletes.complete(delete_rows, change.ts_ms), Op::Delete),
                    Ok(change) => (Ok(()), change.op),
                    Err(fault) => (Err(deletes.key_fault(fault)), Op::Upsert),
                }
            }
            (FormatState::Avro(state), None) => (state.decode(payload, &mut self.root, None)?.map(|_| ()), Op::Upsert),
        };
        self.buffered_bytes += payload.len();
        match result {
            Ok(()) => {
                if let Some(deletes) = &mut self.deletes {
                    deletes.accepted(op == Op::Delete);
                }
                if let Some(cdc) = &mut self.cdc {
                    cdc.push(op, meta);
                }
                if let Some(meta_columns) = &mut self.metadata {
                    meta_columns.shard_id.push_str(meta.shard_id);
                    meta_columns.sequence_number.push_str(meta.sequence_number);
                    meta_columns.partition_key.push_str(meta.partition_key);
                    meta_columns.arrival_time.push_timestamp(meta.arrival_time_micros);
                }
                if rows + 1 == SIZED_AFTER && self.expected_rows > SIZED_AFTER {
                    self.size_for_expected_rows();
                }
                Ok(true)
            }
            Err(fault) => {
                let Fault { reason, field } = *fault;
                self.root.truncate(rows);
                self.rejections.push(Rejection::new(reason, field, meta, payload));
                Ok(false)
            }
        }
    }

    /// Sizes every buffer for the expected rows, as the batch's first rows
    /// suggest (bounded: a sample of large payloads sizes for fewer rows).
    fn size_for_expected_rows(&mut self) {
        let sampled = self.root.len();
        let bytes_per_row = (self.buffered_bytes / sampled.max(1)).max(1);
        let rows = self.expected_rows.min(SIZED_AT_MOST / bytes_per_row);
        if rows <= sampled {
            return;
        }
        self.root.reserve_like(sampled, rows);
        if let Some(meta) = &mut self.metadata {
            for column in
                [&mut meta.shard_id, &mut meta.sequence_number, &mut meta.partition_key, &mut meta.arrival_time]
            {
                column.reserve_like(sampled, rows);
            }
        }
    }

    /// The accepted rows and rejections since the last flush; the decoder is
    /// then empty and ready for the next batch.
    pub fn flush(&mut self) -> Result<DecodedBatch, DecodeError> {
        let mut rows = self.root.len();
        let dataset_columns = self.root.child_fields().len();
        let mut columns = self.root.finish_children()?;
        if let Some(meta) = &mut self.metadata {
            for column in
                [&mut meta.shard_id, &mut meta.sequence_number, &mut meta.partition_key, &mut meta.arrival_time]
            {
                columns.push(column.finish()?);
            }
        }
        if let Some(cdc) = &mut self.cdc {
            columns.extend(cdc.finish()?);
        }
        if let Some(deletes) = &mut self.deletes {
            // The per-record columns after the dataset's were pushed for deletes too: they are whole.
            rows += deletes.len();
            let tail = columns.split_off(dataset_columns);
            columns = deletes.merge(columns, &self.schema.fields()[..dataset_columns])?;
            columns.extend(tail);
        }
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let mut batch = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)?;
        if !self.computed.is_empty() {
            batch = compute(batch, &self.computed)?;
        }
        self.buffered_bytes = 0;
        Ok(DecodedBatch { batch, rejections: std::mem::take(&mut self.rejections) })
    }
}

/// Fills the `eval` fields from the others (cast to the field's type; a value
/// that does not fit is NULL, as the field is optional).
fn compute(batch: RecordBatch, computed: &[(usize, Expression)]) -> Result<RecordBatch, ArrowError> {
    let mut columns = batch.columns().to_vec();
    for (index, expression) in computed {
        let value = crate::expr::evaluate(expression.expr(), &batch)?;
        let target = batch.schema().field(*index).data_type().clone();
        columns[*index] = arrow_cast::cast(&value, &target)?;
    }
    RecordBatch::try_new(batch.schema(), columns)
}

/// Compiles `source`'s decoder as a commit check (no I/O): an inline Avro
/// writer schema, or an inline `.proto` schema's message, must resolve to the
/// dataset. Registry schemas are checked live, or per record.
pub fn compile_check(source: &Source) -> Result<(), tributary_source::ValidationError> {
    use tributary_source::{ErrorCode, ValidationError};
    let schema_field = match &source.kinesis.format {
        Format::Avro(AvroFormat::Inline(_)) => "kinesis.format.avro.schema",
        Format::Protobuf(protobuf) if matches!(protobuf.schema, ProtobufSchema::Inline { .. }) => {
            "kinesis.format.protobuf.schema"
        }
        Format::Json { glue: None } => "",
        _ => return preproc_check(source),
    };
    let (field, code, message) = match Decoder::new(source, None) {
        Ok(_) => return Ok(()),
        Err(CompileError::SchemaIncompatible(message)) => (schema_field, ErrorCode::SchemaIncompatible, message),
        Err(CompileError::Unsupported(message)) => ("preproc", ErrorCode::InvalidPreproc, message),
    };
    Err(ValidationError { source: source.name.clone(), field: field.to_owned(), code, message })
}

/// Whether a schema registered for the source (`data_format` `AVRO`, `JSON`
/// or `PROTOBUF`, and its text) can fill the dataset: the live commit check of
/// every registered version (`tributary_source::live::SchemaCheck`).
pub fn check_registered_schema(source: &Source, data_format: &str, definition: &str) -> Result<(), String> {
    let wanted = source.kinesis.format.registry_data_format();
    if !data_format.eq_ignore_ascii_case(wanted) {
        return Err(format!("it is {data_format}, but the source reads {}", source.kinesis.format.name()));
    }
    let mut root = Column::root(&source.dataset.fields);
    let plan = apply_preproc(source, &mut root).map_err(|e| e.to_string())?;
    let deletes = (source.cdc == Cdc::Debezium).then(|| DeleteRows::new(source));
    match &source.kinesis.format {
        Format::Json { .. } => crate::json_schema::check(definition, &root),
        Format::Avro(_) => Compiled::compile(definition, &root, &plan.refs, deletes.as_ref().map(DeleteRows::root))
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Format::Protobuf(protobuf) => crate::protobuf::CompiledMessage::compile(
            definition,
            &std::collections::BTreeMap::new(),
            &protobuf.message,
            &root,
            &plan.refs,
        )
        .map(|_| ()),
    }
}

/// The `preproc` checks of a registry-backed source, whose schemas are not known yet.
fn preproc_check(source: &Source) -> Result<(), tributary_source::ValidationError> {
    let mut root = Column::root(&source.dataset.fields);
    apply_preproc(source, &mut root).map(|_| ()).map_err(|error| tributary_source::ValidationError {
        source: source.name.clone(),
        field: "preproc".to_owned(),
        code: tributary_source::ErrorCode::InvalidPreproc,
        message: error.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Utc;
    use tributary_source::{parse_text, validate_raw_sources};

    use super::*;
    use crate::columns::Kind;

    fn decoder() -> Decoder {
        let yaml = "sources:\n  - name: t\n    kinesis:\n      stream_arn: arn:aws:kinesis:us-east-1:000000000000:stream/t\n      init_position: trim_horizon\n      format: json\n    dataset:\n      fields:\n        - {name: ts, type: timestamp}\n        - {name: name, type: string}\n        - {name: tags, type: \"list<string>\"}\n      timestamp: ts\n";
        let file = parse_text(yaml, false).expect("parses");
        let source = validate_raw_sources(&file.sources, Utc::now()).expect("valid").remove(0);
        Decoder::new(&source, None).expect("compiles")
    }

    /// (length, capacity) of the `name` strings and of the tag strings.
    fn string_buffers(decoder: &Decoder) -> [(usize, usize); 2] {
        let Kind::Struct { fields, .. } = &decoder.root.kind else { panic!("the root is a struct") };
        let data = |kind: &Kind| match kind {
            Kind::Utf8 { data, .. } => (data.len(), data.capacity()),
            _ => panic!("a string column"),
        };
        let Kind::List { item, .. } = &fields[2].column.kind else { panic!("tags is a list") };
        [data(&fields[1].column.kind), data(&item.kind)]
    }

    /// Record metadata for the codec's unit tests.
    pub(crate) const META: RecordMeta<'static> = RecordMeta {
        shard_id: "s",
        sequence_number: "1",
        sub_sequence: None,
        partition_key: "k",
        arrival_time_micros: 0,
    };

    #[test]
    fn buffers_are_sized_for_the_expected_rows_after_the_first_rows() {
        let mut decoder = decoder();
        decoder.expect_rows(16 * SIZED_AFTER);
        let meta = META;
        let payload = br#"{"ts": "2024-06-01T12:00:00Z", "name": "a-name", "tags": ["x", "yz"]}"#;
        for _ in 0..SIZED_AFTER - 1 {
            assert_eq!(decoder.decode(payload, &meta).ok(), Some(true));
        }
        assert!(string_buffers(&decoder).iter().all(|(len, capacity)| *capacity < 16 * len));
        assert_eq!(decoder.decode(payload, &meta).ok(), Some(true));
        for (len, capacity) in string_buffers(&decoder) {
            assert!(capacity >= 16 * len, "sized for 16 times the rows: {len} bytes, room for {capacity}");
        }
        assert_eq!(decoder.flush().expect("flush").batch.num_rows(), SIZED_AFTER);
    }
}
