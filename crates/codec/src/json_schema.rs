//! JSON records framed by the Glue Schema Registry: each names a JSON Schema
//! version, which is checked once against the dataset (does every field the
//! dataset needs exist there, with a type that can hold it?) and then only
//! the header is taken off; the JSON decoder reads the body as usual.

use std::sync::Arc;

use serde_json::Value;

use crate::columns::{Column, FieldSource, Kind};
use crate::decoder::DecodeError;
use crate::glue::{self, GlueSchemaSource, Inflater};
use crate::rejection::{Fault, Reason};
use crate::schema_cache::WriterSchemas;

/// How deep a JSON Schema is followed.
const MAX_DEPTH: usize = 64;

/// Takes the Glue framing off JSON records, checking each new schema version once.
#[derive(Debug)]
pub(crate) struct GlueJsonFrames {
    versions: Arc<dyn GlueSchemaSource>,
    checked: WriterSchemas<()>,
    inflater: Inflater,
}

impl GlueJsonFrames {
    pub(crate) fn new(versions: Arc<dyn GlueSchemaSource>) -> GlueJsonFrames {
        GlueJsonFrames { versions, checked: WriterSchemas::new(), inflater: Inflater::default() }
    }

    /// The JSON body of a framed record whose schema version fits the dataset
    /// (`root`); the outer error means "retry later".
    pub(crate) fn body<'a>(
        &'a mut self,
        payload: &'a [u8],
        root: &Column,
    ) -> Result<Result<&'a [u8], Box<Fault>>, DecodeError> {
        let unframed = match glue::unframe(payload, &mut self.inflater) {
            Ok(unframed) => unframed,
            Err(reason) => return Ok(Err(Fault::record(reason))),
        };
        let id = unframed.id;
        let versions = &self.versions;
        let checked = self.checked.get(
            id,
            || Reason::UnknownSchemaVersion(id),
            || glue::fetch_version(versions.as_ref(), id, "JSON", "JSON Schema", |definition| check(definition, root)),
        )?;
        Ok(checked.map(|()| unframed.body))
    }
}

/// Whether records valid under the JSON Schema `schema_text` can fill the
/// dataset (`root`): every field the dataset reads from the payload is
/// declared, or optional; declared types can hold the dataset's. A schema that
/// says nothing of a field (no `properties`, no `type`) is given the benefit of the doubt.
pub(crate) fn check(schema_text: &str, root: &Column) -> Result<(), String> {
    let schema: Value = serde_json::from_str(schema_text).map_err(|e| format!("the JSON Schema is not JSON: {e}"))?;
    check_value(&schema, root, 0)
}

fn check_value(schema: &Value, column: &Column, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("the JSON Schema nests too deeply".to_owned());
    }
    let Value::Object(schema) = schema else { return Ok(()) };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(kind)) => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let path = if column.path.is_empty() { "<record>" } else { &column.path };
    if !types.is_empty() {
        let fits = types.iter().any(|kind| holds(&column.kind, kind));
        if !fits {
            return Err(format!(
                "field `{path}`: JSON Schema type {} cannot be read as `{}`",
                types.join("|"),
                column.type_name
            ));
        }
    }
    match &column.kind {
        Kind::Struct { fields, .. } => {
            let Some(Value::Object(properties)) = schema.get("properties") else { return Ok(()) };
            for field in fields {
                // Fields fed by `preproc` are not read from a key of the payload.
                if field.source != FieldSource::Key {
                    continue;
                }
                match properties.get(&*field.name) {
                    Some(property) => check_value(property, &field.column, depth + 1)?,
                    None if field.column.nullable => {}
                    None => {
                        return Err(format!(
                            "field `{}` is not in the JSON Schema's properties and is not optional",
                            field.column.path
                        ));
                    }
                }
            }
            Ok(())
        }
        Kind::List { item, .. } => match schema.get("items") {
            Some(items @ Value::Object(_)) => check_value(items, item, depth + 1),
            _ => Ok(()),
        },
        Kind::Map { values, .. } => match schema.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => check_value(additional, values, depth + 1),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a JSON value of this JSON Schema type can fill a column of this kind.
fn holds(kind: &Kind, json_type: &str) -> bool {
    match (kind, json_type) {
        // A null is refused per record where the column is not optional.
        (_, "null") => false,
        (Kind::Bool(_), "boolean") => true,
        (Kind::Int32(_) | Kind::Int64(_), "integer" | "number") => true,
        (Kind::Float32(_) | Kind::Float64(_), "integer" | "number") => true,
        (Kind::Utf8 { .. } | Kind::Binary { .. } | Kind::Date32(_), "string") => true,
        (Kind::Timestamp(_), "string" | "integer" | "number") => true,
        (Kind::Decimal { .. }, "string" | "integer" | "number") => true,
        (Kind::List { .. }, "array") => true,
        (Kind::Map { .. } | Kind::Struct { .. }, "object") => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(fields: &[(&str, &str)]) -> Column {
        let fields: Vec<tributary_source::Field> = fields
            .iter()
            .map(|(name, kind)| tributary_source::Field {
                name: (*name).to_owned(),
                data_type: tributary_source::parse_data_type(kind).expect("type"),
            })
            .collect();
        Column::root(&fields)
    }

    #[test]
    fn schemas_are_checked_field_by_field() {
        let dataset = root(&[("id", "int64"), ("name", "optional<string>"), ("tags", "list<string>")]);
        let fits = r#"{"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}"#;
        assert_eq!(check(fits, &dataset), Ok(()));
        let missing = r#"{"type": "object", "properties": {"name": {"type": "string"}}}"#;
        assert!(check(missing, &dataset).expect_err("id is required").contains("`id`"));
        let wrong = r#"{"type": "object", "properties": {"id": {"type": "string"}, "tags": {"type": "array"}}}"#;
        let error = check(wrong, &dataset).expect_err("id is a string");
        assert!(error.contains("field `id`: JSON Schema type string cannot be read as `int64`"), "{error}");
        let wrong_item =
            r#"{"properties": {"id": {"type": ["integer", "null"]}, "tags": {"items": {"type": "integer"}}}}"#;
        assert!(check(wrong_item, &dataset).expect_err("items").contains("tags[]"));
        assert_eq!(check("{}", &dataset), Ok(()), "a schema that says nothing");
        assert!(check("not json", &dataset).is_err());
    }
}
