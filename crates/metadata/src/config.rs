//! The workflow YAML, as OpenMetadata's docs write it for Kinesis.
//!
//! Parse, then trust: the file is read as YAML, every `$VAR` / `${VAR}` in a
//! string value is expanded (an unset variable is an error, never an empty
//! credential; `$$` is a literal `$`), then deserialized into types that
//! mirror `metadataIngestion/workflow.json`'s messaging branches with unknown
//! keys refused, so a mistyped key fails with its path before anything runs.
//! Semantic checks follow (Kinesis only, known sinks, valid regexes).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tributary_source::AwsSettings;

use crate::filter::TopicFilter;

/// A workflow file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Dotted path of the offending key (`source.serviceConnection.config.awsConfig`), or the file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn at(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// Where the workflow publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// An OpenMetadata server (`workflowConfig.openMetadataServerConfig`).
    MetadataRest,
    /// A file of JSON lines, one per request.
    File(PathBuf),
}

/// A validated workflow.
#[derive(Clone)]
pub struct WorkflowConfig {
    /// `source.serviceName`.
    pub service_name: String,
    /// `awsConfig`, as Tributary's AWS settings.
    pub aws: AwsSettings,
    /// `awsConfig` as it may be stored with the service: no secret key, no session token.
    pub stored_connection: Value,
    /// Whether the connection is stored with the service at all (`storeServiceConnection`).
    pub store_connection: bool,
    /// Both topic filters, combined.
    pub filter: TopicFilter,
    /// `generateSampleData`.
    pub generate_sample_data: bool,
    /// `markDeletedTopics` (OpenMetadata's default: true).
    pub mark_deleted_topics: bool,
    /// The sink.
    pub sink: SinkKind,
    /// `openMetadataServerConfig.hostPort`.
    pub host_port: String,
    /// `securityConfig.jwtToken` (never printed).
    pub jwt_token: Option<String>,
    /// `extraHeaders`, sent with every request.
    pub extra_headers: BTreeMap<String, String>,
    /// `loggerLevel`.
    pub logger_level: String,
}

impl fmt::Debug for WorkflowConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowConfig")
            .field("service_name", &self.service_name)
            .field("aws", &self.aws)
            .field("sink", &self.sink)
            .field("host_port", &self.host_port)
            .field("jwt_token", &self.jwt_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl WorkflowConfig {
    /// Reads and validates the workflow file at `path`, expanding variables from the environment.
    pub fn load(path: &Path) -> Result<WorkflowConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::at(path.display().to_string(), format!("cannot read: {error}")))?;
        WorkflowConfig::parse(&text, &|name| std::env::var(name).ok()).map_err(|error| {
            if error.path.is_empty() { ConfigError::at(path.display().to_string(), error.message) } else { error }
        })
    }

    /// Validates workflow `text`, expanding variables through `env`.
    ///
    /// An error names the field's path and what was expected, never a value:
    /// serde's messages are stripped of the values they quote, and any value
    /// that came from a variable is masked wherever a message holds it.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<WorkflowConfig, ConfigError> {
        let mut value: Value =
            serde_norway::from_str(text).map_err(|error| ConfigError::at("", format!("not valid YAML: {error}")))?;
        let mut expanded = Vec::new();
        expand(&mut value, &mut String::new(), &mut |name| {
            let found = env(name);
            expanded.extend(found.clone());
            found
        })?;
        let masked = |error: ConfigError| ConfigError { message: mask(&error.message, &expanded), ..error };
        let raw: RawWorkflow = serde_path_to_error::deserialize(value).map_err(|error| {
            let path = error.path().to_string();
            let message = without_values(&error.inner().to_string());
            masked(ConfigError::at(if path == "." { String::new() } else { path }, message))
        })?;
        raw.validate().map_err(masked)
    }
}

