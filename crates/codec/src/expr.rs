//! Evaluating `where` predicates and `eval` expressions over whole batches.
//!
//! SQL semantics: NULL in, NULL out; a row is kept only when the predicate is
//! TRUE. Arithmetic on two integers is done in int64 (an overflow gives NULL),
//! otherwise in float64, so a division by zero is an infinity rather than an
//! error that would stop the source. A string literal compared with a
//! timestamp or date is read with the definition grammar (`ts >= '2024-01-01'`).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow_buffer::NullBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType};
use chrono::{DateTime, Utc};
use tributary_source::{BinaryOp, Expr, Literal, parse_date_time};

pub(crate) fn timestamp_array(at: DateTime<Utc>, rows: usize) -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from_value(at.timestamp_micros(), rows).with_timezone("UTC")
}

pub(crate) fn as_boolean(value: &ArrayRef) -> Result<BooleanArray, ArrowError> {
    match value.data_type() {
        DataType::Boolean => Ok(value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .unwrap_or_else(|| BooleanArray::from(vec![false; value.len()]))),
        DataType::Null => Ok(BooleanArray::new_null(value.len())),
        other => Err(ArrowError::InvalidArgumentError(format!("`where` evaluated to {other}, not a boolean"))),
    }
}

pub(crate) fn evaluate(expr: &Expr, batch: &RecordBatch) -> Result<ArrayRef, ArrowError> {
    let rows = batch.num_rows();
    match expr {
        Expr::Field(path) => field(batch, path),
        Expr::Literal(literal) => Ok(literal_array(literal, rows)),
        Expr::Not(inner) => Ok(Arc::new(not(&as_boolean(&evaluate(inner, batch)?)?)?)),
        Expr::Negate(inner) => numeric::neg(&to_float(&evaluate(inner, batch)?)?),
        Expr::IsNull { expr, negated } => {
            let value = evaluate(expr, batch)?;
            Ok(Arc::new(if *negated { is_not_null(&value)? } else { is_null(&value)? }))
        }
        Expr::InList { expr, list, negated } => {
            let value = evaluate(expr, batch)?;
            let mut any: Option<BooleanArray> = None;
            for literal in list {
                let candidate = literal_like(literal, &value, rows);
                let (left, right) = coerce(&value, &candidate)?;
                let equal = cmp::eq(&left, &right)?;
                any = Some(match any {
                    Some(found) => or_kleene(&found, &equal)?,
                    None => equal,
                });
            }
            let found = any.unwrap_or_else(|| BooleanArray::from(vec![false; rows]));
            Ok(Arc::new(if *negated { not(&found)? } else { found }))
        }
        Expr::Case { branches, otherwise } => case(branches, otherwise.as_deref(), batch),
        Expr::Binary(left, op, right) => {
            let (left_value, right_value) = (evaluate(left, batch)?, evaluate(right, batch)?);
            match op {
                BinaryOp::And => Ok(Arc::new(and_kleene(&as_boolean(&left_value)?, &as_boolean(&right_value)?)?)),
                BinaryOp::Or => Ok(Arc::new(or_kleene(&as_boolean(&left_value)?, &as_boolean(&right_value)?)?)),
                BinaryOp::Concat => concat(&left_value, &right_value),
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Rem
                    if is_integer(left_value.data_type()) && is_integer(right_value.data_type()) =>
                {
                    integer_arithmetic(&left_value, *op, &right_value)
                }
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                    let (l, r) = (to_float(&left_value)?, to_float(&right_value)?);
                    match op {
                        BinaryOp::Add => numeric::add(&l, &r),
                        BinaryOp::Sub => numeric::sub(&l, &r),
                        BinaryOp::Mul => numeric::mul(&l, &r),
                        BinaryOp::Div => numeric::div(&l, &r),
                        _ => numeric::rem(&l, &r),
                    }
                }
                comparison => {
                    // A string literal beside a timestamp or date is an instant or a day.
                    let right_value = match right.as_ref() {
                        Expr::Literal(literal @ Literal::String(_)) => literal_like(literal, &left_value, rows),
                        _ => right_value,
                    };
                    let left_value = match left.as_ref() {
                        Expr::Literal(literal @ Literal::String(_)) => literal_like(literal, &right_value, rows),
                        _ => left_value,
                    };
                    let (l, r) = coerce(&left_value, &right_value)?;
                    let result = match comparison {
                        BinaryOp::Eq => cmp::eq(&l, &r),
                        BinaryOp::NotEq => cmp::neq(&l, &r),
                        BinaryOp::Lt => cmp::lt(&l, &r),
                        BinaryOp::LtEq => cmp::lt_eq(&l, &r),
                        BinaryOp::Gt => cmp::gt(&l, &r),
                        _ => cmp::gt_eq(&l, &r),
                    }?;
                    Ok(Arc::new(result))
                }
            }
        }
    }
}

