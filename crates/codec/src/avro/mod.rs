//! Avro payloads: raw datums with an inline writer schema, or the Confluent
//! wire format (magic byte 0, a 4-byte big-endian schema id, the datum) with
//! writer schemas from a registry, each compiled once and cached by id.

mod datum;
mod envelope;
mod program;
mod registry;
mod schema_cache;
mod show;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use envelope::Change;
use program::CompiledSchema;

use envelope::EnvelopeProgram;
use program::ResolveError;
pub use registry::{DEFAULT_REGISTRY_TIMEOUT, RegistryClient, RegistryError};
pub use show::{avro_datum_json, registry_schema_id};

use crate::columns::Column;
use crate::decoder::DecodeError;
use crate::rejection::{Fault, Reason};
use schema_cache::{SCHEMA_CACHE_CAPACITY, SchemaCache};

/// How long an id the registry did not know stays unknown before it is asked again.
const UNKNOWN_ID_RETRY: Duration = Duration::from_secs(60);

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
}

/// What is known about a schema id.
#[derive(Debug, Clone)]
enum Cached {
    Ready(Arc<Compiled>),
    Incompatible(Arc<str>),
    Unknown(Instant),
}

/// Reusable state of the Avro decoder.
#[derive(Debug)]
pub(crate) struct AvroState {
    wire: WireFormat,
    /// `preproc` refs, for the writer schemas compiled per id.
    refs: Vec<(usize, Vec<String>)>,
    schemas: SchemaCache<Cached>,
    /// The last schema used: consecutive records nearly always share it.
    last: Option<(u32, Arc<Compiled>)>,
}

impl AvroState {
    pub(crate) fn new(wire: WireFormat, refs: Vec<(usize, Vec<String>)>) -> AvroState {
        AvroState { wire, refs, schemas: SchemaCache::new(SCHEMA_CACHE_CAPACITY), last: None }
    }

    /// Decodes one payload into `root` (or, for a Debezium delete, into
    /// `deletes`); the outer error means "retry later".
    pub(crate) fn decode(
        &mut self,
        payload: &[u8],
        root: &mut Column,
        deletes: Option<&mut Column>,
    ) -> Result<Result<Change, Box<Fault>>, DecodeError> {
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
                if self.last.as_ref().is_none_or(|(last_id, _)| *last_id != id) {
                    match schema_for(&mut self.schemas, client, id, root, &self.refs, deletes.as_deref())? {
                        Ok(schema) => self.last = Some((id, schema)),
                        Err(fault) => return Ok(Err(fault)),
                    }
                }
                match &self.last {
                    Some((_, schema)) => (schema, datum),
                    None => return Ok(Err(Fault::record(Reason::UnknownSchemaId(id)))),
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

fn schema_for(
    schemas: &mut SchemaCache<Cached>,
    client: &RegistryClient,
    id: u32,
    root: &Column,
    refs: &[(usize, Vec<String>)],
    deletes: Option<&Column>,
) -> Result<Result<Arc<Compiled>, Box<Fault>>, DecodeError> {
    let cached = match schemas.get(id) {
        Some(Cached::Unknown(since)) if since.elapsed() >= UNKNOWN_ID_RETRY => None,
        other => other,
    };
    let entry = match cached {
        Some(entry) => entry,
        // Too many made-up ids of late: this one is not worth a registry call.
        None if !schemas.may_look_up() => return Ok(Err(Fault::record(Reason::UnknownSchemaId(id)))),
        None => {
            let entry = match client.fetch(id) {
                Ok(Some(text)) => match Compiled::compile(&text, root, refs, deletes) {
                    Ok(compiled) => Cached::Ready(Arc::new(compiled)),
                    Err(e) => Cached::Incompatible(Arc::from(format!("writer schema {id}: {e}"))),
                },
                Ok(None) => {
                    schemas.looked_up_unknown();
                    Cached::Unknown(Instant::now())
                }
                Err(RegistryError::BadAnswer(why)) => Cached::Incompatible(Arc::from(why)),
                Err(e) => return Err(DecodeError::RegistryUnavailable(e.to_string())),
            };
            schemas.insert(id, entry.clone());
            entry
        }
    };
    Ok(match entry {
        Cached::Ready(schema) => Ok(schema),
        Cached::Incompatible(why) => Err(Fault::record(Reason::SchemaMismatch(why))),
        Cached::Unknown(_) => Err(Fault::record(Reason::UnknownSchemaId(id))),
    })
}