/// serde's message without the value it quotes: `invalid type: string "eyJ…",
/// expected a boolean` becomes `invalid type: string, expected a boolean`.
/// (An unknown variant stays named: enum fields hold no secrets, and one set
/// from a variable is masked like any other value from a variable.)
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let found = rest.split_whitespace().next().unwrap_or_default().trim_end_matches(',');
            let expected = rest.rsplit_once(", expected ").map_or("", |(_, expected)| expected);
            return format!("{prefix}{found}, expected {expected}");
        }
    }
    message.to_owned()
}

/// `message` with every non-empty value of `secrets` replaced by `***`.
fn mask(message: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(message.to_owned(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// Expands `$VAR` and `${VAR}` in every string of `value`.
fn expand(
    value: &mut Value,
    path: &mut String,
    env: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) if text.contains('$') => *text = expand_text(text, path, env)?,
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                expand(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                expand(field, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_text(text: &str, path: &str, env: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, ConfigError> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                return Err(ConfigError::at(path, "`${` without a closing `}`"));
            };
            (&braced[..end], end + 2)
        } else if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
            continue;
        } else {
            let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() || !name.chars().all(is_name) {
            // A lone `$` (or `${}` of something that is no name) stays as written.
            out.push('$');
            rest = after;
            continue;
        }
        match env(name) {
            Some(value) => out.push_str(&value),
            None => return Err(ConfigError::at(path, format!("environment variable `{name}` is not set"))),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

// The raw shapes: `workflow.json#/properties/openMetadataWorkflowConfig` and what it reaches.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWorkflow {
    source: RawSource,
    #[serde(default)]
    sink: Option<RawComponent>,
    workflow_config: RawWorkflowSection,
    #[serde(default)]
    processor: Option<RawComponent>,
    #[serde(default)]
    stage: Option<RawComponent>,
    #[serde(default)]
    bulk_sink: Option<RawComponent>,
    #[serde(default, rename = "ingestionPipelineFQN")]
    _ingestion_pipeline_fqn: Option<String>,
    #[serde(default, rename = "pipelineRunId")]
    _pipeline_run_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSource {
    #[serde(rename = "type")]
    kind: String,
    service_name: String,
    #[serde(default)]
    service_connection: Option<RawServiceConnection>,
    source_config: RawSourceConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServiceConnection {
    config: RawKinesisConnection,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawKinesisConnection {
    /// Required here: without it a connection of only `awsConfig` also fits
    /// S3's, and OpenMetadata's `oneOf` refuses it.
    #[serde(rename = "type")]
    kind: KinesisType,
    aws_config: RawAwsConfig,
    #[serde(default)]
    topic_filter_pattern: Option<RawFilterPattern>,
    #[serde(default, rename = "supportsMetadataExtraction")]
    _supports_metadata_extraction: Option<bool>,
}

#[derive(Deserialize)]
enum KinesisType {
    Kinesis,
}

/// `security/credentials/awsCredentials.json`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAwsConfig {
    #[serde(default)]
    aws_access_key_id: Option<String>,
    #[serde(default)]
    aws_secret_access_key: Option<String>,
    aws_region: String,
    #[serde(default)]
    aws_session_token: Option<String>,
    #[serde(default, rename = "endPointURL")]
    end_point_url: Option<String>,
    #[serde(default)]
    profile_name: Option<String>,
    #[serde(default)]
    assume_role_arn: Option<String>,
    #[serde(default)]
    assume_role_session_name: Option<String>,
    #[serde(default)]
    assume_role_source_identity: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilterPattern {
    #[serde(default)]
    includes: Option<Vec<String>>,
    #[serde(default)]
    excludes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceConfig {
    config: RawMessagingPipeline,
}

/// `metadataIngestion/messagingServiceMetadataPipeline.json`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMessagingPipeline {
    #[serde(default, rename = "type")]
    _kind: Option<MessagingMetadataType>,
    #[serde(default)]
    topic_filter_pattern: Option<RawFilterPattern>,
    #[serde(default)]
    generate_sample_data: Option<bool>,
    #[serde(default)]
    mark_deleted_topics: Option<bool>,
}

#[derive(Deserialize)]
enum MessagingMetadataType {
    MessagingMetadata,
}

/// `type/basic.json#/definitions/componentConfig` under a `type`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawWorkflowSection {
    #[serde(default)]
    logger_level: Option<LogLevel>,
    open_metadata_server_config: RawOpenMetadataConnection,
    #[serde(default, rename = "config")]
    _config: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// `entity/services/connections/metadata/openMetadataConnection.json`: every
/// key is accepted with its type; the ones a metadata run uses are kept.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct RawOpenMetadataConnection {
    #[serde(default)]
    cluster_name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<OpenMetadataType>,
    host_port: String,
    #[serde(default)]
    auth_provider: Option<AuthProvider>,
    #[serde(default, rename = "verifySSL")]
    verify_ssl: Option<VerifySsl>,
    #[serde(default)]
    ssl_config: Option<Value>,
    #[serde(default)]
    security_config: Option<RawJwtConfig>,
    #[serde(default)]
    secrets_manager_provider: Option<String>,
    #[serde(default)]
    secrets_manager_loader: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    include_topics: Option<bool>,
    #[serde(default)]
    include_tables: Option<bool>,
    #[serde(default)]
    include_dashboards: Option<bool>,
    #[serde(default)]
    include_pipelines: Option<bool>,
    #[serde(default)]
    include_ml_models: Option<bool>,
    #[serde(default)]
    include_users: Option<bool>,
    #[serde(default)]
    include_teams: Option<bool>,
    #[serde(default)]
    include_glossary_terms: Option<bool>,
    #[serde(default)]
    include_tags: Option<bool>,
    #[serde(default)]
    include_policy: Option<bool>,
    #[serde(default)]
    include_messaging_services: Option<bool>,
    #[serde(default)]
    enable_version_validation: Option<bool>,
    #[serde(default)]
    include_database_services: Option<bool>,
    #[serde(default)]
    include_pipeline_services: Option<bool>,
    #[serde(default)]
    limit_records: Option<i64>,
    #[serde(default)]
    force_entity_overwriting: Option<bool>,
    #[serde(default)]
    store_service_connection: Option<bool>,
    #[serde(default)]
    elastics_search: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    schema_filter_pattern: Option<RawFilterPattern>,
    #[serde(default)]
    table_filter_pattern: Option<RawFilterPattern>,
    #[serde(default)]
    database_filter_pattern: Option<RawFilterPattern>,
    #[serde(default)]
    supports_data_insight_extraction: Option<bool>,
    #[serde(default)]
    supports_elastic_search_reindexing_extraction: Option<bool>,
    #[serde(default)]
    extra_headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
enum OpenMetadataType {
    OpenMetadata,
}

#[derive(Deserialize, PartialEq, Eq, Clone, Copy, Debug)]
#[serde(rename_all = "kebab-case")]
enum AuthProvider {
    Basic,
    Azure,
    Google,
    Okta,
    Auth0,
    AwsCognito,
    CustomOidc,
    Ldap,
    Saml,
    Openmetadata,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum VerifySsl {
    NoSsl,
    Ignore,
    Validate,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawJwtConfig {
    jwt_token: String,
}

impl RawWorkflow {
    fn validate(self) -> Result<WorkflowConfig, ConfigError> {
        let source = self.source;
        if !source.kind.eq_ignore_ascii_case("kinesis") {
            return Err(ConfigError::at(
                "source.type",
                format!("`{}`: this workflow runs the `kinesis` source only", source.kind),
            ));
        }
        if source.service_name.is_empty() || source.service_name.contains("::") {
            return Err(ConfigError::at("source.serviceName", "must be a non-empty name without `::`"));
        }
        let Some(connection) = source.service_connection else {
            return Err(ConfigError::at(
                "source.serviceConnection",
                "missing: the Kinesis connection (`config.type: Kinesis`, `config.awsConfig`)",
            ));
        };
        let connection = connection.config;
        let KinesisType::Kinesis = connection.kind;
        let filter_of = |raw: Option<RawFilterPattern>, at: &str| -> Result<TopicFilter, ConfigError> {
            let raw = raw.unwrap_or_default();
            TopicFilter::new(&raw.includes.unwrap_or_default(), &raw.excludes.unwrap_or_default())
                .map_err(|(which, message)| ConfigError::at(format!("{at}.{which}"), message))
        };
        let pipeline = source.source_config.config;
        let filter = filter_of(pipeline.topic_filter_pattern, "source.sourceConfig.config.topicFilterPattern")?
            .and(filter_of(connection.topic_filter_pattern, "source.serviceConnection.config.topicFilterPattern")?);

        let aws = connection.aws_config;
        if aws.aws_region.is_empty() {
            return Err(ConfigError::at("source.serviceConnection.config.awsConfig.awsRegion", "must not be empty"));
        }
        if aws.aws_access_key_id.is_some() != aws.aws_secret_access_key.is_some() {
            return Err(ConfigError::at(
                "source.serviceConnection.config.awsConfig",
                "awsAccessKeyId and awsSecretAccessKey go together",
            ));
        }
        let mut stored = serde_json::json!({"type": "Kinesis", "awsConfig": {"awsRegion": aws.aws_region}});
        let stored_aws = &mut stored["awsConfig"];
        for (key, value) in [
            ("awsAccessKeyId", &aws.aws_access_key_id),
            ("endPointURL", &aws.end_point_url),
            ("profileName", &aws.profile_name),
            ("assumeRoleArn", &aws.assume_role_arn),
            ("assumeRoleSessionName", &aws.assume_role_session_name),
            ("assumeRoleSourceIdentity", &aws.assume_role_source_identity),
        ] {
            if let Some(value) = value {
                stored_aws[key] = Value::String(value.clone());
            }
        }
        let settings = AwsSettings {
            aws_access_key_id: aws.aws_access_key_id,
            aws_secret_access_key: aws.aws_secret_access_key,
            aws_session_token: aws.aws_session_token,
            aws_region: Some(aws.aws_region),
            endpoint_url: aws.end_point_url,
            profile_name: aws.profile_name,
            assume_role_arn: aws.assume_role_arn,
            // OpenMetadata's default session name, so CloudTrail reads the same for both.
            assume_role_session_name: Some(
                aws.assume_role_session_name.unwrap_or_else(|| "OpenMetadataSession".to_owned()),
            ),
            assume_role_source_identity: aws.assume_role_source_identity,
            kinesis_endpoint_url: None,
            sts_endpoint_url: None,
        };

        let sink = match self.sink {
            None => SinkKind::MetadataRest,
            Some(sink) => match sink.kind.as_str() {
                "metadata-rest" => {
                    if let Some(key) = sink.config.as_ref().and_then(|config| config.keys().next()) {
                        return Err(ConfigError::at(
                            format!("sink.config.{key}"),
                            "the metadata-rest sink takes no settings",
                        ));
                    }
                    SinkKind::MetadataRest
                }
                "file" => {
                    let mut config = sink.config.unwrap_or_default();
                    let filename = match config.remove("filename") {
                        Some(Value::String(filename)) if !filename.is_empty() => filename,
                        Some(_) => return Err(ConfigError::at("sink.config.filename", "must be a file path")),
                        None => {
                            return Err(ConfigError::at(
                                "sink.config.filename",
                                "missing: the file sink writes to `filename`",
                            ));
                        }
                    };
                    if let Some(key) = config.keys().next() {
                        return Err(ConfigError::at(
                            format!("sink.config.{key}"),
                            "unknown key; the file sink takes `filename`",
                        ));
                    }
                    SinkKind::File(PathBuf::from(filename))
                }
                other => return Err(ConfigError::at("sink.type", format!("`{other}`: use `metadata-rest` or `file`"))),
            },
        };
        for (name, component) in [("processor", &self.processor), ("stage", &self.stage), ("bulkSink", &self.bulk_sink)]
        {
            if let Some(component) = component {
                return Err(ConfigError::at(name, format!("`{}`: a metadata workflow has no {name}", component.kind)));
            }
        }

        let server = self.workflow_config.open_metadata_server_config;
        let jwt_token = match (server.auth_provider, server.security_config) {
            (None | Some(AuthProvider::Openmetadata), Some(security)) => Some(security.jwt_token),
            (None | Some(AuthProvider::Openmetadata), None) => None,
            (Some(other), _) => {
                return Err(ConfigError::at(
                    "workflowConfig.openMetadataServerConfig.authProvider",
                    format!("{other:?}: only `openmetadata` (a bot's JWT in securityConfig.jwtToken) is supported"),
                ));
            }
        };
        if !server.host_port.starts_with("http://") && !server.host_port.starts_with("https://") {
            return Err(ConfigError::at(
                "workflowConfig.openMetadataServerConfig.hostPort",
                format!("`{}` is not an http(s) URL, e.g. http://localhost:8585/api", server.host_port),
            ));
        }
        let level = match self.workflow_config.logger_level.unwrap_or(LogLevel::Info) {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        Ok(WorkflowConfig {
            service_name: source.service_name,
            aws: settings,
            stored_connection: stored,
            store_connection: server.store_service_connection.unwrap_or(true),
            filter,
            generate_sample_data: pipeline.generate_sample_data.unwrap_or(false),
            mark_deleted_topics: pipeline.mark_deleted_topics.unwrap_or(true),
            sink,
            host_port: server.host_port,
            jwt_token,
            extra_headers: server.extra_headers.unwrap_or_default(),
            logger_level: level.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI docs' example, as written there.
    pub(crate) const DOCS_EXAMPLE: &str = r#"
source:
  type: kinesis
  serviceName: local_kinesis
  serviceConnection:
    config:
      type: Kinesis
      awsConfig:
        awsAccessKeyId: KEY
        awsSecretAccessKey: SECRET
        awsRegion: us-east-2
  sourceConfig:
    config:
      type: MessagingMetadata
      topicFilterPattern:
        excludes:
          - _confluent.*
sink:
  type: metadata-rest
  config: {}
workflowConfig:
  openMetadataServerConfig:
    hostPort: "http://localhost:8585/api"
    authProvider: openmetadata
    securityConfig:
      jwtToken: "{bot_jwt_token}"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_docs_example_is_accepted() {
        let config = WorkflowConfig::parse(DOCS_EXAMPLE, &no_env).expect("valid");
        assert_eq!(config.service_name, "local_kinesis");
        assert_eq!(config.aws.aws_region.as_deref(), Some("us-east-2"));
        assert_eq!(config.aws.assume_role_session_name.as_deref(), Some("OpenMetadataSession"));
        assert_eq!(config.jwt_token.as_deref(), Some("{bot_jwt_token}"));
        assert_eq!(config.sink, SinkKind::MetadataRest);
        assert!(config.mark_deleted_topics && !config.generate_sample_data);
        assert!(!config.filter.admits("_confluent-x") && config.filter.admits("orders"));
        // The stored connection never carries the secret.
        assert_eq!(config.stored_connection["awsConfig"]["awsAccessKeyId"], "KEY");
        assert!(config.stored_connection["awsConfig"].get("awsSecretAccessKey").is_none());
        assert!(!format!("{config:?}").contains("SECRET"));
    }

    #[test]
    fn unknown_keys_wrong_types_and_missing_region_name_their_path() {
        let cases = [
            (
                "awsRegion: us-east-2",
                "awsRegion: us-east-2\n        awsRegoin: x",
                "source.serviceConnection.config.awsConfig.awsRegoin",
                "unknown field `awsRegoin`",
            ),
            (
                "        awsRegion: us-east-2\n",
                "",
                "source.serviceConnection.config.awsConfig",
                "missing field `awsRegion`",
            ),
            (
                "type: MessagingMetadata",
                "type: MessagingMetadata\n      generateSampleData: maybe",
                "source.sourceConfig.config.generateSampleData",
                "invalid type",
            ),
            ("hostPort:", "hostport:", "workflowConfig.openMetadataServerConfig.hostport", "unknown field `hostport`"),
            (
                "      type: Kinesis\n",
                "      type: Kafka\n",
                "source.serviceConnection.config.type",
                "unknown variant `Kafka`",
            ),
            (
                "          - _confluent.*",
                "          - \"(bad\"",
                "source.sourceConfig.config.topicFilterPattern.excludes[0]",
                "not a valid regex",
            ),
            ("sink:\n  type: metadata-rest", "sink:\n  type: kafka", "sink.type", "use `metadata-rest` or `file`"),
        ];
        for (from, to, path, message) in cases {
            assert!(DOCS_EXAMPLE.contains(from), "{from}");
            let text = DOCS_EXAMPLE.replacen(from, to, 1);
            let error = WorkflowConfig::parse(&text, &no_env).expect_err(path);
            assert_eq!(error.path, path, "{error}");
            assert!(error.message.contains(message), "{error}");
        }
    }

    #[test]
    fn variables_expand_and_unset_ones_fail() {
        let env = |name: &str| match name {
            "OM_JWT" => Some("jwt-from-env".to_owned()),
            "REGION" => Some("eu-west-1".to_owned()),
            _ => None,
        };
        let text = DOCS_EXAMPLE.replace("us-east-2", "${REGION}").replace("\"{bot_jwt_token}\"", "$OM_JWT");
        let config = WorkflowConfig::parse(&text, &env).expect("valid");
        assert_eq!(config.aws.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.jwt_token.as_deref(), Some("jwt-from-env"));
        let error = WorkflowConfig::parse(&DOCS_EXAMPLE.replace("SECRET", "$MISSING_SECRET"), &env).expect_err("unset");
        assert_eq!(error.path, "source.serviceConnection.config.awsConfig.awsSecretAccessKey");
        assert!(error.message.contains("MISSING_SECRET"));
        let mut lookup = env;
        assert_eq!(expand_text("a$$b ${REGION}-$ x", "", &mut lookup).expect("expands"), "a$b eu-west-1-$ x");
    }

    /// The review's leak: a type error in a field set from a variable printed
    /// the variable's value (the JWT) through serde's message.
    #[test]
    fn a_type_error_names_the_path_and_type_never_the_value() {
        let env = |name: &str| (name == "OM_JWT").then(|| "eyJhbGciOiJSUzI1NiJ9.secret-part".to_owned());
        // A string where a boolean belongs, from a variable.
        let text = DOCS_EXAMPLE.replace("\"{bot_jwt_token}\"", "$OM_JWT");
        let text =
            text.replace("    authProvider: openmetadata", "    verifySSL: $OM_JWT\n    authProvider: openmetadata");
        let error = WorkflowConfig::parse(&text, &env).expect_err("a string for a setting");
        assert!(!error.to_string().contains("secret-part"), "{error}");
        assert!(!error.to_string().contains("eyJ"), "{error}");
        assert!(error.path.contains("verifySSL"), "{error}");
        // An inline value of the wrong type is not echoed either.
        let inline = DOCS_EXAMPLE.replace("\"{bot_jwt_token}\"", "[\"inline-secret-value\"]");
        let error = WorkflowConfig::parse(&inline, &|_| None).expect_err("a list for the token");
        assert!(!error.to_string().contains("inline-secret-value"), "{error}");
        assert!(error.message.contains("expected"), "{error}");
        assert_eq!(
            without_values("invalid type: string \"s3cr3t\", expected a boolean"),
            "invalid type: string, expected a boolean"
        );
        assert_eq!(mask("bad `tok-123` here", &["tok-123".to_owned(), String::new()]), "bad `***` here");
    }

    #[test]
    fn the_file_sink_takes_a_filename() {
        let text = DOCS_EXAMPLE
            .replace("type: metadata-rest\n  config: {}", "type: file\n  config:\n    filename: /tmp/out.jsonl");
        let config = WorkflowConfig::parse(&text, &no_env).expect("valid");
        assert_eq!(config.sink, SinkKind::File(PathBuf::from("/tmp/out.jsonl")));
        let error = WorkflowConfig::parse(&text.replace("filename", "path"), &no_env).expect_err("no filename");
        assert_eq!(error.path, "sink.config.filename");
    }
}
