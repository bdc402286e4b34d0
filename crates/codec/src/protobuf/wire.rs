//! Reading Protobuf's wire format into the column builders, following a
//! compiled [`MessageProgram`]. Every length is checked against the bytes
//! left and nesting is bounded, so a corrupt message is rejected, never
//! over-read or looped on. Fields may come in any order and more than once:
//! each struct field remembers the message (a mark) that last set it, a later
//! occurrence replaces the earlier value, and fields left unset get what proto
//! says an unset field is once the message ends.

use crate::columns::{Column, Kind, StructField, push_offset};
use crate::protobuf::program::{EnumNames, MAX_DEPTH, MessageProgram, Read, Scalar, Unset, Value, Walk};
use crate::rejection::{Fault, Found, Reason};
use crate::timestamp::{days_from_str, micros_from_epoch_int, micros_from_str};

const TRUNCATED: Reason = Reason::Malformed("protobuf message ends early (truncated)");
const BAD_VARINT: Reason = Reason::Malformed("bad protobuf varint");
const WRONG_WIRE_TYPE: Reason = Reason::Malformed("protobuf wire type does not match the field's type");

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// One field value as the wire holds it.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Len(&'a [u8]),
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Result<u64, Reason> {
        if let Some(&byte) = self.bytes.get(self.pos)
            && byte & 0x80 == 0
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_multi_byte()
    }

    #[inline(never)]
    fn varint_multi_byte(&mut self) -> Result<u64, Reason> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.pos) else { return Err(TRUNCATED) };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(BAD_VARINT);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BAD_VARINT)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Reason> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or(TRUNCATED)?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Reason> {
        let bytes = self.take(N)?;
        bytes.try_into().map_err(|_| TRUNCATED)
    }

    /// The next field: its number and value (groups are skipped, with `None`).
    #[inline]
    fn field(&mut self, depth: usize) -> Result<(u32, Option<Wire<'a>>), Reason> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| Reason::Malformed("protobuf field number out of range"))?;
        if number == 0 {
            return Err(Reason::Malformed("protobuf field number 0"));
        }
        let value = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(self.fixed::<8>()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| TRUNCATED)?;
                Wire::Len(self.take(len)?)
            }
            3 => {
                self.skip_group(number, depth + 1)?;
                return Ok((number, None));
            }
            5 => Wire::Fixed32(self.fixed::<4>()?),
            _ => return Err(Reason::Malformed("bad protobuf wire type")),
        };
        Ok((number, Some(value)))
    }

    /// Skips a (deprecated) group up to its end tag.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), Reason> {
        if depth > MAX_DEPTH {
            return Err(Reason::Malformed("protobuf groups nest too deeply"));
        }
        loop {
            if self.done() {
                return Err(TRUNCATED);
            }
            let tag = self.varint()?;
            if tag & 7 == 4 {
                return if tag >> 3 == u64::from(number) {
                    Ok(())
                } else {
                    Err(Reason::Malformed("protobuf group ends with another field's number"))
                };
            }
            // Put the tag back and read it as a field.
            self.pos -= varint_len(tag);
            self.field(depth)?;
        }
    }
}