/// Int64 arithmetic; a row whose result overflows (or `% 0`) is NULL.
fn integer_arithmetic(left: &ArrayRef, op: BinaryOp, right: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let (l, r) = (arrow_cast::cast(left, &DataType::Int64)?, arrow_cast::cast(right, &DataType::Int64)?);
    // Arrow's checked kernels, vectorised, fail the whole array on one overflow
    // or zero divisor: only then is it done row by row.
    let whole = match op {
        BinaryOp::Add => numeric::add(&l, &r),
        BinaryOp::Sub => numeric::sub(&l, &r),
        BinaryOp::Mul => numeric::mul(&l, &r),
        _ => numeric::rem(&l, &r),
    };
    if let Ok(values) = whole {
        return Ok(values);
    }
    let (l, r) = (as_int64(&l)?, as_int64(&r)?);
    let apply = |a: i64, b: i64| match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        _ => a.checked_rem(b),
    };
    let values: Int64Array = l.iter().zip(r.iter()).map(|(a, b)| a.zip(b).and_then(|(a, b)| apply(a, b))).collect();
    Ok(Arc::new(values))
}

fn as_int64(array: &ArrayRef) -> Result<&Int64Array, ArrowError> {
    array.as_any().downcast_ref::<Int64Array>().ok_or_else(|| ArrowError::CastError("expected int64".into()))
}

/// `l || r`; NULL when either side is.
fn concat(left: &ArrayRef, right: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let (l, r) = (arrow_cast::cast(left, &DataType::Utf8)?, arrow_cast::cast(right, &DataType::Utf8)?);
    let as_strings = |array: &ArrayRef| -> Result<StringArray, ArrowError> {
        array
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| ArrowError::CastError("expected a string".into()))
    };
    let (l, r) = (as_strings(&l)?, as_strings(&r)?);
    let mut joined = arrow_array::builder::StringBuilder::with_capacity(l.len(), l.values().len() + r.values().len());
    for (a, b) in l.iter().zip(r.iter()) {
        match a.zip(b) {
            // Both halves into the builder's buffer: no string per row.
            Some((a, b)) => {
                joined
                    .write_str(a)
                    .and_then(|()| joined.write_str(b))
                    .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
                joined.append_value("");
            }
            None => joined.append_null(),
        }
    }
    Ok(Arc::new(joined.finish()))
}

/// `CASE WHEN ... END`: the first branch whose condition is TRUE, else `otherwise`, else NULL.
fn case(branches: &[(Expr, Expr)], otherwise: Option<&Expr>, batch: &RecordBatch) -> Result<ArrayRef, ArrowError> {
    let rows = batch.num_rows();
    let mut values = Vec::with_capacity(branches.len() + 1);
    for (_, value) in branches {
        values.push(evaluate(value, batch)?);
    }
    values.push(match otherwise {
        Some(otherwise) => evaluate(otherwise, batch)?,
        None => new_null_array(&DataType::Null, rows),
    });
    let common = common_type(values.iter().map(|v| v.data_type()));
    let mut values = values.iter().map(|value| arrow_cast::cast(value, &common)).collect::<Result<Vec<_>, _>>()?;
    let mut result = values.pop().unwrap_or_else(|| new_null_array(&common, rows));
    for ((condition, _), value) in branches.iter().zip(values).rev() {
        let taken = as_boolean(&evaluate(condition, batch)?)?;
        let taken = BooleanArray::from_iter(taken.iter().map(|t| Some(t == Some(true))));
        result = arrow_select::zip::zip(&taken, &value, &result)?;
    }
    Ok(result)
}

