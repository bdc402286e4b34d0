//! Reading one Avro binary datum into the column builders, following a
//! compiled [`Program`]. Every length and count is checked against the bytes
//! left, so a corrupt datum is rejected, never over-read or looped on.

use crate::avro::program::{Program, Skip, TimeUnit, Walk};
use crate::columns::{Column, Kind, push_offset};
use crate::rejection::{Fault, Found, Reason};
use crate::timestamp::{days_from_str, micros_from_epoch_int, micros_from_str};

const TRUNCATED: Reason = Reason::Malformed("datum ends early (truncated)");
const BAD_VARINT: Reason = Reason::Malformed("bad Avro varint");
/// Strings up to this long are copied with one fixed-size copy.
const SHORT: usize = 16;
const ASCII_HIGH_BITS: u128 = u128::from_le_bytes([0x80; SHORT]);

/// A cursor over one datum.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Where the cursor is in the datum.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// The bytes `from..to` of the datum.
    pub(super) fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        &self.bytes[from..to]
    }

    #[inline(always)]
    pub(super) fn long(&mut self) -> Result<i64, Reason> {
        // Most varints are one byte (lengths, small numbers, union branches).
        if let Some(&byte) = self.bytes.get(self.pos)
            && byte & 0x80 == 0
        {
            self.pos += 1;
            let value = u64::from(byte);
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
        self.long_multi_byte()
    }

    #[inline(never)]
    fn long_multi_byte(&mut self) -> Result<i64, Reason> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else { return Err(TRUNCATED) };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(BAD_VARINT);
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag: the low bit is the sign.
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return Err(BAD_VARINT);
            }
        }
    }

    #[inline]
    fn int(&mut self) -> Result<i32, Reason> {
        i32::try_from(self.long()?).map_err(|_| Reason::Malformed("Avro int out of range"))
    }

    /// A length or count that must fit in what is left of the datum.
    #[inline(always)]
    fn length(&mut self) -> Result<usize, Reason> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| Reason::Malformed("negative Avro length"))?;
        if len > self.remaining() {
            return Err(Reason::Malformed("Avro length beyond the end of the datum"));
        }
        Ok(len)
    }

    /// The next `N` bytes without moving, when that many are left.
    #[inline(always)]
    fn window<const N: usize>(&self) -> Option<&'a [u8; N]> {
        self.bytes.get(self.pos..)?.first_chunk::<N>()
    }

    #[inline(always)]
    fn take(&mut self, len: usize) -> Result<&'a [u8], Reason> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or(TRUNCATED)?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn boolean(&mut self) -> Result<bool, Reason> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(Reason::Malformed("Avro boolean is neither 0 nor 1")),
        }
    }

    fn float(&mut self) -> Result<f32, Reason> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| TRUNCATED)?;
        Ok(f32::from_le_bytes(bytes))
    }

    fn double(&mut self) -> Result<f64, Reason> {
        let bytes: [u8; 8] = self.take(8)?.try_into().map_err(|_| TRUNCATED)?;
        Ok(f64::from_le_bytes(bytes))
    }

    /// The item count of the next array/map block, 0 at the end; reads past a block's byte size.
    fn block_count(&mut self) -> Result<usize, Reason> {
        let count = self.long()?;
        let count = if count < 0 {
            self.long()?; // block size in bytes, not needed to read the items
            count.checked_neg().ok_or(BAD_VARINT)?
        } else {
            count
        };
        let count = usize::try_from(count).map_err(|_| BAD_VARINT)?;
        // Every item takes at least one byte except `null`s, which no dataset type holds in bulk.
        if count > self.remaining() {
            return Err(Reason::Malformed("Avro block count beyond the end of the datum"));
        }
        Ok(count)
    }
}

/// Runs `program` on the datum into `column` (one value of it).
pub(crate) fn read(program: &Program, cursor: &mut Cursor<'_>, column: &mut Column) -> Result<(), Box<Fault>> {
    read_inline(program, cursor, column)
}

