//! JSON payloads: one object per record, parsed in one pass straight into the
//! dataset's column builders.
//!
//! There is no intermediate tree or tape: the parser walks the bytes once and
//! the schema tells it, for each key, which column the value goes to and what
//! it must be. Keys that are not dataset fields are skipped (still checked for
//! well-formedness). Keys are looked up by first guessing the field that
//! followed the previous one, since producers write keys in a stable order.
//!
//! A record that fails part-way leaves its half-written values behind; the
//! caller undoes them by truncating to the previous row count (see
//! [`crate::columns`]), so a failed record never disturbs its neighbours.

use std::sync::Arc;

use base64::Engine as _;

use crate::columns::{Column, FieldSource, Kind, StructField, push_offset};
use crate::decimal::parse_decimal;
use crate::rejection::{Fault, Found, Reason};
use crate::timestamp::{days_from_str, micros_from_bytes, micros_from_epoch_float, micros_from_epoch_int};

/// Nesting bound for values the schema does not describe (skipped keys), so a
/// hostile payload cannot exhaust the stack.
const MAX_SKIP_DEPTH: u32 = 128;

/// The JSON decoder of one source: its `preproc` references and its reusable state.
#[derive(Debug, Default)]
pub(crate) struct JsonFormat {
    /// `preproc` references into the payload, as a tree of keys from the top level.
    refs: Vec<RefNode>,
    state: JsonState,
}

/// Scratch state reused from record to record.
#[derive(Debug, Default)]
struct JsonState {
    /// Distinguishes objects, so per-struct "seen" marks never need clearing.
    stamp: u64,
    /// Unescaped key or string text when it contains escapes.
    scratch: Vec<u8>,
}

/// One key of a `preproc` reference path: `address[country]` is `address` → `country`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefNode {
    key: Box<[u8]>,
    /// The root field that takes the value found here (at the end of a path).
    target: Option<usize>,
    children: Vec<RefNode>,
}

impl JsonFormat {
    /// Builds the reference tree for root fields fed from nested payload paths.
    /// A path may not end where another path continues. It may start at a key
    /// that is also a dataset field: that value is decoded into the field, then
    /// walked again for the path.
    pub(crate) fn with_refs(refs: &[(usize, Vec<String>)], root: &Column) -> Result<JsonFormat, String> {
        let Kind::Struct { .. } = &root.kind else { return Err("internal: root is not a struct".to_owned()) };
        let mut tree: Vec<RefNode> = Vec::new();
        for (target, path) in refs {
            if path.is_empty() {
                continue;
            }
            let mut level = &mut tree;
            for (depth, key) in path.iter().enumerate() {
                let last = depth + 1 == path.len();
                let index = match level.iter().position(|n| &*n.key == key.as_bytes()) {
                    Some(index) => index,
                    None => {
                        level.push(RefNode { key: key.as_bytes().into(), target: None, children: Vec::new() });
                        level.len() - 1
                    }
                };
                let node = &mut level[index];
                if (last && (!node.children.is_empty() || node.target.is_some())) || (!last && node.target.is_some()) {
                    return Err(format!("preproc refs overlap at `{key}`: one path ends where another continues"));
                }
                if last {
                    node.target = Some(*target);
                }
                level = &mut node.children;
            }
        }
        Ok(JsonFormat { refs: tree, state: JsonState::default() })
    }

    /// Decodes one payload into `root` (a struct column of the dataset's fields).
    pub(crate) fn decode(&mut self, payload: &[u8], root: &mut Column) -> Result<(), Box<Fault>> {
        if simdutf8::basic::from_utf8(payload).is_err() {
            return Err(Fault::record(Reason::Malformed("payload is not valid UTF-8")));
        }
        let mut parser = Parser { bytes: payload, pos: 0 };
        parser.skip_ws();
        match parser.peek() {
            Some(b'{') => {}
            None => return Err(Fault::record(Reason::Malformed("payload is empty"))),
            Some(_) => return Err(Fault::record(Reason::Malformed("payload is not a JSON object"))),
        }
        decode_object(&mut self.state, &mut parser, root, &self.refs)?;
        parser.skip_ws();
        match parser.peek() {
            None => Ok(()),
            Some(b'{') => Err(Fault::record(Reason::Malformed("more than one JSON object in the record"))),
            Some(_) => Err(Fault::record(Reason::Malformed("trailing bytes after the JSON object"))),
        }
    }
}