/// The type every branch of a `CASE` is cast to.
fn common_type<'t>(types: impl Iterator<Item = &'t DataType>) -> DataType {
    let mut common = DataType::Null;
    for data_type in types {
        common = match (&common, data_type) {
            (_, DataType::Null) => common,
            (DataType::Null, other) => other.clone(),
            (a, b) if a == b => common,
            (a, b) if is_integer(a) && is_integer(b) => DataType::Int64,
            (a, b) if is_number(a) && is_number(b) => DataType::Float64,
            _ => common,
        };
    }
    common
}

/// A column by path; a null parent struct makes its children null.
fn field(batch: &RecordBatch, path: &[String]) -> Result<ArrayRef, ArrowError> {
    let missing = || ArrowError::SchemaError(format!("no column `{}`", path.join(".")));
    let (first, rest) = path.split_first().ok_or_else(missing)?;
    let mut current = Arc::clone(batch.column_by_name(first).ok_or_else(missing)?);
    for part in rest {
        let parent = current.as_any().downcast_ref::<StructArray>().ok_or_else(missing)?;
        let child = parent.column_by_name(part).ok_or_else(missing)?;
        let nulls = NullBuffer::union(parent.nulls(), child.nulls());
        current = arrow_array::make_array(child.to_data().into_builder().nulls(nulls).build()?);
    }
    Ok(current)
}

fn literal_array(literal: &Literal, rows: usize) -> ArrayRef {
    match literal {
        Literal::Null => new_null_array(&DataType::Null, rows),
        Literal::Bool(value) => Arc::new(BooleanArray::from(vec![*value; rows])),
        Literal::Int(value) => Arc::new(Int64Array::from_value(*value, rows)),
        Literal::Float(value) => Arc::new(Float64Array::from_value(*value, rows)),
        Literal::String(value) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, rows))),
    }
}

/// A literal in the type of `other` when it stands for an instant or a day.
fn literal_like(literal: &Literal, other: &ArrayRef, rows: usize) -> ArrayRef {
    let Literal::String(text) = literal else { return literal_array(literal, rows) };
    match other.data_type() {
        DataType::Timestamp(_, _) => match parse_date_time(text) {
            Some(at) => Arc::new(timestamp_array(at, rows)),
            None => new_null_array(other.data_type(), rows),
        },
        DataType::Date32 => match parse_date_time(text) {
            Some(at) => Arc::new(Date32Array::from_value((at.timestamp().div_euclid(86_400)) as i32, rows)),
            None => new_null_array(other.data_type(), rows),
        },
        _ => literal_array(literal, rows),
    }
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Int32 | DataType::Int64)
}

fn is_number(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

fn to_float(value: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    arrow_cast::cast(value, &DataType::Float64)
}

/// Both sides in one type: int64 for two integers, float64 for other
/// numbers, the other side's type for a null literal.
fn coerce(left: &ArrayRef, right: &ArrayRef) -> Result<(ArrayRef, ArrayRef), ArrowError> {
    let (l, r) = (left.data_type(), right.data_type());
    if l == r {
        return Ok((Arc::clone(left), Arc::clone(right)));
    }
    if *l == DataType::Null {
        return Ok((new_null_array(r, left.len()), Arc::clone(right)));
    }
    if *r == DataType::Null {
        return Ok((Arc::clone(left), new_null_array(l, right.len())));
    }
    if is_integer(l) && is_integer(r) {
        return Ok((arrow_cast::cast(left, &DataType::Int64)?, arrow_cast::cast(right, &DataType::Int64)?));
    }
    if is_number(l) && is_number(r) {
        return Ok((to_float(left)?, to_float(right)?));
    }
    if matches!(l, DataType::Timestamp(_, _)) && matches!(r, DataType::Timestamp(_, _)) {
        return Ok((Arc::clone(left), arrow_cast::cast(right, l)?));
    }
    Err(ArrowError::InvalidArgumentError(format!("cannot compare {l} with {r}")))
}
