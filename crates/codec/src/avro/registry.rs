//! A Confluent-compatible schema registry client: `GET {url}/schemas/ids/{id}`.
//!
//! Synchronous (the codec has no async runtime) and bounded by a timeout. A
//! 404 means the id is unknown, which rejects the record; anything else that
//! is not an answer (refused connection, timeout, 5xx) is the registry being
//! unavailable, which the caller retries without losing the record.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use tributary_source::{RegistryAuth, SchemaRegistry};

/// How long one registry request may take.
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Registry answers larger than this are refused (a schema is kilobytes).
const MAX_RESPONSE_BYTES: u64 = 8 * 1024 * 1024;

/// Why the registry could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A secret named by `{env: VAR}` is not set.
    #[error("registry credentials: {0}")]
    Credentials(String),
    /// No usable answer: the caller retries.
    #[error("{0}")]
    Unavailable(String),
    /// An answer that is not a registry's.
    #[error("unexpected registry answer: {0}")]
    BadAnswer(String),
}

/// A client for one registry.
#[derive(Clone)]
pub struct RegistryClient {
    base_url: String,
    /// The full `Authorization` header value; never printed.
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base_url", &self.base_url)
            .field("authorization", &self.authorization.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RegistryClient {
    /// A client for the registry a source names, with its credentials resolved now.
    pub fn new(settings: &SchemaRegistry) -> Result<RegistryClient, RegistryError> {
        RegistryClient::with_timeout(settings, DEFAULT_REGISTRY_TIMEOUT)
    }

    /// As [`RegistryClient::new`], with a request timeout.
    pub fn with_timeout(settings: &SchemaRegistry, timeout: Duration) -> Result<RegistryClient, RegistryError> {
        let authorization = match &settings.auth {
            None => None,
            Some(RegistryAuth::Basic { username, password }) => {
                let password = password.resolve().map_err(RegistryError::Credentials)?;
                let pair = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                Some(format!("Basic {pair}"))
            }
            Some(RegistryAuth::Token(token)) => {
                Some(format!("Bearer {}", token.resolve().map_err(RegistryError::Credentials)?))
            }
        };
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        Ok(RegistryClient { base_url: settings.url.trim_end_matches('/').to_owned(), authorization, agent })
    }

    /// The Avro writer schema registered under `id`, or `None` when the registry does not know it.
    pub fn fetch(&self, id: u32) -> Result<Option<String>, RegistryError> {
        self.fetch_of_type(id, "AVRO")
    }

    /// The schema of `kind` (`AVRO`, `PROTOBUF`, `JSON`) registered under
    /// `id`, or `None` when the registry does not know it.
    pub fn fetch_of_type(&self, id: u32, kind: &str) -> Result<Option<String>, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base_url);
        let mut request =
            self.agent.get(&url).header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request.call().map_err(|e| RegistryError::Unavailable(format!("GET {url}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|e| RegistryError::Unavailable(format!("GET {url}: reading the answer: {e}")))?;
        match status {
            200 => {}
            404 => return Ok(None),
            401 | 403 => {
                return Err(RegistryError::Unavailable(format!(
                    "GET {url}: HTTP {status}: the registry refused the credentials"
                )));
            }
            _ => return Err(RegistryError::Unavailable(format!("GET {url}: HTTP {status}"))),
        }
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| RegistryError::BadAnswer(format!("GET {url}: not JSON: {e}")))?;
        // A registry leaves `schemaType` out for Avro.
        let found = answer.get("schemaType").and_then(|t| t.as_str()).unwrap_or("AVRO");
        if found != kind {
            return Err(RegistryError::BadAnswer(format!("schema {id} is {found}, not {kind}")));
        }
        match answer.get("schema").and_then(|s| s.as_str()) {
            Some(schema) => Ok(Some(schema.to_owned())),
            None => Err(RegistryError::BadAnswer(format!("GET {url}: no `schema` in the answer"))),
        }
    }
}
