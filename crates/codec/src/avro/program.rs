//! Writer→reader resolution, compiled once per writer schema.
//!
//! The writer schema (what produced the bytes) is resolved against the
//! dataset schema (the reader) following the Avro specification's rules:
//! record fields match by name, writer fields the dataset lacks are skipped,
//! dataset fields the writer lacks are null when optional (their default) and
//! an error otherwise; int→long→float→double promotion, string↔bytes, enum →
//! string, a union resolves branch by branch. The result is a [`Program`]
//! tree that the datum reader walks alongside the column builders, so no
//! schema is consulted while decoding.

use std::sync::Arc;

use apache_avro::schema::{Name, NamesRef, RecordField};
use apache_avro::{Schema, schema::ResolvedSchema};

use crate::columns::{Column, FieldSource, Kind};

/// How deep writer schemas may nest (named references included).
const MAX_DEPTH: usize = 64;

/// What to do with one writer value.
#[derive(Debug, Clone)]
pub(crate) enum Program {
    /// Read and discard: the dataset has no column for it.
    Skip(Skip),
    /// The `null` type: the column gets a null.
    Null,
    /// `boolean` into a bool column.
    Boolean,
    /// `int` (or `date`, `time-millis`) into the column's numeric type.
    Int,
    /// `long` into the column's numeric type; `timestamp_unit` for timestamp logical types.
    Long { timestamp_unit: Option<TimeUnit> },
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes` (or a decimal over bytes, with the writer's scale).
    Bytes { decimal_scale: Option<u32> },
    /// `string` (or `uuid`).
    String,
    /// `fixed` of a size (or a decimal over fixed, with the writer's scale).
    Fixed { size: usize, decimal_scale: Option<u32> },
    /// `enum` into a string column.
    Enum(Arc<[Arc<str>]>),
    /// A union: one program per writer branch.
    Union(Vec<Program>),
    /// A record into a struct column: per writer field, its program and the
    /// target field index; the fields the writer lacks (NULL); at the root,
    /// the `preproc` constants (JSON text) of their fields.
    Record { fields: Vec<(Program, Option<usize>)>, absent: Vec<usize>, constants: Vec<(usize, Arc<[u8]>)> },
    /// One writer value read into several root fields, the same bytes once per
    /// (program, field): a dataset field and the `preproc` refs that start there.
    Tee(Vec<(Program, usize)>),
    /// A `preproc` ref: walk this writer value down the path into the column.
    Path(Box<Walk>),
    /// An array into a list column.
    Array(Box<Program>),
    /// A map into a map column.
    Map(Box<Program>),
    /// A writer branch that cannot resolve: reading it rejects the record.
    Mismatch(Arc<str>),
}

/// How a `preproc` ref walks a writer value down its path.
#[derive(Debug, Clone)]
pub(crate) enum Walk {
    /// The end of the path: read the value into the target column.
    Read(Program),
    /// A record: walk the path's field, skip the others.
    Record(Vec<(Option<Walk>, Skip)>),
    /// A map: walk the value under `key` (the first one), skip the others.
    Map { key: Arc<str>, value: Box<Walk>, skip: Skip },
    /// A union: a walk per branch.
    Union(Vec<Walk>),
    /// The path does not go on in this value (a missing field, a null): skip it.
    Absent(Skip),
}

/// Units of Avro timestamp logical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeUnit {
    Millis,
    Micros,
    Nanos,
    /// A plain `long` read by magnitude, as JSON epochs are.
    Guess,
}

/// How to skip a writer value.
#[derive(Debug, Clone)]
pub(crate) enum Skip {
    Null,
    Boolean,
    /// `int` and `long` are both varints.
    Varint,
    Float,
    Double,
    /// `bytes` and `string`: a length and that many bytes.
    Sized,
    Fixed(usize),
    Union(Vec<Skip>),
    Record(Vec<Skip>),
    Array(Box<Skip>),
    Map(Box<Skip>),
}

/// A writer schema compiled against the dataset.
#[derive(Debug)]
pub(crate) struct CompiledSchema {
    pub(crate) program: Program,
}

/// Why a writer schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ResolveError(pub(crate) String);

impl CompiledSchema {
    /// Parses `writer_json` and resolves it against the dataset's root column,
    /// with the `preproc` refs (root field index, path) walked from the writer's fields.
    pub(crate) fn compile(
        writer_json: &str,
        root: &Column,
        refs: &[(usize, Vec<String>)],
    ) -> Result<CompiledSchema, ResolveError> {
        let schema = parse(writer_json)?;
        let resolved =
            ResolvedSchema::try_from(&schema).map_err(|e| ResolveError(format!("invalid Avro schema: {e}")))?;
        let names = resolved.get_names();
        let record = deref(&schema, names, 0)?;
        if !matches!(record, Schema::Record(_)) {
            return Err(ResolveError("the writer schema must be a record".to_owned()));
        }
        let program = Resolver { names, refs }.resolve(record, root, 0)?;
        Ok(CompiledSchema { program })
    }
}

pub(crate) fn parse(writer_json: &str) -> Result<Schema, ResolveError> {
    Schema::parse_str(writer_json).map_err(|e| ResolveError(format!("invalid Avro schema: {e}")))
}

pub(crate) fn deref<'s>(schema: &'s Schema, names: &NamesRef<'s>, depth: usize) -> Result<&'s Schema, ResolveError> {
    match schema {
        Schema::Ref { name } => {
            if depth > MAX_DEPTH {
                return Err(ResolveError("the writer schema nests too deeply".to_owned()));
            }
            let target = lookup(names, name)?;
            deref(target, names, depth + 1)
        }
        other => Ok(other),
    }
}

fn lookup<'s>(names: &NamesRef<'s>, name: &Name) -> Result<&'s Schema, ResolveError> {
    names
        .get(name)
        .copied()
        .ok_or_else(|| ResolveError(format!("the writer schema refers to unknown type `{}`", name.fullname(None))))
}

fn writer_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record `{}`", r.name.name),
        Schema::Enum(e) => format!("enum `{}`", e.name.name),
        Schema::Fixed(f) => format!("fixed `{}`", f.name.name),
        Schema::Union(_) => "union".to_owned(),
        Schema::Array(_) => "array".to_owned(),
        Schema::Map(_) => "map".to_owned(),
        Schema::Decimal(_) => "decimal".to_owned(),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_ascii_lowercase(),
    }
}

pub(crate) struct Resolver<'a, 's> {
    pub(crate) names: &'a NamesRef<'s>,
    /// `preproc` refs of the root record: (root field index, path).
    pub(crate) refs: &'a [(usize, Vec<String>)],
}

impl Resolver<'_, '_> {
    pub(crate) fn resolve(&self, writer: &Schema, column: &Column, depth: usize) -> Result<Program, ResolveError> {
        if depth > MAX_DEPTH {
            return Err(ResolveError("the writer schema nests too deeply".to_owned()));
        }
        let writer = deref(writer, self.names, depth)?;
        let mismatch = || {
            ResolveError(format!(
                "field `{}`: writer type {} cannot be read as `{}`",
                display_path(&column.path),
                writer_name(writer),
                column.type_name
            ))
        };
        if let Schema::Union(union) = writer {
            let branches: Vec<Program> = union
                .variants()
                .iter()
                .map(|branch| match self.resolve(branch, column, depth + 1) {
                    Ok(program) => program,
                    Err(e) => Program::Mismatch(Arc::from(e.0)),
                })
                .collect();
            if branches.iter().all(|b| matches!(b, Program::Mismatch(_) | Program::Null)) {
                return Err(mismatch());
            }
            return Ok(Program::Union(branches));
        }
        if let Schema::Null = writer {
            // Resolvable; reading it into a non-optional column rejects that record.
            return Ok(Program::Null);
        }
        let program = match (&column.kind, writer) {
            (Kind::Bool(_), Schema::Boolean) => Program::Boolean,
            (Kind::Int32(_), Schema::Int | Schema::TimeMillis) => Program::Int,
            (Kind::Int64(_), Schema::Int | Schema::TimeMillis) => Program::Int,
            (Kind::Int64(_), Schema::Long | Schema::TimeMicros) => Program::Long { timestamp_unit: None },
            (Kind::Float32(_) | Kind::Float64(_), Schema::Int) => Program::Int,
            (Kind::Float32(_) | Kind::Float64(_), Schema::Long) => Program::Long { timestamp_unit: None },
            (Kind::Float32(_) | Kind::Float64(_), Schema::Float) => Program::Float,
            (Kind::Float64(_), Schema::Double) => Program::Double,
            (Kind::Utf8 { .. } | Kind::Binary { .. }, Schema::String | Schema::Uuid) => Program::String,
            (Kind::Utf8 { .. } | Kind::Binary { .. }, Schema::Bytes) => Program::Bytes { decimal_scale: None },
            (Kind::Binary { .. }, Schema::Fixed(fixed)) => Program::Fixed { size: fixed.size, decimal_scale: None },
            (Kind::Binary { .. }, Schema::Duration) => Program::Fixed { size: 12, decimal_scale: None },
            (Kind::Utf8 { .. }, Schema::Enum(e)) => {
                Program::Enum(e.symbols.iter().map(|s| Arc::from(s.as_str())).collect::<Vec<_>>().into())
            }
            (Kind::Date32(_), Schema::Date) => Program::Int,
            (Kind::Date32(_) | Kind::Timestamp(_) | Kind::Decimal { .. }, Schema::String) => Program::String,
            (Kind::Timestamp(_), Schema::TimestampMillis | Schema::LocalTimestampMillis) => {
                Program::Long { timestamp_unit: Some(TimeUnit::Millis) }
            }
            (Kind::Timestamp(_), Schema::TimestampMicros | Schema::LocalTimestampMicros) => {
                Program::Long { timestamp_unit: Some(TimeUnit::Micros) }
            }
            (Kind::Timestamp(_), Schema::TimestampNanos | Schema::LocalTimestampNanos) => {
                Program::Long { timestamp_unit: Some(TimeUnit::Nanos) }
            }
            (Kind::Timestamp(_), Schema::Long) => Program::Long { timestamp_unit: Some(TimeUnit::Guess) },
            (Kind::Decimal { scale, .. }, Schema::Decimal(decimal)) => {
                let writer_scale = u32::try_from(decimal.scale).map_err(|_| mismatch())?;
                if writer_scale > u32::from(*scale) {
                    return Err(ResolveError(format!(
                        "field `{}`: writer decimal scale {writer_scale} is larger than the dataset's {scale}",
                        display_path(&column.path)
                    )));
                }
                match deref(&decimal.inner, self.names, depth + 1)? {
                    Schema::Bytes => Program::Bytes { decimal_scale: Some(writer_scale) },
                    Schema::Fixed(fixed) => Program::Fixed { size: fixed.size, decimal_scale: Some(writer_scale) },
                    _ => return Err(mismatch()),
                }
            }
            (Kind::Decimal { .. }, Schema::Int) => Program::Int,
            (Kind::Decimal { .. }, Schema::Long) => Program::Long { timestamp_unit: None },
            (Kind::List { item, .. }, Schema::Array(array)) => {
                Program::Array(Box::new(self.resolve(&array.items, item, depth + 1)?))
            }
            (Kind::Map { values, .. }, Schema::Map(map)) => {
                Program::Map(Box::new(self.resolve(&map.types, values, depth + 1)?))
            }
            (Kind::Struct { .. }, Schema::Record(record)) if column.path.is_empty() => {
                self.resolve_root(record, column, depth)?
            }
            (Kind::Struct { fields, .. }, Schema::Record(record)) => {
                let mut programs = Vec::with_capacity(record.fields.len());
                let mut matched = vec![false; fields.len()];
                for writer_field in &record.fields {
                    match fields.iter().position(|f| field_matches(writer_field, &f.name)) {
                        Some(index) => {
                            matched[index] = true;
                            programs.push((
                                self.resolve(&writer_field.schema, &fields[index].column, depth + 1)?,
                                Some(index),
                            ));
                        }
                        None => programs.push((Program::Skip(self.skip(&writer_field.schema, depth + 1)?), None)),
                    }
                }
                let mut absent = Vec::new();
                for (index, field) in fields.iter().enumerate().filter(|(i, _)| !matched[*i]) {
                    if !field.column.nullable {
                        return Err(ResolveError(format!(
                            "field `{}` is not in the writer schema and is not optional",
                            display_path(&field.column.path)
                        )));
                    }
                    absent.push(index);
                }
                Program::Record { fields: programs, absent, constants: Vec::new() }
            }
            _ => return Err(mismatch()),
        };
        Ok(program)
    }

    /// The dataset's own record: fields by name (those fed from the payload),
    /// `preproc` refs walked from the writer field they start at, constants.
    fn resolve_root(
        &self,
        record: &apache_avro::schema::RecordSchema,
        column: &Column,
        depth: usize,
    ) -> Result<Program, ResolveError> {
        let Kind::Struct { fields, .. } = &column.kind else {
            return Err(ResolveError("internal: the root is not a struct".to_owned()));
        };
        let mut filled = vec![false; fields.len()];
        let mut programs = Vec::with_capacity(record.fields.len());
        for writer_field in &record.fields {
            let mut reads: Vec<(Program, usize)> = Vec::new();
            let own = fields.iter().position(|f| f.source == FieldSource::Key && field_matches(writer_field, &f.name));
            if let Some(index) = own {
                reads.push((self.resolve(&writer_field.schema, &fields[index].column, depth + 1)?, index));
            }
            for (index, path) in self.refs {
                let Some((first, rest)) = path.split_first() else { continue };
                if first == &writer_field.name {
                    let walk = self.walk(&writer_field.schema, rest, &fields[*index].column, depth + 1)?;
                    reads.push((Program::Path(Box::new(walk)), *index));
                }
            }
            for (_, index) in &reads {
                filled[*index] = true;
            }
            programs.push(match reads.len() {
                0 => (Program::Skip(self.skip(&writer_field.schema, depth + 1)?), None),
                1 => {
                    let (program, index) = reads.remove(0);
                    (program, Some(index))
                }
                _ => (Program::Tee(reads), None),
            });
        }
        let mut absent = Vec::new();
        let mut constants = Vec::new();
        for (index, field) in fields.iter().enumerate().filter(|(i, _)| !filled[*i]) {
            if let FieldSource::Constant(text) = &field.source {
                constants.push((index, Arc::clone(text)));
                continue;
            }
            if !field.column.nullable {
                let path = display_path(&field.column.path);
                return Err(ResolveError(match field.source {
                    FieldSource::Ref => format!(
                        "field `{path}`: the start of its `preproc` ref is not in the writer schema and the field is not optional"
                    ),
                    _ => format!("field `{path}` is not in the writer schema and is not optional"),
                }));
            }
            absent.push(index);
        }
        Ok(Program::Record { fields: programs, absent, constants })
    }

    /// How a ref walks `writer` down `path` (what is left of it) into `target`.
    fn walk(&self, writer: &Schema, path: &[String], target: &Column, depth: usize) -> Result<Walk, ResolveError> {
        if depth > MAX_DEPTH {
            return Err(ResolveError("the writer schema nests too deeply".to_owned()));
        }
        let writer = deref(writer, self.names, depth)?;
        let Some((step, rest)) = path.split_first() else {
            return Ok(Walk::Read(self.resolve(writer, target, depth + 1)?));
        };
        Ok(match writer {
            Schema::Record(record) => {
                let mut found = false;
                let mut parts = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    let skip = self.skip(&field.schema, depth + 1)?;
                    if !found && &field.name == step {
                        found = true;
                        parts.push((Some(self.walk(&field.schema, rest, target, depth + 1)?), skip));
                    } else {
                        parts.push((None, skip));
                    }
                }
                if found { Walk::Record(parts) } else { Walk::Absent(self.skip(writer, depth + 1)?) }
            }
            Schema::Map(map) => Walk::Map {
                key: Arc::from(step.as_str()),
                value: Box::new(self.walk(&map.types, rest, target, depth + 1)?),
                skip: self.skip(&map.types, depth + 1)?,
            },
            Schema::Union(union) => Walk::Union(
                union
                    .variants()
                    .iter()
                    .map(|branch| self.walk(branch, path, target, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            // A scalar, a null or an array has no key to go on with.
            other => Walk::Absent(self.skip(other, depth + 1)?),
        })
    }

    pub(crate) fn skip(&self, writer: &Schema, depth: usize) -> Result<Skip, ResolveError> {
        if depth > MAX_DEPTH {
            return Err(ResolveError("the writer schema nests too deeply".to_owned()));
        }
        Ok(match deref(writer, self.names, depth)? {
            Schema::Null => Skip::Null,
            Schema::Boolean => Skip::Boolean,
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Enum(_) => Skip::Varint,
            Schema::Float => Skip::Float,
            Schema::Double => Skip::Double,
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => Skip::Sized,
            Schema::Fixed(fixed) => Skip::Fixed(fixed.size),
            Schema::Duration => Skip::Fixed(12),
            Schema::Decimal(decimal) => self.skip(&decimal.inner, depth + 1)?,
            Schema::Union(union) => {
                Skip::Union(union.variants().iter().map(|v| self.skip(v, depth + 1)).collect::<Result<_, _>>()?)
            }
            Schema::Record(record) => {
                Skip::Record(record.fields.iter().map(|f| self.skip(&f.schema, depth + 1)).collect::<Result<_, _>>()?)
            }
            Schema::Array(array) => Skip::Array(Box::new(self.skip(&array.items, depth + 1)?)),
            Schema::Map(map) => Skip::Map(Box::new(self.skip(&map.types, depth + 1)?)),
            Schema::Ref { .. } => return Err(ResolveError("unresolved reference in the writer schema".to_owned())),
        })
    }
}

fn field_matches(writer: &RecordField, reader_name: &str) -> bool {
    writer.name == reader_name
        || writer.aliases.as_ref().is_some_and(|aliases| aliases.iter().any(|a| a == reader_name))
}

/// The root column's path is empty; say "the record" then.
fn display_path(path: &str) -> &str {
    if path.is_empty() { "<record>" } else { path }
}