/// [`read`], inlined into the loops over a record's fields and an array's
/// items, so a leaf value costs no call.
#[inline(always)]
fn read_inline(program: &Program, cursor: &mut Cursor<'_>, column: &mut Column) -> Result<(), Box<Fault>> {
    // The commonest pairs first, each with one check of the column's kind; the
    // rest (and every error) in `read_general`, kept out of line so this stays small.
    let fast = match (program, &mut column.kind) {
        (Program::Long { timestamp_unit: None }, Kind::Int64(values)) => cursor.long().map(|v| values.push(v)),
        (Program::Int, Kind::Int32(values)) => cursor.int().map(|v| values.push(v)),
        (Program::Int, Kind::Int64(values)) => cursor.int().map(|v| values.push(i64::from(v))),
        (Program::Double, Kind::Float64(values)) => cursor.double().map(|v| values.push(v)),
        (Program::Float, Kind::Float32(values)) => cursor.float().map(|v| values.push(v)),
        (Program::Boolean, Kind::Bool(values)) => cursor.boolean().map(|v| values.append(v)),
        (Program::Long { timestamp_unit: Some(TimeUnit::Micros) }, Kind::Timestamp(values)) => {
            cursor.long().map(|v| values.push(v))
        }
        (Program::String, Kind::Utf8 { offsets, data }) => read_utf8(cursor, offsets, data),
        _ => return read_general(program, cursor, column),
    };
    match fast {
        Ok(()) => {
            column.mark_valid();
            Ok(())
        }
        Err(reason) => Err(Fault::new(reason, &column.path)),
    }
}

/// A string into a string column: length, bytes, UTF-8 check, offset.
#[inline(always)]
fn read_utf8(cursor: &mut Cursor<'_>, offsets: &mut Vec<i32>, data: &mut Vec<u8>) -> Result<(), Reason> {
    let len = cursor.length()?;
    // Most strings are short: one fixed 16-byte copy (then cut back to the
    // string) beats a variable-length memcpy call.
    if len <= SHORT
        && let Some(window) = cursor.window::<SHORT>()
    {
        // ASCII check of the whole window at once, the bytes past the string masked off.
        let word = u128::from_le_bytes(*window);
        let string_bytes = u128::MAX.checked_shr((SHORT - len) as u32 * 8).unwrap_or(0);
        if word & string_bytes & ASCII_HIGH_BITS != 0 && !is_utf8(&window[..len]) {
            return Err(Reason::Malformed("Avro string is not valid UTF-8"));
        }
        let end = data.len() + len;
        data.extend_from_slice(window);
        data.truncate(end);
        cursor.pos += len;
    } else {
        let bytes = cursor.take(len)?;
        if !is_utf8(bytes) {
            return Err(Reason::Malformed("Avro string is not valid UTF-8"));
        }
        data.extend_from_slice(bytes);
    }
    if push_offset(offsets, data.len()) {
        Ok(())
    } else {
        Err(Reason::OutOfRange("batch holds more than 2 GiB of text"))
    }
}

#[inline(never)]
fn read_general(program: &Program, cursor: &mut Cursor<'_>, column: &mut Column) -> Result<(), Box<Fault>> {
    let at = |reason: Reason, column: &Column| Fault::new(reason, &column.path);
    match program {
        Program::Null => {
            if !column.nullable {
                return Err(at(Reason::NullNotAllowed, column));
            }
            column.push_null();
            return Ok(());
        }
        Program::Union(branches) => {
            let index = cursor.long().map_err(|r| at(r, column))?;
            let branch = usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| at(Reason::Malformed("Avro union branch index out of range"), column))?;
            return read(branch, cursor, column);
        }
        Program::Mismatch(why) => return Err(at(Reason::SchemaMismatch(why.clone()), column)),
        Program::Skip(skip) => return skip_value(skip, cursor).map_err(|r| at(r, column)),
        Program::Record { fields: programs, absent, constants } => {
            let Kind::Struct { fields, .. } = &mut column.kind else { return Err(internal(column)) };
            for (program, target) in programs {
                match (target, program) {
                    (Some(index), _) => read_inline(program, cursor, &mut fields[*index].column)?,
                    (None, Program::Skip(skip)) => skip_value(skip, cursor).map_err(|r| Fault::new(r, &column.path))?,
                    (None, Program::Tee(reads)) => {
                        // Every read takes the whole value, so each ends where the value does.
                        let start = cursor.pos;
                        for (program, index) in reads {
                            cursor.pos = start;
                            read(program, cursor, &mut fields[*index].column)?;
                        }
                    }
                    (None, _) => return Err(internal(column)),
                }
            }
            for &index in absent {
                fields[index].column.push_null();
            }
            for (index, text) in constants {
                crate::json::decode_constant(text, &mut fields[*index].column)?;
            }
            column.mark_valid();
            return Ok(());
        }
        Program::Path(walk) => {
            if !walk_value(walk, cursor, column)? {
                if !column.nullable {
                    return Err(at(Reason::MissingField, column));
                }
                column.push_null();
            }
            return Ok(());
        }
        Program::Tee(_) => return Err(internal(column)),
        _ => {}
    }
    read_scalar_or_collection(program, cursor, column)?;
    column.mark_valid();
    Ok(())
}

