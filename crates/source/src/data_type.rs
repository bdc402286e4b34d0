//! Dataset field types and their string grammar.
//!
//! Canonical spellings are lower-case and angle-bracketed (`optional<int64>`,
//! `map<string, float64>`, `struct<id: int64>`, `decimal(10, 2)`); Fennel's
//! spellings are accepted as aliases (`int`, `float`, `str`, `datetime`,
//! `Optional[T]`, `List[T]`, `Dict[str, T]`). Type names are matched without
//! regard to case. [`DataType`]'s `Display` is the canonical spelling, so a
//! parsed type prints back in one normal form.

use std::fmt;

use tributary_proto::v1 as proto;

use crate::error::ParseError;

/// The largest decimal precision (Arrow's `Decimal128`).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// A dataset field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataType {
    /// `bool`
    Bool,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `float32`
    Float32,
    /// `float64`
    Float64,
    /// `string`, UTF-8
    String,
    /// `bytes`
    Bytes,
    /// `date`, a calendar day
    Date,
    /// `timestamp`, an instant in UTC
    Timestamp,
    /// `decimal(precision, scale)`
    Decimal {
        /// Total digits, 1..=38.
        precision: u8,
        /// Digits after the point, `<= precision`.
        scale: u8,
    },
    /// `optional<T>`: may be null or absent. Never nests.
    Optional(Box<DataType>),
    /// `list<T>`
    List(Box<DataType>),
    /// `map<string, T>`: keys are always strings.
    Map(Box<DataType>),
    /// `struct<name: T, ...>`
    Struct(Vec<Field>),
}

/// A named, typed field of a dataset or of a struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// The field's type.
    pub data_type: DataType,
}

impl DataType {
    /// Wraps `self` in `optional<>` unless it already is optional.
    pub fn optional(self) -> DataType {
        match self {
            DataType::Optional(_) => self,
            other => DataType::Optional(Box::new(other)),
        }
    }

    /// Whether the value may be null.
    pub fn is_optional(&self) -> bool {
        matches!(self, DataType::Optional(_))
    }

    /// The type without its `optional<>` wrapper.
    pub fn non_null(&self) -> &DataType {
        match self {
            DataType::Optional(inner) => inner,
            other => other,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float32 => f.write_str("float32"),
            DataType::Float64 => f.write_str("float64"),
            DataType::String => f.write_str("string"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Date => f.write_str("date"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::Decimal { precision, scale } => write!(f, "decimal({precision}, {scale})"),
            DataType::Optional(inner) => write!(f, "optional<{inner}>"),
            DataType::List(inner) => write!(f, "list<{inner}>"),
            DataType::Map(inner) => write!(f, "map<string, {inner}>"),
            DataType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", field.name, field.data_type)?;
                }
                f.write_str(">")
            }
        }
    }
}

const KNOWN_TYPES: &str = "bool, int32, int64, float32, float64, string, bytes, date, timestamp, decimal(p, s), \
optional<T>, list<T>, map<string, T>, struct<name: T, ...> (or Fennel's int, float, str, datetime, Optional[T], List[T], Dict[str, T])";

/// How deeply types may nest (`list<list<...>>`): parsing, conversion,
/// display and `Drop` all recurse once per level.
pub(crate) const MAX_TYPE_DEPTH: usize = 32;

fn too_deep() -> ParseError {
    ParseError::TooComplex(format!("the type nests deeper than {MAX_TYPE_DEPTH} levels"))
}

/// Parses a type string; the error names the offending part and lists the known types.
pub fn parse_data_type(text: &str) -> Result<DataType, ParseError> {
    let mut parser = TypeParser { text, pos: 0, depth: 0 };
    let parsed = parser.parse_type()?;
    parser.skip_space();
    if parser.pos < text.len() {
        return Err(format!("unexpected `{}` after `{}` in `{text}`", &text[parser.pos..], &text[..parser.pos]).into());
    }
    Ok(parsed)
}

/// A recursive-descent parser over the type grammar; positions are byte offsets.
struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
    /// Type arguments open around the current position.
    depth: usize,
}

