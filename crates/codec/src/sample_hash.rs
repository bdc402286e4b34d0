//! The hash `sample` keeps rows by: a 64-bit hash of some columns' values.
//!
//! It must give the same answer for the same values across replays, restarts
//! and Tributary versions, so it hashes a canonical encoding of each value
//! (never Arrow's in-memory layout or its row format, which may change), as
//! 64-bit words: a tag word before each value (so NULL, "" and 0 differ),
//! then integers as i64, floats as f64 bits, dates as days, timestamps as µs,
//! decimals as their unscaled i128 and scale, strings and bytes as their
//! length and their bytes (little-endian words, the last one zero-padded),
//! lists and maps as their length and items, structs as their field count and
//! fields. Widening a column (int32 to int64, float32 to float64) keeps every
//! row's hash. Each word is mixed in with a multiply and a rotation, and the
//! result finished with murmur3's mixer.
//!
//! Rows are independent, so columns are hashed one at a time over every row
//! (a loop per type), lists of scalars too; only maps and lists of nested
//! values go value by value.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{ArrowError, DataType};

/// Kinds of values, hashed before each one.
mod tag {
    pub(super) const NULL: u64 = 0;
    pub(super) const BOOL: u64 = 1;
    pub(super) const INT: u64 = 2;
    pub(super) const FLOAT: u64 = 3;
    pub(super) const STRING: u64 = 4;
    pub(super) const BYTES: u64 = 5;
    pub(super) const DATE: u64 = 6;
    pub(super) const TIMESTAMP: u64 = 7;
    pub(super) const DECIMAL: u64 = 8;
    pub(super) const LIST: u64 = 9;
    pub(super) const STRUCT: u64 = 10;
    pub(super) const MAP: u64 = 11;
}

#[derive(Clone, Copy)]
struct Hasher(u64);

impl Hasher {
    const START: Hasher = Hasher(0x243f_6a88_85a3_08d3);

    #[inline(always)]
    fn word(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(27);
    }

    #[inline(always)]
    fn tagged(&mut self, tag: u64, word: u64) {
        self.word(tag);
        self.word(word);
    }

    /// A length, then the bytes as little-endian words (the last zero-padded).
    #[inline(always)]
    fn bytes(&mut self, tag: u64, bytes: &[u8]) {
        self.tagged(tag, bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(last));
        }
    }

    fn finish(self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^ (hash >> 33)
    }
}

/// One hash per row over `columns`, in order.
pub(crate) fn hash_rows(columns: &[&ArrayRef], rows: usize) -> Result<Vec<u64>, ArrowError> {
    let mut hashers = vec![Hasher::START; rows];
    for column in columns {
        hash_column(column.as_ref(), &mut hashers, None)?;
    }
    Ok(hashers.into_iter().map(Hasher::finish).collect())
}

/// Feeds row `i` of `array` to `hashers[i]`, for the rows `active` allows
/// (all when `None`; a null struct's children are not hashed).
fn hash_column(array: &dyn Array, hashers: &mut [Hasher], active: Option<&[bool]>) -> Result<(), ArrowError> {
    let live = |row: &usize| active.is_none_or(|active| active[*row]);
    if feed_scalars(array, (0..hashers.len()).filter(live).map(|row| (row, row)), hashers)? {
        return Ok(());
    }
    match array.data_type() {
        DataType::Struct(_) => {
            let parent = array.as_struct();
            let mut children_active = vec![false; hashers.len()];
            for (row, hasher) in hashers.iter_mut().enumerate().filter(|(row, _)| live(row)) {
                if parent.is_null(row) {
                    hasher.word(tag::NULL);
                } else {
                    hasher.tagged(tag::STRUCT, parent.num_columns() as u64);
                    children_active[row] = true;
                }
            }
            for child in parent.columns() {
                hash_column(child.as_ref(), hashers, Some(&children_active))?;
            }
        }
        // A list of scalars: every row's length, then its items from the one values array.
        DataType::List(item) if is_scalar(item.data_type()) => {
            let list = array.as_list::<i32>();
            let offsets = list.value_offsets();
            let mut items = Vec::new();
            for (row, hasher) in hashers.iter_mut().enumerate().filter(|(row, _)| live(row)) {
                if list.is_null(row) {
                    hasher.word(tag::NULL);
                    continue;
                }
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                hasher.tagged(tag::LIST, (end - start) as u64);
                items.extend((start..end).map(|item| (item, row)));
            }
            feed_scalars(list.values().as_ref(), items.into_iter(), hashers)?;
        }
        _ => {
            for (row, hasher) in hashers.iter_mut().enumerate().filter(|(row, _)| live(row)) {
                hash_value(array, row, hasher)?;
            }
        }
    }
    Ok(())
}

fn is_scalar(data_type: &DataType) -> bool {
    !matches!(data_type, DataType::List(_) | DataType::Map(_, _) | DataType::Struct(_))
}