/// A cursor over one payload. Every method leaves `pos` after what it read.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// A scanned number: its text, and its value when it is an integer that fits in `i64`.
struct Number<'a> {
    text: &'a [u8],
    integer: Option<i64>,
    /// Had a fraction or exponent.
    is_float: bool,
    /// The digits as mantissa × 10^exponent, unless they overflow 64 bits.
    decimal: Option<Decimal>,
}

/// A number's digits as an integer mantissa and a power of ten.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    negative: bool,
    mantissa: u64,
    exponent: i64,
}

impl Decimal {
    /// The nearest `f64` when it can be had from one exact operation (Clinger's
    /// fast path: the mantissa and the power of ten are both exact in an f64,
    /// so the one multiplication or division rounds correctly), else `None`.
    /// Nearly every number a producer writes takes it; the rest are parsed.
    fn fast_f64(self) -> Option<f64> {
        const EXACT_POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
            1e19, 1e20, 1e21, 1e22,
        ];
        if self.mantissa >= 1 << 53 {
            return None;
        }
        let power = *EXACT_POWERS.get(usize::try_from(self.exponent.unsigned_abs()).ok()?)?;
        let magnitude = self.mantissa as f64;
        let value = if self.exponent < 0 { magnitude / power } else { magnitude * power };
        Some(if self.negative { -value } else { value })
    }
}