fn varint_len(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// Zig-zag decoding (`sint32`, `sint64`, Confluent's index path).
pub(crate) fn zigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads one root message into the root column.
pub(crate) fn read_root(
    program: &MessageProgram,
    bytes: &[u8],
    root: &mut Column,
    marks: &mut u64,
) -> Result<(), Box<Fault>> {
    read_message(program, bytes, root, marks, 0)
}

fn read_message(
    program: &MessageProgram,
    bytes: &[u8],
    column: &mut Column,
    marks: &mut u64,
    depth: usize,
) -> Result<(), Box<Fault>> {
    if depth > MAX_DEPTH {
        return Err(Fault::new(Reason::Malformed("protobuf messages nest too deeply"), &column.path));
    }
    *marks += 1;
    let mark = *marks;
    let rows = column.len();
    let Column { kind: Kind::Struct { fields, .. }, path, .. } = &mut *column else {
        return Err(internal(column));
    };
    let mut reader = Reader::new(bytes);
    while !reader.done() {
        let (number, value) = reader.field(depth).map_err(|r| Fault::new(r, path))?;
        let (Some(reads), Some(value)) = (program.reads(number), value) else { continue };
        for read in reads {
            apply(read, value, fields, rows, mark, marks, depth)?;
        }
    }
    for (index, unset) in &program.targets {
        let field = &mut fields[*index];
        let column = &mut field.column;
        match unset {
            // Lists and maps end with every message, set or not.
            Unset::Empty => end_collection(column)?,
            _ if field.seen == mark => {}
            Unset::Null => column.push_null(),
            Unset::Missing => return Err(Fault::new(Reason::MissingField, &column.path)),
            Unset::Default(scalar) => put_default(*scalar, column)?,
            Unset::EnumDefault(name) => put_str(name, column)?,
            Unset::Constant(text) => crate::json::decode_constant(text, column)?,
        }
    }
    column.mark_valid();
    Ok(())
}

/// Ends a list or map column's row at the items appended so far.
fn end_collection(column: &mut Column) -> Result<(), Box<Fault>> {
    let (offsets, len) = match &mut column.kind {
        Kind::List { offsets, item } => (offsets, item.len()),
        Kind::Map { offsets, keys, .. } => (offsets, keys.len()),
        _ => return Err(internal(column)),
    };
    if !push_offset(offsets, len) {
        return Err(Fault::new(Reason::OutOfRange("batch holds more than 2^31 items"), &column.path));
    }
    column.mark_valid();
    Ok(())
}

/// Applies one read of a field's value to the struct's fields.
#[inline]
fn apply(
    read: &Read,
    value: Wire<'_>,
    fields: &mut [StructField],
    rows: usize,
    mark: u64,
    marks: &mut u64,
    depth: usize,
) -> Result<(), Box<Fault>> {
    match read {
        Read::One { target, value: program } => {
            let field = &mut fields[*target];
            if field.seen == mark {
                // A later occurrence wins.
                field.column.truncate(rows);
            }
            field.seen = mark;
            put_value(program, value, &mut field.column, marks, depth)
        }
        Read::Repeated { target, value: program } => {
            let column = &mut fields[*target].column;
            let Kind::List { item, .. } = &mut column.kind else { return Err(internal(column)) };
            match (program, value) {
                // Packed numbers: one length-delimited run of values.
                (Value::Scalar(scalar), Wire::Len(bytes)) if scalar.is_packable() => {
                    let mut packed = Reader::new(bytes);
                    while !packed.done() {
                        let element = match scalar.wire_type() {
                            0 => Wire::Varint(packed.varint().map_err(|r| Fault::new(r, &item.path))?),
                            1 => Wire::Fixed64(packed.fixed::<8>().map_err(|r| Fault::new(r, &item.path))?),
                            _ => Wire::Fixed32(packed.fixed::<4>().map_err(|r| Fault::new(r, &item.path))?),
                        };
                        put_value(program, element, item, marks, depth)?;
                    }
                    Ok(())
                }
                _ => put_value(program, value, item, marks, depth),
            }
        }
        Read::MapEntry { target, key, value: program } => {
            let column = &mut fields[*target].column;
            let Kind::Map { keys, values, .. } = &mut column.kind else { return Err(internal(column)) };
            let Wire::Len(entry) = value else { return Err(Fault::new(WRONG_WIRE_TYPE, &column.path)) };
            read_map_entry(*key, program, entry, keys, values, marks, depth)
        }
        Read::Walk { target, walk } => {
            let field = &mut fields[*target];
            walk_value(walk, value, field, rows, mark, marks, depth)
        }
    }
}

/// One map entry (a message: key = 1, value = 2; absent ones are their defaults).
fn read_map_entry(
    key: Scalar,
    program: &Value,
    entry: &[u8],
    keys: &mut Column,
    values: &mut Column,
    marks: &mut u64,
    depth: usize,
) -> Result<(), Box<Fault>> {
    let mut reader = Reader::new(entry);
    let (mut key_value, mut value) = (None, None);
    while !reader.done() {
        match reader.field(depth).map_err(|r| Fault::new(r, &keys.path))? {
            (1, Some(wire)) => key_value = Some(wire),
            (2, Some(wire)) => value = Some(wire),
            _ => {}
        }
    }
    match key_value {
        Some(wire) => put_map_key(key, wire, keys)?,
        None => put_default(key, keys)?,
    }
    match value {
        Some(wire) => put_value(program, wire, values, marks, depth),
        None => match program {
            Value::Scalar(scalar) | Value::Wrapper(scalar) => put_default(*scalar, values),
            Value::EnumName(names) => put_str(names.name(0).unwrap_or("0"), values),
            Value::Message(inner) => read_message(inner, &[], values, marks, depth + 1),
            Value::Timestamp => put_timestamp(&[], values),
        },
    }
}

/// Walks a `preproc` ref down one value; sets `target` when the path is there.
fn walk_value(
    walk: &Walk,
    value: Wire<'_>,
    target: &mut StructField,
    rows: usize,
    mark: u64,
    marks: &mut u64,
    depth: usize,
) -> Result<(), Box<Fault>> {
    if depth > MAX_DEPTH {
        return Err(Fault::new(Reason::Malformed("protobuf messages nest too deeply"), &target.column.path));
    }
    let at = |reason: Reason, target: &StructField| Fault::new(reason, &target.column.path);
    match walk {
        Walk::Read(program) => {
            if target.seen == mark {
                target.column.truncate(rows);
            }
            target.seen = mark;
            put_value(program, value, &mut target.column, marks, depth)
        }
        Walk::Field { number, then } => {
            let Wire::Len(bytes) = value else { return Err(at(WRONG_WIRE_TYPE, target)) };
            let mut reader = Reader::new(bytes);
            while !reader.done() {
                let (found, inner) = reader.field(depth + 1).map_err(|r| at(r, target))?;
                if let (true, Some(inner)) = (found == *number, inner) {
                    walk_value(then, inner, target, rows, mark, marks, depth + 1)?;
                }
            }
            Ok(())
        }
        Walk::MapKey { key, then } => {
            let Wire::Len(entry) = value else { return Err(at(WRONG_WIRE_TYPE, target)) };
            let mut reader = Reader::new(entry);
            let (mut entry_key, mut entry_value) = (None, None);
            while !reader.done() {
                match reader.field(depth + 1).map_err(|r| at(r, target))? {
                    (1, Some(Wire::Len(bytes))) => entry_key = Some(bytes),
                    (2, Some(wire)) => entry_value = Some(wire),
                    _ => {}
                }
            }
            match (entry_key, entry_value) {
                (Some(found), Some(inner)) if found == key.as_bytes() => {
                    walk_value(then, inner, target, rows, mark, marks, depth + 1)
                }
                _ => Ok(()),
            }
        }
    }
}

impl Scalar {
    /// The wire type a single value of this scalar takes.
    fn wire_type(self) -> u8 {
        match self {
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => 1,
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => 5,
            Scalar::String | Scalar::Bytes => 2,
            _ => 0,
        }
    }

    fn is_packable(self) -> bool {
        self.wire_type() != 2
    }
}

/// A numeric value as read, before it meets its column.
#[derive(Clone, Copy)]
enum Number {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

fn number(scalar: Scalar, value: Wire<'_>) -> Result<Number, Reason> {
    Ok(match (scalar, value) {
        // int32 is sign-extended to 64 bits on the wire.
        (Scalar::Int32 | Scalar::Enum, Wire::Varint(v)) => Number::Signed(i64::from(v as i32)),
        (Scalar::Int64, Wire::Varint(v)) => Number::Signed(v as i64),
        (Scalar::Uint32, Wire::Varint(v)) => Number::Unsigned(u64::from(v as u32)),
        (Scalar::Uint64, Wire::Varint(v)) => Number::Unsigned(v),
        (Scalar::Sint32, Wire::Varint(v)) => Number::Signed(i64::from(zigzag(v) as i32)),
        (Scalar::Sint64, Wire::Varint(v)) => Number::Signed(zigzag(v)),
        (Scalar::Bool, Wire::Varint(v)) => Number::Bool(v != 0),
        (Scalar::Fixed32, Wire::Fixed32(b)) => Number::Unsigned(u64::from(u32::from_le_bytes(b))),
        (Scalar::Sfixed32, Wire::Fixed32(b)) => Number::Signed(i64::from(i32::from_le_bytes(b))),
        (Scalar::Float, Wire::Fixed32(b)) => Number::Float(f64::from(f32::from_le_bytes(b))),
        (Scalar::Fixed64, Wire::Fixed64(b)) => Number::Unsigned(u64::from_le_bytes(b)),
        (Scalar::Sfixed64, Wire::Fixed64(b)) => Number::Signed(i64::from_le_bytes(b)),
        (Scalar::Double, Wire::Fixed64(b)) => Number::Float(f64::from_le_bytes(b)),
        _ => return Err(WRONG_WIRE_TYPE),
    })
}

#[inline]
fn put_value(
    program: &Value,
    value: Wire<'_>,
    column: &mut Column,
    marks: &mut u64,
    depth: usize,
) -> Result<(), Box<Fault>> {
    match program {
        Value::Scalar(Scalar::String | Scalar::Bytes) => match value {
            Wire::Len(bytes) => put_bytes(bytes, column),
            _ => Err(Fault::new(WRONG_WIRE_TYPE, &column.path)),
        },
        Value::Scalar(scalar) => {
            let number = number(*scalar, value).map_err(|r| Fault::new(r, &column.path))?;
            put_number(number, column)
        }
        Value::EnumName(names) => {
            let Wire::Varint(v) = value else { return Err(Fault::new(WRONG_WIRE_TYPE, &column.path)) };
            put_enum(names, v as i32, column)
        }
        Value::Message(inner) => {
            let Wire::Len(bytes) = value else { return Err(Fault::new(WRONG_WIRE_TYPE, &column.path)) };
            read_message(inner, bytes, column, marks, depth + 1)
        }
        Value::Timestamp => {
            let Wire::Len(bytes) = value else { return Err(Fault::new(WRONG_WIRE_TYPE, &column.path)) };
            put_timestamp(bytes, column)
        }
        Value::Wrapper(scalar) => {
            let Wire::Len(bytes) = value else { return Err(Fault::new(WRONG_WIRE_TYPE, &column.path)) };
            let mut reader = Reader::new(bytes);
            let mut inner = None;
            while !reader.done() {
                if let (1, Some(wire)) = reader.field(depth + 1).map_err(|r| Fault::new(r, &column.path))? {
                    inner = Some(wire);
                }
            }
            match inner {
                Some(wire) => put_value(&Value::Scalar(*scalar), wire, column, marks, depth),
                None => put_default(*scalar, column),
            }
        }
    }
}

fn put_enum(names: &EnumNames, number: i32, column: &mut Column) -> Result<(), Box<Fault>> {
    match names.name(number) {
        Some(name) => put_str(name, column),
        // Proto3 enums are open: a number the schema does not name is kept as its digits.
        None => put_str(&number.to_string(), column),
    }
}

/// `google.protobuf.Timestamp`: seconds = 1, nanos = 2.
fn put_timestamp(bytes: &[u8], column: &mut Column) -> Result<(), Box<Fault>> {
    let mut reader = Reader::new(bytes);
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while !reader.done() {
        match reader.field(0).map_err(|r| Fault::new(r, &column.path))? {
            (1, Some(Wire::Varint(v))) => seconds = v as i64,
            (2, Some(Wire::Varint(v))) => nanos = i64::from(v as i32),
            _ => {}
        }
    }
    let micros = seconds
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(nanos.div_euclid(1_000)))
        .ok_or_else(|| Fault::new(Reason::BadTimestamp, &column.path))?;
    let Kind::Timestamp(values) = &mut column.kind else { return Err(internal(column)) };
    values.push(micros);
    column.mark_valid();
    Ok(())
}

fn put_default(scalar: Scalar, column: &mut Column) -> Result<(), Box<Fault>> {
    match scalar {
        Scalar::String | Scalar::Bytes => match column.kind {
            // An empty string is no date, time or number: the field was not set.
            Kind::Timestamp(_) | Kind::Date32(_) | Kind::Decimal { .. } => put_unset(column),
            _ => put_bytes(&[], column),
        },
        Scalar::Float | Scalar::Double => put_number(Number::Float(0.0), column),
        Scalar::Bool => put_number(Number::Bool(false), column),
        _ => put_number(Number::Signed(0), column),
    }
}

/// A value the payload did not give: a null where allowed.
fn put_unset(column: &mut Column) -> Result<(), Box<Fault>> {
    if column.nullable {
        column.push_null();
        Ok(())
    } else {
        Err(Fault::new(Reason::MissingField, &column.path))
    }
}

fn put_number(number: Number, column: &mut Column) -> Result<(), Box<Fault>> {
    let Column { kind, path, type_name, .. } = &mut *column;
    let at = |reason: Reason| Fault::new(reason, path);
    let out_of_range = || at(Reason::OutOfRange("protobuf number out of range for the column's type"));
    match (kind, number) {
        (Kind::Bool(values), Number::Bool(v)) => values.append(v),
        (Kind::Int32(values), Number::Signed(v)) => values.push(i32::try_from(v).map_err(|_| out_of_range())?),
        (Kind::Int64(values), Number::Signed(v)) => values.push(v),
        (Kind::Int64(values), Number::Unsigned(v)) => values.push(i64::try_from(v).map_err(|_| out_of_range())?),
        (Kind::Float32(values), Number::Float(v)) => values.push(v as f32),
        (Kind::Float32(values), Number::Signed(v)) => values.push(v as f32),
        (Kind::Float64(values), Number::Float(v)) => values.push(v),
        (Kind::Float64(values), Number::Signed(v)) => values.push(v as f64),
        (Kind::Float64(values), Number::Unsigned(v)) => values.push(v as f64),
        (Kind::Date32(values), Number::Signed(v)) => values.push(i32::try_from(v).map_err(|_| out_of_range())?),
        (Kind::Timestamp(values), Number::Signed(v)) => {
            values.push(micros_from_epoch_int(v).ok_or_else(|| at(Reason::BadTimestamp))?)
        }
        (Kind::Timestamp(values), Number::Unsigned(v)) => {
            let v = i64::try_from(v).map_err(|_| at(Reason::BadTimestamp))?;
            values.push(micros_from_epoch_int(v).ok_or_else(|| at(Reason::BadTimestamp))?)
        }
        (Kind::Decimal { values, precision, scale }, Number::Signed(v)) => {
            values.push(scaled(i128::from(v), *precision, *scale).map_err(at)?)
        }
        (Kind::Decimal { values, precision, scale }, Number::Unsigned(v)) => {
            values.push(scaled(i128::from(v), *precision, *scale).map_err(at)?)
        }
        _ => {
            let found = match number {
                Number::Bool(_) => Found::Bool,
                _ => Found::Number,
            };
            return Err(at(Reason::TypeMismatch { expected: type_name.clone(), found }));
        }
    }
    column.mark_valid();
    Ok(())
}

/// An integer as a decimal of `scale` digits, within `precision`.
fn scaled(value: i128, precision: u8, scale: u8) -> Result<i128, Reason> {
    let out_of_range = Reason::OutOfRange("number does not fit the decimal's precision");
    let scaled = 10i128.checked_pow(u32::from(scale)).and_then(|f| value.checked_mul(f)).ok_or(out_of_range.clone())?;
    let bound = 10i128.checked_pow(u32::from(precision)).ok_or(out_of_range.clone())?;
    if scaled.abs() >= bound { Err(out_of_range) } else { Ok(scaled) }
}

fn put_str(text: &str, column: &mut Column) -> Result<(), Box<Fault>> {
    put_bytes(text.as_bytes(), column)
}

/// A string or bytes value into its column (text is checked to be UTF-8 where a string is wanted).
fn put_bytes(bytes: &[u8], column: &mut Column) -> Result<(), Box<Fault>> {
    let Column { kind, path, type_name, .. } = &mut *column;
    let at = |reason: Reason| Fault::new(reason, path);
    let text =
        || simdutf8::basic::from_utf8(bytes).map_err(|_| at(Reason::Malformed("protobuf string is not valid UTF-8")));
    match kind {
        Kind::Utf8 { offsets, data } => {
            text()?;
            data.extend_from_slice(bytes);
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of text")));
            }
        }
        Kind::Binary { offsets, data } => {
            data.extend_from_slice(bytes);
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of bytes")));
            }
        }
        Kind::Timestamp(values) => {
            let text = text()?;
            values.push(micros_from_str(text).ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        Kind::Date32(values) => {
            let text = text()?;
            values.push(days_from_str(text).ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        Kind::Decimal { values, precision, scale } => {
            let text = text()?;
            values.push(crate::decimal::parse_decimal(text.trim().as_bytes(), *precision, *scale).map_err(&at)?);
        }
        _ => {
            return Err(at(Reason::TypeMismatch { expected: type_name.clone(), found: Found::String }));
        }
    }
    column.mark_valid();
    Ok(())
}

/// A map key as text (integers and booleans by their decimal or `true`/`false` form).
fn put_map_key(key: Scalar, value: Wire<'_>, keys: &mut Column) -> Result<(), Box<Fault>> {
    match value {
        Wire::Len(bytes) => put_bytes(bytes, keys),
        other => {
            let text = match number(key, other).map_err(|r| Fault::new(r, &keys.path))? {
                Number::Signed(v) => v.to_string(),
                Number::Unsigned(v) => v.to_string(),
                Number::Bool(v) => v.to_string(),
                Number::Float(v) => v.to_string(),
            };
            put_str(&text, keys)
        }
    }
}

fn internal(column: &Column) -> Box<Fault> {
    Fault::new(Reason::Malformed("internal: program and column disagree"), &column.path)
}
