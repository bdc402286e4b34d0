//! The `where` predicate: a small SQL-like boolean expression over dataset fields.
//!
//! ```text
//! amount > 0 AND country <> 'XX'
//! NOT (status IN ('test', 'dummy')) OR customer.email IS NOT NULL
//! ```
//!
//! Grammar (keywords case-insensitive): `OR`, `AND`, `NOT`; comparisons
//! `= == != <> < <= > >=`; `IS [NOT] NULL`; `[NOT] IN (literal, ...)`;
//! `+ - * / %` on numbers; literals: numbers, `'strings'` (`''` escapes a
//! quote), `TRUE`, `FALSE`, `NULL`; field names, with `.` into structs.
//!
//! Commit-time validation parses the text and checks types: every name is a
//! dataset field, operands of a comparison agree, and the whole is boolean.
//! The parsed [`Predicate`] is what the worker evaluates.
//!
//! Every tree is bounded when it is built: at most [`MAX_NODES`] nodes and
//! [`MAX_HEIGHT`] levels, whatever made it tall (parentheses, `NOT`, or a
//! long chain of `+` or `*`). Chains of `AND` and `OR` are built balanced,
//! so a long list of alternatives stays shallow. Type checking, evaluation
//! and `Drop` recurse once per level, so the height bound is what keeps them
//! off the end of the stack; the node bound keeps a predicate's cost per row
//! (and its memory) small.

use std::fmt;

use crate::data_type::{DataType, Field};
use crate::error::ParseError;

/// A parsed, type-checked `where` predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    text: String,
    expr: Expr,
}

