//! A small HTTP/1.1 client for the reader's own calls.
//!
//! Each call is one `POST /` with a small body and one answer of up to
//! megabytes. A general client (pool lookup by key, a connection task fed
//! through channels, the answer delivered in chunks the caller copies back
//! together, header maps converted between two HTTP crates) cost more per
//! idle poll than the call itself, and the copy cost more per record than
//! parsing. Here a call writes the request in one write and reads the answer
//! on the calling task, the body straight from the socket into the buffer
//! that is parsed. Keep-alive connections wait in a small stack.

use std::io;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::transport::{Connect, Transport};

/// Idle connections kept per client; more are closed after use.
const IDLE_CONNECTIONS: usize = 16;
/// The status line and headers may not exceed this.
const MAX_HEAD: usize = 64 * 1024;
/// Answers may not exceed this (Kinesis sends at most 10 MiB of records, base64 in JSON).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// A connection unused for longer may have been closed by the server: it is not reused.
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(4);

/// Body buffers kept for reuse, and the largest kept: at most 16 MiB held per client.
/// (Kinesis answers can reach 13 MiB; those are rare enough to take fresh memory.)
const KEPT_BUFFERS: usize = 8;
const KEPT_BUFFER: usize = 2 * 1024 * 1024;

/// An answer: status, AWS' error type header, body.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    pub(crate) status: u16,
    pub(crate) error_type: Option<String>,
    pub(crate) body: Body<'a>,
}

/// An answer's body. Its buffer goes back to the client that read it, for
/// the next answer: a fresh one would be paged in by the kernel on every call.
#[derive(Debug)]
pub(crate) struct Body<'a> {
    bytes: Vec<u8>,
    home: Option<&'a Client>,
}

impl<'a> Body<'a> {
    /// A body read elsewhere, not kept for reuse.
    pub(crate) fn unpooled(bytes: Vec<u8>) -> Body<'a> {
        Body { bytes, home: None }
    }
}

impl std::ops::Deref for Body<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Body<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.home {
            client.keep_buffer(std::mem::take(&mut self.bytes));
        }
    }
}

struct Connection {
    stream: Box<dyn Transport>,
    idle_since: tokio::time::Instant,
}

/// Keep-alive HTTP/1.1 to one endpoint.
pub(crate) struct Client {
    connector: Box<dyn Connect>,
    idle: Mutex<Vec<Connection>>,
    /// Body buffers of answers already parsed.
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("connector", &self.connector).finish_non_exhaustive()
    }
}

/// Why a call failed, and whether it may be sent again at once on a new connection.
struct Failed {
    error: io::Error,
    /// Nothing of an answer arrived on a reused connection: the server had
    /// closed it while it was idle, and never saw the request.
    stale: bool,
}

impl Client {
    pub(crate) fn new(connector: Box<dyn Connect>) -> Client {
        Client { connector, idle: Mutex::new(Vec::new()), buffers: Mutex::new(Vec::new()) }
    }

    fn keep_buffer(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() <= KEPT_BUFFER {
            buffer.clear();
            let mut buffers = self.buffers.lock();
            if buffers.len() < KEPT_BUFFERS {
                buffers.push(buffer);
            }
        }
    }

    fn buffer(&self) -> Vec<u8> {
        self.buffers.lock().pop().unwrap_or_default()
    }

