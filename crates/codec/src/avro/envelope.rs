//! Debezium envelopes in Avro: `{before, after, op, ts_ms, ...}` records.
//!
//! `op` comes after `before` and `after` in Debezium's schemas, so one pass
//! notes where `before` and `after` lie, reads `op` and `ts_ms`, and then runs
//! the row program on the one that matters: `after` into the dataset for
//! `c`, `r`, `u`; `before` into the delete columns for `d`.

use apache_avro::Schema;
use apache_avro::schema::ResolvedSchema;

use super::datum::{self, Cursor, skip_value, utf8_string};
use super::program::{Program, ResolveError, Resolver, Skip, deref, parse};
use crate::cdc::Op;
use crate::columns::Column;
use crate::rejection::{Fault, Reason};

/// How `op` or `ts_ms` is written: the value itself, or a union with null.
#[derive(Debug)]
enum Scalar {
    Plain,
    /// Per branch, whether it is the value (the others are null).
    Union(Vec<bool>),
}

#[derive(Debug)]
enum Part {
    Before(Skip),
    After(Skip),
    Op(Scalar),
    /// `ts_ms` (an int or a long: both are varints).
    TsMs(Scalar),
    Other(Skip),
}

/// A row field (`before` or `after`): its program and its null union branches.
#[derive(Debug)]
struct Row {
    program: Program,
    null_branches: Vec<bool>,
}

/// An envelope writer schema compiled against the dataset and its delete columns.
#[derive(Debug)]
pub(crate) struct EnvelopeProgram {
    parts: Vec<Part>,
    after: Row,
    before: Row,
}

/// What one envelope gave.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) op: Op,
    /// The envelope's `ts_ms`, for a delete whose `before` has no timestamp.
    pub(crate) ts_ms: Option<i64>,
}

impl EnvelopeProgram {
    /// Compiles `writer_json` (an envelope) against `root` (with its refs) and `deletes`.
    pub(crate) fn compile(
        writer_json: &str,
        root: &Column,
        refs: &[(usize, Vec<String>)],
        deletes: &Column,
    ) -> Result<EnvelopeProgram, ResolveError> {
        let schema = parse(writer_json)?;
        let resolved =
            ResolvedSchema::try_from(&schema).map_err(|e| ResolveError(format!("invalid Avro schema: {e}")))?;
        let names = resolved.get_names();
        let Schema::Record(record) = deref(&schema, names, 0)? else {
            return Err(ResolveError("the Debezium envelope must be a record".to_owned()));
        };
        let rows = Resolver { names, refs };
        let keys_only = Resolver { names, refs: &[] };
        let mut parts = Vec::with_capacity(record.fields.len());
        let (mut after, mut before, mut op) = (None, None, false);
        for field in &record.fields {
            let skip = rows.skip(&field.schema, 1)?;
            let value = deref(&field.schema, names, 1)?;
            let part = match field.name.as_str() {
                "after" => {
                    let program = rows.resolve(&field.schema, root, 1)?;
                    after = Some(Row { program, null_branches: null_branches(value) });
                    Part::After(skip)
                }
                "before" => {
                    let program = keys_only.resolve(&field.schema, deletes, 1)?;
                    before = Some(Row { program, null_branches: null_branches(value) });
                    Part::Before(skip)
                }
                "op" => {
                    op = true;
                    Part::Op(scalar(value, |s| matches!(s, Schema::String), "op")?)
                }
                "ts_ms" => {
                    let varint = |s: &Schema| matches!(s, Schema::Long | Schema::TimestampMillis | Schema::Int);
                    Part::TsMs(scalar(value, varint, "ts_ms")?)
                }
                _ => Part::Other(skip),
            };
            parts.push(part);
        }
        let missing = |what: &str| ResolveError(format!("not a Debezium envelope: the writer schema has no `{what}`"));
        let after = after.ok_or_else(|| missing("after"))?;
        let before = before.ok_or_else(|| missing("before"))?;
        if !op {
            return Err(missing("op"));
        }
        Ok(EnvelopeProgram { parts, after, before })
    }