impl TypeParser<'_> {
    fn skip_space(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.pos..].chars().next()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, expected: char) -> Result<(), String> {
        if self.eat(expected) {
            return Ok(());
        }
        let found = match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "the end".to_owned(),
        };
        Err(format!("expected `{expected}` at position {} of `{}`, found {found}", self.pos, self.text))
    }

    fn word(&mut self) -> &str {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn number(&mut self) -> Result<u8, String> {
        let text = self.text;
        let word = self.word();
        word.parse::<u8>().map_err(|_| format!("expected a number from 0 to 255 in `{text}`, found `{word}`"))
    }

    /// Reads the opening bracket of a type's arguments, `<` or `[`, and
    /// returns the matching closer.
    fn open_args(&mut self, name: &str) -> Result<char, String> {
        if self.eat('<') {
            Ok('>')
        } else if self.eat('[') {
            Ok(']')
        } else {
            Err(format!("`{name}` needs a type argument, e.g. `{name}<string>`, in `{}`", self.text))
        }
    }

    fn parse_type(&mut self) -> Result<DataType, ParseError> {
        if self.depth >= MAX_TYPE_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        let parsed = self.parse_one_type();
        self.depth -= 1;
        parsed
    }

    fn parse_one_type(&mut self) -> Result<DataType, ParseError> {
        let start = self.pos;
        let word = self.word().to_owned();
        if word.is_empty() {
            return Err(match self.peek() {
                None => format!("missing type in `{}`; known types: {KNOWN_TYPES}", self.text),
                Some(c) => format!("unexpected `{c}` at position {} of `{}`", self.pos, self.text),
            }
            .into());
        }
        let lower = word.to_ascii_lowercase();
        let parsed = match lower.as_str() {
            "bool" | "boolean" => DataType::Bool,
            "int32" => DataType::Int32,
            "int64" | "int" => DataType::Int64,
            "float32" => DataType::Float32,
            "float64" | "float" => DataType::Float64,
            "string" | "str" => DataType::String,
            "bytes" => DataType::Bytes,
            "date" => DataType::Date,
            "timestamp" | "datetime" => DataType::Timestamp,
            "decimal" => self.parse_decimal_args()?,
            "optional" => {
                let close = self.open_args(&word)?;
                let inner = self.parse_type()?;
                self.expect(close)?;
                inner.optional()
            }
            "list" => {
                let close = self.open_args(&word)?;
                let inner = self.parse_type()?;
                self.expect(close)?;
                DataType::List(Box::new(inner))
            }
            "map" | "dict" => {
                let close = self.open_args(&word)?;
                let key_start = self.pos;
                let key = self.parse_type()?;
                if key != DataType::String {
                    let key_text = self.text[key_start..self.pos].trim();
                    return Err(format!("map keys must be `string`, found `{key_text}` in `{}`", self.text).into());
                }
                self.expect(',')?;
                let value = self.parse_type()?;
                self.expect(close)?;
                DataType::Map(Box::new(value))
            }
            "struct" => self.parse_struct_fields()?,
            _ => {
                return Err(if start == 0 && self.peek().is_none() {
                    format!("unknown type `{word}`; known types: {KNOWN_TYPES}")
                } else {
                    format!("unknown type `{word}` in `{}`; known types: {KNOWN_TYPES}", self.text)
                }
                .into());
            }
        };
        Ok(parsed)
    }

    fn parse_decimal_args(&mut self) -> Result<DataType, String> {
        let close = match self.peek() {
            Some('(') => ')',
            Some('<') => '>',
            Some('[') => ']',
            _ => {
                return Err(format!(
                    "`decimal` needs a precision and scale, e.g. `decimal(10, 2)`, in `{}`",
                    self.text
                ));
            }
        };
        self.pos += 1;
        let precision = self.number()?;
        self.expect(',')?;
        let scale = self.number()?;
        self.expect(close)?;
        if precision == 0 || precision > MAX_DECIMAL_PRECISION {
            return Err(format!("decimal precision {precision} is outside 1..={MAX_DECIMAL_PRECISION}"));
        }
        if scale > precision {
            return Err(format!("decimal scale {scale} is larger than its precision {precision}"));
        }
        Ok(DataType::Decimal { precision, scale })
    }

    fn parse_struct_fields(&mut self) -> Result<DataType, ParseError> {
        let close = self.open_args("struct")?;
        let mut fields: Vec<Field> = Vec::new();
        loop {
            let name = self.word().to_owned();
            if name.is_empty() {
                return Err(format!("expected a field name at position {} of `{}`", self.pos, self.text).into());
            }
            if fields.iter().any(|f| f.name == name) {
                return Err(format!("struct field `{name}` appears twice in `{}`", self.text).into());
            }
            self.expect(':')?;
            let data_type = self.parse_type()?;
            fields.push(Field { name, data_type });
            if self.eat(close) {
                return Ok(DataType::Struct(fields));
            }
            self.expect(',')?;
        }
    }
}

