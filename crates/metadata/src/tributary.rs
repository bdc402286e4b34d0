//! What a Tributary server knows that no connector does: which source reads
//! which stream, with what dataset schema, into which dataset.

use std::time::Duration;

use serde_json::Value;
use tributary_proto::v1::format::Kind as FormatKind;
use tributary_proto::v1::{GlueSchemaRegistry, SourceDefinition, avro_format, protobuf_format};
use tributary_sink::openmetadata::SchemaKind;

/// A committed (not deleted) source, as the server describes it.
#[derive(Debug, Clone)]
pub(crate) struct CommittedSource {
    pub(crate) name: String,
    pub(crate) stream_arn: String,
    pub(crate) definition: SourceDefinition,
    /// The dataset's name as the server resolved it (a definition may leave it to default).
    pub(crate) dataset_name: String,
    pub(crate) location: String,
    /// The Glue database and catalog id (absent: the server's account) of an Iceberg table in Glue.
    pub(crate) glue: Option<(String, Option<String>)>,
    /// The source's status (`GET /api/v1/sources/{name}/status`).
    pub(crate) status: Value,
    /// Where that status is read.
    pub(crate) status_url: String,
}

impl CommittedSource {
    /// The payloads' serialization, and their schema's text when the definition holds it
    /// (an inline Avro writer schema or `.proto` file).
    pub(crate) fn format(&self) -> (SchemaKind, Option<&str>) {
        match self.format_kind() {
            Some(FormatKind::Avro(avro)) => match &avro.schema_source {
                Some(avro_format::SchemaSource::Schema(schema)) => (SchemaKind::Avro, Some(schema.as_str())),
                _ => (SchemaKind::Avro, None),
            },
            Some(FormatKind::Protobuf(protobuf)) => match &protobuf.schema_source {
                Some(protobuf_format::SchemaSource::Schema(schema)) => (SchemaKind::Protobuf, Some(schema.as_str())),
                _ => (SchemaKind::Protobuf, None),
            },
            _ => (SchemaKind::Json, None),
        }
    }

    /// The Glue Schema Registry the records are framed for, when the definition names one.
    pub(crate) fn glue_registry(&self) -> Option<&GlueSchemaRegistry> {
        match self.format_kind()? {
            FormatKind::Json(json) => json.glue.as_ref(),
            FormatKind::Avro(avro) => match &avro.schema_source {
                Some(avro_format::SchemaSource::Glue(glue)) => Some(glue),
                _ => None,
            },
            FormatKind::Protobuf(protobuf) => match &protobuf.schema_source {
                Some(protobuf_format::SchemaSource::Glue(glue)) => Some(glue),
                _ => None,
            },
        }
    }

    fn format_kind(&self) -> Option<&FormatKind> {
        self.definition.kinesis.as_ref().and_then(|k| k.format.as_ref()).and_then(|f| f.kind.as_ref())
    }
}

/// Every committed source of the server at `base`.
pub(crate) fn committed_sources(base: &str, token: Option<&str>) -> Result<Vec<CommittedSource>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let base = base.trim_end_matches('/');
    // What messages and the catalog are told: credentials in the URL stay out.
    let shown_base = without_userinfo(base);
    let get = |path: &str| -> Result<Value, String> {
        let (url, shown) = (format!("{base}{path}"), format!("{shown_base}{path}"));
        let mut request = agent.get(&url);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut answer =
            request.call().map_err(|error| format!("cannot reach the Tributary server at {shown_base}: {error}"))?;
        let status = answer.status().as_u16();
        let text = answer.body_mut().read_to_string().map_err(|error| format!("reading {shown}: {error}"))?;
        if status != 200 {
            return Err(format!("GET {shown}: HTTP {status}"));
        }
        serde_json::from_str(&text).map_err(|error| format!("GET {shown}: not JSON: {error}"))
    };
    let listing = get("/api/v1/sources")?;
    let mut sources = Vec::new();
    for summary in listing.get("sources").and_then(Value::as_array).into_iter().flatten() {
        let (Some(name), Some(stream_arn)) =
            (summary.get("name").and_then(Value::as_str), summary.get("stream_arn").and_then(Value::as_str))
        else {
            continue;
        };
        if !summary.get("deleted_at").is_none_or(Value::is_null) {
            continue;
        }
        let shown = get(&format!("/api/v1/sources/{name}"))?;
        let definition: SourceDefinition =
            serde_json::from_value(shown.get("definition").cloned().unwrap_or(Value::Null))
                .map_err(|error| format!("source `{name}`: unreadable definition: {error}"))?;
        let location = shown.pointer("/dataset/location").and_then(Value::as_str).unwrap_or_default().to_owned();
        let dataset_name = match shown.pointer("/dataset/name").and_then(Value::as_str) {
            Some(dataset) if !dataset.is_empty() => dataset.to_owned(),
            _ => name.to_owned(),
        };
        let glue = shown.pointer("/dataset/glue/database").and_then(Value::as_str).map(|database| {
            let catalog_id = shown.pointer("/dataset/glue/catalog_id").and_then(Value::as_str).map(str::to_owned);
            (database.to_owned(), catalog_id)
        });
        let status_path = format!("/api/v1/sources/{name}/status");
        let status = get(&status_path)?;
        sources.push(CommittedSource {
            name: name.to_owned(),
            stream_arn: stream_arn.to_owned(),
            definition,
            dataset_name,
            location,
            glue,
            status,
            status_url: format!("{shown_base}{status_path}"),
        });
    }
    Ok(sources)
}

/// `url` without a `user:password@` in its authority.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_server_url_are_not_kept() {
        assert_eq!(without_userinfo("http://bob:s3cret@tributary:7878/x"), "http://tributary:7878/x");
        assert_eq!(without_userinfo("http://tributary:7878"), "http://tributary:7878");
        assert_eq!(without_userinfo("http://h/path@x"), "http://h/path@x");
    }
}
