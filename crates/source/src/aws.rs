//! AWS clients for a source: credentials, region and endpoints.
//!
//! Everything starts from aws-config's standard chain (environment, profile,
//! SSO, web identity, IMDS), which also honours service-specific endpoints
//! such as `AWS_ENDPOINT_URL_KINESIS` and `AWS_ENDPOINT_URL_STS`. On top of
//! that, [`AwsSettings`] carries the fields of OpenMetadata's `awsConfig`
//! (static keys, region, endpoint, profile, a base role to assume) so the same
//! settings drive the ingest worker and the metadata sink.
//!
//! The Kinesis client always signs for the stream ARN's region: the ARN, not
//! the environment, says where the stream lives.

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_kinesis::config::Region;
use serde::Deserialize;

use crate::assumed_role::SourceIdentityRole;

/// How long a live check may take in all when nothing else is said.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// AWS settings: the fields of OpenMetadata's `awsConfig`, plus per-service
/// endpoint overrides and a timeout. Every field is optional; what is unset
/// comes from aws-config's standard chain.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsSettings {
    /// Static access key id.
    pub aws_access_key_id: Option<String>,
    /// Static secret access key (never printed).
    pub aws_secret_access_key: Option<String>,
    /// Static session token (never printed).
    pub aws_session_token: Option<String>,
    /// Default region (for STS and anything without an ARN to say).
    pub aws_region: Option<String>,
    /// One endpoint for every service (OpenMetadata's `endPointURL`).
    #[serde(rename = "endPointURL")]
    pub endpoint_url: Option<String>,
    /// Shared-config profile.
    pub profile_name: Option<String>,
    /// A role to assume before anything else (OpenMetadata's `assumeRoleArn`).
    pub assume_role_arn: Option<String>,
    /// Session name for `assume_role_arn`.
    pub assume_role_session_name: Option<String>,
    /// Source identity for `assume_role_arn`.
    pub assume_role_source_identity: Option<String>,
    /// Endpoint for Kinesis only; wins over `endpoint_url`.
    #[serde(default)]
    pub kinesis_endpoint_url: Option<String>,
    /// Endpoint for STS only; wins over `endpoint_url`.
    #[serde(default)]
    pub sts_endpoint_url: Option<String>,
}

impl fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("AwsSettings")
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field("aws_secret_access_key", &redacted(&self.aws_secret_access_key))
            .field("aws_session_token", &redacted(&self.aws_session_token))
            .field("aws_region", &self.aws_region)
            .field("endpoint_url", &self.endpoint_url)
            .field("profile_name", &self.profile_name)
            .field("assume_role_arn", &self.assume_role_arn)
            .field("kinesis_endpoint_url", &self.kinesis_endpoint_url)
            .field("sts_endpoint_url", &self.sts_endpoint_url)
            .finish_non_exhaustive()
    }
}

/// Builds AWS clients from one loaded [`AwsSettings`].
#[derive(Debug, Clone)]
pub struct ClientFactory {
    base: aws_config::SdkConfig,
    settings: AwsSettings,
}

/// Timeouts for a service client whose calls outlast the commit checks' seconds.
fn service_timeouts(attempt: Duration, operation: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(attempt)
        .operation_timeout(operation)
        .build()
}

