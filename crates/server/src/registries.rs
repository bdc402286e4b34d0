//! The schema registries a source's decoder asks: a Confluent client made from
//! the definition, and the Glue Schema Registry through the AWS SDK.
//!
//! The decoder is synchronous and asks from a blocking thread (see the
//! worker); the Glue client is async, so each look-up is spawned on the
//! runtime and waited for, bounded in time.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tributary_codec::{GlueSchemaSource, GlueSchemaVersion, Registries, RegistryClient, RegistryError, uuid_text};
use tributary_source::glue_schemas::{SchemaVersionError, registry_client, schema_version_by_id};
use tributary_source::{AvroFormat, ClientFactory, Format, ProtobufSchema, Source};

/// How long one Glue look-up may take before the record is retried later.
const GLUE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The registries `source` needs, built now (credentials of the registry's role included).
pub async fn registries_for(aws: &ClientFactory, source: &Source) -> Result<Registries, RegistryError> {
    let confluent = match &source.kinesis.format {
        Format::Avro(AvroFormat::Registry(settings)) => Some(RegistryClient::new(settings)?),
        Format::Protobuf(protobuf) => match &protobuf.schema {
            ProtobufSchema::Registry(settings) => Some(RegistryClient::new(settings)?),
            _ => None,
        },
        _ => None,
    };
    let glue: Option<Arc<dyn GlueSchemaSource>> = match source.kinesis.format.glue_registry() {
        Some(registry) => Some(Arc::new(GlueVersions {
            client: registry_client(aws, source, registry).await,
            runtime: tokio::runtime::Handle::current(),
        })),
        None => None,
    };
    Ok(Registries { confluent, glue })
}

/// `GetSchemaVersion` by UUID, for a blocking caller.
struct GlueVersions {
    client: aws_sdk_glue::Client,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for GlueVersions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueVersions").finish_non_exhaustive()
    }
}

impl GlueSchemaSource for GlueVersions {
    fn schema_version(&self, id: u128) -> Result<Option<GlueSchemaVersion>, RegistryError> {
        let client = self.client.clone();
        let (answer, answered) = mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = answer.send(schema_version_by_id(&client, &uuid_text(id)).await);
        });
        match answered.recv_timeout(GLUE_LOOKUP_TIMEOUT) {
            Ok(Ok(version)) => Ok(version.map(|v| GlueSchemaVersion {
                data_format: v.data_format,
                status: v.status,
                definition: v.definition,
            })),
            // A refused role is not the record's fault: it waits (and is retried) until the policy is fixed.
            Ok(Err(SchemaVersionError::Denied(why))) => {
                Err(RegistryError::Unavailable(format!("glue:GetSchemaVersion was refused: {why}")))
            }
            Ok(Err(SchemaVersionError::Unavailable(why))) => {
                Err(RegistryError::Unavailable(format!("Glue GetSchemaVersion: {why}")))
            }
            Err(_) => Err(RegistryError::Unavailable(format!(
                "Glue GetSchemaVersion did not answer within {} s",
                GLUE_LOOKUP_TIMEOUT.as_secs()
            ))),
        }
    }
}
