//! A Protobuf message type resolved against the dataset, once per schema.
//!
//! Fields match dataset fields by name (or JSON name). Every dataset field
//! gets a value per record: what the message set, else what proto says an
//! unset field is (a null where the field has presence: messages, `optional`,
//! `oneof` members, wrappers; the type's default for proto3's plain scalars;
//! an empty list or map). Types resolve as the Avro path's do: integers widen,
//! enums are strings (or their numbers), `google.protobuf.Timestamp` is a
//! timestamp, the wrappers are their optional scalar.

use std::sync::Arc;

use prost_reflect::{Cardinality, FieldDescriptor, Kind as ProtoKind, MessageDescriptor};

use crate::columns::{Column, FieldSource, Kind};

/// How deep messages may nest.
pub(crate) const MAX_DEPTH: usize = 64;
/// Field numbers below this are looked up in a table; the rest by search.
const DENSE_NUMBERS: u32 = 128;
const NO_FIELD: u16 = u16::MAX;

/// A scalar's wire encoding and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    Bool,
    String,
    Bytes,
    /// An enum's number, written as its name (or the number, into an integer column).
    Enum,
}

/// What one field value becomes.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Scalar(Scalar),
    /// An enum into a string column: names by number.
    EnumName(Arc<EnumNames>),
    /// A message into a struct column.
    Message(Arc<MessageProgram>),
    /// `google.protobuf.Timestamp` into a timestamp column.
    Timestamp,
    /// A `google.protobuf.*Value` wrapper: its field 1 (absent: the scalar's default).
    Wrapper(Scalar),
}

/// An enum's value names by number.
#[derive(Debug)]
pub(crate) struct EnumNames {
    pub(crate) names: Vec<(i32, Arc<str>)>,
}

impl EnumNames {
    pub(crate) fn name(&self, number: i32) -> Option<&str> {
        self.names.iter().find(|(n, _)| *n == number).map(|(_, name)| &**name)
    }
}

/// What to do with one occurrence of a field.
#[derive(Debug, Clone)]
pub(crate) enum Read {
    /// One value into the target column; a later occurrence replaces it.
    One { target: usize, value: Value },
    /// An element of a repeated field into the target list column.
    Repeated { target: usize, value: Value },
    /// An entry of a map field into the target map column.
    MapEntry { target: usize, key: Scalar, value: Value },
    /// A `preproc` ref starting at this field, into the target root column.
    Walk { target: usize, walk: Arc<Walk> },
}

/// How a `preproc` ref goes on from a field's value.
#[derive(Debug)]
pub(crate) enum Walk {
    /// The end of the path: read the value.
    Read(Value),
    /// A message: go on at this field of it.
    Field { number: u32, then: Box<Walk> },
    /// A map with string keys: go on in the value under `key`.
    MapKey { key: Arc<str>, then: Box<Walk> },
}

/// What a target column gets when the message did not set it.
#[derive(Debug, Clone)]
pub(crate) enum Unset {
    /// A null (the column is optional).
    Null,
    /// A required column whose field has presence: the record is rejected.
    Missing,
    /// Proto3's implicit default of a scalar.
    Default(Scalar),
    /// The enum's default value name.
    EnumDefault(Arc<str>),
    /// An empty list or map (pushed for every message, set or not).
    Empty,
    /// A `preproc` constant (JSON text).
    Constant(Arc<[u8]>),
}

/// A message type compiled against a struct column.
#[derive(Debug)]
pub(crate) struct MessageProgram {
    dense: Vec<u16>,
    sparse: Vec<(u32, u16)>,
    pub(crate) fields: Vec<Vec<Read>>,
    /// Every target column, with what it gets when unset.
    pub(crate) targets: Vec<(usize, Unset)>,
}

impl MessageProgram {
    /// The reads of field `number`, if the dataset wants it.
    #[inline]
    pub(crate) fn reads(&self, number: u32) -> Option<&[Read]> {
        let index = if number < DENSE_NUMBERS {
            *self.dense.get(number as usize)?
        } else {
            self.sparse.binary_search_by_key(&number, |(n, _)| *n).ok().map(|i| self.sparse[i].1)?
        };
        if index == NO_FIELD { None } else { self.fields.get(usize::from(index)).map(Vec::as_slice) }
    }
}

