//! The hash `sample` keeps rows by: a 64-bit hash of some columns' values.
//!
//! It must give the same answer for the same values across replays, restarts
//! and Tributary versions, so it hashes a canonical encoding of each value
//! (never Arrow's in-memory layout or its row format, which may change):
//! integers as i64, floats as f64 bits, dates as days, timestamps as µs,
//! decimals as their unscaled i128 and scale, strings and bytes with their
//! length, lists and maps element by element, structs field by field, and a
//! tag before each value so that NULL, "" and 0 differ. Widening a column
//! (int32 to int64, float32 to float64) keeps every row's hash.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{ArrowError, DataType};

/// Kinds of values, hashed before each one.
mod tag {
    pub(super) const NULL: u8 = 0;
    pub(super) const BOOL: u8 = 1;
    pub(super) const INT: u8 = 2;
    pub(super) const FLOAT: u8 = 3;
    pub(super) const STRING: u8 = 4;
    pub(super) const BYTES: u8 = 5;
    pub(super) const DATE: u8 = 6;
    pub(super) const TIMESTAMP: u8 = 7;
    pub(super) const DECIMAL: u8 = 8;
    pub(super) const LIST: u8 = 9;
    pub(super) const STRUCT: u8 = 10;
    pub(super) const MAP: u8 = 11;
}

/// FNV-1a over the canonical bytes; finished with a mixer that spreads them.
#[derive(Clone, Copy)]
struct Hasher(u64);

impl Hasher {
    const START: Hasher = Hasher(0xcbf2_9ce4_8422_2325);

    fn bytes(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.bytes(&[tag]);
        self.bytes(bytes);
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
        for (row, hasher) in hashers.iter_mut().enumerate() {
            hash_value(column.as_ref(), row, hasher)?;
        }
    }
    Ok(hashers.into_iter().map(Hasher::finish).collect())
}

fn hash_value(array: &dyn Array, row: usize, hasher: &mut Hasher) -> Result<(), ArrowError> {
    if array.is_null(row) {
        hasher.tagged(tag::NULL, &[]);
        return Ok(());
    }
    match array.data_type() {
        DataType::Boolean => hasher.tagged(tag::BOOL, &[u8::from(array.as_boolean().value(row))]),
        DataType::Int32 => {
            hasher.tagged(tag::INT, &i64::from(array.as_primitive::<Int32Type>().value(row)).to_le_bytes());
        }
        DataType::Int64 => hasher.tagged(tag::INT, &array.as_primitive::<Int64Type>().value(row).to_le_bytes()),
        DataType::Float32 => {
            let value = f64::from(array.as_primitive::<Float32Type>().value(row));
            hasher.tagged(tag::FLOAT, &value.to_bits().to_le_bytes());
        }
        DataType::Float64 => {
            hasher.tagged(tag::FLOAT, &array.as_primitive::<Float64Type>().value(row).to_bits().to_le_bytes());
        }
        DataType::Utf8 => {
            let value = array.as_string::<i32>().value(row).as_bytes();
            hasher.tagged(tag::STRING, &(value.len() as u64).to_le_bytes());
            hasher.bytes(value);
        }
        DataType::Binary => {
            let value = array.as_binary::<i32>().value(row);
            hasher.tagged(tag::BYTES, &(value.len() as u64).to_le_bytes());
            hasher.bytes(value);
        }
        DataType::Date32 => {
            hasher.tagged(tag::DATE, &i64::from(array.as_primitive::<Date32Type>().value(row)).to_le_bytes());
        }
        DataType::Timestamp(_, _) => {
            let value = array.as_primitive_opt::<TimestampMicrosecondType>().map(|a| a.value(row));
            let value = value.ok_or_else(|| ArrowError::CastError("timestamps must be in µs".into()))?;
            hasher.tagged(tag::TIMESTAMP, &value.to_le_bytes());
        }
        DataType::Decimal128(_, scale) => {
            hasher.tagged(tag::DECIMAL, &array.as_primitive::<Decimal128Type>().value(row).to_le_bytes());
            hasher.bytes(&scale.to_le_bytes());
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            hasher.tagged(tag::LIST, &(values.len() as u64).to_le_bytes());
            for index in 0..values.len() {
                hash_value(values.as_ref(), index, hasher)?;
            }
        }
        DataType::Struct(_) => {
            let parent = array.as_struct();
            hasher.tagged(tag::STRUCT, &(parent.num_columns() as u64).to_le_bytes());
            for child in parent.columns() {
                hash_value(child.as_ref(), row, hasher)?;
            }
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            hasher.tagged(tag::MAP, &(entries.len() as u64).to_le_bytes());
            for index in 0..entries.len() {
                for column in entries.columns() {
                    hash_value(column.as_ref(), index, hasher)?;
                }
            }
        }
        other => return Err(ArrowError::NotYetImplemented(format!("`sample` cannot hash {other} values"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn hashes_are_fixed_values_that_survive_widening_and_tell_null_from_empty() {
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None]));
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(hash_rows(&[&narrow], 2).expect("hash"), hash_rows(&[&wide], 2).expect("hash"));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some(""), None, Some("a")]));
        let hashes = hash_rows(&[&text], 3).expect("hash");
        assert_ne!(hashes[0], hashes[1], "NULL is not the empty string");
        // Pinned: a change here re-samples every user's stream.
        assert_eq!(hashes[2], hash_rows(&[&text], 3).expect("hash")[2]);
        assert_eq!(format!("{:016x}", hashes[2]), PINNED_HASH_OF_A);
    }

    /// The hash of the string "a" (tag 4, length 1 as u64 LE, `a`; FNV-1a, then the
    /// murmur3 finaliser), computed apart from this code and pinned so the encoding
    /// cannot drift unnoticed.
    const PINNED_HASH_OF_A: &str = "16988e2dd5062668";
}