/// Walks a `preproc` ref down one writer value (reading all of it); whether
/// the path was found (and its value read into `column`).
fn walk_value(walk: &Walk, cursor: &mut Cursor<'_>, column: &mut Column) -> Result<bool, Box<Fault>> {
    let at = |reason: Reason, column: &Column| Fault::new(reason, &column.path);
    match walk {
        Walk::Read(program) => {
            read(program, cursor, column)?;
            Ok(true)
        }
        Walk::Record(parts) => {
            let mut found = false;
            for (walk, skip) in parts {
                match walk {
                    Some(walk) => found = walk_value(walk, cursor, column)?,
                    None => skip_value(skip, cursor).map_err(|r| at(r, column))?,
                }
            }
            Ok(found)
        }
        Walk::Map { key, value, skip } => {
            let (mut matched, mut found) = (false, false);
            loop {
                let count = cursor.block_count().map_err(|r| at(r, column))?;
                if count == 0 {
                    return Ok(found);
                }
                for _ in 0..count {
                    let entry_key = utf8_string(cursor).map_err(|r| at(r, column))?;
                    if !matched && entry_key == &**key {
                        matched = true;
                        found = walk_value(value, cursor, column)?;
                    } else {
                        skip_value(skip, cursor).map_err(|r| at(r, column))?;
                    }
                }
            }
        }
        Walk::Union(branches) => {
            let index = cursor.long().map_err(|r| at(r, column))?;
            let branch = usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| at(Reason::Malformed("Avro union branch index out of range"), column))?;
            walk_value(branch, cursor, column)
        }
        Walk::Absent(skip) => {
            skip_value(skip, cursor).map_err(|r| at(r, column))?;
            Ok(false)
        }
    }
}

fn internal(column: &Column) -> Box<Fault> {
    Fault::new(Reason::Malformed("internal: program and column disagree"), &column.path)
}

