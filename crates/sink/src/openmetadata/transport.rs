//! Where the requests go: an OpenMetadata server, or a file of JSON lines.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::PublishError;
use super::entities::hex;

/// An HTTP method the sink uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Read.
    Get,
    /// Create or update.
    Put,
    /// Soft-delete.
    Delete,
}

impl Method {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// One request, its path relative to the API root (`/v1/...`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Path and query under the server's `hostPort` (which ends in `/api`).
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`null` when empty or not JSON).
    pub body: Value,
}

/// Sends requests somewhere.
pub trait Transport: Send {
    /// Sends `request`; a status the caller should see (2xx, 404, ...) is an `Ok`.
    fn send(&mut self, request: &Request) -> Result<Response, PublishError>;
    /// Whether reads answer with the server's state (a file sink cannot).
    fn reads(&self) -> bool;
}

/// How the REST transport retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request when the server answers 429 or 5xx, or cannot be reached.
    pub attempts: u32,
    /// The first wait; each next one doubles, up to `max_delay`.
    pub initial_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Bound on one whole request, answer included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Speaks to an OpenMetadata server.
pub struct RestTransport {
    base: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
    retry: RetryPolicy,
}

impl fmt::Debug for RestTransport {
    // The JWT is a credential: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestTransport")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl RestTransport {
    /// A transport to `host_port` (OpenMetadata's `hostPort`, e.g. `http://localhost:8585/api`).
    pub fn new(host_port: &str, token: Option<String>, retry: RetryPolicy) -> RestTransport {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(retry.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        RestTransport { base: host_port.trim_end_matches('/').to_owned(), token, headers: Vec::new(), agent, retry }
    }

    /// Sends `headers` with every request (OpenMetadata's `extraHeaders`).
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> RestTransport {
        self.headers = headers;
        self
    }

    fn attempt(&self, request: &Request) -> Result<Response, String> {
        let url = format!("{}{}", self.base, request.path);
        let authorization = self.token.as_ref().map(|token| format!("Bearer {token}"));
        let auth = authorization.as_deref();
        let answer = match (request.method, &request.body) {
            (Method::Get, _) => self.with_headers_of(self.agent.get(&url), auth).call(),
            (Method::Delete, _) => self.with_headers_of(self.agent.delete(&url), auth).call(),
            (Method::Put, body) => {
                let body = body.as_ref().map(Value::to_string).unwrap_or_default();
                self.with_headers_of(self.agent.put(&url), auth).header("Content-Type", "application/json").send(body)
            }
        };
        // ureq's errors name the URL and the cause, never the headers.
        let mut answer = answer.map_err(|error| error.to_string())?;
        let status = answer.status().as_u16();
        let text = answer.body_mut().read_to_string().map_err(|error| format!("reading the answer: {error}"))?;
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok(Response { status, body })
    }
}

impl RestTransport {
    fn with_headers_of<B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        authorization: Option<&str>,
    ) -> ureq::RequestBuilder<B> {
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }
}

impl Transport for RestTransport {
    fn send(&mut self, request: &Request) -> Result<Response, PublishError> {
        let mut delay = self.retry.initial_delay;
        let mut attempt = 1;
        loop {
            let last = match self.attempt(request) {
                Ok(response) if response.status == 429 || response.status >= 500 => {
                    format!("HTTP {}: {}", response.status, message_of(&response.body))
                }
                Ok(response) if response.status >= 400 && response.status != 404 => {
                    return Err(PublishError::Refused {
                        method: request.method.as_str(),
                        path: request.path.clone(),
                        status: response.status,
                        detail: message_of(&response.body),
                    });
                }
                Ok(response) => return Ok(response),
                Err(detail) => detail,
            };
            if attempt >= self.retry.attempts {
                return Err(PublishError::Unreachable {
                    method: request.method.as_str(),
                    path: request.path.clone(),
                    detail: format!("{last} (after {attempt} attempts)"),
                });
            }
            attempt += 1;
            // Equal jitter: concurrent clients do not come back in step.
            let half = delay / 2;
            std::thread::sleep(half + half.mul_f64(fastrand::f64()));
            delay = (delay * 2).min(self.retry.max_delay);
        }
    }

