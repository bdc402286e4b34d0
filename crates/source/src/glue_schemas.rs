//! A source's AWS Glue Schema Registry: the client it reads schemas with, and
//! one schema version by UUID (what a decoder asks for a version it has not met).

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_glue::error::ProvideErrorMetadata;
use aws_sdk_glue::types::SchemaVersionNumber;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::aws::ClientFactory;
use crate::definition::{AssumeRole, DEFAULT_SESSION_NAME, GlueRegistry, Source};

/// One schema version's text and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSchemaText {
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub data_format: String,
    /// `AVAILABLE`, `PENDING`, `FAILURE` or `DELETING`.
    pub status: String,
    /// The schema.
    pub definition: String,
    /// Its number within its schema.
    pub version_number: i64,
}

/// The role a registry is read with: its own `role_arn`, else the source's role.
pub fn registry_role(source: &Source, glue: &GlueRegistry) -> Option<AssumeRole> {
    match &glue.role_arn {
        Some(role_arn) => Some(AssumeRole {
            role_arn: role_arn.clone(),
            session_name: DEFAULT_SESSION_NAME.to_owned(),
            external_id: None,
            source_identity: None,
        }),
        None => source.kinesis.role.clone(),
    }
}

/// A Glue client for the source's registry, with renewing credentials of its role.
pub async fn registry_client(factory: &ClientFactory, source: &Source, glue: &GlueRegistry) -> aws_sdk_glue::Client {
    let credentials: Option<SharedCredentialsProvider> = match registry_role(source, glue) {
        Some(role) => Some(factory.role_credentials(&role, &glue.region).await),
        None => None,
    };
    factory.glue_registry(&glue.region, credentials)
}

/// Why a schema version could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaVersionError {
    /// The registry refused the caller (`glue:GetSchemaVersion`).
    Denied(String),
    /// No answer, or an answer that is not one (retry later).
    Unavailable(String),
}

impl std::fmt::Display for SchemaVersionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaVersionError::Denied(why) => write!(f, "glue:GetSchemaVersion was refused: {why}"),
            SchemaVersionError::Unavailable(why) => write!(f, "glue:GetSchemaVersion failed: {why}"),
        }
    }
}

/// The version with this UUID (text form); `None` when the registry does not know it.
pub async fn schema_version_by_id(
    client: &aws_sdk_glue::Client,
    id: &str,
) -> Result<Option<GlueSchemaText>, SchemaVersionError> {
    answer(client.get_schema_version().schema_version_id(id).send().await)
}

/// Version `number` of `schema` in the registry; `None` when there is no such version.
pub async fn schema_version_by_number(
    client: &aws_sdk_glue::Client,
    glue: &GlueRegistry,
    schema: &str,
    number: i64,
) -> Result<Option<GlueSchemaText>, SchemaVersionError> {
    let version = SchemaVersionNumber::builder().version_number(number).build();
    schema_version(client, &glue.registry_name, schema, version).await
}

/// The latest version of `schema` in `registry`; `None` when there is none.
pub async fn latest_schema_version(
    client: &aws_sdk_glue::Client,
    registry: &str,
    schema: &str,
) -> Result<Option<GlueSchemaText>, SchemaVersionError> {
    schema_version(client, registry, schema, SchemaVersionNumber::builder().latest_version(true).build()).await
}

async fn schema_version(
    client: &aws_sdk_glue::Client,
    registry: &str,
    schema: &str,
    version: SchemaVersionNumber,
) -> Result<Option<GlueSchemaText>, SchemaVersionError> {
    let schema_id = aws_sdk_glue::types::SchemaId::builder().registry_name(registry).schema_name(schema).build();
    answer(client.get_schema_version().schema_id(schema_id).schema_version_number(version).send().await)
}

type GetSchemaVersionResult = Result<
    aws_sdk_glue::operation::get_schema_version::GetSchemaVersionOutput,
    aws_sdk_glue::error::SdkError<aws_sdk_glue::operation::get_schema_version::GetSchemaVersionError>,
>;

fn answer(result: GetSchemaVersionResult) -> Result<Option<GlueSchemaText>, SchemaVersionError> {
    match result {
        Ok(output) => Ok(Some(GlueSchemaText {
            data_format: output.data_format().map(|f| f.as_str().to_owned()).unwrap_or_default(),
            status: output.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            definition: output.schema_definition().unwrap_or_default().to_owned(),
            version_number: output.version_number().unwrap_or_default(),
        })),
        Err(error) => match error.code() {
            // A made-up or malformed UUID is as unknown as a deleted one.
            Some("EntityNotFoundException" | "InvalidInputException") => Ok(None),
            Some("AccessDeniedException" | "AccessDenied") => Err(SchemaVersionError::Denied(describe(&error))),
            _ if error.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                Err(SchemaVersionError::Denied(describe(&error)))
            }
            _ => Err(SchemaVersionError::Unavailable(describe(&error))),
        },
    }
}

fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &aws_sdk_glue::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> String {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    }
}