impl Predicate {
    /// The predicate as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

/// A node of a predicate's expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field, by path (`customer.id` is `["customer", "id"]`).
    Field(Vec<String>),
    /// A literal.
    Literal(Literal),
    /// `NOT e`
    Not(Box<Expr>),
    /// `-e`
    Negate(Box<Expr>),
    /// `l op r`
    Binary(Box<Expr>, BinaryOp, Box<Expr>),
    /// `e IS NULL` (`negated`: `IS NOT NULL`)
    IsNull {
        /// The tested expression.
        expr: Box<Expr>,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `CASE WHEN c THEN v ... [ELSE e] END`
    Case {
        /// `(condition, value)` pairs, tried in order.
        branches: Vec<(Expr, Expr)>,
        /// The value when no condition is true (NULL when absent).
        otherwise: Option<Box<Expr>>,
    },
    /// `e IN (...)` (`negated`: `NOT IN`)
    InList {
        /// The tested expression.
        expr: Box<Expr>,
        /// The candidates.
        list: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`
    Null,
    /// `TRUE` / `FALSE`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// `'text'`
    String(String),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `OR`
    Or,
    /// `AND`
    And,
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `||` (string concatenation)
    Concat,
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Concat => "||",
        })
    }
}

/// The most nodes (fields, literals, operators) one expression may have.
pub(crate) const MAX_NODES: usize = 4096;

/// The most levels one expression tree may have.
pub(crate) const MAX_HEIGHT: usize = 64;

/// Tokenizes and parses `text` into a bounded tree, requiring it to be one whole expression.
fn parse_tree(text: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0, depth: 0, nodes: 0 };
    let built = parser.parse_or()?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(format!("unexpected {token} after a complete expression").into());
    }
    Ok(built.expr)
}

/// Parses `text` and checks it against the dataset's fields.
pub fn parse_predicate(text: &str, fields: &[Field]) -> Result<Predicate, ParseError> {
    let expr = parse_tree(text)?;
    match type_of(&expr, fields)? {
        Kind::Bool | Kind::Null => Ok(Predicate { text: text.to_owned(), expr }),
        other => Err(format!("the predicate is {other}, not boolean").into()),
    }
}

/// A parsed, type-checked `preproc` `eval` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    text: String,
    expr: Expr,
}

impl Expression {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Top-level fields the expression reads.
    pub fn fields(&self) -> Vec<&str> {
        let mut names = Vec::new();
        collect_fields(&self.expr, &mut names);
        names
    }
}

fn collect_fields<'e>(expr: &'e Expr, names: &mut Vec<&'e str>) {
    match expr {
        Expr::Field(path) => names.extend(path.first().map(String::as_str)),
        Expr::Literal(_) => {}
        Expr::Not(inner)
        | Expr::Negate(inner)
        | Expr::IsNull { expr: inner, .. }
        | Expr::InList { expr: inner, .. } => {
            collect_fields(inner, names);
        }
        Expr::Binary(left, _, right) => {
            collect_fields(left, names);
            collect_fields(right, names);
        }
        Expr::Case { branches, otherwise } => {
            for (condition, value) in branches {
                collect_fields(condition, names);
                collect_fields(value, names);
            }
            if let Some(otherwise) = otherwise {
                collect_fields(otherwise, names);
            }
        }
    }
}

/// Parses an `eval` expression and checks that its value fits `target`.
pub fn parse_expression(text: &str, fields: &[Field], target: &DataType) -> Result<Expression, ParseError> {
    let expr = parse_tree(text)?;
    let found = type_of(&expr, fields)?;
    let wanted = kind_of_type(target);
    let fits = found == wanted || (found == Kind::Null && target.is_optional());
    if !fits || wanted == Kind::Nested || wanted == Kind::Bytes {
        return Err(format!("the expression is {found}, which does not fit type `{target}`").into());
    }
    Ok(Expression { text: text.to_owned(), expr })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Keyword(Keyword),
    Number(Literal),
    String(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    And,
    Or,
    Not,
    Is,
    In,
    Null,
    True,
    False,
    Case,
    When,
    Then,
    Else,
    End,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(name) => write!(f, "`{name}`"),
            Token::Keyword(k) => write!(f, "`{}`", format!("{k:?}").to_ascii_uppercase()),
            Token::Number(Literal::Int(i)) => write!(f, "`{i}`"),
            Token::Number(Literal::Float(x)) => write!(f, "`{x}`"),
            Token::Number(_) => f.write_str("a number"),
            Token::String(s) => write!(f, "'{s}'"),
            Token::Op(op) => write!(f, "`{op}`"),
            Token::LParen => f.write_str("`(`"),
            Token::RParen => f.write_str("`)`"),
            Token::Comma => f.write_str("`,`"),
            Token::Dot => f.write_str("`.`"),
        }
    }
}

const OPERATORS: [&str; 14] = ["||", "<=", ">=", "<>", "!=", "==", "=", "<", ">", "+", "-", "*", "/", "%"];

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        if c.is_ascii_alphabetic() || c == '_' {
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..len];
            let keyword = match word.to_ascii_uppercase().as_str() {
                "AND" => Some(Keyword::And),
                "OR" => Some(Keyword::Or),
                "NOT" => Some(Keyword::Not),
                "IS" => Some(Keyword::Is),
                "IN" => Some(Keyword::In),
                "NULL" => Some(Keyword::Null),
                "TRUE" => Some(Keyword::True),
                "FALSE" => Some(Keyword::False),
                "CASE" => Some(Keyword::Case),
                "WHEN" => Some(Keyword::When),
                "THEN" => Some(Keyword::Then),
                "ELSE" => Some(Keyword::Else),
                "END" => Some(Keyword::End),
                _ => None,
            };
            tokens.push(keyword.map_or_else(|| Token::Ident(word.to_owned()), Token::Keyword));
            rest = &rest[len..];
        } else if c.is_ascii_digit() {
            let len = rest
                .char_indices()
                .find(|&(i, c)| {
                    let prev_is_exponent = i > 0 && matches!(rest.as_bytes()[i - 1], b'e' | b'E');
                    !(c.is_ascii_digit()
                        || c == '.'
                        || c == 'e'
                        || c == 'E'
                        || (prev_is_exponent && (c == '+' || c == '-')))
                })
                .map_or(rest.len(), |(i, _)| i);
            let number = &rest[..len];
            let literal = if let Ok(int) = number.parse::<i64>() {
                Literal::Int(int)
            } else if let Ok(float) = number.parse::<f64>() {
                Literal::Float(float)
            } else {
                return Err(format!("`{number}` is not a number"));
            };
            tokens.push(Token::Number(literal));
            rest = &rest[len..];
        } else if c == '\'' {
            let mut value = String::new();
            let mut chars = rest[1..].char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err(format!("unterminated string starting at `{rest}`")),
                    Some((i, '\'')) => {
                        if rest[1 + i + 1..].starts_with('\'') {
                            value.push('\'');
                            chars.next();
                        } else {
                            break 1 + i + 1;
                        }
                    }
                    Some((_, other)) => value.push(other),
                }
            };
            tokens.push(Token::String(value));
            rest = &rest[end..];
        } else if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            tokens.push(Token::Op(op));
            rest = &rest[op.len()..];
        } else {
            let token = match c {
                '(' => Token::LParen,
                ')' => Token::RParen,
                ',' => Token::Comma,
                '.' => Token::Dot,
                other => return Err(format!("unexpected character `{other}`")),
            };
            tokens.push(token);
            rest = &rest[1..];
        }
    }
    if tokens.is_empty() {
        return Err("the predicate is empty".to_owned());
    }
    Ok(tokens)
}

/// How deep the parser itself may recurse (parentheses, prefix operators, `CASE`).
const MAX_DEPTH: usize = 64;

/// A subtree and its height, which every constructor checks against [`MAX_HEIGHT`].
struct Built {
    expr: Expr,
    height: usize,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Nodes built so far, bounded by [`MAX_NODES`].
    nodes: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next_is(&self, token: &Token) -> bool {
        self.peek() == Some(token)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.next_is(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn describe_next(&self) -> String {
        self.peek().map_or_else(|| "the end".to_owned(), ToString::to_string)
    }

    /// Counts one node of `height` levels; refuses past the bounds.
    fn node(&mut self, expr: Expr, height: usize) -> Result<Built, ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(ParseError::TooComplex(format!(
                "the expression has more than {MAX_NODES} terms; a long list of alternatives reads better as `IN (...)`"
            )));
        }
        if height > MAX_HEIGHT {
            return Err(ParseError::TooComplex(format!(
                "the expression nests deeper than {MAX_HEIGHT} levels (a long chain of operators counts one level each)"
            )));
        }
        Ok(Built { expr, height })
    }

    fn leaf(&mut self, expr: Expr) -> Result<Built, ParseError> {
        self.node(expr, 1)
    }

    fn unary(&mut self, make: fn(Box<Expr>) -> Expr, inner: Built) -> Result<Built, ParseError> {
        self.node(make(Box::new(inner.expr)), inner.height + 1)
    }

    fn binary(&mut self, left: Built, op: BinaryOp, right: Built) -> Result<Built, ParseError> {
        let height = left.height.max(right.height) + 1;
        self.node(Expr::Binary(Box::new(left.expr), op, Box::new(right.expr)), height)
    }

    /// Runs `parse` one nesting level deeper, refusing past [`MAX_DEPTH`].
    fn nested(&mut self, parse: fn(&mut Self) -> Result<Built, ParseError>) -> Result<Built, ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::TooComplex(format!("the expression nests deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = parse(self);
        self.depth -= 1;
        result
    }

    /// `a OP b OP c ...` for an associative `op`, as a balanced tree: a
    /// thousand alternatives are ten levels deep, not a thousand.
    fn associative(
        &mut self,
        keyword: Keyword,
        op: BinaryOp,
        operand: fn(&mut Self) -> Result<Built, ParseError>,
    ) -> Result<Built, ParseError> {
        let mut operands = vec![operand(self)?];
        while self.eat(&Token::Keyword(keyword)) {
            operands.push(operand(self)?);
        }
        // Pairs neighbours level by level, left to right, so evaluation order is kept.
        while operands.len() > 1 {
            let mut paired = Vec::with_capacity(operands.len().div_ceil(2));
            let mut rest = operands.into_iter();
            while let Some(left) = rest.next() {
                match rest.next() {
                    Some(right) => paired.push(self.binary(left, op, right)?),
                    None => paired.push(left),
                }
            }
            operands = paired;
        }
        // Pairing never empties the list, which began with one operand.
        operands.pop().ok_or_else(|| ParseError::Invalid("the expression is empty".to_owned()))
    }

    fn parse_or(&mut self) -> Result<Built, ParseError> {
        self.associative(Keyword::Or, BinaryOp::Or, Self::parse_and)
    }

    fn parse_and(&mut self) -> Result<Built, ParseError> {
        self.associative(Keyword::And, BinaryOp::And, Self::parse_not)
    }

    fn parse_not(&mut self) -> Result<Built, ParseError> {
        if self.eat(&Token::Keyword(Keyword::Not)) {
            let inner = self.nested(Self::parse_not)?;
            return self.unary(Expr::Not, inner);
        }
        self.parse_comparison()
    }

    fn parse_comparison(&mut self) -> Result<Built, ParseError> {
        let left = self.parse_additive()?;
        let op = match self.peek() {
            Some(Token::Op("=" | "==")) => BinaryOp::Eq,
            Some(Token::Op("<>" | "!=")) => BinaryOp::NotEq,
            Some(Token::Op("<")) => BinaryOp::Lt,
            Some(Token::Op("<=")) => BinaryOp::LtEq,
            Some(Token::Op(">")) => BinaryOp::Gt,
            Some(Token::Op(">=")) => BinaryOp::GtEq,
            Some(Token::Keyword(Keyword::Is)) => {
                self.pos += 1;
                let negated = self.eat(&Token::Keyword(Keyword::Not));
                if !self.eat(&Token::Keyword(Keyword::Null)) {
                    return Err(format!("expected `NULL` after `IS`, found {}", self.describe_next()).into());
                }
                let height = left.height + 1;
                return self.node(Expr::IsNull { expr: Box::new(left.expr), negated }, height);
            }
            Some(Token::Keyword(Keyword::Not | Keyword::In)) => {
                let negated = self.eat(&Token::Keyword(Keyword::Not));
                if !self.eat(&Token::Keyword(Keyword::In)) {
                    return Err(format!("expected `IN` after `NOT`, found {}", self.describe_next()).into());
                }
                let list = self.parse_literal_list()?;
                let height = left.height + 1;
                return self.node(Expr::InList { expr: Box::new(left.expr), list, negated }, height);
            }
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.parse_additive()?;
        self.binary(left, op, right)
    }

    fn parse_literal_list(&mut self) -> Result<Vec<Literal>, ParseError> {
        if !self.eat(&Token::LParen) {
            return Err(format!("expected `(` after `IN`, found {}", self.describe_next()).into());
        }
        let mut list = Vec::new();
        loop {
            let negative = self.eat(&Token::Op("-"));
            let literal = match self.peek().cloned() {
                Some(Token::Number(Literal::Int(i))) if negative => Literal::Int(-i),
                Some(Token::Number(Literal::Float(x))) if negative => Literal::Float(-x),
                Some(Token::Number(n)) => n,
                Some(Token::String(s)) if !negative => Literal::String(s),
                Some(Token::Keyword(Keyword::True)) if !negative => Literal::Bool(true),
                Some(Token::Keyword(Keyword::False)) if !negative => Literal::Bool(false),
                Some(Token::Keyword(Keyword::Null)) if !negative => Literal::Null,
                _ => {
                    return Err(format!("expected a literal in the `IN` list, found {}", self.describe_next()).into());
                }
            };
            self.pos += 1;
            list.push(literal);
            if self.eat(&Token::RParen) {
                return Ok(list);
            }
            if !self.eat(&Token::Comma) {
                return Err(format!("expected `,` or `)` in the `IN` list, found {}", self.describe_next()).into());
            }
        }
    }

    fn parse_additive(&mut self) -> Result<Built, ParseError> {
        let mut left = self.parse_multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op("+")) => BinaryOp::Add,
                Some(Token::Op("-")) => BinaryOp::Sub,
                Some(Token::Op("||")) => BinaryOp::Concat,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.parse_multiplicative()?;
            left = self.binary(left, op, right)?;
        }
    }

    fn parse_multiplicative(&mut self) -> Result<Built, ParseError> {
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Op("*")) => BinaryOp::Mul,
                Some(Token::Op("/")) => BinaryOp::Div,
                Some(Token::Op("%")) => BinaryOp::Rem,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.parse_unary()?;
            left = self.binary(left, op, right)?;
        }
    }

    fn parse_unary(&mut self) -> Result<Built, ParseError> {
        if self.eat(&Token::Op("-")) {
            let inner = self.nested(Self::parse_unary)?;
            return self.unary(Expr::Negate, inner);
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Built, ParseError> {
        let Some(token) = self.peek().cloned() else {
            return Err("the predicate ends where a value was expected".to_owned().into());
        };
        self.pos += 1;
        match token {
            Token::Number(n) => self.leaf(Expr::Literal(n)),
            Token::String(s) => self.leaf(Expr::Literal(Literal::String(s))),
            Token::Keyword(Keyword::True) => self.leaf(Expr::Literal(Literal::Bool(true))),
            Token::Keyword(Keyword::False) => self.leaf(Expr::Literal(Literal::Bool(false))),
            Token::Keyword(Keyword::Null) => self.leaf(Expr::Literal(Literal::Null)),
            Token::Keyword(Keyword::Case) => self.nested(Self::parse_case),
            Token::Ident(name) => {
                let mut path = vec![name];
                while self.eat(&Token::Dot) {
                    match self.peek().cloned() {
                        Some(Token::Ident(part)) => {
                            self.pos += 1;
                            path.push(part);
                        }
                        _ => {
                            return Err(
                                format!("expected a field name after `.`, found {}", self.describe_next()).into()
                            );
                        }
                    }
                }
                self.leaf(Expr::Field(path))
            }
            Token::LParen => {
                let inner = self.nested(Self::parse_or)?;
                if !self.eat(&Token::RParen) {
                    return Err(format!("expected `)`, found {}", self.describe_next()).into());
                }
                Ok(inner)
            }
            other => Err(format!("unexpected {other} where a value was expected").into()),
        }
    }
}

impl Parser {
    /// After `CASE`: `WHEN c THEN v ... [ELSE e] END`.
    fn parse_case(&mut self) -> Result<Built, ParseError> {
        let mut branches = Vec::new();
        let mut height = 0;
        while self.eat(&Token::Keyword(Keyword::When)) {
            let condition = self.parse_or()?;
            if !self.eat(&Token::Keyword(Keyword::Then)) {
                return Err(format!("expected `THEN`, found {}", self.describe_next()).into());
            }
            let value = self.parse_or()?;
            height = height.max(condition.height).max(value.height);
            branches.push((condition.expr, value.expr));
        }
        if branches.is_empty() {
            return Err(format!("expected `WHEN` after `CASE`, found {}", self.describe_next()).into());
        }
        let otherwise = if self.eat(&Token::Keyword(Keyword::Else)) {
            let otherwise = self.parse_or()?;
            height = height.max(otherwise.height);
            Some(Box::new(otherwise.expr))
        } else {
            None
        };
        if !self.eat(&Token::Keyword(Keyword::End)) {
            return Err(format!("expected `END` to close `CASE`, found {}", self.describe_next()).into());
        }
        self.node(Expr::Case { branches, otherwise }, height + 1)
    }
}

/// The type of an expression, as far as the checker needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Timestamp,
    Date,
    Bytes,
    Nested,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Timestamp => "a timestamp",
            Kind::Date => "a date",
            Kind::Bytes => "bytes",
            Kind::Nested => "a list, map or struct",
        })
    }
}

fn kind_of_type(data_type: &DataType) -> Kind {
    match data_type.non_null() {
        DataType::Bool => Kind::Bool,
        DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 | DataType::Decimal { .. } => {
            Kind::Number
        }
        DataType::String => Kind::String,
        DataType::Bytes => Kind::Bytes,
        DataType::Date => Kind::Date,
        DataType::Timestamp => Kind::Timestamp,
        DataType::Optional(_) | DataType::List(_) | DataType::Map(_) | DataType::Struct(_) => Kind::Nested,
    }
}

fn kind_of_literal(literal: &Literal) -> Kind {
    match literal {
        Literal::Null => Kind::Null,
        Literal::Bool(_) => Kind::Bool,
        Literal::Int(_) | Literal::Float(_) => Kind::Number,
        Literal::String(_) => Kind::String,
    }
}

fn resolve_field<'a>(path: &[String], fields: &'a [Field]) -> Result<&'a DataType, String> {
    let mut current = fields;
    let mut found: Option<&DataType> = None;
    for (depth, part) in path.iter().enumerate() {
        let field = current.iter().find(|f| &f.name == part).ok_or_else(|| {
            if depth == 0 {
                format!("`{part}` is not a dataset field")
            } else {
                format!("`{}` has no field `{part}`", path[..depth].join("."))
            }
        })?;
        found = Some(&field.data_type);
        current = match field.data_type.non_null() {
            DataType::Struct(children) => children,
            _ => &[],
        };
    }
    found.ok_or_else(|| "empty field path".to_owned())
}

/// Whether values of these kinds can be compared; a string literal may stand
/// for a timestamp or date (`ts >= '2024-01-01'`).
fn comparable(left: Kind, right: Kind) -> bool {
    left == right
        || matches!(
            (left, right),
            (Kind::Null, _)
                | (_, Kind::Null)
                | (Kind::Timestamp | Kind::Date, Kind::String)
                | (Kind::String, Kind::Timestamp | Kind::Date)
        )
}

/// The one kind the branches of a `CASE` share.
fn unify(left: Kind, right: Kind) -> Result<Kind, String> {
    match (left, right) {
        (Kind::Null, other) | (other, Kind::Null) => Ok(other),
        (l, r) if l == r && l != Kind::Nested => Ok(l),
        (l, r) => Err(format!("`CASE` branches are {l} and {r}")),
    }
}

fn type_of(expr: &Expr, fields: &[Field]) -> Result<Kind, String> {
    match expr {
        Expr::Field(path) => Ok(kind_of_type(resolve_field(path, fields)?)),
        Expr::Literal(literal) => Ok(kind_of_literal(literal)),
        Expr::Not(inner) => match type_of(inner, fields)? {
            Kind::Bool | Kind::Null => Ok(Kind::Bool),
            other => Err(format!("`NOT` needs a boolean, found {other}")),
        },
        Expr::Negate(inner) => match type_of(inner, fields)? {
            Kind::Number | Kind::Null => Ok(Kind::Number),
            other => Err(format!("`-` needs a number, found {other}")),
        },
        Expr::IsNull { expr, .. } => {
            type_of(expr, fields)?;
            Ok(Kind::Bool)
        }
        Expr::InList { expr, list, .. } => {
            let kind = type_of(expr, fields)?;
            if let Some(bad) = list.iter().map(kind_of_literal).find(|k| !comparable(kind, *k)) {
                return Err(format!("`IN` compares {kind} with {bad}"));
            }
            Ok(Kind::Bool)
        }
        Expr::Case { branches, otherwise } => {
            let mut kind = Kind::Null;
            for (condition, value) in branches {
                let condition_kind = type_of(condition, fields)?;
                if !matches!(condition_kind, Kind::Bool | Kind::Null) {
                    return Err(format!("`WHEN` needs a boolean, found {condition_kind}"));
                }
                kind = unify(kind, type_of(value, fields)?)?;
            }
            if let Some(otherwise) = otherwise {
                kind = unify(kind, type_of(otherwise, fields)?)?;
            }
            Ok(kind)
        }
        Expr::Binary(left, op, right) => {
            let (left, right) = (type_of(left, fields)?, type_of(right, fields)?);
            match op {
                BinaryOp::Concat => {
                    for side in [left, right] {
                        if !matches!(side, Kind::String | Kind::Null) {
                            return Err(format!("`||` needs strings, found {side}"));
                        }
                    }
                    Ok(Kind::String)
                }
                BinaryOp::And | BinaryOp::Or => {
                    for side in [left, right] {
                        if !matches!(side, Kind::Bool | Kind::Null) {
                            return Err(format!("`{op}` needs booleans, found {side}"));
                        }
                    }
                    Ok(Kind::Bool)
                }
                BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
                    if left == Kind::Null || right == Kind::Null {
                        return Err(format!("`{op} NULL` is never true; use `IS NULL` or `IS NOT NULL`"));
                    }
                    if left == Kind::Nested || right == Kind::Nested {
                        return Err(format!("`{op}` cannot compare a list, map or struct"));
                    }
                    if !comparable(left, right) {
                        return Err(format!("`{op}` compares {left} with {right}"));
                    }
                    Ok(Kind::Bool)
                }
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                    for side in [left, right] {
                        if !matches!(side, Kind::Number | Kind::Null) {
                            return Err(format!("`{op}` needs numbers, found {side}"));
                        }
                    }
                    Ok(Kind::Number)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_type::parse_data_type;

    fn fields() -> Vec<Field> {
        [
            ("amount", "optional<float64>"),
            ("country", "string"),
            ("qty", "int32"),
            ("ts", "timestamp"),
            ("active", "bool"),
            ("tags", "list<string>"),
            ("customer", "struct<id: int64, email: optional<string>>"),
        ]
        .into_iter()
        .map(|(name, t)| Field { name: name.to_owned(), data_type: parse_data_type(t).expect("valid") })
        .collect()
    }

    #[test]
    fn accepts_boolean_predicates() {
        for text in [
            "amount > 0 AND country <> 'XX'",
            "amount > 0 and country != 'X''Y'",
            "NOT (country IN ('a', 'b')) OR customer.email IS NOT NULL",
            "qty * 2 + 1 >= -3.5e2",
            "ts >= '2024-01-01T00:00:00Z'",
            "active",
            "NOT active AND qty % 2 = 0",
            "qty NOT IN (1, -2, 3)",
            "customer.id = 7",
            "amount IS NULL",
        ] {
            assert!(parse_predicate(text, &fields()).is_ok(), "{text}: {:?}", parse_predicate(text, &fields()));
        }
    }

    #[test]
    fn parsed_tree_has_the_expected_shape() {
        let predicate = parse_predicate("amount > 0 AND country <> 'XX'", &fields()).expect("valid");
        let Expr::Binary(left, BinaryOp::And, right) = predicate.expr() else { panic!("{predicate:?}") };
        assert_eq!(
            **left,
            Expr::Binary(
                Box::new(Expr::Field(vec!["amount".into()])),
                BinaryOp::Gt,
                Box::new(Expr::Literal(Literal::Int(0)))
            )
        );
        assert!(matches!(**right, Expr::Binary(_, BinaryOp::NotEq, _)));
    }

    #[test]
    fn refuses_bad_predicates() {
        let cases = [
            ("", "empty"),
            ("amount >", "ends where a value"),
            ("amount > 0 AND", "ends where a value"),
            ("amount + 1", "not boolean"),
            ("country", "not boolean"),
            ("price > 0", "`price` is not a dataset field"),
            ("customer.name = 'x'", "`customer` has no field `name`"),
            ("country > 1", "compares a string with a number"),
            ("amount = NULL", "use `IS NULL`"),
            ("country AND active", "needs booleans"),
            ("tags = 'a'", "cannot compare a list"),
            ("'unterminated", "unterminated string"),
            ("amount > 0 )", "unexpected `)`"),
            ("(amount > 0", "expected `)`"),
            ("amount # 1", "unexpected character `#`"),
            ("qty IN 1", "expected `(`"),
            ("country IS 'x'", "expected `NULL`"),
            ("country - 1 > 0", "needs numbers"),
        ];
        for (text, expected) in cases {
            let err = parse_predicate(text, &fields()).expect_err(text);
            assert!(matches!(err, ParseError::Invalid(_)), "{text}: {err:?}");
            assert!(err.message().contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = format!("{}active{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(matches!(parse_predicate(&text, &fields()), Err(ParseError::TooComplex(m)) if m.contains("deeper")));
        let text = format!("{}active", "NOT ".repeat(10_000));
        assert!(matches!(parse_predicate(&text, &fields()), Err(ParseError::TooComplex(m)) if m.contains("deeper")));
        // Many groups side by side are not deep.
        let wide = vec!["(active)"; 200].join(" AND ");
        assert!(parse_predicate(&wide, &fields()).is_ok());
    }

    /// The review's crash: 100,000 `OR` terms (1.6 MB) overflowed the stack in
    /// type checking and `Drop`; chains of any operator are bounded now.
    #[test]
    fn long_operator_chains_are_refused_or_built_shallow() {
        let terms: Vec<String> = (0..100_000).map(|i| format!("qty = {i}")).collect();
        let huge = terms.join(" OR ");
        assert!(huge.len() > 1_000_000);
        let refused = parse_predicate(&huge, &fields()).expect_err("too many terms");
        assert!(matches!(&refused, ParseError::TooComplex(m) if m.contains("terms")), "{refused:?}");

        // Hundreds of alternatives are fine, and balanced: a handful of levels.
        let many = terms[..500].join(" OR ");
        let predicate = parse_predicate(&many, &fields()).expect("500 alternatives");
        assert!(height(predicate.expr()) <= 11, "height {}", height(predicate.expr()));
        let and_chain = vec!["active"; 1000].join(" AND ");
        assert!(parse_predicate(&and_chain, &fields()).is_ok());

        // Arithmetic chains are not reassociated (`-` and `/` are not associative): bounded by height.
        for op in [" + ", " * ", " - ", " % "] {
            let chain = format!("{} > 0", vec!["qty"; 200].join(op));
            let refused = parse_predicate(&chain, &fields()).expect_err(op);
            assert!(matches!(&refused, ParseError::TooComplex(m) if m.contains("deeper")), "{op}: {refused:?}");
            let short = format!("{} > 0", vec!["qty"; 40].join(op));
            assert!(parse_predicate(&short, &fields()).is_ok(), "{op}");
        }
        let concat = vec!["country"; 200].join(" || ");
        let refused = parse_expression(&concat, &fields(), &DataType::String.optional()).expect_err("concat");
        assert!(matches!(refused, ParseError::TooComplex(_)), "{refused:?}");

        // A long `IN` list is one node.
        let list = (0..100_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        assert!(parse_predicate(&format!("qty IN ({list})"), &fields()).is_ok());
    }

    fn height(expr: &Expr) -> usize {
        match expr {
            Expr::Field(_) | Expr::Literal(_) => 1,
            Expr::Not(inner)
            | Expr::Negate(inner)
            | Expr::IsNull { expr: inner, .. }
            | Expr::InList { expr: inner, .. } => 1 + height(inner),
            Expr::Binary(left, _, right) => 1 + height(left).max(height(right)),
            Expr::Case { branches, otherwise } => {
                1 + branches
                    .iter()
                    .map(|(c, v)| height(c).max(height(v)))
                    .chain(otherwise.iter().map(|o| height(o)))
                    .max()
                    .unwrap_or(0)
            }
        }
    }
}
