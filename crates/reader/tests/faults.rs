//! A fault-injecting HTTP proxy in front of kinesis-local: throttling on 30% of
//! GetRecords calls, one expired iterator, one 500 and one answer too slow for
//! the call timeout. The read completes with nothing lost and nothing repeated.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tributary_reader::{MemoryCheckpointStore, ReadTarget, Reader, ReaderConfig, StartPosition, USER_AGENT};

const EXPIRED_AT: usize = 4;
const SERVER_ERROR_AT: usize = 9;
const SLOW_AT: usize = 14;
const SLOW_FOR: Duration = Duration::from_secs(3);

struct Proxy {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    get_records_calls: AtomicUsize,
    throttled: AtomicUsize,
    /// The user agent of each GetRecords call.
    get_records_agents: Mutex<Vec<String>>,
    /// The user agent of each GetShardIterator call.
    iterator_agents: Mutex<Vec<String>>,
    random: Mutex<fastrand::Rng>,
}

fn aws_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"{code}","message":"{message}"}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/x-amz-json-1.1".parse().expect("header"));
    response
}

impl Proxy {
    async fn handle(self: Arc<Proxy>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Ok(aws_error(StatusCode::BAD_REQUEST, "BadRequest", "unreadable body")),
        };
        let target = parts.headers.get("x-amz-target").map(|target| target.as_bytes()).unwrap_or_default();
        let agent = parts.headers.get("user-agent").and_then(|agent| agent.to_str().ok()).unwrap_or_default();
        if target.ends_with(b".GetShardIterator") {
            self.iterator_agents.lock().push(agent.to_owned());
        }
        let mut slow = false;
        if target.ends_with(b".GetRecords") {
            self.get_records_agents.lock().push(agent.to_owned());
            let call = self.get_records_calls.fetch_add(1, Ordering::SeqCst);
            match call {
                EXPIRED_AT => {
                    return Ok(aws_error(StatusCode::BAD_REQUEST, "ExpiredIteratorException", "Iterator expired"));
                }
                SERVER_ERROR_AT => return Ok(aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure", "oops")),
                SLOW_AT => slow = true,
                _ if self.random.lock().f64() < 0.3 => {
                    self.throttled.fetch_add(1, Ordering::SeqCst);
                    return Ok(aws_error(
                        StatusCode::BAD_REQUEST,
                        "ProvisionedThroughputExceededException",
                        "Rate exceeded for shard",
                    ));
                }
                _ => {}
            }
        }
        let mut forward = Request::builder().method(parts.method).uri(format!("{}{}", self.upstream, parts.uri));
        for (name, value) in &parts.headers {
            if name != "host" {
                forward = forward.header(name, value);
            }
        }
        let Ok(forward) = forward.body(Full::new(body)) else {
            return Ok(aws_error(StatusCode::BAD_REQUEST, "BadRequest", "cannot forward"));
        };
        let response = match self.client.request(forward).await {
            Ok(response) => response,
            Err(error) => return Ok(aws_error(StatusCode::BAD_GATEWAY, "BadGateway", &error.to_string())),
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
        if slow {
            // The answer exists (the call was applied) but arrives after the client gave up.
            tokio::time::sleep(SLOW_FOR).await;
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

async fn start_proxy(upstream: &str) -> (String, Arc<Proxy>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let address = listener.local_addr().expect("proxy address");
    let proxy = Arc::new(Proxy {
        upstream: upstream.trim_end_matches('/').to_owned(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        get_records_calls: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
        get_records_agents: Mutex::new(Vec::new()),
        iterator_agents: Mutex::new(Vec::new()),
        random: Mutex::new(fastrand::Rng::with_seed(7)),
    });
    let serving = Arc::clone(&proxy);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let proxy = Arc::clone(&serving);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| Arc::clone(&proxy).handle(request));
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (format!("http://{address}"), proxy)
}

#[tokio::test]
async fn throttling_expiry_5xx_and_timeouts_lose_and_repeat_nothing() {
    let Some(endpoint) = kinesis_endpoint() else { return };
    let kinesis = client(&endpoint);
    let stream_arn = create_stream(&kinesis, &unique("faults"), 2).await;
    let records: Vec<(String, Vec<u8>)> =
        (0..600).map(|i| (format!("key-{}", i % 13), format!("record-{i}").into_bytes())).collect();
    put(&kinesis, &stream_arn, &records).await;

    let (proxy_url, proxy) = start_proxy(&endpoint).await;
    let store = Arc::new(MemoryCheckpointStore::new());
    let target = ReadTarget { stream_arn, start: StartPosition::TrimHorizon, scope: "s".into() };
    let config = ReaderConfig { records_per_call: 40, call_timeout: Duration::from_secs(1), ..test_config() };
    let mut reader = Reader::start(client(&proxy_url), target, store.clone(), config);
    let read = read_committing(&mut reader, &store, "s", 600, Duration::from_secs(90)).await;
    let metrics = reader.metrics().snapshot();
    reader.stop().await;

    let mut read = payloads(&read);
    read.sort();
    let mut expected: Vec<String> = (0..600).map(|i| format!("record-{i}")).collect();
    expected.sort();
    assert_eq!(read, expected, "every record exactly once");

    let sum = |field: fn(&tributary_reader::ShardMetricsSnapshot) -> u64| metrics.values().map(field).sum::<u64>();
    assert!(proxy.get_records_calls.load(Ordering::SeqCst) > SLOW_AT, "every fault was injected");
    assert_eq!(sum(|shard| shard.throttles), proxy.throttled.load(Ordering::SeqCst) as u64, "{metrics:#?}");
    assert!(sum(|shard| shard.throttles) > 0);
    assert_eq!(sum(|shard| shard.iterator_renewals), 1, "one expired iterator: {metrics:#?}");
    assert_eq!(sum(|shard| shard.transient_errors), 2, "one 500 and one timeout: {metrics:#?}");
    // Every GetRecords was the reader's own signed call, not the SDK's (which follows GetShardIterator).
    let agents = proxy.get_records_agents.lock();
    assert!(agents.iter().all(|agent| agent == USER_AGENT), "{agents:?}");
    // So was every GetShardIterator after the first of each shard (the SDK's, which teach the route):
    // the expired, failed and timed-out calls were resumed through our own.
    let iterator_agents = proxy.iterator_agents.lock();
    let ours = iterator_agents.iter().filter(|agent| *agent == USER_AGENT).count();
    assert!(iterator_agents.len() - ours <= 2 && ours >= 3, "{iterator_agents:?}");
}