#[inline(always)]
fn read_scalar_or_collection(
    program: &Program,
    cursor: &mut Cursor<'_>,
    column: &mut Column,
) -> Result<(), Box<Fault>> {
    let Column { kind, path, type_name, .. } = column;
    let at = |reason: Reason| Fault::new(reason, path);
    match (program, kind) {
        (Program::Boolean, Kind::Bool(values)) => values.append(cursor.boolean().map_err(at)?),
        (Program::Int, Kind::Int32(values) | Kind::Date32(values)) => values.push(cursor.int().map_err(at)?),
        (Program::Int, Kind::Int64(values)) => values.push(i64::from(cursor.int().map_err(at)?)),
        (Program::Int, Kind::Float32(values)) => values.push(cursor.int().map_err(at)? as f32),
        (Program::Int, Kind::Float64(values)) => values.push(f64::from(cursor.int().map_err(at)?)),
        (Program::Int, Kind::Decimal { values, precision, scale }) => {
            values.push(scale_integer(i128::from(cursor.int().map_err(at)?), 0, *precision, *scale).map_err(at)?);
        }
        (Program::Long { timestamp_unit: None }, Kind::Int64(values)) => values.push(cursor.long().map_err(at)?),
        (Program::Long { timestamp_unit: None }, Kind::Float32(values)) => {
            values.push(cursor.long().map_err(at)? as f32)
        }
        (Program::Long { timestamp_unit: None }, Kind::Float64(values)) => {
            values.push(cursor.long().map_err(at)? as f64)
        }
        (Program::Long { timestamp_unit: None }, Kind::Decimal { values, precision, scale }) => {
            values.push(scale_integer(i128::from(cursor.long().map_err(at)?), 0, *precision, *scale).map_err(at)?);
        }
        (Program::Long { timestamp_unit: Some(unit) }, Kind::Timestamp(values)) => {
            let raw = cursor.long().map_err(at)?;
            let micros = match unit {
                TimeUnit::Millis => raw.checked_mul(1_000),
                TimeUnit::Micros => Some(raw),
                TimeUnit::Nanos => Some(raw.div_euclid(1_000)),
                TimeUnit::Guess => micros_from_epoch_int(raw),
            };
            values.push(micros.ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        (Program::Float, Kind::Float32(values)) => values.push(cursor.float().map_err(at)?),
        (Program::Float, Kind::Float64(values)) => values.push(f64::from(cursor.float().map_err(at)?)),
        (Program::Double, Kind::Float64(values)) => values.push(cursor.double().map_err(at)?),
        (Program::String | Program::Bytes { decimal_scale: None }, Kind::Utf8 { offsets, data }) => {
            let len = cursor.length().map_err(at)?;
            let bytes = cursor.take(len).map_err(at)?;
            if !is_utf8(bytes) {
                return Err(at(Reason::Malformed("Avro string is not valid UTF-8")));
            }
            data.extend_from_slice(bytes);
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of text")));
            }
        }
        (Program::String | Program::Bytes { decimal_scale: None }, Kind::Binary { offsets, data }) => {
            let len = cursor.length().map_err(at)?;
            data.extend_from_slice(cursor.take(len).map_err(at)?);
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of bytes")));
            }
        }
        (Program::Fixed { size, decimal_scale: None }, Kind::Binary { offsets, data }) => {
            data.extend_from_slice(cursor.take(*size).map_err(at)?);
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of bytes")));
            }
        }
        (Program::Bytes { decimal_scale: Some(writer_scale) }, Kind::Decimal { values, precision, scale }) => {
            let len = cursor.length().map_err(at)?;
            let unscaled = twos_complement(cursor.take(len).map_err(at)?).map_err(at)?;
            values.push(scale_integer(unscaled, *writer_scale, *precision, *scale).map_err(at)?);
        }
        (Program::Fixed { size, decimal_scale: Some(writer_scale) }, Kind::Decimal { values, precision, scale }) => {
            let unscaled = twos_complement(cursor.take(*size).map_err(at)?).map_err(at)?;
            values.push(scale_integer(unscaled, *writer_scale, *precision, *scale).map_err(at)?);
        }
        (Program::String, Kind::Timestamp(values)) => {
            let text = utf8_string(cursor).map_err(at)?;
            values.push(micros_from_str(text).ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        (Program::String, Kind::Date32(values)) => {
            let text = utf8_string(cursor).map_err(at)?;
            values.push(days_from_str(text).ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        (Program::String, Kind::Decimal { values, precision, scale }) => {
            let text = utf8_string(cursor).map_err(at)?;
            values.push(crate::decimal::parse_decimal(text.trim().as_bytes(), *precision, *scale).map_err(at)?);
        }
        (Program::Enum(symbols), Kind::Utf8 { offsets, data }) => {
            let index = cursor.int().map_err(at)?;
            let symbol = usize::try_from(index)
                .ok()
                .and_then(|i| symbols.get(i))
                .ok_or_else(|| at(Reason::Malformed("Avro enum index out of range")))?;
            data.extend_from_slice(symbol.as_bytes());
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of text")));
            }
        }
        (Program::Array(item_program), Kind::List { offsets, item }) => {
            loop {
                let count = cursor.block_count().map_err(at)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    read_inline(item_program, cursor, item)?;
                }
            }
            if !push_offset(offsets, item.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2^31 list items")));
            }
        }
        (Program::Map(value_program), Kind::Map { offsets, keys, values }) => {
            loop {
                let count = cursor.block_count().map_err(at)?;
                if count == 0 {
                    break;
                }
                for _ in 0..count {
                    let key = utf8_string(cursor).map_err(at)?;
                    if !keys.push_str(key) {
                        return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of map keys")));
                    }
                    read(value_program, cursor, values)?;
                }
            }
            if !push_offset(offsets, keys.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2^31 map entries")));
            }
        }
        (program, _) => {
            // Resolution only pairs programs with columns they fit; anything else is a
            // writer type read into the wrong place, reported rather than trusted.
            let found = match program {
                Program::Boolean => "an Avro boolean",
                Program::Int => "an Avro int",
                Program::Long { .. } => "an Avro long",
                Program::Float => "an Avro float",
                Program::Double => "an Avro double",
                _ => "an Avro value",
            };
            return Err(at(Reason::TypeMismatch { expected: type_name.clone(), found: Found::Avro(found) }));
        }
    }
    Ok(())
}

/// UTF-8 validation with an inline ASCII fast path: most strings are short
/// ASCII, where a library call costs more than the check.
#[inline(always)]
fn is_utf8(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let mut high = 0u64;
    for word in &mut words {
        high |= u64::from_le_bytes(word.try_into().unwrap_or([0xff; 8]));
    }
    for &byte in words.remainder() {
        high |= u64::from(byte);
    }
    high & 0x8080_8080_8080_8080 == 0 || simdutf8::basic::from_utf8(bytes).is_ok()
}

pub(super) fn utf8_string<'a>(cursor: &mut Cursor<'a>) -> Result<&'a str, Reason> {
    let len = cursor.length()?;
    std::str::from_utf8(cursor.take(len)?).map_err(|_| Reason::Malformed("Avro string is not valid UTF-8"))
}