/// Why a proto [`proto::DataType`] is not a valid type.
pub(crate) fn from_proto(data_type: &proto::DataType) -> Result<DataType, ParseError> {
    from_proto_at(data_type, 0)
}

fn from_proto_at(data_type: &proto::DataType, depth: usize) -> Result<DataType, ParseError> {
    use proto::data_type::Kind;
    if depth >= MAX_TYPE_DEPTH {
        return Err(too_deep());
    }
    let Some(kind) = &data_type.kind else {
        return Err("type is empty".to_owned().into());
    };
    Ok(match kind {
        Kind::Primitive(value) => match proto::PrimitiveType::try_from(*value) {
            Ok(proto::PrimitiveType::Bool) => DataType::Bool,
            Ok(proto::PrimitiveType::Int32) => DataType::Int32,
            Ok(proto::PrimitiveType::Int64) => DataType::Int64,
            Ok(proto::PrimitiveType::Float32) => DataType::Float32,
            Ok(proto::PrimitiveType::Float64) => DataType::Float64,
            Ok(proto::PrimitiveType::String) => DataType::String,
            Ok(proto::PrimitiveType::Bytes) => DataType::Bytes,
            Ok(proto::PrimitiveType::Date) => DataType::Date,
            Ok(proto::PrimitiveType::Timestamp) => DataType::Timestamp,
            Ok(proto::PrimitiveType::Unspecified) | Err(_) => {
                return Err(format!("unknown primitive type {value}; known types: {KNOWN_TYPES}").into());
            }
        },
        Kind::Decimal(decimal) => {
            let precision = u8::try_from(decimal.precision).unwrap_or(u8::MAX);
            let scale = u8::try_from(decimal.scale).unwrap_or(u8::MAX);
            if precision == 0 || precision > MAX_DECIMAL_PRECISION {
                return Err(
                    format!("decimal precision {} is outside 1..={MAX_DECIMAL_PRECISION}", decimal.precision).into()
                );
            }
            if scale > precision {
                return Err(format!("decimal scale {} is larger than its precision {precision}", decimal.scale).into());
            }
            DataType::Decimal { precision, scale }
        }
        Kind::Optional(inner) => from_proto_at(inner, depth + 1)?.optional(),
        Kind::List(inner) => DataType::List(Box::new(from_proto_at(inner, depth + 1)?)),
        Kind::Map(inner) => DataType::Map(Box::new(from_proto_at(inner, depth + 1)?)),
        Kind::Struct(fields) => {
            let mut converted: Vec<Field> = Vec::with_capacity(fields.fields.len());
            for field in &fields.fields {
                if field.name.is_empty() {
                    return Err("a struct field has no name".to_owned().into());
                }
                if converted.iter().any(|f| f.name == field.name) {
                    return Err(format!("struct field `{}` appears twice", field.name).into());
                }
                let Some(field_type) = &field.r#type else {
                    return Err(format!("struct field `{}` has no type", field.name).into());
                };
                converted.push(Field { name: field.name.clone(), data_type: from_proto_at(field_type, depth + 1)? });
            }
            DataType::Struct(converted)
        }
    })
}

