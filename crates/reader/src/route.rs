//! The reader's data-plane calls without the SDK's per-call machinery.
//!
//! A polling reader makes one `GetRecords` call per shard every few hundred
//! milliseconds, and a `GetShardIterator` for every shard it starts or resumes;
//! the SDK's orchestrator (runtime-component merging, endpoint resolution,
//! user agent, interceptors, a generic JSON tokenizer) costs more CPU per call
//! than the records it brings. So these two calls are made here: signed with
//! SigV4 from the SDK's own cached credentials, sent through the SDK's own
//! HTTP connector (same TLS), to the endpoint the SDK resolved.
//!
//! Every other call still goes through the SDK. The first `GetShardIterator`
//! of a reader (a data-plane call, so it resolves to the data-plane endpoint)
//! goes through the SDK and teaches us the route through [`LearnRoute`]; until
//! then both calls go through the SDK.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::auth::AuthSchemeId;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::identity::{ResolveCachedIdentity, SharedIdentityCache, SharedIdentityResolver};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::{GetIdentityResolver, RuntimeComponents};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::ReaderError;
use crate::fault::{Fault, classify_refusal, innermost_cause};
use crate::http1;
use crate::signing::{CONTENT_TYPE, Operation, Signer};
use crate::transport::{Connect, PlainTcp, Tls, system_config};

/// Names our calls in AWS' request logs (and tells tests which path made a call).
pub const USER_AGENT: &str = concat!("tributary-reader/", env!("CARGO_PKG_VERSION"));

const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Where a reader's direct calls go, once learned.
pub(crate) type RouteCell = Arc<OnceLock<DirectRoute>>;

/// Everything a signed data-plane call needs, taken from an SDK call.
#[derive(Debug)]
pub(crate) struct DirectRoute {
    endpoint: http::Uri,
    /// The `Host` header: the endpoint's authority.
    host: HeaderValue,
    signer: Signer,
    connector: SharedHttpConnector,
    /// Our own client; `None` when calls go through the SDK's connector.
    http: Option<http1::Client>,
    identity_resolver: SharedIdentityResolver,
    identity_cache: SharedIdentityCache,
    components: RuntimeComponents,
    /// Credentials from the SDK's cache, asked again after a while (see [`reuse_for`]).
    credentials: Mutex<Option<(Arc<Credentials>, Instant)>>,
}

/// Learns the route from the first `GetShardIterator` the SDK sends.
#[derive(Debug)]
pub(crate) struct LearnRoute {
    pub(crate) cell: RouteCell,
    pub(crate) region: Option<String>,
}

impl Intercept for LearnRoute {
    fn name(&self) -> &'static str {
        "LearnRoute"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.cell.get().is_some() {
            return Ok(());
        }
        let request = context.request();
        if request.headers().get("x-amz-target") != Some(Operation::GetShardIterator.target()) {
            return Ok(());
        }
        // Any piece missing (no region, no SigV4 identity, no HTTP client): stay with the SDK.
        let (Some(region), Ok(endpoint), Some(identity_resolver), Some(http_client)) = (
            self.region.clone(),
            request.uri().parse::<http::Uri>(),
            runtime_components.identity_resolver(AuthSchemeId::new("sigv4")),
            runtime_components.http_client(),
        ) else {
            return Ok(());
        };
        // Our signer writes the canonical form of `POST /` only; an endpoint with a path stays with the SDK.
        let (Some(authority), "/" | "", None) = (endpoint.authority(), endpoint.path(), endpoint.query()) else {
            return Ok(());
        };
        let Ok(host) = HeaderValue::from_str(authority.as_str()) else {
            return Ok(());
        };
        let signer = Signer::new(region, authority.as_str().to_owned());
        let connector = http_client.http_connector(&HttpConnectorSettings::default(), runtime_components);
        let http = own_client(&endpoint, proxy_configured());
        let _ = self.cell.set(DirectRoute {
            endpoint,
            host,
            signer,
            connector,
            http,
            identity_resolver,
            identity_cache: runtime_components.identity_cache(),
            components: runtime_components.clone(),
            credentials: Mutex::new(None),
        });
        Ok(())
    }
}