/// A big-endian two's-complement integer of up to 16 bytes.
fn twos_complement(bytes: &[u8]) -> Result<i128, Reason> {
    if bytes.len() > 16 {
        return Err(Reason::OutOfRange("decimal has more than 16 bytes"));
    }
    if bytes.is_empty() {
        return Ok(0);
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 16];
    buf[16 - bytes.len()..].copy_from_slice(bytes);
    Ok(i128::from_be_bytes(buf))
}

/// Rescales an unscaled decimal from `from_scale` to `to_scale` and checks the precision.
fn scale_integer(unscaled: i128, from_scale: u32, precision: u8, to_scale: u8) -> Result<i128, Reason> {
    let shift = u32::from(to_scale).saturating_sub(from_scale);
    let scaled = 10i128
        .checked_pow(shift)
        .and_then(|factor| unscaled.checked_mul(factor))
        .ok_or(Reason::OutOfRange("decimal exceeds its precision"))?;
    if scaled.unsigned_abs() >= 10u128.pow(u32::from(precision.min(38))) {
        return Err(Reason::OutOfRange("decimal exceeds its precision"));
    }
    Ok(scaled)
}

/// Reads past a value the dataset does not keep.
pub(super) fn skip_value(skip: &Skip, cursor: &mut Cursor<'_>) -> Result<(), Reason> {
    match skip {
        Skip::Null => Ok(()),
        Skip::Boolean => cursor.boolean().map(|_| ()),
        Skip::Varint => cursor.long().map(|_| ()),
        Skip::Float => cursor.take(4).map(|_| ()),
        Skip::Double => cursor.take(8).map(|_| ()),
        Skip::Sized => {
            let len = cursor.length()?;
            cursor.take(len).map(|_| ())
        }
        Skip::Fixed(size) => cursor.take(*size).map(|_| ()),
        Skip::Union(branches) => {
            let index = cursor.long()?;
            let branch = usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or(Reason::Malformed("Avro union branch index out of range"))?;
            skip_value(branch, cursor)
        }
        Skip::Record(fields) => fields.iter().try_for_each(|f| skip_value(f, cursor)),
        Skip::Array(item) => loop {
            let count = cursor.block_count()?;
            if count == 0 {
                return Ok(());
            }
            for _ in 0..count {
                skip_value(item, cursor)?;
            }
        },
        Skip::Map(value) => loop {
            let count = cursor.block_count()?;
            if count == 0 {
                return Ok(());
            }
            for _ in 0..count {
                let len = cursor.length()?;
                cursor.take(len)?;
                skip_value(value, cursor)?;
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Avro string: zig-zag length, then the bytes.
    fn avro_string(bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(bytes.len() as u8) << 1];
        out.extend_from_slice(bytes);
        out
    }

    /// Reads one string datum followed by `padding` bytes (so the 16-byte window is there or not).
    fn read_string(bytes: &[u8], padding: usize) -> Result<String, Reason> {
        let mut datum = avro_string(bytes);
        let end = datum.len();
        datum.resize(end + padding, b'x');
        let mut column = Column::metadata_string("s");
        let mut cursor = Cursor::new(&datum);
        read(&Program::String, &mut cursor, &mut column).map_err(|fault| fault.reason)?;
        assert_eq!(cursor.pos, end, "read exactly the string");
        let Kind::Utf8 { offsets, data } = &column.kind else { unreachable!("a string column") };
        assert_eq!(offsets.last().copied(), Some(data.len() as i32));
        Ok(String::from_utf8(data.clone()).expect("stored UTF-8"))
    }

    #[test]
    fn strings_read_the_same_with_and_without_the_short_copy() {
        let cases: [&[u8]; 6] = [
            b"",
            b"US",
            "é😀".as_bytes(),
            b"exactly-16-bytes",
            b"seventeen-bytes!!",
            "ünïcödé-longer-than-16".as_bytes(),
        ];
        for bytes in cases {
            for padding in [0, 20] {
                assert_eq!(read_string(bytes, padding).ok().as_deref(), std::str::from_utf8(bytes).ok(), "{bytes:?}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_refused_on_both_paths() {
        for bytes in [&b"a\xffb"[..], b"\xc3", b"sixteen-bytes-\xff!", b"longer-than-sixteen-\xff"] {
            for padding in [0, 20] {
                assert!(
                    matches!(read_string(bytes, padding), Err(Reason::Malformed(message)) if message.contains("UTF-8")),
                    "{bytes:?} + {padding}"
                );
            }
        }
    }
}