/// Compiles the root message against the dataset's root column.
pub(crate) fn compile(
    message: &MessageDescriptor,
    root: &Column,
    refs: &[(usize, Vec<String>)],
) -> Result<MessageProgram, String> {
    Resolver { refs }.message(message, root, true, 0)
}

struct Resolver<'a> {
    refs: &'a [(usize, Vec<String>)],
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "<record>" } else { path }
}

fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message.get_field_by_name(name).or_else(|| message.get_field_by_json_name(name))
}

fn scalar_of(kind: &ProtoKind) -> Option<Scalar> {
    Some(match kind {
        ProtoKind::Int32 => Scalar::Int32,
        ProtoKind::Int64 => Scalar::Int64,
        ProtoKind::Uint32 => Scalar::Uint32,
        ProtoKind::Uint64 => Scalar::Uint64,
        ProtoKind::Sint32 => Scalar::Sint32,
        ProtoKind::Sint64 => Scalar::Sint64,
        ProtoKind::Fixed32 => Scalar::Fixed32,
        ProtoKind::Fixed64 => Scalar::Fixed64,
        ProtoKind::Sfixed32 => Scalar::Sfixed32,
        ProtoKind::Sfixed64 => Scalar::Sfixed64,
        ProtoKind::Float => Scalar::Float,
        ProtoKind::Double => Scalar::Double,
        ProtoKind::Bool => Scalar::Bool,
        ProtoKind::String => Scalar::String,
        ProtoKind::Bytes => Scalar::Bytes,
        ProtoKind::Enum(_) => Scalar::Enum,
        ProtoKind::Message(_) => return None,
    })
}

/// The scalar a well-known wrapper message holds.
fn wrapper_scalar(message: &MessageDescriptor) -> Option<Scalar> {
    Some(match message.full_name() {
        "google.protobuf.DoubleValue" => Scalar::Double,
        "google.protobuf.FloatValue" => Scalar::Float,
        "google.protobuf.Int64Value" => Scalar::Int64,
        "google.protobuf.UInt64Value" => Scalar::Uint64,
        "google.protobuf.Int32Value" => Scalar::Int32,
        "google.protobuf.UInt32Value" => Scalar::Uint32,
        "google.protobuf.BoolValue" => Scalar::Bool,
        "google.protobuf.StringValue" => Scalar::String,
        "google.protobuf.BytesValue" => Scalar::Bytes,
        _ => return None,
    })
}

/// Whether a scalar can fill a column of this kind.
fn scalar_fits(scalar: Scalar, kind: &Kind) -> bool {
    use Scalar::*;
    match kind {
        Kind::Bool(_) => scalar == Bool,
        Kind::Int32(_) => matches!(scalar, Int32 | Sint32 | Sfixed32 | Enum),
        Kind::Int64(_) => matches!(
            scalar,
            Int32 | Sint32 | Sfixed32 | Int64 | Sint64 | Sfixed64 | Uint32 | Fixed32 | Uint64 | Fixed64 | Enum
        ),
        Kind::Float32(_) => matches!(scalar, Float | Int32 | Sint32 | Sfixed32),
        Kind::Float64(_) => {
            matches!(
                scalar,
                Float
                    | Double
                    | Int32
                    | Sint32
                    | Sfixed32
                    | Int64
                    | Sint64
                    | Sfixed64
                    | Uint32
                    | Fixed32
                    | Uint64
                    | Fixed64
            )
        }
        Kind::Utf8 { .. } | Kind::Binary { .. } => matches!(scalar, String | Bytes),
        Kind::Date32(_) => matches!(scalar, String | Int32 | Sint32 | Sfixed32),
        Kind::Timestamp(_) => matches!(
            scalar,
            String | Int64 | Sint64 | Sfixed64 | Uint64 | Fixed64 | Int32 | Sint32 | Sfixed32 | Uint32 | Fixed32
        ),
        Kind::Decimal { .. } => {
            matches!(
                scalar,
                String | Int32 | Sint32 | Sfixed32 | Int64 | Sint64 | Sfixed64 | Uint32 | Fixed32 | Uint64 | Fixed64
            )
        }
        Kind::List { .. } | Kind::Map { .. } | Kind::Struct { .. } => false,
    }
}

