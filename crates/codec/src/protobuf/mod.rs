//! Protobuf payloads: bare messages of an inline `.proto` schema, the
//! Confluent wire format (magic 0, schema id, message-index path, message) or
//! the Glue Schema Registry's (header, schema version UUID, one varint message
//! index, message).
//!
//! `.proto` text is compiled at run time (protox), once per schema; the
//! source's message type is then resolved against the dataset into a
//! [`program::MessageProgram`] that the wire reader follows straight into the
//! column builders, with no dynamic message in between.

mod compile;
mod program;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::avro::RegistryClient;
use crate::columns::Column;
use crate::decoder::DecodeError;
use crate::glue::{self, GlueSchemaSource, Inflater};
use crate::rejection::{Fault, Reason};
use crate::schema_cache::WriterSchemas;

pub use compile::{confluent_message_path, glue_message_index};
use program::MessageProgram;

/// The source's message type, compiled from one schema.
#[derive(Debug)]
pub(crate) struct CompiledMessage {
    program: MessageProgram,
    /// Its Confluent message-index path (`[0]` for the file's first message).
    confluent_path: Vec<i32>,
    /// Its Glue message index.
    glue_index: u64,
}

impl CompiledMessage {
    /// Compiles `message` of the schema `main` (with `imports`) against the dataset.
    pub(crate) fn compile(
        main: &str,
        imports: &BTreeMap<String, String>,
        message: &str,
        root: &Column,
        refs: &[(usize, Vec<String>)],
    ) -> Result<CompiledMessage, String> {
        let (pool, file) = compile::compile(main, imports)?;
        let descriptor =
            pool.get_message_by_name(message).ok_or_else(|| format!("the schema declares no message `{message}`"))?;
        let confluent_path = compile::confluent_path(&file, &descriptor)
            .ok_or_else(|| format!("message `{message}` is not declared in the schema's own file"))?;
        let glue_index = compile::glue_index(&file, &descriptor)
            .ok_or_else(|| format!("message `{message}` is not declared in the schema's own file"))?;
        let program = program::compile(&descriptor, root, refs)?;
        Ok(CompiledMessage { program, confluent_path, glue_index })
    }
}

/// Where the message's schemas come from.
#[derive(Debug)]
pub(crate) enum Wire {
    /// Bare messages of one schema.
    Inline(Arc<CompiledMessage>),
    /// Confluent framing; schemas from this registry.
    Confluent(Box<RegistryClient>),
    /// Glue Schema Registry framing; schemas from this source of versions.
    Glue(Arc<dyn GlueSchemaSource>),
}

impl Wire {
    /// Bare messages of an inline schema, compiled now.
    pub(crate) fn inline(
        schema: &str,
        imports: &BTreeMap<String, String>,
        message: &str,
        root: &Column,
        refs: &[(usize, Vec<String>)],
    ) -> Result<Wire, String> {
        Ok(Wire::Inline(Arc::new(CompiledMessage::compile(schema, imports, message, root, refs)?)))
    }
}

/// Reusable state of the Protobuf decoder.
#[derive(Debug)]
pub(crate) struct ProtobufState {
    wire: Wire,
    message: String,
    refs: Vec<(usize, Vec<String>)>,
    schemas: WriterSchemas<CompiledMessage>,
    /// Counts messages read, to mark the fields each one set.
    marks: u64,
    /// Glue framing: inflates compressed payloads.
    inflater: Inflater,
}

impl ProtobufState {
    pub(crate) fn new(wire: Wire, message: &str, refs: Vec<(usize, Vec<String>)>) -> ProtobufState {
        ProtobufState {
            wire,
            message: message.to_owned(),
            refs,
            schemas: WriterSchemas::new(),
            marks: 0,
            inflater: Inflater::default(),
        }
    }

