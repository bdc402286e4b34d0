//! Live checks of a Glue Schema Registry source, after the stream's:
//!
//! 1. with a `schema_name`, [`GetSchema`](https://docs.aws.amazon.com/glue/latest/webapi/API_GetSchema.html):
//!    the registry and schema exist and hold the source's data format; without
//!    one, [`GetRegistry`](https://docs.aws.amazon.com/glue/latest/webapi/API_GetRegistry.html);
//! 2. [`GetSchemaVersion`](https://docs.aws.amazon.com/glue/latest/webapi/API_GetSchemaVersion.html),
//!    the one call decoding makes: for every version of the schema (each
//!    `AVAILABLE` one must resolve against the dataset: `SCHEMA_INCOMPATIBLE`
//!    names the version and the field), or, without a schema, for a UUID no
//!    version has, which proves the permission.
//!
//! All with the registry's role (its `role_arn`, else the source's).

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_glue::types::{RegistryId, SchemaId};

use super::{Class, Failure, SchemaCheck, assume_role, classify, describe, unreachable_cause};
use crate::aws::ClientFactory;
use crate::definition::{AssumeRole, DEFAULT_SESSION_NAME, Format, GlueRegistry, Source};
use crate::error::ErrorCode;
use crate::glue_schemas::{SchemaVersionError, schema_version_by_id, schema_version_by_number};

/// No version has this UUID: asking for it proves `glue:GetSchemaVersion` without reading a schema.
const NO_SUCH_VERSION: &str = "00000000-0000-0000-0000-000000000000";

/// The field path of errors about the registry.
fn glue_field(format: &Format) -> &'static str {
    match format {
        Format::Json { .. } => "kinesis.format.json.registry.glue",
        Format::Avro(_) => "kinesis.format.avro.registry.glue",
        Format::Protobuf(_) => "kinesis.format.protobuf.registry.glue",
    }
}

pub(super) async fn check(
    factory: &ClientFactory,
    source: &Source,
    glue: &GlueRegistry,
    source_credentials: Option<SharedCredentialsProvider>,
    schemas: SchemaCheck,
) -> Result<(), Failure> {
    let field = glue_field(&source.kinesis.format);
    let failure = |code: ErrorCode, message: String| Failure { field, code, message };
    let credentials = match &glue.role_arn {
        Some(role_arn) => {
            let role = AssumeRole {
                role_arn: role_arn.clone(),
                session_name: DEFAULT_SESSION_NAME.to_owned(),
                external_id: None,
                source_identity: None,
            };
            Some(assume_role(factory, &glue.region, &role).await.map_err(|f| Failure { field, ..f })?)
        }
        None => source_credentials,
    };
    let client = factory.glue_registry(&glue.region, credentials);
    let registry = &glue.registry_name;
    let refused = |action: &str, class: Class, text: String| match class {
        Class::Denied => failure(ErrorCode::AccessDenied, format!("`{action}` was refused: {text}")),
        _ => failure(ErrorCode::AwsError, format!("`{action}` failed: {text}")),
    };
    // A lookup that failed: Glue did not answer, what it looked up is `missing`, or it refused.
    let lookup_failed =
        |action: &str, class: Class, text: String, unreachable: String, missing: (ErrorCode, String)| match class {
            Class::Unreachable => {
                failure(ErrorCode::EndpointUnreachable, format!("Glue did not answer: {unreachable}"))
            }
            Class::NotFound => failure(missing.0, format!("{}: {text}", missing.1)),
            class => refused(action, class, text),
        };

    let Some(schema_name) = &glue.schema_name else {
        client.get_registry().registry_id(RegistryId::builder().registry_name(registry).build()).send().await.map_err(
            |e| {
                let missing = (ErrorCode::SchemaRegistryNotFound, format!("registry `{registry}` does not exist"));
                lookup_failed("glue:GetRegistry", classify(&e), describe(&e), unreachable_cause(&e), missing)
            },
        )?;
        return match schema_version_by_id(&client, NO_SUCH_VERSION).await {
            Ok(_) => Ok(()),
            Err(SchemaVersionError::Denied(text)) => Err(refused("glue:GetSchemaVersion", Class::Denied, text)),
            Err(SchemaVersionError::Unavailable(text)) => Err(refused("glue:GetSchemaVersion", Class::Other, text)),
        };
    };

    let schema = client
        .get_schema()
        .schema_id(SchemaId::builder().registry_name(registry).schema_name(schema_name).build())
        .send()
        .await
        .map_err(|e| {
            let missing =
                (ErrorCode::SchemaNotFound, format!("schema `{schema_name}` is not in registry `{registry}`"));
            lookup_failed("glue:GetSchema", classify(&e), describe(&e), unreachable_cause(&e), missing)
        })?;
    let wanted = source.kinesis.format.registry_data_format();
    let found = schema.data_format().map(|f| f.as_str()).unwrap_or_default();
    if !found.eq_ignore_ascii_case(wanted) {
        return Err(failure(
            ErrorCode::SchemaIncompatible,
            format!(
                "schema `{schema_name}` holds {found} schemas, but the source reads {}",
                source.kinesis.format.name()
            ),
        ));
    }
    let latest = schema.latest_schema_version().unwrap_or(0);
    if latest == 0 {
        // Nothing registered yet: still prove the one call decoding makes.
        return match schema_version_by_id(&client, NO_SUCH_VERSION).await {
            Ok(_) => Ok(()),
            Err(SchemaVersionError::Denied(text)) => Err(refused("glue:GetSchemaVersion", Class::Denied, text)),
            Err(SchemaVersionError::Unavailable(text)) => Err(refused("glue:GetSchemaVersion", Class::Other, text)),
        };
    }
    for number in 1..=latest {
        let version = match schema_version_by_number(&client, glue, schema_name, number).await {
            Ok(Some(version)) => version,
            // Deleted versions leave gaps in the numbers.
            Ok(None) => continue,
            Err(SchemaVersionError::Denied(text)) => return Err(refused("glue:GetSchemaVersion", Class::Denied, text)),
            Err(SchemaVersionError::Unavailable(text)) => {
                return Err(refused("glue:GetSchemaVersion", Class::Other, text));
            }
        };
        // Pending, failed or deleting versions cannot be written with.
        if version.status != "AVAILABLE" {
            continue;
        }
        if let Err(why) = schemas(source, &version.data_format, &version.definition) {
            return Err(failure(
                ErrorCode::SchemaIncompatible,
                format!("schema `{schema_name}` version {number}: {why}"),
            ));
        }
    }
    Ok(())
}