/// Whether the environment names a proxy, which the SDK's client honours (ours does not).
fn proxy_configured() -> bool {
    const PROXY_VARIABLES: [&str; 6] =
        ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
    PROXY_VARIABLES.iter().any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Our own HTTP client for `endpoint`; `None` keeps the SDK's (behind a
/// proxy, or without system root certificates for TLS).
fn own_client(endpoint: &http::Uri, behind_proxy: bool) -> Option<http1::Client> {
    if behind_proxy {
        return None;
    }
    // An IPv6 literal keeps its brackets in the address, not in the certificate's name.
    let host = endpoint.host()?;
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let connector: Box<dyn Connect> = match endpoint.scheme_str()? {
        "http" => Box::new(PlainTcp { address: format!("{host}:{}", endpoint.port_u16().unwrap_or(80)) }),
        "https" => {
            let address = format!("{host}:{}", endpoint.port_u16().unwrap_or(443));
            Box::new(Tls::new(address, name, system_config()?).ok()?)
        }
        _ => return None,
    };
    Some(http1::Client::new(connector))
}

impl DirectRoute {
    /// Sends `operation` with the JSON `body`; the answer's body when Kinesis
    /// accepted the call, else the refusal as a [`Fault`].
    pub(crate) async fn call(
        &self,
        operation: Operation,
        body: Vec<u8>,
        shard_id: &str,
    ) -> Result<http1::Body<'_>, Fault> {
        if let Some(http) = &self.http {
            let head = self.head(operation, &body).await?;
            let reply = http
                .send(&head, &body)
                .await
                .map_err(|error| Fault::Transient(format!("{}: {error}", operation.name())))?;
            return if reply.status == 200 {
                Ok(reply.body)
            } else {
                Err(refusal(operation, reply.status, reply.error_type.as_deref(), &reply.body, shard_id))
            };
        }
        let request = self.signed_request(operation, body).await?;
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|error| Fault::Transient(format!("{}: {}", operation.name(), innermost_cause(&error))))?;
        let status = response.status().as_u16();
        let error_type = response.headers().get("x-amzn-errortype").map(str::to_owned);
        let length = response.headers().get("content-length").and_then(|value| value.parse::<usize>().ok());
        let body = read_body(response.into_body(), length, http1::MAX_BODY)
            .await
            .map_err(|error| Fault::Transient(format!("{}: reading the answer: {error}", operation.name())))?;
        if status == 200 {
            Ok(http1::Body::unpooled(body))
        } else {
            Err(refusal(operation, status, error_type.as_deref(), &body, shard_id))
        }
    }

    /// The request line and headers, signed, for our own client.
    async fn head(&self, operation: Operation, body: &[u8]) -> Result<Vec<u8>, Fault> {
        let mut head = Vec::with_capacity(640);
        head.extend_from_slice(b"POST / HTTP/1.1\r\n");
        for (name, value) in self.signed_headers(operation, body).await? {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        Ok(head)
    }

    /// The request for the SDK's HTTP connector (behind a proxy).
    async fn signed_request(&self, operation: Operation, body: Vec<u8>) -> Result<HttpRequest, Fault> {
        let headers = self.signed_headers(operation, &body).await?;
        let mut request = http::Request::new(SdkBody::from(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.endpoint.clone();
        request.headers_mut().extend(headers.into_iter().map(|(name, value)| (Some(name), value)));
        HttpRequest::try_from(request).map_err(|e| internal(operation, &e))
    }

    /// A request's headers, signed, in the order they are sent; the session token marked sensitive.
    async fn signed_headers(&self, operation: Operation, body: &[u8]) -> Result<Vec<(HeaderName, HeaderValue)>, Fault> {
        let credentials = self.credentials(operation).await?;
        let signed = self.signer.sign(&credentials, operation, body, SystemTime::now());
        // Headers by constant name: parsing names and static values again on every poll is wasted work.
        let mut headers = Vec::with_capacity(8);
        headers.push((header::HOST, self.host.clone()));
        headers.push((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)));
        headers.push((X_AMZ_TARGET, HeaderValue::from_static(operation.target())));
        headers.push((X_AMZ_DATE, HeaderValue::try_from(signed.amz_date).map_err(|e| internal(operation, &e))?));
        let authorization = HeaderValue::try_from(signed.authorization).map_err(|e| internal(operation, &e))?;
        headers.push((header::AUTHORIZATION, authorization));
        headers.push((header::USER_AGENT, HeaderValue::from_static(USER_AGENT)));
        headers.push((header::CONTENT_LENGTH, HeaderValue::from(body.len())));
        if let Some(token) = credentials.session_token() {
            let mut token = HeaderValue::from_str(token)
                .map_err(|_| internal(operation, &"the session token is not a header value"))?;
            token.set_sensitive(true);
            headers.push((X_AMZ_SECURITY_TOKEN, token));
        }
        Ok(headers)
    }

    /// The SDK's cached credentials, kept for a while: asking its cache costs
    /// about as much as the rest of an idle poll.
    /// (Shared, not cloned: a `Credentials` clone copies its property map on every call.)
    async fn credentials(&self, operation: Operation) -> Result<Arc<Credentials>, Fault> {
        if let Some((credentials, until)) = self.credentials.lock().as_ref()
            && Instant::now() < *until
        {
            return Ok(Arc::clone(credentials));
        }
        let unavailable = |message: String| {
            Fault::Fatal(ReaderError::Kinesis {
                operation: operation.name(),
                target: "credentials".to_owned(),
                code: "CredentialsUnavailable".to_owned(),
                message,
            })
        };
        let identity = self
            .identity_cache
            .resolve_cached_identity(self.identity_resolver.clone(), &self.components, &ConfigBag::base())
            .await
            .map_err(|error| unavailable(innermost_cause(error.as_ref())))?;
        let credentials = identity
            .data::<Credentials>()
            .cloned()
            .map(Arc::new)
            .ok_or_else(|| unavailable("the SigV4 identity holds no AWS credentials".to_owned()))?;
        let until = Instant::now() + reuse_for(identity.expiration(), SystemTime::now());
        *self.credentials.lock() = Some((Arc::clone(&credentials), until));
        Ok(credentials)
    }
}

/// A request that could not be built (a bug or unusable credentials, not a passing fault).
fn internal(operation: Operation, error: &dyn std::fmt::Display) -> Fault {
    Fault::Fatal(ReaderError::Internal(format!("building the {} request: {error}", operation.name())))
}

/// How long credentials are reused: a minute at most, and never past half
/// of their remaining life, so the SDK's cache renews them first.
fn reuse_for(expiration: Option<SystemTime>, now: SystemTime) -> Duration {
    let most = Duration::from_secs(60);
    match expiration {
        None => most,
        Some(expiration) => expiration.duration_since(now).map_or(Duration::ZERO, |left| (left / 2).min(most)),
    }
}

async fn read_body(mut body: SdkBody, length: Option<usize>, limit: usize) -> Result<Vec<u8>, BoxError> {
    if length.is_some_and(|length| length > limit) {
        return Err(format!("the answer is larger than {limit} bytes").into());
    }
    // Answers run to megabytes: sized once from Content-Length.
    let mut buffer = Vec::with_capacity(length.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(format!("the answer is larger than {limit} bytes").into());
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer)
}

/// The Fault of a refused call: AWS' error type from the header or the JSON body.
fn refusal(operation: Operation, status: u16, error_type: Option<&str>, body: &[u8], shard_id: &str) -> Fault {
    #[derive(Deserialize)]
    struct WireError<'a> {
        #[serde(rename = "__type", borrow, default)]
        kind: Option<Cow<'a, str>>,
        #[serde(alias = "Message", borrow, default)]
        message: Option<Cow<'a, str>>,
    }
    let wire: Option<WireError<'_>> = serde_json::from_slice(body).ok();
    // Both forms may be qualified: "aws.protocol#Code" in the body, "Code:http://..." in the header.
    let code = error_type
        .map(|value| value.split(':').next().unwrap_or(value))
        .or_else(|| wire.as_ref().and_then(|wire| wire.kind.as_deref()))
        .map(|code| code.rsplit('#').next().unwrap_or(code))
        .filter(|code| !code.is_empty());
    let message = wire.as_ref().and_then(|wire| wire.message.as_deref());
    classify_refusal(code, Some(status), message, operation.name(), shard_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_client_serves_http_and_https_endpoints_unless_behind_a_proxy() {
        let uri = |text: &str| text.parse::<http::Uri>().expect("uri");
        let described = |client: Option<http1::Client>| client.map(|client| format!("{client:?}"));
        let plain = described(own_client(&uri("http://127.0.0.1:4567"), false)).expect("plain HTTP");
        assert!(plain.contains("PlainTcp") && plain.contains("127.0.0.1:4567"), "{plain}");
        let ipv6 = described(own_client(&uri("http://[::1]:4567/"), false)).expect("IPv6");
        assert!(ipv6.contains("[::1]:4567"), "{ipv6}");
        if system_config().is_some() {
            let tls = described(own_client(&uri("https://kinesis.eu-west-1.amazonaws.com"), false)).expect("TLS");
            assert!(tls.contains("Tls") && tls.contains("kinesis.eu-west-1.amazonaws.com:443"), "{tls}");
        }
        assert!(own_client(&uri("http://127.0.0.1:4567"), true).is_none(), "a proxy keeps the SDK's client");
        assert!(own_client(&uri("https://kinesis.eu-west-1.amazonaws.com"), true).is_none());
    }

    #[tokio::test]
    async fn the_sdk_path_reads_no_answer_past_the_limit() {
        let answer = || SdkBody::from(vec![b'x'; 1000]);
        assert_eq!(read_body(answer(), Some(1000), 1000).await.expect("within the limit").len(), 1000);
        // Refused from the declared length, and from the bytes when no length is declared (or it lies).
        for length in [Some(1000), None, Some(10)] {
            let error = read_body(answer(), length, 999).await.expect_err("past the limit");
            assert!(error.to_string().contains("larger than 999 bytes"), "{error}");
        }
    }

    #[test]
    fn credentials_are_reused_for_a_minute_or_half_their_remaining_life() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(reuse_for(None, now), Duration::from_secs(60));
        assert_eq!(reuse_for(Some(now + Duration::from_secs(3600)), now), Duration::from_secs(60));
        assert_eq!(reuse_for(Some(now + Duration::from_secs(30)), now), Duration::from_secs(15));
        assert_eq!(reuse_for(Some(now - Duration::from_secs(1)), now), Duration::ZERO);
    }

    #[test]
    fn refusals_are_classified_by_their_error_type() {
        let throttled = br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
        assert!(matches!(refusal(Operation::GetRecords, 400, None, throttled, "s"), Fault::Throttled));
        let qualified = br#"{"__type":"com.amazonaws.kinesis.v20131202#ExpiredIteratorException","Message":"old"}"#;
        assert!(matches!(refusal(Operation::GetRecords, 400, None, qualified, "s"), Fault::ExpiredIterator));
        assert!(matches!(
            refusal(Operation::GetRecords, 400, Some("ExpiredIteratorException:http://internal.amazon.com/"), b"", "s"),
            Fault::ExpiredIterator
        ));
        assert!(matches!(refusal(Operation::GetRecords, 503, None, b"<html>", "s"), Fault::Transient(_)));
        match refusal(
            Operation::GetRecords,
            400,
            None,
            br#"{"__type":"AccessDeniedException","message":"no"}"#,
            "shardId-7",
        ) {
            Fault::Fatal(ReaderError::Kinesis { operation, target, code, message }) => {
                assert_eq!(
                    (operation, target.as_str(), code.as_str(), message.as_str()),
                    ("GetRecords", "shardId-7", "AccessDeniedException", "no")
                );
            }
            other => panic!("expected a fatal refusal, got {other:?}"),
        }
    }
}