    /// Decodes one payload into `root`; the outer error means "retry later".
    pub(crate) fn decode(&mut self, payload: &[u8], root: &mut Column) -> Result<Result<(), Box<Fault>>, DecodeError> {
        let unframed;
        let (compiled, body): (&CompiledMessage, &[u8]) = match &self.wire {
            Wire::Inline(compiled) => (compiled, payload),
            Wire::Confluent(client) => {
                let (id, path, body) = match confluent_frame(payload) {
                    Ok(frame) => frame,
                    Err(reason) => return Ok(Err(Fault::record(reason))),
                };
                let (message, refs) = (&self.message, &self.refs);
                let found = self.schemas.get(
                    u128::from(id),
                    || Reason::UnknownSchemaId(id),
                    || {
                        Ok(client.fetch_of_type(id, "PROTOBUF")?.map(|text| {
                            CompiledMessage::compile(&text, &BTreeMap::new(), message, root, refs)
                                .map_err(|e| Reason::SchemaMismatch(format!("schema {id}: {e}").into()))
                        }))
                    },
                )?;
                let compiled = match found {
                    Ok(compiled) => compiled,
                    Err(fault) => return Ok(Err(fault)),
                };
                if path != compiled.confluent_path {
                    return Ok(Err(Fault::record(Reason::SchemaMismatch(
                        format!(
                            "the record is message {path:?} of schema {id}, not `{}` ({:?})",
                            self.message, compiled.confluent_path
                        )
                        .into(),
                    ))));
                }
                (compiled, body)
            }
            Wire::Glue(versions) => {
                unframed = match glue::unframe(payload, &mut self.inflater) {
                    Ok(unframed) => unframed,
                    Err(reason) => return Ok(Err(Fault::record(reason))),
                };
                let id = unframed.id;
                let (message, refs) = (&self.message, &self.refs);
                let found = self.schemas.get(
                    id,
                    || Reason::UnknownSchemaVersion(id),
                    || {
                        glue::fetch_version(versions.as_ref(), id, "PROTOBUF", "schema", |definition| {
                            CompiledMessage::compile(definition, &BTreeMap::new(), message, root, refs)
                                .map_err(|e| e.to_string())
                        })
                    },
                )?;
                let compiled = match found {
                    Ok(compiled) => compiled,
                    Err(fault) => return Ok(Err(fault)),
                };
                let mut reader = wire::Reader::new(unframed.body);
                let index = match reader.varint() {
                    Ok(index) => index,
                    Err(_) => return Ok(Err(Fault::record(Reason::BadFraming("no Glue Protobuf message index")))),
                };
                if index != compiled.glue_index {
                    return Ok(Err(Fault::record(Reason::SchemaMismatch(
                        format!(
                            "the record is message {index} of schema version {}, not `{}` (message {})",
                            glue::uuid_text(id),
                            self.message,
                            compiled.glue_index
                        )
                        .into(),
                    ))));
                }
                (compiled, reader.rest())
            }
        };
        Ok(wire::read_root(&compiled.program, body, root, &mut self.marks))
    }
}

/// Takes the Confluent Protobuf framing apart: schema id, message-index path, message.
fn confluent_frame(payload: &[u8]) -> Result<(u32, Vec<i32>, &[u8]), Reason> {
    let Some((&magic, rest)) = payload.split_first() else {
        return Err(Reason::Malformed("payload is empty"));
    };
    if magic != 0 {
        return Err(Reason::BadFraming("no Confluent magic byte 0 at the start"));
    }
    let Some((id_bytes, rest)) = rest.split_first_chunk::<4>() else {
        return Err(Reason::BadFraming("payload is shorter than the Confluent header"));
    };
    let id = u32::from_be_bytes(*id_bytes);
    let mut reader = wire::Reader::new(rest);
    let bad = |_| Reason::BadFraming("bad Confluent Protobuf message-index path");
    let count = wire::zigzag(reader.varint().map_err(bad)?);
    let path = if count == 0 {
        vec![0]
    } else {
        // Each index takes a byte at least.
        if count < 0 || count as usize > reader.rest().len() {
            return Err(Reason::BadFraming("bad Confluent Protobuf message-index path"));
        }
        let mut path = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let index = wire::zigzag(reader.varint().map_err(bad)?);
            path.push(i32::try_from(index).map_err(|_| Reason::BadFraming("Confluent message index out of range"))?);
        }
        path
    };
    Ok((id, path, reader.rest()))
}
