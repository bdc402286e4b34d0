//! An Avro payload as JSON, for people reading rejected rows: decoded with
//! the schema it was written with, whatever the dataset's fields are.

/// The Confluent wire format's header: magic byte 0, then a 4-byte schema id.
pub fn registry_schema_id(payload: &[u8]) -> Option<u32> {
    match payload {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// `datum` decoded with `writer_schema` (Avro JSON), as JSON.
pub fn avro_datum_json(writer_schema: &str, datum: &[u8]) -> Result<serde_json::Value, String> {
    let schema =
        apache_avro::Schema::parse_str(writer_schema).map_err(|error| format!("the writer schema: {error}"))?;
    let mut reader = datum;
    let value = apache_avro::from_avro_datum(&schema, &mut reader, None).map_err(|error| error.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} bytes follow the datum", reader.len()));
    }
    serde_json::Value::try_from(value).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datum_reads_back_as_json_and_trailing_bytes_are_an_error() {
        let schema = r#"{"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}"#;
        let parsed = apache_avro::Schema::parse_str(schema).expect("schema");
        let record = apache_avro::types::Value::Record(vec![
            ("id".into(), apache_avro::types::Value::Long(7)),
            ("name".into(), apache_avro::types::Value::String("<b>".into())),
        ]);
        let datum = apache_avro::to_avro_datum(&parsed, record).expect("datum");
        assert_eq!(avro_datum_json(schema, &datum).expect("json"), serde_json::json!({"id": 7, "name": "<b>"}));
        let mut longer = datum.clone();
        longer.push(1);
        assert!(avro_datum_json(schema, &longer).is_err_and(|e| e.contains("follow")));
        assert_eq!(registry_schema_id(&[0, 0, 0, 1, 2, 9]), Some(258));
        assert_eq!(registry_schema_id(b"{}"), None);
    }
}
