//! What a run found, in the shapes OpenMetadata's create requests take
//! (`api/data/createTopic.json`, `type/schema.json`, `api/data/createContainer.json`, ...).

use serde::Serialize;
use serde_json::{Value, json};

/// The messaging service the topics belong to.
#[derive(Debug, Clone)]
pub struct ServiceRecord {
    /// The workflow's `serviceName`.
    pub name: String,
    /// The connection to store with the service, already stripped of secrets.
    pub connection: Value,
}

/// One stream, as a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    /// The stream's name.
    pub name: String,
    /// Open shards.
    pub partitions: u32,
    /// Retention in milliseconds.
    pub retention_ms: u64,
    /// The stream in the AWS console.
    pub source_url: String,
    /// The dataset schema of a Tributary source reading the stream.
    pub message_schema: Option<MessageSchema>,
    /// Sample messages, when sampling was asked for.
    pub sample: Option<Vec<String>>,
}

/// How the payloads are serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// JSON documents.
    Json,
    /// Avro datums.
    Avro,
    /// Protobuf messages.
    Protobuf,
}

/// A topic's `messageSchema`.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageSchema {
    /// JSON, Avro or Protobuf.
    pub kind: SchemaKind,
    /// The schema as text (the writer schema or `.proto` file when known, else the dataset's fields as JSON).
    pub text: String,
    /// Top-level fields, nested ones as children.
    pub fields: Vec<SchemaField>,
}

/// One field of a message schema (`type/schema.json#/definitions/field`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaField {
    /// The field's name.
    pub name: String,
    /// OpenMetadata's `dataTypeTopic` (`LONG`, `STRING`, `RECORD`, ...).
    #[serde(rename = "dataType")]
    pub data_type: &'static str,
    /// Fields of a record, the element of an array, the value of a map.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<SchemaField>,
}

/// One column of a dataset container (`entity/data/table.json#/definitions/column`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerColumn {
    /// The column's name.
    pub name: String,
    /// OpenMetadata's column `dataType` (`BIGINT`, `STRUCT`, ...).
    #[serde(rename = "dataType")]
    pub data_type: &'static str,
    /// The type as Tributary spells it.
    #[serde(rename = "dataTypeDisplay")]
    pub data_type_display: String,
    /// The element type of an array column.
    #[serde(rename = "arrayDataType", skip_serializing_if = "Option::is_none")]
    pub array_data_type: Option<&'static str>,
    /// Fields of a struct column.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ContainerColumn>,
}

/// A Tributary source: the stream it reads, the pipeline, the dataset it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageRecord {
    /// The source's name (the pipeline).
    pub source: String,
    /// The stream it reads (a topic of this run).
    pub stream: String,
    /// The dataset it writes.
    pub dataset: String,
    /// The entity the dataset is in the catalog.
    pub target: DatasetTarget,
    /// The dataset's columns.
    pub columns: Vec<ContainerColumn>,
    /// Which message field feeds which column.
    pub column_lineage: Vec<ColumnLineage>,
    /// How the ingest is doing, when the Tributary server could say.
    pub run: Option<PipelineRun>,
}

/// What a dataset is in OpenMetadata.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetTarget {
    /// Parquet files, or an Iceberg table of the embedded catalog: a container
    /// of Tributary's storage service, at `location`.
    Container {
        /// Where the dataset's files are.
        location: String,
    },
    /// An Iceberg table in Glue: the `table` OpenMetadata's Glue connector
    /// catalogs as `{service}.{catalog_id}.{database}.{table}`.
    GlueTable(GlueTable),
}

/// Where OpenMetadata's Glue connector puts a Glue table.
#[derive(Debug, Clone, PartialEq)]
pub struct GlueTable {
    /// The database service (the Glue connector's service name).
    pub service: String,
    /// The Glue catalog id (the AWS account), OpenMetadata's database.
    pub catalog_id: String,
    /// The Glue database, OpenMetadata's schema.
    pub database: String,
    /// The table (the dataset's name).
    pub table: String,
    /// The region, for a service created here.
    pub region: String,
    /// The table's location.
    pub location: String,
}

/// One column fed by one message field.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnLineage {
    /// The field's path in the message (`["address", "country"]`).
    pub field: Vec<String>,
    /// The column's name.
    pub column: String,
}

/// A pipeline's status, as `PUT /v1/pipelines/{fqn}/status` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    /// The `pipelineStatus` body.
    pub status: Value,
    /// Rows, rejected and lag in words, the ingest task's description.
    pub summary: String,
}

impl TopicRecord {
    /// The `createTopic` body.
    pub(crate) fn create_body(&self, service: &str) -> Value {
        let mut body = json!({
            "name": self.name,
            "service": service,
            "partitions": self.partitions,
            "retentionTime": self.retention_ms,
            // Kinesis' limit on a record's payload (1 MB), as the connector reports it.
            "maximumMessageSize": 1_000_000,
            "sourceUrl": self.source_url,
        });
        if let Some(schema) = &self.message_schema {
            body["messageSchema"] = json!({
                "schemaText": schema.text,
                "schemaType": match schema.kind {
                    SchemaKind::Json => "JSON",
                    SchemaKind::Avro => "Avro",
                    SchemaKind::Protobuf => "Protobuf",
                },
                "schemaFields": schema.fields,
            });
        }
        body["sourceHash"] = Value::String(source_hash(&body));
        body
    }
}

/// The change detector OpenMetadata keeps per entity: a digest of the create request (32 hex digits).
pub(crate) fn source_hash(body: &Value) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(body.to_string().as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One part of a fully qualified name: quoted when it holds a dot, as OpenMetadata quotes it.
pub fn quoted_fqn_part(name: &str) -> String {
    if name.contains('.') { format!("\"{name}\"") } else { name.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_bodies_carry_the_connectors_fields_and_a_bounded_hash() {
        let topic = TopicRecord {
            name: "orders".into(),
            partitions: 3,
            retention_ms: 86_400_000,
            source_url: "https://us-east-1.console.aws.amazon.com/kinesis/home?region=us-east-1#/streams/details/orders/monitoring".into(),
            message_schema: None,
            sample: None,
        };
        let body = topic.create_body("svc");
        assert_eq!(body["partitions"], 3);
        assert_eq!(body["retentionTime"], 86_400_000);
        assert_eq!(body["maximumMessageSize"], 1_000_000);
        assert_eq!(body["sourceHash"].as_str().map(str::len), Some(32));
        assert!(body.get("messageSchema").is_none());
        assert_eq!(quoted_fqn_part("dot.ted"), "\"dot.ted\"");
        assert_eq!(quoted_fqn_part("plain"), "plain");
    }
}