const TRUNCATED: Reason = Reason::Malformed("payload ends inside a value (truncated)");

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline]
    fn next_token(&mut self) -> Result<u8, Reason> {
        self.skip_ws();
        self.peek().ok_or(TRUNCATED)
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Reason> {
        match self.bytes.get(self.pos..self.pos + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            Some(_) => Err(Reason::Malformed("invalid literal (expected true, false or null)")),
            None => Err(TRUNCATED),
        }
    }

    /// Scans a JSON number.
    fn number(&mut self) -> Result<Number<'a>, Reason> {
        const BAD: Reason = Reason::Malformed("invalid number");
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let (mut magnitude, mut overflow) = (0u64, false);
        let int_digits = self.digits_into(&mut magnitude, &mut overflow);
        if int_digits == 0 {
            return Err(if self.pos >= self.bytes.len() { TRUNCATED } else { BAD });
        }
        if int_digits > 1 && self.bytes[digits_start] == b'0' {
            return Err(Reason::Malformed("invalid number (leading zero)"));
        }
        let mut is_float = false;
        let mut exponent: i64 = 0;
        if self.peek() == Some(b'.') {
            is_float = true;
            self.pos += 1;
            // Fraction digits join the mantissa: `12.34` is 1234e-2.
            let fraction_digits = self.digits_into(&mut magnitude, &mut overflow);
            if fraction_digits == 0 {
                return Err(if self.pos >= self.bytes.len() { TRUNCATED } else { BAD });
            }
            exponent = -(fraction_digits as i64);
        }
        if let Some(b'e' | b'E') = self.peek() {
            is_float = true;
            self.pos += 1;
            let negative_exponent = self.peek() == Some(b'-');
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            let exponent_start = self.pos;
            self.required_digits()?;
            let written = self.bytes[exponent_start..self.pos]
                .iter()
                .fold(0i64, |value, &digit| value.saturating_mul(10).saturating_add(i64::from(digit - b'0')));
            exponent = exponent.saturating_add(if negative_exponent { -written } else { written });
        }
        let integer = if is_float || overflow {
            None
        } else if negative {
            // -(2^63) fits though 2^63 does not.
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        let decimal = (!overflow).then_some(Decimal { negative, mantissa: magnitude, exponent });
        Ok(Number { text: &self.bytes[start..self.pos], integer, is_float, decimal })
    }

    /// Reads digits onto `magnitude` (noting when it overflows 64 bits); returns how many.
    #[inline]
    fn digits_into(&mut self, magnitude: &mut u64, overflow: &mut bool) -> usize {
        let start = self.pos;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            match magnitude.checked_mul(10).and_then(|m| m.checked_add(u64::from(b - b'0'))) {
                Some(m) => *magnitude = m,
                None => *overflow = true,
            }
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips one or more digits (a fraction or an exponent).
    fn required_digits(&mut self) -> Result<(), Reason> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        match self.pos > start {
            true => Ok(()),
            false if self.pos >= self.bytes.len() => Err(TRUNCATED),
            false => Err(Reason::Malformed("invalid number")),
        }
    }

    /// Reads a string (at its opening quote). Returns the raw slice when it has
    /// no escapes, else unescapes into `scratch` and returns `None`.
    fn string(&mut self, scratch: &mut Vec<u8>) -> Result<Option<&'a [u8]>, Reason> {
        self.pos += 1;
        let start = self.pos;
        let end = self.scan_plain();
        match self.bytes.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Some(&self.bytes[start..end]))
            }
            Some(b'\\') => {
                scratch.clear();
                scratch.extend_from_slice(&self.bytes[start..end]);
                self.pos = end;
                self.string_rest_into(scratch)?;
                Ok(None)
            }
            Some(_) => Err(Reason::Malformed("control character inside a string")),
            None => Err(TRUNCATED),
        }
    }

    /// Appends a string's unescaped content (at its opening quote) to `out`.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Result<(), Reason> {
        self.pos += 1;
        self.string_rest_into(out)
    }

    /// The first index from `pos` holding a quote, a backslash or a control character.
    #[inline]
    fn scan_plain(&self) -> usize {
        let mut pos = self.pos;
        // Eight bytes at a time; the lowest flagged byte of a word is the first special one.
        while let Some(chunk) = self.bytes.get(pos..pos + 8) {
            let mask = special_bytes(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
            if mask != 0 {
                return pos + (mask.trailing_zeros() / 8) as usize;
            }
            pos += 8;
        }
        let rest = &self.bytes[pos..];
        pos + rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(rest.len())
    }

    fn string_rest_into(&mut self, out: &mut Vec<u8>) -> Result<(), Reason> {
        loop {
            let end = self.scan_plain();
            out.extend_from_slice(&self.bytes[self.pos..end]);
            self.pos = end;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => self.escape_into(out)?,
                Some(_) => return Err(Reason::Malformed("control character inside a string")),
                None => return Err(TRUNCATED),
            }
        }
    }

    fn escape_into(&mut self, out: &mut Vec<u8>) -> Result<(), Reason> {
        let Some(&kind) = self.bytes.get(self.pos + 1) else { return Err(TRUNCATED) };
        self.pos += 2;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let first = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate must be followed by `\u` and a low one.
                    if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(Reason::Malformed("unpaired surrogate in a \\u escape"));
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(Reason::Malformed("unpaired surrogate in a \\u escape"));
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else if (0xDC00..0xE000).contains(&first) {
                    return Err(Reason::Malformed("unpaired surrogate in a \\u escape"));
                } else {
                    first
                };
                let c = char::from_u32(code).ok_or(Reason::Malformed("invalid \\u escape"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return Ok(());
            }
            _ => return Err(Reason::Malformed("invalid escape in a string")),
        };
        out.push(byte);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Reason> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(TRUNCATED)?;
        let mut value = 0u32;
        for &d in digits {
            let nibble = (d as char).to_digit(16).ok_or(Reason::Malformed("invalid \\u escape"))?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// Skips one value of any kind, checking it is well-formed.
    fn skip_value(&mut self, scratch: &mut Vec<u8>, depth: u32) -> Result<(), Reason> {
        if depth > MAX_SKIP_DEPTH {
            return Err(Reason::Malformed("values nest too deeply"));
        }
        match self.next_token()? {
            b'"' => self.string(scratch).map(|_| ()),
            b'{' => {
                self.pos += 1;
                if self.next_token()? == b'}' {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if self.next_token()? != b'"' {
                        return Err(Reason::Malformed("expected a string key"));
                    }
                    self.string(scratch)?;
                    self.colon()?;
                    self.skip_value(scratch, depth + 1)?;
                    if self.object_continues()? {
                        continue;
                    }
                    return Ok(());
                }
            }
            b'[' => {
                self.pos += 1;
                if self.next_token()? == b']' {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(scratch, depth + 1)?;
                    if self.array_continues()? {
                        continue;
                    }
                    return Ok(());
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => Err(Reason::Malformed("expected a JSON value")),
        }
    }

    /// At a key's opening quote: consumes the key when it is exactly
    /// `quoted_key` (a name and its closing quote), without unescaping.
    #[inline]
    fn key_is(&mut self, quoted_key: &[u8]) -> bool {
        let start = self.pos + 1;
        match self.bytes.get(start..start + quoted_key.len()) {
            Some(candidate) if short_eq(candidate, quoted_key) => {
                self.pos = start + quoted_key.len();
                true
            }
            _ => false,
        }
    }

    fn colon(&mut self) -> Result<(), Reason> {
        if self.next_token()? != b':' {
            return Err(Reason::Malformed("expected `:` after an object key"));
        }
        self.pos += 1;
        Ok(())
    }

    /// After an object member: `true` on `,`, `false` on `}` (consumed).
    #[inline]
    fn object_continues(&mut self) -> Result<bool, Reason> {
        self.continues(b'}', "expected `,` or `}` in an object")
    }

    /// After an array element: `true` on `,`, `false` on `]` (consumed).
    #[inline]
    fn array_continues(&mut self) -> Result<bool, Reason> {
        self.continues(b']', "expected `,` or `]` in an array")
    }

    #[inline]
    fn continues(&mut self, close: u8, otherwise: &'static str) -> Result<bool, Reason> {
        let next = self.next_token()?;
        if next == b',' || next == close {
            self.pos += 1;
            Ok(next == b',')
        } else {
            Err(Reason::Malformed(otherwise))
        }
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Flags (high bit of each byte) the bytes of `word` that are `"`, `\\` or below
/// 0x20, eight at once, with the classic "has zero byte" / "has byte less than"
/// tricks. A borrow can flag a byte above a special one, never below it, so the
/// lowest flag is exact.
#[inline]
fn special_bytes(word: u64) -> u64 {
    let quote = word ^ (LOW_BITS * u64::from(b'"'));
    let backslash = word ^ (LOW_BITS * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS;
    let below_0x20 = word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS;
    zero_byte(quote) | zero_byte(backslash) | below_0x20
}

fn found(first: u8) -> Found {
    match first {
        b'"' => Found::String,
        b'{' => Found::Object,
        b'[' => Found::Array,
        b't' | b'f' => Found::Bool,
        b'n' => Found::Null,
        _ => Found::Number,
    }
}

fn mismatch(path: &Arc<str>, type_name: &Arc<str>, first: u8) -> Box<Fault> {
    Fault::new(Reason::TypeMismatch { expected: type_name.clone(), found: found(first) }, path)
}

/// Decodes the value at the cursor into `column` (one row of it).
fn decode_value(state: &mut JsonState, parser: &mut Parser<'_>, column: &mut Column) -> Result<(), Box<Fault>> {
    let first = parser.next_token().map_err(|r| Fault::new(r, &column.path))?;
    if first == b'n' {
        parser.literal(b"null").map_err(|r| Fault::new(r, &column.path))?;
        if !column.nullable {
            return Err(Fault::new(Reason::NullNotAllowed, &column.path));
        }
        column.push_null();
        return Ok(());
    }
    if first == b'{' && matches!(column.kind, Kind::Struct { .. }) {
        // Marks its own validity.
        return decode_object(state, parser, column, &[]);
    }
    let is_number = first == b'-' || first.is_ascii_digit();
    let (path, type_name) = (&column.path, &column.type_name);
    let at = |reason: Reason| Fault::new(reason, path);
    match &mut column.kind {
        Kind::Bool(values) => match first {
            b't' => {
                parser.literal(b"true").map_err(&at)?;
                values.append(true);
            }
            b'f' => {
                parser.literal(b"false").map_err(&at)?;
                values.append(false);
            }
            _ => return Err(mismatch(path, type_name, first)),
        },
        Kind::Int32(values) if is_number => {
            let number = parser.number().map_err(&at)?;
            let value = integer(&number, path, type_name)?;
            let value = i32::try_from(value).map_err(|_| at(Reason::OutOfRange("integer does not fit in int32")))?;
            values.push(value);
        }
        Kind::Int64(values) if is_number => {
            let number = parser.number().map_err(&at)?;
            let value = integer(&number, path, type_name)?;
            values.push(value);
        }
        Kind::Float64(values) if is_number => {
            let number = parser.number().map_err(&at)?;
            let value = match number.integer {
                // Integers up to 2^53 convert exactly; larger ones round as parsing would.
                Some(i) if i.unsigned_abs() < (1 << 53) => i as f64,
                _ => match number.decimal.and_then(Decimal::fast_f64) {
                    Some(value) => value,
                    None => parse_text::<f64>(number.text).ok_or_else(|| at(Reason::Malformed("invalid number")))?,
                },
            };
            if !value.is_finite() {
                return Err(at(Reason::OutOfRange("number does not fit in float64")));
            }
            values.push(value);
        }
        Kind::Float32(values) if is_number => {
            let number = parser.number().map_err(&at)?;
            let value = parse_text::<f32>(number.text).ok_or_else(|| at(Reason::Malformed("invalid number")))?;
            if !value.is_finite() {
                return Err(at(Reason::OutOfRange("number does not fit in float32")));
            }
            values.push(value);
        }
        Kind::Utf8 { offsets, data } if first == b'"' => {
            parser.string_into(data).map_err(&at)?;
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of text")));
            }
        }
        Kind::Binary { offsets, data } if first == b'"' => {
            let text = match parser.string(&mut state.scratch).map_err(&at)? {
                Some(raw) => raw,
                None => state.scratch.as_slice(),
            };
            let before = data.len();
            if base64::engine::general_purpose::STANDARD.decode_vec(text, data).is_err() {
                data.truncate(before);
                return Err(at(Reason::TypeMismatch { expected: "bytes (base64)".into(), found: Found::String }));
            }
            if !push_offset(offsets, data.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2 GiB of bytes")));
            }
        }
        Kind::Timestamp(values) if first == b'"' || is_number => {
            let micros = if is_number {
                let number = parser.number().map_err(&at)?;
                match number.integer {
                    Some(i) => micros_from_epoch_int(i),
                    None => number
                        .decimal
                        .and_then(Decimal::fast_f64)
                        .or_else(|| parse_text::<f64>(number.text))
                        .and_then(micros_from_epoch_float),
                }
            } else {
                micros_from_bytes(string_text(&mut state.scratch, parser, path)?)
            };
            values.push(micros.ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        Kind::Date32(values) if first == b'"' || is_number => {
            let days = if is_number {
                let number = parser.number().map_err(&at)?;
                number.integer.and_then(|i| i32::try_from(i).ok())
            } else {
                let text = string_text(&mut state.scratch, parser, path)?;
                std::str::from_utf8(text).ok().and_then(days_from_str)
            };
            values.push(days.ok_or_else(|| at(Reason::BadTimestamp))?);
        }
        Kind::Decimal { values, precision, scale } if first == b'"' || is_number => {
            let (precision, scale) = (*precision, *scale);
            let parsed = if is_number {
                let number = parser.number().map_err(&at)?;
                parse_decimal(number.text, precision, scale)
            } else {
                let text = string_text(&mut state.scratch, parser, path)?;
                parse_decimal(text.trim_ascii(), precision, scale)
            };
            match parsed {
                Ok(value) => values.push(value),
                Err(reason) => return Err(at(reason)),
            }
        }
        Kind::List { offsets, item } if first == b'[' => {
            parser.pos += 1;
            if parser.next_token().map_err(|r| Fault::new(r, &item.path))? == b']' {
                parser.pos += 1;
            } else {
                loop {
                    decode_value(state, parser, item)?;
                    if !parser.array_continues().map_err(|r| Fault::new(r, &item.path))? {
                        break;
                    }
                }
            }
            if !push_offset(offsets, item.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2^31 list items")));
            }
        }
        Kind::Map { offsets, keys, values } if first == b'{' => {
            parser.pos += 1;
            if parser.next_token().map_err(|r| Fault::new(r, &keys.path))? == b'}' {
                parser.pos += 1;
            } else {
                loop {
                    if parser.next_token().map_err(|r| Fault::new(r, &keys.path))? != b'"' {
                        return Err(Fault::new(Reason::Malformed("expected a string key"), &keys.path));
                    }
                    decode_value(state, parser, keys)?;
                    parser.colon().map_err(|r| Fault::new(r, &values.path))?;
                    decode_value(state, parser, values)?;
                    if !parser.object_continues().map_err(|r| Fault::new(r, &values.path))? {
                        break;
                    }
                }
            }
            if !push_offset(offsets, keys.len()) {
                return Err(at(Reason::OutOfRange("batch holds more than 2^31 map entries")));
            }
        }
        _ => return Err(mismatch(path, type_name, first)),
    }
    column.mark_valid();
    Ok(())
}

fn integer(number: &Number<'_>, path: &Arc<str>, type_name: &Arc<str>) -> Result<i64, Box<Fault>> {
    match number.integer {
        Some(value) => Ok(value),
        None if number.is_float => {
            Err(Fault::new(Reason::TypeMismatch { expected: type_name.clone(), found: Found::FractionalNumber }, path))
        }
        None => Err(Fault::new(Reason::OutOfRange("integer does not fit in int64"), path)),
    }
}

fn parse_text<T: std::str::FromStr>(text: &[u8]) -> Option<T> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A string value's text: borrowed from the payload when it has no escapes,
/// else unescaped into `scratch`.
fn string_text<'s, 'a: 's>(
    scratch: &'s mut Vec<u8>,
    parser: &mut Parser<'a>,
    path: &Arc<str>,
) -> Result<&'s [u8], Box<Fault>> {
    match parser.string(scratch).map_err(|r| Fault::new(r, path))? {
        Some(raw) => Ok(raw),
        None => Ok(scratch.as_slice()),
    }
}

/// Decodes an object (at `{`) into a struct column: each known key into its
/// field, unknown keys skipped (or followed, when `refs` names them), constants
/// filled in, absent optional fields null.
fn decode_object(
    state: &mut JsonState,
    parser: &mut Parser<'_>,
    column: &mut Column,
    refs: &[RefNode],
) -> Result<(), Box<Fault>> {
    let Column { kind, path, nulls, .. } = column;
    let at = |reason: Reason| Fault::new(reason, path);
    let Kind::Struct { fields, first_key } = kind else {
        return Err(at(Reason::Malformed("internal: object decoded into a non-struct column")));
    };
    state.stamp += 1;
    let stamp = state.stamp;
    parser.pos += 1;
    let mut guess = *first_key;
    let mut previous: Option<usize> = None;
    // Fields set from their own keys (each at most once), and whether a `preproc` path was followed.
    let (mut filled, mut followed) = (0usize, false);
    if parser.next_token().map_err(at)? == b'}' {
        parser.pos += 1;
    } else {
        loop {
            if parser.next_token().map_err(at)? != b'"' {
                return Err(at(Reason::Malformed("expected a string key")));
            }
            // Producers write keys in a stable order: try the expected key in place first.
            if let Some(field) = fields.get_mut(guess)
                && field.source == FieldSource::Key
                && parser.key_is(&field.quoted_key)
            {
                parser.colon().map_err(at)?;
                let start = parser.pos;
                decode_field(state, parser, field, stamp)?;
                let next_key = field.next_key;
                if !refs.is_empty() {
                    followed |= follow_ref_again(state, parser, fields, refs, guess, start, stamp, path)?;
                }
                filled += 1;
                previous = Some(guess);
                guess = next_key;
                if !parser.object_continues().map_err(at)? {
                    break;
                }
                continue;
            }
            let (index, ref_node) = {
                let key = match parser.string(&mut state.scratch).map_err(at)? {
                    Some(raw) => raw,
                    None => state.scratch.as_slice(),
                };
                match find_field(fields, key, guess) {
                    Some(index) => (Some(index), None),
                    None => (None, refs.iter().find(|n| &*n.key == key)),
                }
            };
            parser.colon().map_err(at)?;
            match (index, ref_node) {
                (Some(index), _) => {
                    let start = parser.pos;
                    decode_field(state, parser, &mut fields[index], stamp)?;
                    if !refs.is_empty() {
                        followed |= follow_ref_again(state, parser, fields, refs, index, start, stamp, path)?;
                    }
                    filled += 1;
                    // Learn the producer's order for the next object.
                    match previous {
                        Some(before) => fields[before].next_key = index,
                        None => *first_key = index,
                    }
                    previous = Some(index);
                    guess = fields[index].next_key;
                }
                (None, Some(node)) => {
                    followed = true;
                    follow_ref(state, parser, fields, node, stamp, path)?;
                }
                (None, None) => parser.skip_value(&mut state.scratch, 0).map_err(at)?,
            }
            if !parser.object_continues().map_err(at)? {
                break;
            }
        }
    }
    // Every field came from its own key: none is absent and no constant is due.
    if followed || filled != fields.len() {
        fill_the_rest(state, fields, stamp)?;
    }
    nulls.append_non_null();
    Ok(())
}

/// After the value of dataset field `index` (which began at `start`) was
/// decoded into it: when a `preproc` path also starts at its key, walks the
/// same bytes again for that path. `true` when it did.
#[allow(clippy::too_many_arguments)]
fn follow_ref_again(
    state: &mut JsonState,
    parser: &Parser<'_>,
    fields: &mut [StructField],
    refs: &[RefNode],
    index: usize,
    start: usize,
    stamp: u64,
    path: &Arc<str>,
) -> Result<bool, Box<Fault>> {
    let key = fields[index].name.as_bytes();
    let Some(node) = refs.iter().find(|node| &*node.key == key) else { return Ok(false) };
    let mut again = Parser { bytes: &parser.bytes[start..parser.pos], pos: 0 };
    follow_ref(state, &mut again, fields, node, stamp, path)?;
    Ok(true)
}

/// Decodes a `preproc` constant (JSON text) into `column`: how other formats
/// fill their constant fields too.
pub(crate) fn decode_constant(text: &[u8], column: &mut Column) -> Result<(), Box<Fault>> {
    let mut constant = Parser { bytes: text, pos: 0 };
    decode_value(&mut JsonState::default(), &mut constant, column)
}

/// After an object: constants decoded, absent optional fields null, an absent
/// required field an error.
fn fill_the_rest(state: &mut JsonState, fields: &mut [StructField], stamp: u64) -> Result<(), Box<Fault>> {
    for field in fields.iter_mut() {
        if let FieldSource::Constant(text) = &field.source {
            let text = Arc::clone(text);
            let mut constant = Parser { bytes: &text, pos: 0 };
            decode_value(state, &mut constant, &mut field.column)?;
            continue;
        }
        if field.seen != stamp {
            if !field.column.nullable {
                return Err(Fault::new(Reason::MissingField, &field.column.path));
            }
            field.column.push_null();
        }
    }
    Ok(())
}

/// Decodes a field's value, refusing a second value for the same object.
#[inline]
fn decode_field(
    state: &mut JsonState,
    parser: &mut Parser<'_>,
    field: &mut StructField,
    stamp: u64,
) -> Result<(), Box<Fault>> {
    if field.seen == stamp {
        return Err(Fault::new(Reason::Malformed("the same key appears twice in an object"), &field.column.path));
    }
    field.seen = stamp;
    decode_value(state, parser, &mut field.column)
}

/// Follows a `preproc` reference into the value at the cursor: the value at the
/// end of a path feeds its field; a path that meets a non-object is absent.
fn follow_ref(
    state: &mut JsonState,
    parser: &mut Parser<'_>,
    fields: &mut [StructField],
    node: &RefNode,
    stamp: u64,
    path: &Arc<str>,
) -> Result<(), Box<Fault>> {
    let at = |reason: Reason| Fault::new(reason, path);
    if let Some(target) = node.target {
        return decode_field(state, parser, &mut fields[target], stamp);
    }
    if parser.next_token().map_err(at)? != b'{' {
        return parser.skip_value(&mut state.scratch, 0).map_err(at);
    }
    parser.pos += 1;
    if parser.next_token().map_err(at)? == b'}' {
        parser.pos += 1;
        return Ok(());
    }
    loop {
        if parser.next_token().map_err(at)? != b'"' {
            return Err(at(Reason::Malformed("expected a string key")));
        }
        let child = {
            let key = match parser.string(&mut state.scratch).map_err(at)? {
                Some(raw) => raw,
                None => state.scratch.as_slice(),
            };
            node.children.iter().find(|n| &*n.key == key)
        };
        parser.colon().map_err(at)?;
        match child {
            Some(child) => follow_ref(state, parser, fields, child, stamp, path)?,
            None => parser.skip_value(&mut state.scratch, 0).map_err(at)?,
        }
        if !parser.object_continues().map_err(at)? {
            return Ok(());
        }
    }
}

#[inline]
fn find_field(fields: &[StructField], key: &[u8], guess: usize) -> Option<usize> {
    if let Some(field) = fields.get(guess)
        && same_key(field.name.as_bytes(), key)
        && field.source == FieldSource::Key
    {
        return Some(guess);
    }
    fields.iter().position(|f| same_key(f.name.as_bytes(), key) && f.source == FieldSource::Key)
}

/// Key equality without a `memcmp` call: keys are short, and the call costs
/// more than the comparison.
#[inline(always)]
fn same_key(name: &[u8], key: &[u8]) -> bool {
    short_eq(name, key)
}

/// Equality of short byte strings with at most two overlapping word loads per side.
#[inline(always)]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word4 = |s: &[u8], i: usize| s.get(i..i + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
    let word8 = |s: &[u8], i: usize| s.get(i..i + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parsed(text: &str) -> Number<'_> {
        let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
        parser.number().expect("a JSON number")
    }

    proptest! {
        /// The fast path gives what parsing gives, bit for bit, whenever it answers.
        #[test]
        fn fast_floats_are_the_parsed_floats(
            negative in any::<bool>(),
            int in "(0|[1-9][0-9]{0,19})",
            fraction in proptest::option::of("[0-9]{1,20}"),
            exponent in proptest::option::of((any::<bool>(), 0u32..40)),
        ) {
            let mut text = format!("{}{int}", if negative { "-" } else { "" });
            if let Some(fraction) = &fraction {
                text.push('.');
                text.push_str(fraction);
            }
            if let Some((negative, power)) = exponent {
                text.push_str(if negative { "e-" } else { "E+" });
                text.push_str(&power.to_string());
            }
            let expected: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            if let Some(fast) = parsed(&text).decimal.and_then(Decimal::fast_f64) {
                prop_assert_eq!(fast.to_bits(), expected.to_bits(), "{}", text);
            }
        }
    }

    #[test]
    fn everyday_numbers_take_the_fast_path() {
        for (text, value) in [("0.00", 0.0), ("1.01", 1.01), ("-2.5e3", -2500.0), ("1717243200.123", 1_717_243_200.123)]
        {
            assert_eq!(parsed(text).decimal.and_then(Decimal::fast_f64), Some(value), "{text}");
        }
        assert_eq!(parsed("-0.0").decimal.and_then(Decimal::fast_f64).map(f64::to_bits), Some((-0.0f64).to_bits()));
        // 2^53 + 1 digits, or powers past 10^22, are left to the parser.
        assert!(parsed("9007199254740993").decimal.and_then(Decimal::fast_f64).is_none());
        assert!(parsed("1e23").decimal.and_then(Decimal::fast_f64).is_none());
        assert!(parsed("123456789012345678901").decimal.is_none(), "past 64 bits");
    }

    #[test]
    fn short_eq_matches_slice_equality() {
        let words: [&[u8]; 9] =
            [b"", b"a", b"ab", b"abc", b"abcd", b"abcdefg", b"abcdefgh", b"abcdefghijklmnop", b"abcdefghijklmnopq"];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} {b:?}");
                let mut changed = b.to_vec();
                for i in 0..changed.len() {
                    changed[i] ^= 1;
                    assert_eq!(short_eq(a, &changed), a == changed.as_slice());
                    changed[i] ^= 1;
                }
            }
        }
    }

    #[test]
    fn special_byte_detection_matches_the_byte_loop() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Bias bytes towards the interesting values.
            let bytes = state.to_le_bytes().map(|b| match b % 7 {
                0 => b'"',
                1 => b'\\',
                2 => b % 0x20,
                _ => b | 0x20,
            });
            let first = |bytes: &[u8; 8]| bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let found = |bytes: [u8; 8]| {
                let mask = special_bytes(u64::from_le_bytes(bytes));
                (mask != 0).then(|| (mask.trailing_zeros() / 8) as usize)
            };
            assert_eq!(found(bytes), first(&bytes), "{bytes:?}");
            let plain = state.to_le_bytes().map(|b| (b % 0x5b).max(0x20).max(b'#'));
            assert_eq!(found(plain), first(&plain), "{plain:?}");
        }
    }
}