/// For each `(value, hasher)` pair, in order, feeds `array`'s value to that
/// hasher; `false` (feeding nothing) when `array` is not of a scalar type.
fn feed_scalars(
    array: &dyn Array,
    pairs: impl Iterator<Item = (usize, usize)>,
    hashers: &mut [Hasher],
) -> Result<bool, ArrowError> {
    macro_rules! feed {
        (|$value:ident, $hasher:ident| $body:expr) => {
            for ($value, at) in pairs {
                let $hasher = &mut hashers[at];
                if array.is_null($value) {
                    $hasher.word(tag::NULL);
                } else {
                    $body;
                }
            }
        };
    }
    match array.data_type() {
        DataType::Boolean => {
            let values = array.as_boolean();
            feed!(|value, hasher| hasher.tagged(tag::BOOL, u64::from(values.value(value))));
        }
        DataType::Int32 => {
            let values = array.as_primitive::<Int32Type>().values();
            feed!(|value, hasher| hasher.tagged(tag::INT, i64::from(values[value]) as u64));
        }
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>().values();
            feed!(|value, hasher| hasher.tagged(tag::INT, values[value] as u64));
        }
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>().values();
            feed!(|value, hasher| hasher.tagged(tag::FLOAT, f64::from(values[value]).to_bits()));
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>().values();
            feed!(|value, hasher| hasher.tagged(tag::FLOAT, values[value].to_bits()));
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            feed!(|value, hasher| hasher.bytes(tag::STRING, values.value(value).as_bytes()));
        }
        DataType::Binary => {
            let values = array.as_binary::<i32>();
            feed!(|value, hasher| hasher.bytes(tag::BYTES, values.value(value)));
        }
        DataType::Date32 => {
            let values = array.as_primitive::<Date32Type>().values();
            feed!(|value, hasher| hasher.tagged(tag::DATE, i64::from(values[value]) as u64));
        }
        DataType::Timestamp(_, _) => {
            let values = array
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| ArrowError::CastError("timestamps must be in µs".into()))?
                .values();
            feed!(|value, hasher| hasher.tagged(tag::TIMESTAMP, values[value] as u64));
        }
        DataType::Decimal128(_, scale) => {
            let values = array.as_primitive::<Decimal128Type>().values();
            feed!(|value, hasher| {
                let unscaled = values[value] as u128;
                hasher.tagged(tag::DECIMAL, unscaled as u64);
                hasher.word((unscaled >> 64) as u64);
                hasher.word(*scale as u64);
            });
        }
        DataType::List(_) | DataType::Map(_, _) | DataType::Struct(_) => return Ok(false),
        other => return Err(ArrowError::NotYetImplemented(format!("`sample` cannot hash {other} values"))),
    }
    Ok(true)
}

/// One value, recursively (lists of nested values, maps, and what they hold).
fn hash_value(array: &dyn Array, row: usize, hasher: &mut Hasher) -> Result<(), ArrowError> {
    if feed_scalars(array, std::iter::once((row, 0)), std::slice::from_mut(hasher))? {
        return Ok(());
    }
    if array.is_null(row) {
        hasher.word(tag::NULL);
        return Ok(());
    }
    match array.data_type() {
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            hasher.tagged(tag::LIST, values.len() as u64);
            for index in 0..values.len() {
                hash_value(values.as_ref(), index, hasher)?;
            }
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            hasher.tagged(tag::MAP, entries.len() as u64);
            for index in 0..entries.len() {
                for column in entries.columns() {
                    hash_value(column.as_ref(), index, hasher)?;
                }
            }
        }
        DataType::Struct(_) => {
            let parent = array.as_struct();
            hasher.tagged(tag::STRUCT, parent.num_columns() as u64);
            for child in parent.columns() {
                hash_value(child.as_ref(), row, hasher)?;
            }
        }
        other => return Err(ArrowError::NotYetImplemented(format!("`sample` cannot hash {other} values"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, Int64Array, ListArray, StringArray, StructArray};
    use arrow_schema::Field;

    use super::*;

    #[test]
    fn hashes_are_fixed_values_that_survive_widening_and_tell_null_from_empty() {
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(hash_rows(&[&narrow], 2).expect("hash"), hash_rows(&[&wide], 2).expect("hash"));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some(""), None, Some("a")]));
        let hashes = hash_rows(&[&text], 3).expect("hash");
        assert_ne!(hashes[0], hashes[1], "NULL is not the empty string");
        assert_eq!(format!("{:016x}", hashes[2]), PINNED_HASH_OF_A);
    }

    #[test]
    fn column_at_a_time_feeds_what_value_at_a_time_would() {
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("b"), None]));
        let fields =
            vec![Arc::new(Field::new("id", DataType::Int64, true)), Arc::new(Field::new("n", DataType::Utf8, true))];
        let nulls = arrow_buffer::NullBuffer::from(vec![true, false, true]);
        let people: ArrayRef =
            Arc::new(StructArray::new(fields.into(), vec![Arc::clone(&ids), Arc::clone(&names)], Some(nulls)));
        let tags: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ]));
        let nested: ArrayRef = Arc::new(ListArray::new(
            Arc::new(Field::new("item", people.data_type().clone(), true)),
            arrow_buffer::OffsetBuffer::from_lengths([2, 0, 1]),
            Arc::clone(&people),
            None,
        ));
        let columnwise = hash_rows(&[&ids, &people, &tags, &nested], 3).expect("hash");
        let valuewise: Vec<u64> = (0..3)
            .map(|row| {
                let mut hasher = Hasher::START;
                for column in [&ids, &people, &tags, &nested] {
                    hash_value(column.as_ref(), row, &mut hasher).expect("hash");
                }
                hasher.finish()
            })
            .collect();
        assert_eq!(columnwise, valuewise);
        assert_eq!(columnwise.iter().collect::<std::collections::HashSet<_>>().len(), 3);
    }

    /// The hash of the string "a": words 4 (the tag), 1 (the length), 0x61
    /// (the padded byte), from the start value; computed apart from this code
    /// and pinned so the encoding cannot drift unnoticed (a change re-samples
    /// every user's stream).
    const PINNED_HASH_OF_A: &str = "294bce660856ac33";
}