    /// Sends `head` (the request line and headers, ending in a blank line)
    /// and `body`; returns the answer.
    pub(crate) async fn send(&self, head: &[u8], body: &[u8]) -> io::Result<Reply<'_>> {
        if let Some(connection) = self.reused() {
            match self.exchange(connection, head, body, true).await {
                Ok(reply) => return Ok(reply),
                Err(Failed { stale: true, .. }) => {}
                Err(Failed { error, .. }) => return Err(error),
            }
        }
        let stream = self.connector.connect().await?;
        let connection = Connection { stream, idle_since: tokio::time::Instant::now() };
        self.exchange(connection, head, body, false).await.map_err(|failed| failed.error)
    }

    fn reused(&self) -> Option<Connection> {
        let mut idle = self.idle.lock();
        while let Some(connection) = idle.pop() {
            if connection.idle_since.elapsed() < IDLE_FOR_AT_MOST {
                return Some(connection);
            }
        }
        None
    }

    async fn exchange(
        &self,
        mut connection: Connection,
        head: &[u8],
        body: &[u8],
        reused: bool,
    ) -> Result<Reply<'_>, Failed> {
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head);
        request.extend_from_slice(body);
        let written = async {
            connection.stream.write_all(&request).await?;
            // TLS may hold the last record until flushed.
            connection.stream.flush().await
        };
        if let Err(error) = written.await {
            return Err(Failed { error, stale: reused });
        }
        let (reply, keep_alive) = read_reply(&mut connection.stream, reused, self).await?;
        if keep_alive {
            connection.idle_since = tokio::time::Instant::now();
            let mut idle = self.idle.lock();
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(connection);
            }
        }
        Ok(reply)
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// How the answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads one answer; `true` when the connection can carry another request.
async fn read_reply<'a>(
    stream: &mut Box<dyn Transport>,
    reused: bool,
    client: &'a Client,
) -> Result<(Reply<'a>, bool), Failed> {
    let mut buffer: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut must_read = true;
    let (status, error_type, framing, mut keep_alive, head_len) = loop {
        if must_read {
            match stream.read_buf(&mut buffer).await {
                Ok(0) => {
                    let error = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
                    return Err(Failed { error, stale: reused && buffer.is_empty() });
                }
                Ok(_) => {}
                Err(error) => return Err(Failed { stale: reused && buffer.is_empty(), error }),
            }
        }
        must_read = true;
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&buffer) {
            Ok(httparse::Status::Complete(head_len)) => head_len,
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => {
                buffer.reserve(8 * 1024);
                continue;
            }
            Ok(httparse::Status::Partial) => return Err(failed(invalid("the answer's headers are too long"))),
            Err(error) => return Err(failed(invalid(format!("not an HTTP answer: {error}")))),
        };
        let status = response.code.unwrap_or(0);
        if (100..200).contains(&status) {
            // An interim answer: the real one follows (perhaps already read).
            buffer.drain(..head_len);
            must_read = buffer.is_empty();
            continue;
        }
        let (mut length, mut chunked) = (None, false);
        let mut keep_alive = response.version == Some(1);
        let mut error_type = None;
        for header in response.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                let declared = std::str::from_utf8(value).ok().and_then(|text| text.trim().parse::<usize>().ok());
                match declared {
                    Some(bytes) if bytes <= MAX_BODY => length = Some(bytes),
                    Some(_) => return Err(failed(invalid("the answer is too large"))),
                    None => return Err(failed(invalid("unreadable Content-Length"))),
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if header.name.eq_ignore_ascii_case("connection") {
                if value.trim_ascii().eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if value.trim_ascii().eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            } else if header.name.eq_ignore_ascii_case("x-amzn-errortype") {
                error_type = std::str::from_utf8(value).ok().map(str::to_owned);
            }
        }
        // Chunked framing wins over a length (RFC 9112 §6.3).
        let framing = match (chunked, length) {
            (true, _) => Framing::Chunked,
            (false, Some(length)) => Framing::Length(length),
            (false, None) => Framing::UntilClose,
        };
        break (status, error_type, framing, keep_alive, head_len);
    };
    let body = match framing {
        Framing::Length(length) => {
            let mut body = client.buffer();
            if body.capacity() < length {
                // Growing the empty buffer would copy its old contents (realloc cannot know they are dead).
                body = Vec::with_capacity(length);
            }
            let already = buffer.len() - head_len;
            if already > length {
                return Err(failed(invalid("more bytes than the answer's Content-Length")));
            }
            body.extend_from_slice(&buffer[head_len..]);
            drop(buffer);
            while body.len() < length {
                // Straight from the socket into the parsed buffer.
                let mut rest = (&mut body).limit_to(length);
                match stream.read_buf(&mut rest).await {
                    Ok(0) => return Err(failed(io::Error::from(io::ErrorKind::UnexpectedEof))),
                    Ok(_) => {}
                    Err(error) => return Err(failed(error)),
                }
            }
            body
        }
        Framing::Chunked => read_chunked(stream, buffer, head_len).await.map_err(failed)?,
        Framing::UntilClose => {
            keep_alive = false;
            let mut body = buffer.split_off(head_len);
            loop {
                if body.len() > MAX_BODY {
                    return Err(failed(invalid("the answer is too large")));
                }
                body.reserve(64 * 1024);
                match stream.read_buf(&mut body).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(error) => return Err(failed(error)),
                }
            }
            body
        }
    };
    Ok((Reply { status, error_type, body: Body { bytes: body, home: Some(client) } }, keep_alive))
}

fn failed(error: io::Error) -> Failed {
    Failed { error, stale: false }
}