    /// Reads one envelope: the `after` row into `root`, or a delete's `before`
    /// into `deletes`. Nothing is written on an error.
    pub(crate) fn read(&self, datum: &[u8], root: &mut Column, deletes: &mut Column) -> Result<Change, Box<Fault>> {
        let malformed = |reason: Reason| Fault::record(reason);
        let mut cursor = Cursor::new(datum);
        let (mut before, mut after, mut op, mut ts_ms) = (None, None, None, None);
        for part in &self.parts {
            let start = cursor.position();
            match part {
                Part::Before(skip) | Part::After(skip) | Part::Other(skip) => {
                    skip_value(skip, &mut cursor).map_err(malformed)?;
                    let span = (start, cursor.position());
                    match part {
                        Part::Before(_) => before = Some(span),
                        Part::After(_) => after = Some(span),
                        _ => {}
                    }
                }
                Part::Op(scalar) => {
                    if read_present(scalar, &mut cursor).map_err(malformed)? {
                        op = Some(utf8_string(&mut cursor).map_err(malformed)?);
                    }
                }
                Part::TsMs(scalar) => {
                    if read_present(scalar, &mut cursor).map_err(malformed)? {
                        ts_ms = Some(cursor.long().map_err(malformed)?);
                    }
                }
            }
        }
        if cursor.remaining() != 0 {
            return Err(malformed(Reason::Malformed("datum not fully consumed (trailing bytes)")));
        }
        let Some(op) = op else { return Err(Fault::record(Reason::CdcNoEnvelope("no `op`"))) };
        let present = |row: &Row, span: Option<(usize, usize)>| -> Result<Option<&[u8]>, Box<Fault>> {
            let Some((from, to)) = span else { return Ok(None) };
            let bytes = cursor.slice(from, to);
            if row.null_branches.is_empty() {
                return Ok(Some(bytes));
            }
            let branch = Cursor::new(bytes).long().map_err(malformed)?;
            let is_null = usize::try_from(branch).ok().and_then(|b| row.null_branches.get(b)).copied().unwrap_or(false);
            Ok((!is_null).then_some(bytes))
        };
        let (row, target, change) = match op {
            "c" | "r" | "u" => {
                let bytes = present(&self.after, after)?.ok_or_else(|| {
                    Fault::record(Reason::CdcNoEnvelope("no `after` row for a create, read or update"))
                })?;
                (bytes, &self.after.program, Change { op: Op::Upsert, ts_ms })
            }
            "d" => {
                let bytes =
                    present(&self.before, before)?.ok_or_else(|| Fault::record(Reason::CdcDeleteWithoutKeys))?;
                (bytes, &self.before.program, Change { op: Op::Delete, ts_ms })
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(Fault::record(Reason::CdcUnknownOp(shown.into())));
            }
        };
        let column = if change.op == Op::Upsert { root } else { deletes };
        let rows = column.len();
        let mut row_cursor = Cursor::new(row);
        let read = datum::read(target, &mut row_cursor, column);
        if let Err(fault) = read {
            column.truncate(rows);
            return Err(fault);
        }
        Ok(change)
    }
}

/// Which branches of a union are `null` (empty when it is not a union).
fn null_branches(schema: &Schema) -> Vec<bool> {
    match schema {
        Schema::Union(union) => union.variants().iter().map(|v| matches!(v, Schema::Null)).collect(),
        _ => Vec::new(),
    }
}

fn scalar(schema: &Schema, is_value: impl Fn(&Schema) -> bool, name: &str) -> Result<Scalar, ResolveError> {
    match schema {
        Schema::Union(union) => {
            let branches: Vec<bool> = union.variants().iter().map(&is_value).collect();
            let others_null =
                union.variants().iter().zip(&branches).all(|(v, value)| *value || matches!(v, Schema::Null));
            if !branches.contains(&true) || !others_null {
                return Err(ResolveError(format!("Debezium `{name}` has an unexpected type")));
            }
            Ok(Scalar::Union(branches))
        }
        other if is_value(other) => Ok(Scalar::Plain),
        _ => Err(ResolveError(format!("Debezium `{name}` has an unexpected type"))),
    }
}

/// Reads a union's branch index; whether the value follows (not null).
fn read_present(scalar: &Scalar, cursor: &mut Cursor<'_>) -> Result<bool, Reason> {
    match scalar {
        Scalar::Plain => Ok(true),
        Scalar::Union(branches) => {
            let index = cursor.long()?;
            usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .copied()
                .ok_or(Reason::Malformed("Avro union branch index out of range"))
        }
    }
}
