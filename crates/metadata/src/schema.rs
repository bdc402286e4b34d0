//! A Tributary dataset's fields as OpenMetadata types: a topic's
//! `messageSchema` (`type/schema.json`) and a container's columns
//! (`entity/data/table.json#/definitions/column`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tributary_proto::v1::data_type::Kind;
use tributary_proto::v1::{DataType, Dataset, Preproc, PrimitiveType, preproc};
use tributary_sink::openmetadata::{ColumnLineage, ContainerColumn, MessageSchema, SchemaField, SchemaKind};
use tributary_source::parse_ref_path;

/// The topic schema of a source's dataset, shaped as the payloads are: a
/// column fed by a `preproc` ref sits at the ref's path (inside records made
/// for its parents), a column fed by a constant or an `eval` is not in the
/// payload at all. `schema_text` is the writer schema or `.proto` file when
/// known (inline, or the registry's latest).
pub fn message_schema(
    dataset: &Dataset,
    lineage: &[ColumnLineage],
    kind: SchemaKind,
    schema_text: Option<&str>,
) -> MessageSchema {
    let mut fields: Vec<SchemaField> = Vec::new();
    for mapping in lineage {
        let Some(column) = dataset.fields.iter().find(|field| field.name == mapping.column) else { continue };
        let Some((leaf, parents)) = mapping.field.split_last() else { continue };
        let mut level = &mut fields;
        for parent in parents {
            let at = match level.iter().position(|field| field.name == *parent && field.data_type == "RECORD") {
                Some(at) => at,
                None => {
                    level.push(SchemaField { name: parent.clone(), data_type: "RECORD", children: Vec::new() });
                    level.len() - 1
                }
            };
            level = &mut level[at].children;
        }
        if !level.iter().any(|field| field.name == *leaf) {
            level.push(schema_field(leaf, column.r#type.as_ref(), kind));
        }
    }
    let text = match schema_text {
        Some(schema) => schema.to_owned(),
        None => json_schema(dataset).to_string(),
    };
    MessageSchema { kind, text, fields }
}

/// Which payload field feeds each dataset column: the field of the column's
/// own name, or the path of its `preproc` ref. Constants and `eval`s have none.
pub fn column_lineage(dataset: &Dataset, preproc: &HashMap<String, Preproc>) -> Vec<ColumnLineage> {
    dataset
        .fields
        .iter()
        .filter_map(|column| {
            let field = match preproc.get(&column.name).and_then(|preproc| preproc.kind.as_ref()) {
                None => vec![column.name.clone()],
                Some(preproc::Kind::Ref(path)) => parse_ref_path(path).ok()?,
                Some(preproc::Kind::Value(_) | preproc::Kind::Eval(_)) => return None,
            };
            Some(ColumnLineage { field, column: column.name.clone() })
        })
        .collect()
}

/// The dataset's columns.
pub fn container_columns(dataset: &Dataset) -> Vec<ContainerColumn> {
    dataset.fields.iter().map(|field| column(&field.name, field.r#type.as_ref())).collect()
}

/// `optional<T>` is `T` to a catalog: nullability is not a type there.
fn unwrap_optional(mut data_type: Option<&DataType>) -> Option<&Kind> {
    while let Some(Kind::Optional(inner)) = data_type.and_then(|t| t.kind.as_ref()) {
        data_type = Some(inner);
    }
    data_type.and_then(|t| t.kind.as_ref())
}

fn primitive(kind: i32) -> PrimitiveType {
    PrimitiveType::try_from(kind).unwrap_or(PrimitiveType::Unspecified)
}

fn schema_field(name: &str, data_type: Option<&DataType>, format: SchemaKind) -> SchemaField {
    let leaf = |data_type| SchemaField { name: name.to_owned(), data_type, children: Vec::new() };
    match unwrap_optional(data_type) {
        Some(Kind::Primitive(kind)) => leaf(match primitive(*kind) {
            PrimitiveType::Bool => "BOOLEAN",
            PrimitiveType::Int32 => "INT",
            PrimitiveType::Int64 => "LONG",
            PrimitiveType::Float32 => "FLOAT",
            PrimitiveType::Float64 => "DOUBLE",
            PrimitiveType::String => "STRING",
            PrimitiveType::Bytes => "BYTES",
            PrimitiveType::Date => "DATE",
            PrimitiveType::Timestamp => "TIMESTAMP",
            PrimitiveType::Unspecified => "ERROR",
        }),
        // Avro carries decimals as bytes; JSON as numbers; Protobuf (having none) as strings.
        Some(Kind::Decimal(_)) => leaf(match format {
            SchemaKind::Avro => "BYTES",
            SchemaKind::Json => "DOUBLE",
            SchemaKind::Protobuf => "STRING",
        }),
        Some(Kind::List(item)) => SchemaField {
            name: name.to_owned(),
            data_type: "ARRAY",
            children: vec![schema_field("item", Some(item), format)],
        },
        Some(Kind::Map(value)) => SchemaField {
            name: name.to_owned(),
            data_type: "MAP",
            children: vec![schema_field("value", Some(value), format)],
        },
        Some(Kind::Struct(fields)) => SchemaField {
            name: name.to_owned(),
            data_type: "RECORD",
            children: fields.fields.iter().map(|f| schema_field(&f.name, f.r#type.as_ref(), format)).collect(),
        },
        Some(Kind::Optional(_)) | None => leaf("ERROR"),
    }
}

fn column(name: &str, data_type: Option<&DataType>) -> ContainerColumn {
    let display = data_type.map(display).unwrap_or_default();
    let leaf = |data_type| ContainerColumn {
        name: name.to_owned(),
        data_type,
        data_type_display: display.clone(),
        array_data_type: None,
        children: Vec::new(),
    };
    match unwrap_optional(data_type) {
        Some(Kind::Primitive(kind)) => leaf(column_primitive(primitive(*kind))),
        Some(Kind::Decimal(_)) => leaf("DECIMAL"),
        Some(Kind::List(item)) => {
            let element = column("item", Some(item));
            ContainerColumn {
                array_data_type: Some(element.data_type),
                children: if element.children.is_empty() { Vec::new() } else { element.children },
                ..leaf("ARRAY")
            }
        }
        Some(Kind::Map(_)) => leaf("MAP"),
        Some(Kind::Struct(fields)) => ContainerColumn {
            children: fields.fields.iter().map(|f| column(&f.name, f.r#type.as_ref())).collect(),
            ..leaf("STRUCT")
        },
        Some(Kind::Optional(_)) | None => leaf("UNKNOWN"),
    }
}

fn column_primitive(kind: PrimitiveType) -> &'static str {
    match kind {
        PrimitiveType::Bool => "BOOLEAN",
        PrimitiveType::Int32 => "INT",
        PrimitiveType::Int64 => "BIGINT",
        PrimitiveType::Float32 => "FLOAT",
        PrimitiveType::Float64 => "DOUBLE",
        PrimitiveType::String => "STRING",
        PrimitiveType::Bytes => "BINARY",
        PrimitiveType::Date => "DATE",
        PrimitiveType::Timestamp => "TIMESTAMP",
        PrimitiveType::Unspecified => "UNKNOWN",
    }
}

/// The type as a definition file writes it.
fn display(data_type: &DataType) -> String {
    match &data_type.kind {
        Some(Kind::Primitive(kind)) => match primitive(*kind) {
            PrimitiveType::Bool => "bool".into(),
            PrimitiveType::Int32 => "int32".into(),
            PrimitiveType::Int64 => "int64".into(),
            PrimitiveType::Float32 => "float32".into(),
            PrimitiveType::Float64 => "float64".into(),
            PrimitiveType::String => "string".into(),
            PrimitiveType::Bytes => "bytes".into(),
            PrimitiveType::Date => "date".into(),
            PrimitiveType::Timestamp => "timestamp".into(),
            PrimitiveType::Unspecified => "unknown".into(),
        },
        Some(Kind::Decimal(decimal)) => format!("decimal({},{})", decimal.precision, decimal.scale),
        Some(Kind::Optional(inner)) => format!("optional<{}>", display(inner)),
        Some(Kind::List(inner)) => format!("list<{}>", display(inner)),
        Some(Kind::Map(inner)) => format!("map<string,{}>", display(inner)),
        Some(Kind::Struct(fields)) => {
            let parts: Vec<String> = fields
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, f.r#type.as_ref().map(display).unwrap_or_default()))
                .collect();
            format!("struct<{}>", parts.join(", "))
        }
        None => "unknown".into(),
    }
}

/// A JSON Schema (draft-07) of the payloads a JSON source accepts.
fn json_schema(dataset: &Dataset) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &dataset.fields {
        if !matches!(field.r#type.as_ref().and_then(|t| t.kind.as_ref()), Some(Kind::Optional(_))) {
            required.push(Value::String(field.name.clone()));
        }
        properties.insert(field.name.clone(), json_type(field.r#type.as_ref()));
    }
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": dataset.name,
        "type": "object",
        "properties": properties,
        "required": required,
    })
}

fn json_type(data_type: Option<&DataType>) -> Value {
    match data_type.and_then(|t| t.kind.as_ref()) {
        Some(Kind::Primitive(kind)) => match primitive(*kind) {
            PrimitiveType::Bool => json!({"type": "boolean"}),
            PrimitiveType::Int32 | PrimitiveType::Int64 => json!({"type": "integer"}),
            PrimitiveType::Float32 | PrimitiveType::Float64 => json!({"type": "number"}),
            PrimitiveType::String | PrimitiveType::Bytes => json!({"type": "string"}),
            PrimitiveType::Date => json!({"type": "string", "format": "date"}),
            // Epoch numbers or RFC 3339 / 2822 strings.
            PrimitiveType::Timestamp => json!({"type": ["string", "number"]}),
            PrimitiveType::Unspecified => json!({}),
        },
        Some(Kind::Decimal(_)) => json!({"type": ["number", "string"]}),
        Some(Kind::Optional(inner)) => {
            let mut inner = json_type(Some(inner));
            if let Some(Value::String(kind)) = inner.get("type").cloned() {
                inner["type"] = json!([kind, "null"]);
            }
            inner
        }
        Some(Kind::List(item)) => json!({"type": "array", "items": json_type(Some(item))}),
        Some(Kind::Map(value)) => json!({"type": "object", "additionalProperties": json_type(Some(value))}),
        Some(Kind::Struct(fields)) => {
            let properties: Map<String, Value> =
                fields.fields.iter().map(|f| (f.name.clone(), json_type(f.r#type.as_ref()))).collect();
            json!({"type": "object", "properties": properties})
        }
        None => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use tributary_proto::v1::{Field, data_type};

    use super::*;

    fn field(name: &str, kind: PrimitiveType) -> Field {
        Field { name: name.to_owned(), r#type: Some(DataType { kind: Some(data_type::Kind::Primitive(kind as i32)) }) }
    }

    fn preproc(kind: preproc::Kind) -> Preproc {
        Preproc { kind: Some(kind) }
    }

    /// A `preproc` ref moves its column to the ref's path (sharing parents), a constant or
    /// an `eval` has no field in the payload, and a ref that does not parse is left out.
    #[test]
    fn message_fields_follow_preproc_refs() {
        let dataset = Dataset {
            fields: vec![
                field("id", PrimitiveType::Int64),
                field("country", PrimitiveType::String),
                field("city", PrimitiveType::String),
                field("origin", PrimitiveType::String),
                field("label", PrimitiveType::String),
                field("broken", PrimitiveType::String),
            ],
            ..Dataset::default()
        };
        let preprocs: HashMap<String, Preproc> = [
            ("country", preproc(preproc::Kind::Ref("address[country]".into()))),
            ("city", preproc(preproc::Kind::Ref("address[city]".into()))),
            ("origin", preproc(preproc::Kind::Value(tributary_proto::pbjson_types::Value::from("kinesis".to_owned())))),
            ("label", preproc(preproc::Kind::Eval("id + 1".into()))),
            ("broken", preproc(preproc::Kind::Ref("[x".into()))),
        ]
        .into_iter()
        .map(|(name, preproc)| (name.to_owned(), preproc))
        .collect();
        let lineage = column_lineage(&dataset, &preprocs);
        let mapped: Vec<(Vec<&str>, &str)> =
            lineage.iter().map(|m| (m.field.iter().map(String::as_str).collect(), m.column.as_str())).collect();
        assert_eq!(
            mapped,
            [(vec!["id"], "id"), (vec!["address", "country"], "country"), (vec!["address", "city"], "city")]
        );
        let schema = message_schema(&dataset, &lineage, SchemaKind::Json, None);
        let fields = serde_json::to_value(&schema.fields).expect("json");
        assert_eq!(
            fields,
            json!([
                {"name": "id", "dataType": "LONG"},
                {"name": "address", "dataType": "RECORD", "children": [
                    {"name": "country", "dataType": "STRING"}, {"name": "city", "dataType": "STRING"}]},
            ])
        );
    }
}