/// A chunked body, starting at `buffer[from..]`.
async fn read_chunked(stream: &mut Box<dyn Transport>, mut buffer: Vec<u8>, from: usize) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut at = from;
    loop {
        // The chunk's size line.
        let (size, line_len) = loop {
            match httparse::parse_chunk_size(&buffer[at..]) {
                Ok(httparse::Status::Complete((line_len, size))) => break (size, line_len),
                Ok(httparse::Status::Partial) => fill(stream, &mut buffer).await?,
                Err(_) => return Err(invalid("unreadable chunk size")),
            }
        };
        let size = usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
        if body.len() + size > MAX_BODY {
            return Err(invalid("the answer is too large"));
        }
        at += line_len;
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            loop {
                let rest = &buffer[at..];
                if rest.starts_with(b"\r\n") || memchr::memmem::find(rest, b"\r\n\r\n").is_some() {
                    return Ok(body);
                }
                fill(stream, &mut buffer).await?;
            }
        }
        while buffer.len() < at + size + 2 {
            fill(stream, &mut buffer).await?;
        }
        body.extend_from_slice(&buffer[at..at + size]);
        if &buffer[at + size..at + size + 2] != b"\r\n" {
            return Err(invalid("a chunk does not end in CRLF"));
        }
        at += size + 2;
        if at > 1024 * 1024 {
            buffer.drain(..at);
            at = 0;
        }
    }
}

async fn fill(stream: &mut Box<dyn Transport>, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.reserve(16 * 1024);
    match stream.read_buf(buffer).await? {
        0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        _ => Ok(()),
    }
}

/// `BufMut` over a `Vec<u8>` that stops at a length, so a read never takes
/// bytes past the answer.
trait LimitTo {
    fn limit_to(self, length: usize) -> bytes::buf::Limit<Self>
    where
        Self: Sized;
}