impl ClientFactory {
    /// Loads the standard chain with `settings` layered on top. Each HTTP
    /// attempt is bounded by `timeout`, so an unreachable endpoint fails
    /// rather than hangs.
    pub async fn load(settings: AwsSettings, timeout: Duration) -> ClientFactory {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(3)))
                    .operation_attempt_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if let Some(region) = &settings.aws_region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &settings.profile_name {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let (Some(key_id), Some(secret)) = (&settings.aws_access_key_id, &settings.aws_secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                key_id,
                secret,
                settings.aws_session_token.clone(),
                None,
                "tributary-settings",
            ));
        }
        let mut base = loader.load().await;
        let source_identity_role = settings.assume_role_arn.as_ref().zip(settings.assume_role_source_identity.as_ref());
        if let Some((role_arn, source_identity)) = source_identity_role
            && let Ok(role_arn) = role_arn.parse::<crate::RoleArn>()
        {
            // aws-config's provider cannot pass a source identity: ours does.
            let role = crate::AssumeRole {
                role_arn,
                session_name: settings
                    .assume_role_session_name
                    .clone()
                    .unwrap_or_else(|| crate::DEFAULT_SESSION_NAME.to_owned()),
                external_id: None,
                source_identity: Some(source_identity.clone()),
            };
            let mut sts = aws_sdk_sts::config::Builder::from(&base);
            if let Some(endpoint) = &settings.sts_endpoint_url {
                sts = sts.endpoint_url(endpoint);
            }
            let provider = SourceIdentityRole::new(aws_sdk_sts::Client::from_conf(sts.build()), role);
            base = base.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        } else if let Some(role_arn) = &settings.assume_role_arn {
            let mut builder = AssumeRoleProvider::builder(role_arn).session_name(
                settings.assume_role_session_name.clone().unwrap_or_else(|| crate::DEFAULT_SESSION_NAME.to_owned()),
            );
            if let Some(region) = base.region() {
                builder = builder.region(region.clone());
            }
            let provider = builder.configure(&base).build().await;
            base = base.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        }
        ClientFactory { base, settings }
    }

    /// The credentials the base configuration resolves to, if any.
    pub fn base_credentials(&self) -> Option<SharedCredentialsProvider> {
        self.base.credentials_provider()
    }

    /// Credentials of `role`, assumed with the base credentials and renewed
    /// before they expire (for long-running readers; the live checks call STS
    /// themselves to classify its answers). STS is asked in the base
    /// configuration's region, else in `stream_region`.
    pub async fn role_credentials(&self, role: &crate::AssumeRole, stream_region: &str) -> SharedCredentialsProvider {
        let region = self.base.region().cloned().unwrap_or_else(|| Region::new(stream_region.to_owned()));
        if role.source_identity.is_some() {
            // aws-config's provider cannot pass a source identity.
            let sts = self.sts(region.as_ref(), None);
            return SharedCredentialsProvider::new(SourceIdentityRole::new(sts, role.clone()));
        }
        let mut builder = AssumeRoleProvider::builder(role.role_arn.to_string())
            .session_name(role.session_name.clone())
            .region(region);
        if let Some(external_id) = &role.external_id {
            builder = builder.external_id(external_id.clone());
        }
        let mut base = self.base.clone();
        if let Some(endpoint) = &self.settings.sts_endpoint_url {
            base = base.into_builder().endpoint_url(endpoint).build();
        }
        SharedCredentialsProvider::new(builder.configure(&base).build().await)
    }

    /// An STS client for `region`, with `credentials` (the base chain when `None`).
    /// The settings' STS endpoint, else `AWS_ENDPOINT_URL_STS`, wins over their one
    /// endpoint for every service (a workflow's `endPointURL` is Kinesis').
    pub fn sts(&self, region: &str, credentials: Option<SharedCredentialsProvider>) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::config::Builder::from(&self.base).region(Region::new(region.to_owned()));
        let from_env = || std::env::var("AWS_ENDPOINT_URL_STS").ok().filter(|e| !e.is_empty());
        if let Some(endpoint) = self.settings.sts_endpoint_url.clone().or_else(from_env) {
            config = config.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }

    /// An S3 client (the base chain and region; `AWS_ENDPOINT_URL_S3` or the
    /// settings' endpoint for emulators, addressed path-style there, as
    /// emulators have no per-bucket host names). Its calls may take minutes
    /// (uploads), not the seconds the commit checks allow.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let timeouts = service_timeouts(Duration::from_secs(120), Duration::from_secs(600));
        let overridden = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || self.settings.endpoint_url.is_some();
        let config =
            aws_sdk_s3::config::Builder::from(&self.base).timeout_config(timeouts).force_path_style(overridden);
        aws_sdk_s3::Client::from_conf(config.build())
    }

    /// A Glue client (the base chain and region; `AWS_ENDPOINT_URL_GLUE` or
    /// the settings' endpoint for emulators), for the tables' shared catalog.
    /// A catalog call is small: each attempt gets 30 s, not the commit checks' seconds.
    pub fn glue(&self) -> aws_sdk_glue::Client {
        let timeouts = service_timeouts(Duration::from_secs(30), Duration::from_secs(120));
        aws_sdk_glue::Client::from_conf(
            aws_sdk_glue::config::Builder::from(&self.base).timeout_config(timeouts).build(),
        )
    }

    /// A Glue client for a source's schema registry: in the registry's
    /// `region`, with `credentials` (the base chain when `None`). Its calls
    /// are small and sit on the decoding path, so they get seconds.
    /// `AWS_ENDPOINT_URL_GLUE` wins over the settings' one endpoint for every
    /// service, as a service's own endpoint does in AWS's shared settings.
    pub fn glue_registry(&self, region: &str, credentials: Option<SharedCredentialsProvider>) -> aws_sdk_glue::Client {
        let timeouts = service_timeouts(Duration::from_secs(5), Duration::from_secs(15));
        let mut config = aws_sdk_glue::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .timeout_config(timeouts);
        if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_GLUE").ok().filter(|e| !e.is_empty()) {
            config = config.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        aws_sdk_glue::Client::from_conf(config.build())
    }

    /// A DynamoDB client (the base chain and region; `AWS_ENDPOINT_URL_DYNAMODB`
    /// for emulators), for cluster mode's lease tables. A lease call is small
    /// and a renewal that takes longer than a few seconds is as good as lost.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let timeouts = service_timeouts(Duration::from_secs(5), Duration::from_secs(15));
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.base).timeout_config(timeouts).build(),
        )
    }

    /// A Kinesis client for `region`, with `credentials` (the base chain when `None`).
    pub fn kinesis(&self, region: &str, credentials: Option<SharedCredentialsProvider>) -> aws_sdk_kinesis::Client {
        let mut config = aws_sdk_kinesis::config::Builder::from(&self.base).region(Region::new(region.to_owned()));
        if let Some(endpoint) = &self.settings.kinesis_endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        if let Some(credentials) = credentials {
            config = config.credentials_provider(credentials);
        }
        aws_sdk_kinesis::Client::from_conf(config.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_use_openmetadata_names_and_hide_secrets() {
        let settings: AwsSettings = serde_json::from_str(
            r#"{"awsAccessKeyId": "AKIDEXAMPLE", "awsSecretAccessKey": "wJalrXUtnFEMI", "awsSessionToken": "FwoGZXIvYXdzE",
                "awsRegion": "eu-west-1", "endPointURL": "http://127.0.0.1:1", "assumeRoleArn": "arn:aws:iam::000000000000:role/r"}"#,
        )
        .expect("valid settings");
        assert_eq!(settings.aws_region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.endpoint_url.as_deref(), Some("http://127.0.0.1:1"));
        let printed = format!("{settings:?}");
        assert!(!printed.contains("wJalrXUtnFEMI") && !printed.contains("FwoGZXIvYXdzE"), "{printed}");
        assert!(printed.contains("AKIDEXAMPLE"));
        assert!(serde_json::from_str::<AwsSettings>(r#"{"awsSecretKey": "x"}"#).is_err());
    }
}
