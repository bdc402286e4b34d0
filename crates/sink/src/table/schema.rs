//! A dataset's Arrow schema as an Iceberg schema, with field ids that stay
//! put across versions, and the ids written into each Parquet file.

use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit};
use iceberg::spec::{ListType, MapType, NestedField, NestedFieldRef, PrimitiveType, Schema, StructType, Type};

/// The Parquet field-metadata key readers match Iceberg columns by.
const FIELD_ID: &str = "PARQUET:field_id";

/// Why a dataset's fields cannot become (or evolve) its table's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SchemaChangeError {
    /// The field, as a dotted path.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn refused(path: &str, reason: impl Into<String>) -> SchemaChangeError {
    SchemaChangeError { field: path.to_owned(), reason: reason.into() }
}

/// The table schema for `arrow`: fields the `current` table schema has keep
/// their ids (matched by name at each level); new ones get ids above every
/// id the table ever used (`last_column_id`). Refuses what Iceberg readers of
/// older snapshots could not follow: a type change other than a promotion
/// (int → long, float → double, a wider decimal), an optional field made
/// required, and a new required field.
pub fn table_schema(
    arrow: &ArrowSchema,
    current: Option<&Schema>,
    last_column_id: i32,
    identifier_fields: &[String],
) -> Result<Schema, SchemaChangeError> {
    let mut next_id = last_column_id;
    let existing = current.map(|schema| schema.as_struct().fields());
    let fields = struct_fields(arrow.fields(), existing, &mut next_id, "")?;
    let identifiers = identifier_fields
        .iter()
        .map(|name| {
            fields
                .iter()
                .find(|field| &field.name == name)
                .map(|field| field.id)
                .ok_or_else(|| refused(name, "an identifier field must be a top-level field"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Schema::builder()
        .with_fields(fields)
        .with_identifier_field_ids(identifiers)
        .build()
        .map_err(|error| refused("", error.to_string()))
}

fn struct_fields(
    fields: &Fields,
    existing: Option<&[NestedFieldRef]>,
    next_id: &mut i32,
    parent: &str,
) -> Result<Vec<NestedFieldRef>, SchemaChangeError> {
    fields
        .iter()
        .map(|field| {
            let path = if parent.is_empty() { field.name().clone() } else { format!("{parent}.{}", field.name()) };
            let old = existing.and_then(|fields| fields.iter().find(|old| old.name == *field.name()));
            let id = match old {
                Some(old) => old.id,
                None if !field.is_nullable() && existing.is_some() => {
                    return Err(refused(&path, "a field added to an existing table must be optional"));
                }
                None => fresh(next_id),
            };
            if let Some(old) = old
                && !old.required
                && !field.is_nullable()
            {
                return Err(refused(&path, "an optional field cannot become required (older rows may be null)"));
            }
            let field_type = iceberg_type(field.data_type(), old.map(|old| old.field_type.as_ref()), next_id, &path)?;
            let nested = if field.is_nullable() {
                NestedField::optional(id, field.name(), field_type)
            } else {
                NestedField::required(id, field.name(), field_type)
            };
            Ok(Arc::new(nested))
        })
        .collect()
}

fn fresh(next_id: &mut i32) -> i32 {
    *next_id += 1;
    *next_id
}

fn iceberg_type(
    arrow: &ArrowType,
    old: Option<&Type>,
    next_id: &mut i32,
    path: &str,
) -> Result<Type, SchemaChangeError> {
    let new = match arrow {
        ArrowType::Boolean => Type::Primitive(PrimitiveType::Boolean),
        ArrowType::Int32 => Type::Primitive(PrimitiveType::Int),
        ArrowType::Int64 => Type::Primitive(PrimitiveType::Long),
        ArrowType::Float32 => Type::Primitive(PrimitiveType::Float),
        ArrowType::Float64 => Type::Primitive(PrimitiveType::Double),
        ArrowType::Utf8 => Type::Primitive(PrimitiveType::String),
        ArrowType::Binary => Type::Primitive(PrimitiveType::Binary),
        ArrowType::Date32 => Type::Primitive(PrimitiveType::Date),
        ArrowType::Timestamp(TimeUnit::Microsecond, Some(_)) => Type::Primitive(PrimitiveType::Timestamptz),
        ArrowType::Timestamp(TimeUnit::Microsecond, None) => Type::Primitive(PrimitiveType::Timestamp),
        ArrowType::Decimal128(precision, scale) => Type::Primitive(PrimitiveType::Decimal {
            precision: u32::from(*precision),
            scale: u32::try_from(*scale).map_err(|_| refused(path, "a negative decimal scale"))?,
        }),
        ArrowType::List(element) => {
            let old_element = match old {
                Some(Type::List(list)) => Some(&list.element_field),
                _ => None,
            };
            let id = old_element.map_or_else(|| fresh(next_id), |old| old.id);
            let element_type = iceberg_type(
                element.data_type(),
                old_element.map(|old| old.field_type.as_ref()),
                next_id,
                &format!("{path}[]"),
            )?;
            Type::List(ListType::new(Arc::new(NestedField::list_element(id, element_type, !element.is_nullable()))))
        }
        ArrowType::Map(entries, _) => {
            let ArrowType::Struct(pair) = entries.data_type() else {
                return Err(refused(path, "a map without key/value entries"));
            };
            let (Some(key), Some(value)) = (pair.first(), pair.get(1)) else {
                return Err(refused(path, "a map without key/value entries"));
            };
            let old_map = match old {
                Some(Type::Map(map)) => Some(map),
                _ => None,
            };
            let key_id = old_map.map_or_else(|| fresh(next_id), |map| map.key_field.id);
            let value_id = old_map.map_or_else(|| fresh(next_id), |map| map.value_field.id);
            let key_type = iceberg_type(
                key.data_type(),
                old_map.map(|map| map.key_field.field_type.as_ref()),
                next_id,
                &format!("{path}.key"),
            )?;
            let value_type = iceberg_type(
                value.data_type(),
                old_map.map(|map| map.value_field.field_type.as_ref()),
                next_id,
                &format!("{path}.value"),
            )?;
            let map = if value.is_nullable() {
                MapType::optional(key_id, key_type, value_id, value_type)
            } else {
                MapType::required(key_id, key_type, value_id, value_type)
            };
            Type::Map(map)
        }
        ArrowType::Struct(fields) => {
            let old_fields = match old {
                Some(Type::Struct(old)) => Some(old.fields()),
                _ => None,
            };
            Type::Struct(StructType::new(struct_fields(fields, old_fields, next_id, path)?))
        }
        other => return Err(refused(path, format!("no Iceberg type for Arrow's {other}"))),
    };
    match old {
        Some(old) if !same_kind(old, &new) => {
            Err(refused(path, format!("the table has it as {old}; {new} is not a type Iceberg can promote it to")))
        }
        _ => Ok(new),
    }
}

/// Whether a column of type `old` can be read as `new`: equal, a nested
/// type (its children were checked on their own), or one of Iceberg's promotions.
fn same_kind(old: &Type, new: &Type) -> bool {
    use PrimitiveType as P;
    match (old, new) {
        (Type::List(_), Type::List(_)) | (Type::Map(_), Type::Map(_)) | (Type::Struct(_), Type::Struct(_)) => true,
        (Type::Primitive(old), Type::Primitive(new)) => match (old, new) {
            (P::Int, P::Long) | (P::Float, P::Double) => true,
            (P::Decimal { precision: p1, scale: s1 }, P::Decimal { precision: p2, scale: s2 }) => s1 == s2 && p2 >= p1,
            (old, new) => old == new,
        },
        _ => false,
    }
}

/// `schema` with each field's Iceberg id (from `table`) in its
/// `PARQUET:field_id` metadata, nested fields included, so readers match
/// columns by id, not by name.
pub fn with_field_ids(schema: &ArrowSchema, table: &Schema) -> Result<ArrowSchema, SchemaChangeError> {
    let fields = stamp_fields(schema.fields(), table.as_struct().fields(), "")?;
    Ok(ArrowSchema::new_with_metadata(fields, schema.metadata().clone()))
}

fn stamp_fields(fields: &Fields, table: &[NestedFieldRef], parent: &str) -> Result<Vec<ArrowField>, SchemaChangeError> {
    fields
        .iter()
        .map(|field| {
            let path = if parent.is_empty() { field.name().clone() } else { format!("{parent}.{}", field.name()) };
            let Some(nested) = table.iter().find(|nested| nested.name == *field.name()) else {
                return Err(refused(&path, "not in the table's schema"));
            };
            stamp(field, nested, &path)
        })
        .collect()
}

fn stamp(field: &ArrowField, nested: &NestedField, path: &str) -> Result<ArrowField, SchemaChangeError> {
    let data_type = match (field.data_type(), nested.field_type.as_ref()) {
        (ArrowType::List(element), Type::List(list)) => {
            ArrowType::List(Arc::new(stamp(element, &list.element_field, &format!("{path}[]"))?))
        }
        (ArrowType::Map(entries, sorted), Type::Map(map)) => {
            let ArrowType::Struct(pair) = entries.data_type() else {
                return Err(refused(path, "a map without key/value entries"));
            };
            let (Some(key), Some(value)) = (pair.first(), pair.get(1)) else {
                return Err(refused(path, "a map without key/value entries"));
            };
            let pair = vec![
                stamp(key, &map.key_field, &format!("{path}.key"))?,
                stamp(value, &map.value_field, &format!("{path}.value"))?,
            ];
            let entries = ArrowField::new(entries.name(), ArrowType::Struct(pair.into()), entries.is_nullable());
            ArrowType::Map(Arc::new(entries), *sorted)
        }
        (ArrowType::Struct(children), Type::Struct(table)) => {
            ArrowType::Struct(stamp_fields(children, table.fields(), path)?.into())
        }
        (other, _) => other.clone(),
    };
    let mut metadata = field.metadata().clone();
    metadata.extend([(FIELD_ID, nested.id.to_string())]);
    Ok(field.clone().with_data_type(data_type).with_metadata(metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> ArrowType {
        ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    fn arrow(fields: Vec<ArrowField>) -> ArrowSchema {
        ArrowSchema::new(fields)
    }

    fn nested_schema() -> ArrowSchema {
        let entries = ArrowField::new(
            "entries",
            ArrowType::Struct(
                vec![ArrowField::new("key", ArrowType::Utf8, false), ArrowField::new("value", ArrowType::Int64, true)]
                    .into(),
            ),
            false,
        );
        arrow(vec![
            ArrowField::new("id", ArrowType::Int64, false),
            ArrowField::new("ts", utc(), false),
            ArrowField::new("tags", ArrowType::List(Arc::new(ArrowField::new("item", ArrowType::Utf8, true))), true),
            ArrowField::new("counts", ArrowType::Map(Arc::new(entries), false), true),
            ArrowField::new(
                "address",
                ArrowType::Struct(vec![ArrowField::new("city", ArrowType::Utf8, true)].into()),
                true,
            ),
        ])
    }

    #[test]
    fn ids_are_assigned_once_and_kept_by_name_when_optional_fields_are_added() {
        let first = table_schema(&nested_schema(), None, 0, &["id".to_owned()]).expect("schema");
        assert_eq!(first.highest_field_id(), 9);
        assert_eq!(first.identifier_field_ids().collect::<Vec<_>>(), [1]);
        let mut fields: Vec<ArrowField> = nested_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.insert(1, ArrowField::new("note", ArrowType::Utf8, true));
        fields[0] = ArrowField::new("id", ArrowType::Int64, false);
        let second = table_schema(&arrow(fields), Some(&first), first.highest_field_id(), &[]).expect("evolved");
        for name in ["id", "ts", "tags", "counts", "address"] {
            assert_eq!(second.field_by_name(name).map(|f| f.id), first.field_by_name(name).map(|f| f.id), "{name}");
        }
        assert_eq!(second.field_by_name("note").map(|f| f.id), Some(10), "a new field gets a new id");
        assert_eq!(
            second.field_by_name("address.city").map(|f| f.id),
            first.field_by_name("address.city").map(|f| f.id)
        );

        let stamped = with_field_ids(&nested_schema(), &first).expect("stamped");
        let id = |field: &ArrowField| field.metadata().get(FIELD_ID).cloned();
        assert_eq!(id(stamped.field(0)).as_deref(), Some("1"));
        let ArrowType::List(element) = stamped.field(2).data_type() else { panic!("a list") };
        assert!(id(element).is_some(), "list elements carry ids too");
        let ArrowType::Map(entries, _) = stamped.field(3).data_type() else { panic!("a map") };
        let ArrowType::Struct(pair) = entries.data_type() else { panic!("entries") };
        assert!(id(&pair[0]).is_some() && id(&pair[1]).is_some(), "map keys and values carry ids");
    }

    #[test]
    fn incompatible_changes_are_refused_and_promotions_allowed() {
        let base = arrow(vec![
            ArrowField::new("id", ArrowType::Int32, false),
            ArrowField::new("ts", utc(), false),
            ArrowField::new("score", ArrowType::Float32, true),
        ]);
        let table = table_schema(&base, None, 0, &[]).expect("schema");
        let change = |fields: Vec<ArrowField>| table_schema(&arrow(fields), Some(&table), 3, &[]);
        let promoted = change(vec![
            ArrowField::new("id", ArrowType::Int64, false),
            ArrowField::new("ts", utc(), false),
            ArrowField::new("score", ArrowType::Float64, true),
        ]);
        assert!(promoted.is_ok(), "{promoted:?}");
        let retyped = change(vec![ArrowField::new("id", ArrowType::Utf8, false), ArrowField::new("ts", utc(), false)]);
        assert_eq!(retyped.map_err(|e| e.field), Err("id".to_owned()));
        let required = change(vec![
            ArrowField::new("id", ArrowType::Int32, false),
            ArrowField::new("ts", utc(), false),
            ArrowField::new("score", ArrowType::Float32, false),
        ]);
        assert!(required.is_err_and(|e| e.reason.contains("cannot become required")));
        let new_required = change(vec![
            ArrowField::new("id", ArrowType::Int32, false),
            ArrowField::new("ts", utc(), false),
            ArrowField::new("extra", ArrowType::Int32, false),
        ]);
        assert!(new_required.is_err_and(|e| e.field == "extra" && e.reason.contains("must be optional")));
    }
}