impl From<&DataType> for proto::DataType {
    fn from(data_type: &DataType) -> Self {
        use proto::data_type::Kind;
        let primitive = |p: proto::PrimitiveType| Kind::Primitive(p as i32);
        let kind = match data_type {
            DataType::Bool => primitive(proto::PrimitiveType::Bool),
            DataType::Int32 => primitive(proto::PrimitiveType::Int32),
            DataType::Int64 => primitive(proto::PrimitiveType::Int64),
            DataType::Float32 => primitive(proto::PrimitiveType::Float32),
            DataType::Float64 => primitive(proto::PrimitiveType::Float64),
            DataType::String => primitive(proto::PrimitiveType::String),
            DataType::Bytes => primitive(proto::PrimitiveType::Bytes),
            DataType::Date => primitive(proto::PrimitiveType::Date),
            DataType::Timestamp => primitive(proto::PrimitiveType::Timestamp),
            DataType::Decimal { precision, scale } => {
                Kind::Decimal(proto::DecimalType { precision: u32::from(*precision), scale: u32::from(*scale) })
            }
            DataType::Optional(inner) => Kind::Optional(Box::new(inner.as_ref().into())),
            DataType::List(inner) => Kind::List(Box::new(inner.as_ref().into())),
            DataType::Map(inner) => Kind::Map(Box::new(inner.as_ref().into())),
            DataType::Struct(fields) => Kind::Struct(proto::StructType {
                fields: fields
                    .iter()
                    .map(|f| proto::Field { name: f.name.clone(), r#type: Some((&f.data_type).into()) })
                    .collect(),
            }),
        };
        proto::DataType { kind: Some(kind) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        parse_data_type(text).unwrap_or_else(|e| panic!("{text}: {e}")).to_string()
    }

    #[test]
    fn canonical_and_alias_spellings() {
        let cases = [
            ("bool", "bool"),
            ("int32", "int32"),
            ("int64", "int64"),
            ("INT64", "int64"),
            ("int", "int64"),
            ("float", "float64"),
            ("float32", "float32"),
            ("str", "string"),
            ("bytes", "bytes"),
            ("date", "date"),
            ("datetime", "timestamp"),
            ("decimal(10,2)", "decimal(10, 2)"),
            ("optional<float64>", "optional<float64>"),
            ("Optional[int]", "optional<int64>"),
            ("optional<optional<int>>", "optional<int64>"),
            ("list<string>", "list<string>"),
            ("List[str]", "list<string>"),
            ("map<string, int64>", "map<string, int64>"),
            ("Dict[str, float]", "map<string, float64>"),
            ("struct<id: int64, email: optional<string>>", "struct<id: int64, email: optional<string>>"),
            (" list < map<string,list<decimal(38, 0)>> > ", "list<map<string, list<decimal(38, 0)>>>"),
        ];
        for (text, expected) in cases {
            assert_eq!(canonical(text), expected, "{text}");
        }
    }

    #[test]
    fn canonical_form_round_trips() {
        for text in ["struct<a: list<optional<int32>>, b: map<string, struct<c: date>>>", "decimal(5, 5)"] {
            let once = canonical(text);
            assert_eq!(canonical(&once), once);
        }
    }

    #[test]
    fn unknown_and_malformed_types() {
        let cases = [
            ("list<strng>", "unknown type `strng` in `list<strng>`"),
            ("strng", "unknown type `strng`; known types"),
            ("", "missing type"),
            ("list", "needs a type argument"),
            ("list<int", "expected `>`"),
            ("list<int]", "expected `>`"),
            ("map<int, string>", "map keys must be `string`"),
            ("map<string>", "expected `,`"),
            ("decimal", "needs a precision and scale"),
            ("decimal(0, 0)", "precision 0"),
            ("decimal(39, 2)", "precision 39"),
            ("decimal(5, 6)", "scale 6"),
            ("decimal(5, x)", "expected a number"),
            ("struct<a: int, a: str>", "appears twice"),
            ("struct<: int>", "expected a field name"),
            ("int64 extra", "unexpected `extra`"),
            ("list<>", "unexpected `>`"),
        ];
        for (text, expected) in cases {
            let err = parse_data_type(text).expect_err(text);
            assert!(matches!(err, ParseError::Invalid(_)), "{text}: {err:?}");
            assert!(err.message().contains(expected), "{text}: {err}");
        }
    }

    /// A type string 100,000 levels deep overflowed the parser's stack; now it is a coded refusal.
    #[test]
    fn deep_types_are_refused_not_a_stack_overflow() {
        for (open, close) in [("list<", ">"), ("optional<", ">"), ("struct<a: ", ">"), ("map<string, ", ">")] {
            let text = format!("{}int64{}", open.repeat(100_000), close.repeat(100_000));
            let err = parse_data_type(&text).expect_err("deep");
            assert!(matches!(&err, ParseError::TooComplex(m) if m.contains("deeper")), "{open}: {err:?}");
            let fine = format!("{}int64{}", open.repeat(MAX_TYPE_DEPTH - 1), close.repeat(MAX_TYPE_DEPTH - 1));
            assert!(parse_data_type(&fine).is_ok(), "{open}");
        }
        let mut wire = proto::DataType::from(&DataType::Int64);
        for _ in 0..MAX_TYPE_DEPTH {
            wire = proto::DataType { kind: Some(proto::data_type::Kind::List(Box::new(wire))) };
        }
        assert!(matches!(from_proto(&wire), Err(ParseError::TooComplex(_))));
    }

    #[test]
    fn proto_round_trip() {
        let parsed =
            parse_data_type("struct<a: list<optional<decimal(10, 2)>>, b: map<string, timestamp>>").expect("valid");
        let wire: proto::DataType = (&parsed).into();
        assert_eq!(from_proto(&wire), Ok(parsed));
        assert!(from_proto(&proto::DataType { kind: None }).is_err());
        let bad = proto::DataType { kind: Some(proto::data_type::Kind::Primitive(99)) };
        assert!(from_proto(&bad).expect_err("unknown").message().contains("unknown primitive"));
    }
}