impl Resolver<'_> {
    fn mismatch(field: &FieldDescriptor, column: &Column) -> String {
        let kind = match field.kind() {
            ProtoKind::Message(message) => format!("message `{}`", message.full_name()),
            ProtoKind::Enum(e) => format!("enum `{}`", e.full_name()),
            other => format!("{other:?}").to_ascii_lowercase(),
        };
        let repeated = if field.is_map() {
            "map of "
        } else if field.is_list() {
            "repeated "
        } else {
            ""
        };
        format!(
            "field `{}`: protobuf field `{}` ({repeated}{kind}) cannot be read as `{}`",
            display_path(&column.path),
            field.full_name(),
            column.type_name
        )
    }

    /// One (non-repeated) value of `kind` into `column`.
    fn value(&self, field: &FieldDescriptor, kind: &ProtoKind, column: &Column, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the message nests too deeply".to_owned());
        }
        match kind {
            ProtoKind::Message(message) => {
                if message.full_name() == "google.protobuf.Timestamp" && matches!(column.kind, Kind::Timestamp(_)) {
                    return Ok(Value::Timestamp);
                }
                if let Some(scalar) = wrapper_scalar(message) {
                    return if scalar_fits(scalar, &column.kind) {
                        Ok(Value::Wrapper(scalar))
                    } else {
                        Err(Resolver::mismatch(field, column))
                    };
                }
                match column.kind {
                    Kind::Struct { .. } => {
                        Ok(Value::Message(Arc::new(self.message(message, column, false, depth + 1)?)))
                    }
                    _ => Err(Resolver::mismatch(field, column)),
                }
            }
            ProtoKind::Enum(descriptor) if matches!(column.kind, Kind::Utf8 { .. }) => {
                Ok(Value::EnumName(Arc::new(EnumNames {
                    names: descriptor.values().map(|v| (v.number(), Arc::from(v.name()))).collect(),
                })))
            }
            other => match scalar_of(other) {
                Some(scalar) if scalar_fits(scalar, &column.kind) => Ok(Value::Scalar(scalar)),
                _ => Err(Resolver::mismatch(field, column)),
            },
        }
    }

    /// The read of a whole field (repeated and map fields included) into `column`.
    fn field(&self, field: &FieldDescriptor, column: &Column, target: usize, depth: usize) -> Result<Read, String> {
        if field.is_map() {
            let (Kind::Map { values, .. }, ProtoKind::Message(entry)) = (&column.kind, field.kind()) else {
                return Err(Resolver::mismatch(field, column));
            };
            let key =
                scalar_of(&entry.map_entry_key_field().kind()).ok_or_else(|| Resolver::mismatch(field, column))?;
            let value_field = entry.map_entry_value_field();
            let value = self.value(&value_field, &value_field.kind(), values, depth + 1)?;
            return Ok(Read::MapEntry { target, key, value });
        }
        if field.is_list() {
            let Kind::List { item, .. } = &column.kind else { return Err(Resolver::mismatch(field, column)) };
            return Ok(Read::Repeated { target, value: self.value(field, &field.kind(), item, depth + 1)? });
        }
        Ok(Read::One { target, value: self.value(field, &field.kind(), column, depth)? })
    }

    /// What `column` gets when `field` is not in a message.
    fn unset(field: &FieldDescriptor, column: &Column) -> Unset {
        if field.is_list() || field.is_map() {
            return Unset::Empty;
        }
        let wrapped = matches!(field.kind(), ProtoKind::Message(_));
        if field.supports_presence() || wrapped {
            return if column.nullable { Unset::Null } else { Unset::Missing };
        }
        match field.kind() {
            ProtoKind::Enum(descriptor) if matches!(column.kind, Kind::Utf8 { .. }) => {
                Unset::EnumDefault(Arc::from(descriptor.default_value().name()))
            }
            kind => scalar_of(&kind).map_or(Unset::Null, Unset::Default),
        }
    }

    fn message(
        &self,
        message: &MessageDescriptor,
        column: &Column,
        is_root: bool,
        depth: usize,
    ) -> Result<MessageProgram, String> {
        if depth > MAX_DEPTH {
            return Err("the message nests too deeply".to_owned());
        }
        let Kind::Struct { fields, .. } = &column.kind else {
            return Err("internal: a message into a column that is not a struct".to_owned());
        };
        let mut by_number: Vec<(u32, Vec<Read>)> = Vec::new();
        let mut add = |number: u32, read: Read| match by_number.iter_mut().find(|(n, _)| *n == number) {
            Some((_, reads)) => reads.push(read),
            None => by_number.push((number, vec![read])),
        };
        let mut targets = Vec::with_capacity(fields.len());
        for (index, target) in fields.iter().enumerate() {
            let column = &target.column;
            match &target.source {
                FieldSource::Constant(text) if is_root => targets.push((index, Unset::Constant(Arc::clone(text)))),
                // Computed at flush: NULL until then.
                FieldSource::Computed if is_root => targets.push((index, Unset::Null)),
                FieldSource::Ref if is_root => {
                    let Some((_, path)) = self.refs.iter().find(|(i, _)| *i == index) else {
                        return Err(format!("internal: no ref path for `{}`", target.name));
                    };
                    match self.walk_start(message, path, column, depth)? {
                        Some((number, walk)) => add(number, Read::Walk { target: index, walk: Arc::new(walk) }),
                        None if column.nullable => {}
                        None => {
                            return Err(format!(
                                "field `{}`: its `preproc` ref `{}` is not in message `{}` and the field is not optional",
                                display_path(&column.path),
                                path.join("."),
                                message.full_name()
                            ));
                        }
                    }
                    targets.push((index, if column.nullable { Unset::Null } else { Unset::Missing }));
                }
                _ => match field_named(message, &target.name) {
                    Some(field) => {
                        add(field.number(), self.field(&field, column, index, depth)?);
                        targets.push((index, Resolver::unset(&field, column)));
                    }
                    None if column.nullable => targets.push((index, Unset::Null)),
                    None if matches!(column.kind, Kind::List { .. } | Kind::Map { .. }) => {
                        targets.push((index, Unset::Empty))
                    }
                    None => {
                        return Err(format!(
                            "field `{}` is not in message `{}` and is not optional",
                            display_path(&column.path),
                            message.full_name()
                        ));
                    }
                },
            }
        }
        let mut dense = vec![NO_FIELD; DENSE_NUMBERS as usize];
        let mut sparse = Vec::new();
        let mut programs = Vec::with_capacity(by_number.len());
        for (number, reads) in by_number {
            let index = u16::try_from(programs.len()).map_err(|_| "the message has too many fields".to_owned())?;
            programs.push(reads);
            if number < DENSE_NUMBERS {
                dense[number as usize] = index;
            } else {
                sparse.push((number, index));
            }
        }
        sparse.sort_unstable();
        Ok(MessageProgram { dense, sparse, fields: programs, targets })
    }

    /// Where a `preproc` ref's path starts in `message`: the first field's
    /// number and how the walk goes on; `None` when the path is not there.
    fn walk_start(
        &self,
        message: &MessageDescriptor,
        path: &[String],
        target: &Column,
        depth: usize,
    ) -> Result<Option<(u32, Walk)>, String> {
        let Some((first, rest)) = path.split_first() else { return Ok(None) };
        let Some(field) = field_named(message, first) else { return Ok(None) };
        Ok(self.walk_on(&field, rest, target, depth + 1)?.map(|walk| (field.number(), walk)))
    }

    /// How a ref goes on from a value of `field` along `rest`.
    fn walk_on(
        &self,
        field: &FieldDescriptor,
        rest: &[String],
        target: &Column,
        depth: usize,
    ) -> Result<Option<Walk>, String> {
        if depth > MAX_DEPTH {
            return Err("a `preproc` ref nests too deeply".to_owned());
        }
        let Some((step, after)) = rest.split_first() else {
            if field.is_list() || field.is_map() {
                return Err(format!(
                    "field `{}`: a `preproc` ref cannot end at repeated field `{}`",
                    display_path(&target.path),
                    field.full_name()
                ));
            }
            return Ok(Some(Walk::Read(self.value(field, &field.kind(), target, depth)?)));
        };
        if field.is_map() {
            let ProtoKind::Message(entry) = field.kind() else { return Ok(None) };
            if scalar_of(&entry.map_entry_key_field().kind()) != Some(Scalar::String) {
                return Ok(None);
            }
            let value_field = entry.map_entry_value_field();
            return Ok(self
                .walk_on(&value_field, after, target, depth + 1)?
                .map(|then| Walk::MapKey { key: Arc::from(step.as_str()), then: Box::new(then) }));
        }
        if field.cardinality() == Cardinality::Repeated {
            return Ok(None);
        }
        let ProtoKind::Message(message) = field.kind() else { return Ok(None) };
        let Some(next) = field_named(&message, step) else { return Ok(None) };
        Ok(self
            .walk_on(&next, after, target, depth + 1)?
            .map(|then| Walk::Field { number: next.number(), then: Box::new(then) }))
    }
}