impl LimitTo for &mut Vec<u8> {
    fn limit_to(self, length: usize) -> bytes::buf::Limit<Self> {
        let left = length - self.len();
        bytes::BufMut::limit(self, left)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::net::TcpListener;

    use super::*;
    use crate::transport::{PlainTcp, Tls, client_config};

    const CA: &[u8] = include_bytes!("../tests/fixtures/tls/ca.pem");
    const SERVER_CERT: &[u8] = include_bytes!("../tests/fixtures/tls/server.pem");
    const SERVER_KEY: &[u8] = include_bytes!("../tests/fixtures/tls/server.key");

    /// What the test server does after answering a request.
    #[derive(Clone, Copy, PartialEq)]
    enum Then {
        KeepOpen,
        Close,
    }

    /// Answers still to give, shared by the test server's connections.
    type Answers = Arc<Mutex<std::vec::IntoIter<(Vec<u8>, Then)>>>;

    /// A server answering the requests it receives with `answers`, in order
    /// (across connections); counts the connections it accepted.
    struct Script {
        address: String,
        connections: Arc<AtomicUsize>,
    }

    async fn serve(answers: Vec<(Vec<u8>, Then)>, tls: Option<tokio_rustls::TlsAcceptor>) -> Script {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let answers = Arc::clone(&answers);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                answer_requests(stream, answers).await;
                            }
                        }
                        None => answer_requests(stream, answers).await,
                    }
                });
            }
        });
        Script { address, connections }
    }

    async fn answer_requests<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answers: Answers) {
        let mut received = Vec::new();
        loop {
            // One request: headers, then Content-Length bytes.
            let (head_end, length) = loop {
                if let Some(end) = memchr::memmem::find(&received, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .and_then(|value| value.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => received.extend_from_slice(&chunk[..read]),
                }
            };
            while received.len() < head_end + length {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => received.extend_from_slice(&chunk[..read]),
                }
            }
            received.drain(..head_end + length);
            let Some((answer, then)) = answers.lock().next() else { return };
            // In pieces, as a network delivers a large answer.
            for piece in answer.chunks(100_000) {
                if stream.write_all(piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            let _ = stream.flush().await;
            if then == Then::Close {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }

    fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn plain(script: &Script) -> Client {
        Client::new(Box::new(PlainTcp { address: script.address.clone() }))
    }

    const HEAD: &[u8] = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n";

    #[tokio::test]
    async fn answers_are_read_whole_over_one_kept_alive_connection() {
        let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let script = serve(
            vec![
                (answer("200 OK", "", b"{\"first\":1}"), Then::KeepOpen),
                (answer("200 OK", "Content-Type: application/x-amz-json-1.1\r\n", &large), Then::KeepOpen),
                (
                    answer(
                        "400 Bad Request",
                        "x-amzn-ErrorType: ProvisionedThroughputExceededException:http://internal/\r\n",
                        b"{}",
                    ),
                    Then::KeepOpen,
                ),
            ],
            None,
        )
        .await;
        let client = plain(&script);
        let first = client.send(HEAD, b"{}").await.expect("first answer");
        assert_eq!((first.status, &*first.body), (200, &b"{\"first\":1}"[..]));
        let second = client.send(HEAD, b"{}").await.expect("second answer");
        assert_eq!(second.status, 200);
        assert!(*second.body == *large, "the 3 MB body arrived whole");
        let refused = client.send(HEAD, b"{}").await.expect("third answer");
        assert_eq!(refused.status, 400);
        assert_eq!(refused.error_type.as_deref(), Some("ProvisionedThroughputExceededException:http://internal/"));
        assert_eq!(script.connections.load(Ordering::SeqCst), 1, "one connection carried every call");
    }

    #[tokio::test]
    async fn chunked_and_close_delimited_answers_are_read() {
        // An interim 100 first, in the same write; a length the chunked framing overrides.
        let chunked = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nb;ext=1\r\n, chunked!!\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec();
        let until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end".to_vec();
        let script = serve(vec![(chunked, Then::KeepOpen), (until_close, Then::Close)], None).await;
        let client = plain(&script);
        assert_eq!(&*client.send(HEAD, b"{}").await.expect("chunked").body, b"hello, chunked!!");
        assert_eq!(&*client.send(HEAD, b"{}").await.expect("until close").body, b"to the end");
        assert_eq!(script.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_an_error() {
        let script = serve(
            vec![(answer("200 OK", "", b"one"), Then::Close), (answer("200 OK", "", b"two"), Then::KeepOpen)],
            None,
        )
        .await;
        let client = plain(&script);
        assert_eq!(&*client.send(HEAD, b"{}").await.expect("first").body, b"one");
        // The server closed the kept connection; give the close time to arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(&*client.send(HEAD, b"{}").await.expect("second, on a new connection").body, b"two");
        assert_eq!(script.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn cut_and_malformed_answers_are_errors() {
        let mut cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
        cut.extend_from_slice(&[b'x'; 50]);
        let cases = [
            cut,
            b"hello, this is not HTTP\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes(),
        ];
        for case in cases {
            let script = serve(vec![(case.clone(), Then::Close)], None).await;
            let client = plain(&script);
            let outcome = client.send(HEAD, b"{}").await;
            assert!(outcome.is_err(), "{:?} gave {outcome:?}", String::from_utf8_lossy(&case[..case.len().min(60)]));
        }
    }

    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        let certs = CertificateDer::pem_slice_iter(SERVER_CERT).collect::<Result<Vec<_>, _>>().expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        Arc::new(config).into()
    }

    fn roots(pem: &[u8]) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            roots.add(certificate.expect("certificate")).expect("a root");
        }
        roots
    }

    #[tokio::test]
    async fn tls_answers_come_from_a_trusted_certificate_only() {
        let body = vec![7u8; 1_000_000];
        let script = serve(
            vec![(answer("200 OK", "", &body), Then::KeepOpen), (answer("200 OK", "", b"again"), Then::KeepOpen)],
            Some(tls_acceptor()),
        )
        .await;
        let trusting = client_config(roots(CA)).expect("client config");
        let client = Client::new(Box::new(Tls::new(script.address.clone(), "localhost", trusting).expect("tls")));
        assert!(*client.send(HEAD, b"{}").await.expect("over TLS").body == *body);
        assert_eq!(&*client.send(HEAD, b"{}").await.expect("again over TLS").body, b"again");
        assert_eq!(script.connections.load(Ordering::SeqCst), 1);

        // Another name than the certificate's, or no trust in its issuer: refused.
        let trusting = client_config(roots(CA)).expect("client config");
        let wrong_name = Client::new(Box::new(Tls::new(script.address.clone(), "example.com", trusting).expect("tls")));
        assert!(wrong_name.send(HEAD, b"{}").await.is_err());
        let untrusting = client_config(roots(SERVER_CERT)).expect("client config");
        let untrusted = Client::new(Box::new(Tls::new(script.address.clone(), "localhost", untrusting).expect("tls")));
        assert!(untrusted.send(HEAD, b"{}").await.is_err());
    }
}
