//! A written Parquet file as an Iceberg data file: its partition and the
//! column statistics (from our writer's footer) that let engines skip it.

use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PrimitiveType, Schema, Struct, Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

/// The data file at `path` (`bytes` long, `rows` rows), in the partition of
/// `day` (days since the epoch; `None` for rows without an event time).
pub(crate) fn data_file(
    path: String,
    bytes: u64,
    day: Option<i32>,
    metadata: &ParquetMetaData,
    schema: &Schema,
    spec_id: i32,
) -> Result<DataFile, String> {
    let mut values: HashMap<i32, u64> = HashMap::new();
    let mut nulls: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    let mut bounded = HashMap::<i32, bool>::new();
    for group in metadata.row_groups() {
        for column in group.columns() {
            let descriptor = column.column_descr();
            let info = descriptor.self_type().get_basic_info();
            if !info.has_id() {
                continue;
            }
            let id = info.id();
            *values.entry(id).or_default() += u64::try_from(column.num_values()).unwrap_or(0);
            let statistics = column.statistics();
            match statistics.and_then(Statistics::null_count_opt) {
                Some(count) => *nulls.entry(id).or_default() += count,
                None => {
                    nulls.remove(&id);
                }
            }
            // Bounds only for columns outside lists and maps, and only where every row group has them.
            let primitive = match schema.field_by_id(id).map(|field| field.field_type.as_ref()) {
                Some(Type::Primitive(primitive)) if descriptor.max_rep_level() == 0 => primitive,
                _ => continue,
            };
            let bounds = statistics.and_then(|statistics| bounds(statistics, primitive));
            let keep = bounded.entry(id).or_insert(true);
            match bounds {
                Some((min, max)) if *keep => {
                    merge(&mut lower, id, min, std::cmp::Ordering::Less);
                    merge(&mut upper, id, max, std::cmp::Ordering::Greater);
                }
                _ => {
                    *keep = false;
                    lower.remove(&id);
                    upper.remove(&id);
                }
            }
        }
    }
    let rows = u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0);
    let partition = Struct::from_iter([day.map(Literal::date)]);
    DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(path)
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(spec_id)
        .record_count(rows)
        .file_size_in_bytes(bytes)
        .value_counts(values)
        .null_value_counts(nulls)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .build()
        .map_err(|error| error.to_string())
}

fn merge(bounds: &mut HashMap<i32, Datum>, id: i32, value: Datum, keep_if: std::cmp::Ordering) {
    match bounds.get(&id) {
        Some(current) if value.partial_cmp(current) != Some(keep_if) => {}
        _ => {
            bounds.insert(id, value);
        }
    }
}

/// A column chunk's exact min and max as Iceberg values of `primitive`.
fn bounds(statistics: &Statistics, primitive: &PrimitiveType) -> Option<(Datum, Datum)> {
    use PrimitiveType as P;
    match (statistics, primitive) {
        (Statistics::Boolean(s), P::Boolean) => Some((Datum::bool(*s.min_opt()?), Datum::bool(*s.max_opt()?))),
        (Statistics::Int32(s), P::Int) => Some((Datum::int(*s.min_opt()?), Datum::int(*s.max_opt()?))),
        (Statistics::Int32(s), P::Date) => Some((Datum::date(*s.min_opt()?), Datum::date(*s.max_opt()?))),
        (Statistics::Int64(s), P::Long) => Some((Datum::long(*s.min_opt()?), Datum::long(*s.max_opt()?))),
        (Statistics::Int64(s), P::Timestamptz) => {
            Some((Datum::timestamptz_micros(*s.min_opt()?), Datum::timestamptz_micros(*s.max_opt()?)))
        }
        (Statistics::Int64(s), P::Timestamp) => {
            Some((Datum::timestamp_micros(*s.min_opt()?), Datum::timestamp_micros(*s.max_opt()?)))
        }
        (Statistics::Float(s), P::Float) => Some((Datum::float(*s.min_opt()?), Datum::float(*s.max_opt()?))),
        (Statistics::Double(s), P::Double) => Some((Datum::double(*s.min_opt()?), Datum::double(*s.max_opt()?))),
        // Parquet may truncate string statistics; only exact ones are bounds.
        (Statistics::ByteArray(s), P::String) if s.min_is_exact() && s.max_is_exact() => {
            let min = std::str::from_utf8(s.min_bytes_opt()?).ok()?;
            let max = std::str::from_utf8(s.max_bytes_opt()?).ok()?;
            Some((Datum::string(min), Datum::string(max)))
        }
        _ => None,
    }
}