    fn reads(&self) -> bool {
        true
    }
}

/// The server's own message, when its error body has one; bounded either way.
fn message_of(body: &Value) -> String {
    let text = match body.get("message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => body.to_string(),
    };
    text.chars().take(300).collect()
}

/// Writes each request as a JSON line `{method, path, body}`.
///
/// No server assigns ids here: an entity's id is derived from its type and
/// fully qualified name (stable across runs), so the lines that refer to it
/// (`/v1/topics/{id}/sampleData`, lineage edges) are consistent.
pub struct FileTransport {
    path: PathBuf,
    out: BufWriter<File>,
}

impl fmt::Debug for FileTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTransport").field("path", &self.path).finish_non_exhaustive()
    }
}

impl FileTransport {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<FileTransport, PublishError> {
        let file =
            File::create(path).map_err(|source| PublishError::File { path: path.display().to_string(), source })?;
        Ok(FileTransport { path: path.to_owned(), out: BufWriter::new(file) })
    }

    /// Flushes what was written.
    pub fn finish(&mut self) -> Result<(), PublishError> {
        self.out.flush().map_err(|source| PublishError::File { path: self.path.display().to_string(), source })
    }
}

impl Transport for FileTransport {
    fn send(&mut self, request: &Request) -> Result<Response, PublishError> {
        let line = json!({"method": request.method.as_str(), "path": request.path, "body": request.body});
        writeln!(self.out, "{line}")
            .map_err(|source| PublishError::File { path: self.path.display().to_string(), source })?;
        if request.method != Method::Put {
            return Ok(Response { status: 404, body: Value::Null });
        }
        Ok(created(request))
    }

    fn reads(&self) -> bool {
        false
    }
}

/// What a server would answer a create with when no server is asked: the
/// entity's name, fully qualified name (under its `service`, `database` or
/// `databaseSchema`) and an id made from both, so later requests
/// (`/v1/topics/{id}/sampleData`, lineage edges) are consistent.
pub(crate) fn created(request: &Request) -> Response {
    let body = request.body.clone().unwrap_or(Value::Null);
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let collection = request.path.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
    let parent =
        ["service", "database", "databaseSchema"].iter().find_map(|key| body.get(*key).and_then(Value::as_str));
    let fqn = match parent {
        Some(parent) => format!("{parent}.{}", super::quoted_fqn_part(&name)),
        None => super::quoted_fqn_part(&name),
    };
    Response {
        status: 200,
        body: json!({"id": name_based_id(collection, &fqn), "name": name, "fullyQualifiedName": fqn}),
    }
}

/// A UUID-shaped id from an entity's kind and fully qualified name.
fn name_based_id(kind: &str, fqn: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("tributary:{kind}:{fqn}").as_bytes());
    let hex = hex(&digest[..16]);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_name_each_request_and_ids_are_stable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("requests.jsonl");
        let mut file = FileTransport::create(&path).expect("create");
        let put = Request {
            method: Method::Put,
            path: "/v1/topics".into(),
            body: Some(json!({"name": "a.b", "service": "svc"})),
        };
        let first = file.send(&put).expect("write");
        let again = file.send(&put).expect("write");
        assert_eq!(first.body["id"], again.body["id"]);
        assert_eq!(first.body["fullyQualifiedName"], "svc.\"a.b\"");
        let get = Request { method: Method::Get, path: "/v1/system/version".into(), body: None };
        assert_eq!(file.send(&get).expect("write").status, 404);
        file.finish().expect("flush");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("json line")).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], json!({"method": "PUT", "path": "/v1/topics", "body": {"name": "a.b", "service": "svc"}}));
        assert_eq!(lines[2]["body"], Value::Null);
    }

    #[test]
    fn the_token_is_not_printed() {
        let transport =
            RestTransport::new("http://127.0.0.1:1/api", Some("eyJhbGciOi.secret".into()), RetryPolicy::default());
        assert!(!format!("{transport:?}").contains("secret"));
    }
}
