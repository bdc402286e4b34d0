//! Avro payloads: raw datums with an inline writer schema, the Confluent wire
//! format (magic byte 0, a 4-byte big-endian schema id, the datum) or the Glue
//! Schema Registry's (header, schema version UUID, datum), with writer schemas
//! from the registry, each compiled once and cached by id.

mod datum;
mod envelope;
mod program;
mod registry;
mod show;

use std::sync::Arc;

pub(crate) use envelope::Change;
use program::CompiledSchema;

use envelope::EnvelopeProgram;
use program::ResolveError;
pub use registry::{DEFAULT_REGISTRY_TIMEOUT, RegistryClient, RegistryError};
pub use show::{avro_datum_json, registry_schema_id};

use crate::columns::Column;
use crate::decoder::DecodeError;
use crate::glue::{self, GlueSchemaSource, Inflater};
use crate::rejection::{Fault, Reason};
use crate::schema_cache::WriterSchemas;

/// A writer schema compiled for this source: rows, or Debezium envelopes of rows.
#[derive(Debug)]
pub(crate) enum Compiled {
    Row(CompiledSchema),
    Envelope(EnvelopeProgram),
}

impl Compiled {
    /// Compiles `writer_json` for the dataset (`root`, its `refs`), as envelopes
    /// when the source has delete columns (`cdc: debezium`).
    pub(crate) fn compile(
        writer_json: &str,
        root: &Column,
        refs: &[(usize, Vec<String>)],
        deletes: Option<&Column>,
    ) -> Result<Compiled, ResolveError> {
        Ok(match deletes {
            Some(deletes) => Compiled::Envelope(EnvelopeProgram::compile(writer_json, root, refs, deletes)?),
            None => Compiled::Row(CompiledSchema::compile(writer_json, root, refs)?),
        })
    }
}

/// Where writer schemas come from.
#[derive(Debug)]
pub(crate) enum WireFormat {
    /// Bare datums written with one schema.
    Raw(Arc<Compiled>),
    /// Confluent framing; schemas from this registry.
    Confluent(Box<RegistryClient>),
    /// Glue Schema Registry framing; schemas from this source of versions.
    Glue(Arc<dyn GlueSchemaSource>),
}

/// Reusable state of the Avro decoder.
#[derive(Debug)]
pub(crate) struct AvroState {
    wire: WireFormat,
    /// `preproc` refs, for the writer schemas compiled per id.
    refs: Vec<(usize, Vec<String>)>,
    schemas: WriterSchemas<Compiled>,
    /// Glue framing: inflates compressed payloads.
    inflater: Inflater,
}

impl AvroState {
    pub(crate) fn new(wire: WireFormat, refs: Vec<(usize, Vec<String>)>) -> AvroState {
        AvroState { wire, refs, schemas: WriterSchemas::new(), inflater: Inflater::default() }
    }

    /// Decodes one payload into `root` (or, for a Debezium delete, into
    /// `deletes`); the outer error means "retry later".
    pub(crate) fn decode(
        &mut self,
        payload: &[u8],
        root: &mut Column,
        deletes: Option<&mut Column>,
    ) -> Result<Result<Change, Box<Fault>>, DecodeError> {
        let unframed;
        let (schema, datum): (&Compiled, &[u8]) = match &self.wire {
            WireFormat::Raw(schema) => (schema, payload),
            WireFormat::Confluent(client) => {
                let Some((&magic, rest)) = payload.split_first() else {
                    return Ok(Err(Fault::record(Reason::Malformed("payload is empty"))));
                };
                if magic != 0 {
                    return Ok(Err(Fault::record(Reason::Malformed("no Confluent magic byte 0 at the start"))));
                }
                let Some((id_bytes, datum)) = rest.split_first_chunk::<4>() else {
                    return Ok(Err(Fault::record(Reason::Malformed("payload is shorter than the Confluent header"))));
                };
                let id = u32::from_be_bytes(*id_bytes);
                let (refs, deletes) = (&self.refs, deletes.as_deref());
                let found = self.schemas.get(
                    u128::from(id),
                    || Reason::UnknownSchemaId(id),
                    || {
                        Ok(client.fetch(id)?.map(|text| {
                            Compiled::compile(&text, root, refs, deletes)
                                .map_err(|e| Reason::SchemaMismatch(format!("writer schema {id}: {e}").into()))
                        }))
                    },
                )?;
                match found {
                    Ok(schema) => (schema, datum),
                    Err(fault) => return Ok(Err(fault)),
                }
            }
            WireFormat::Glue(versions) => {
                unframed = match glue::unframe(payload, &mut self.inflater) {
                    Ok(unframed) => unframed,
                    Err(reason) => return Ok(Err(Fault::record(reason))),
                };
                let id = unframed.id;
                let (refs, deletes) = (&self.refs, deletes.as_deref());
                let found = self.schemas.get(
                    id,
                    || Reason::UnknownSchemaVersion(id),
                    || {
                        glue::fetch_version(versions.as_ref(), id, "AVRO", "writer schema", |definition| {
                            Compiled::compile(definition, root, refs, deletes).map_err(|e| e.to_string())
                        })
                    },
                )?;
                match found {
                    Ok(schema) => (schema, unframed.body),
                    Err(fault) => return Ok(Err(fault)),
                }
            }
        };
        let schema = match (schema, deletes) {
            (Compiled::Envelope(envelope), Some(deletes)) => return Ok(envelope.read(datum, root, deletes)),
            (Compiled::Row(schema), _) => schema,
            (Compiled::Envelope(_), None) => {
                return Ok(Err(Fault::record(Reason::Malformed("internal: an envelope without delete columns"))));
            }
        };
        let mut cursor = datum::Cursor::new(datum);
        if let Err(fault) = datum::read(&schema.program, &mut cursor, root) {
            return Ok(Err(fault));
        }
        if cursor.remaining() != 0 {
            return Ok(Err(Fault::record(Reason::Malformed("datum not fully consumed (trailing bytes)"))));
        }
        Ok(Ok(Change { op: crate::cdc::Op::Upsert, ts_ms: None }))
    }
}
