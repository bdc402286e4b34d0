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
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;
/// A connection unused for longer may have been closed by the server: it is not reused.
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(4);
/// A chunk-size line (size and extensions) may not exceed this.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Interim (1xx) answers accepted before the real one.
const MAX_INTERIM_ANSWERS: usize = 8;

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

/// How long a call may take, so a peer that answers slowly, or never stops
/// answering, costs a bounded wait.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// Opening a connection (TCP and TLS).
    pub(crate) connect: Duration,
    /// Sending the request and reading the whole answer. Kinesis answers
    /// carry at most 10 MiB: a minute is a slow link, not a working one.
    pub(crate) answer: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines { connect: Duration::from_secs(10), answer: Duration::from_secs(60) }
    }
}

/// Keep-alive HTTP/1.1 to one endpoint.
pub(crate) struct Client {
    connector: Box<dyn Connect>,
    deadlines: Deadlines,
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
        Client::with_deadlines(connector, Deadlines::default())
    }

    pub(crate) fn with_deadlines(connector: Box<dyn Connect>, deadlines: Deadlines) -> Client {
        Client { connector, deadlines, idle: Mutex::new(Vec::new()), buffers: Mutex::new(Vec::new()) }
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
            match self.exchange_within(connection, head, body, true).await {
                Ok(reply) => return Ok(reply),
                Err(Failed { stale: true, .. }) => {}
                Err(Failed { error, .. }) => return Err(error),
            }
        }
        let stream = tokio::time::timeout(self.deadlines.connect, self.connector.connect())
            .await
            .map_err(|_| timed_out("no connection", self.deadlines.connect))??;
        let connection = Connection { stream, idle_since: tokio::time::Instant::now() };
        self.exchange_within(connection, head, body, false).await.map_err(|failed| failed.error)
    }

    async fn exchange_within(
        &self,
        connection: Connection,
        head: &[u8],
        body: &[u8],
        reused: bool,
    ) -> Result<Reply<'_>, Failed> {
        tokio::time::timeout(self.deadlines.answer, self.exchange(connection, head, body, reused))
            .await
            .unwrap_or_else(|_| Err(failed(timed_out("no whole answer", self.deadlines.answer))))
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

fn timed_out(what: &str, after: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} within {after:?}"))
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
    let mut interim_answers = 0;
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
            interim_answers += 1;
            if interim_answers > MAX_INTERIM_ANSWERS {
                return Err(failed(invalid("too many interim answers")));
            }
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
                let declared = content_length(value);
                match declared {
                    // Two different lengths: which one frames the body is ambiguous (RFC 9112 §6.3).
                    Some(bytes) if length.is_some_and(|length| length != bytes) => {
                        return Err(failed(invalid("conflicting Content-Length headers")));
                    }
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
        Framing::Chunked => {
            let mut body = client.buffer();
            read_chunked(stream, buffer, head_len, &mut body).await.map_err(failed)?;
            body
        }
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

/// Reads a chunked body, starting at `buffer[from..]`, into `body`.
///
/// Every part the peer controls is bounded: the size line, each chunk (by
/// what is left of [`MAX_BODY`]) and the trailers; a size line or trailer
/// still incomplete is scanned only where new bytes arrived.
async fn read_chunked(
    stream: &mut Box<dyn Transport>,
    mut buffer: Vec<u8>,
    from: usize,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    let mut at = from;
    loop {
        let (size, line_len) = loop {
            match httparse::parse_chunk_size(&buffer[at..]) {
                Ok(httparse::Status::Complete((line_len, size))) => break (size, line_len),
                // Partial: everything after `at` is one unfinished line.
                Ok(httparse::Status::Partial) if buffer.len() - at <= MAX_CHUNK_LINE => {
                    fill(stream, &mut buffer).await?
                }
                Ok(httparse::Status::Partial) => return Err(invalid("a chunk-size line is too long")),
                Err(_) => return Err(invalid("unreadable chunk size")),
            }
        };
        at += line_len;
        // A size near u64::MAX must not wrap the sum.
        let end = usize::try_from(size)
            .ok()
            .and_then(|size| body.len().checked_add(size))
            .filter(|&end| end <= MAX_BODY)
            .ok_or_else(|| invalid("the answer is too large"))?;
        let size = end - body.len();
        if size == 0 {
            return skip_trailers(stream, buffer, at).await;
        }
        // The chunk and its CRLF: bytes already read, then straight from the socket.
        let buffered = (buffer.len() - at).min(size);
        body.extend_from_slice(&buffer[at..at + buffered]);
        at += buffered;
        if body.len() < end {
            buffer.clear();
            at = 0;
            body.reserve(end - body.len());
            while body.len() < end {
                if stream.read_buf(&mut (&mut *body).limit_to(end)).await? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
            }
        }
        while buffer.len() < at + 2 {
            fill(stream, &mut buffer).await?;
        }
        if &buffer[at..at + 2] != b"\r\n" {
            return Err(invalid("a chunk does not end in CRLF"));
        }
        at += 2;
        if at > 64 * 1024 {
            buffer.drain(..at);
            at = 0;
        }
    }
}

/// Reads past the trailers (ignored), which end with an empty line; at most
/// [`MAX_HEAD`] of them. Bytes after them are not part of any answer.
async fn skip_trailers(stream: &mut Box<dyn Transport>, mut buffer: Vec<u8>, from: usize) -> io::Result<()> {
    let mut scanned = from;
    loop {
        // With no trailers the section is just CRLF; otherwise it ends at the first blank line,
        // looked for only where new bytes arrived (from three before: CRLFCRLF may straddle reads).
        let end = if buffer[from..].starts_with(b"\r\n") {
            Some(from + 2)
        } else {
            let start = scanned.saturating_sub(3).max(from);
            memchr::memmem::find(&buffer[start..], b"\r\n\r\n").map(|found| start + found + 4)
        };
        if let Some(end) = end {
            return if end == buffer.len() { Ok(()) } else { Err(invalid("bytes after the end of the answer")) };
        }
        if buffer.len() - from > MAX_HEAD {
            return Err(invalid("the answer's trailers are too long"));
        }
        scanned = buffer.len();
        fill(stream, &mut buffer).await?;
    }
}

/// A Content-Length value: digits only (no sign, no list).
fn content_length(value: &[u8]) -> Option<usize> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

async fn fill(stream: &mut Box<dyn Transport>, buffer: &mut Vec<u8>) -> io::Result<()> {
    buffer.reserve(16 * 1024);
    match stream.read_buf(buffer).await? {
        0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        _ => Ok(()),
    }
}

/// `BufMut` over a `Vec<u8>` that stops at a length, so a read never takes
/// bytes past the answer (or the chunk).
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

    /// What a hostile server sends after the request: `opening`, then
    /// `filler` over and over (up to 256 MiB), each piece `pause` apart.
    struct Hostile {
        opening: &'static [u8],
        filler: &'static [u8],
        pause: Duration,
    }

    /// Serves one connection as `hostile` says; the bytes it got the client to take.
    async fn serve_hostile(hostile: Hostile) -> (String, Arc<AtomicUsize>) {
        const ENDLESS: usize = 256 * 1024 * 1024;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&sent);
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            if stream.write_all(hostile.opening).await.is_err() {
                return;
            }
            counted.fetch_add(hostile.opening.len(), Ordering::SeqCst);
            // Whole fillers of about 64 KiB per write when swift; one per write when dripping.
            let repeats = if hostile.pause.is_zero() { (64 * 1024 / hostile.filler.len().max(1)).max(1) } else { 1 };
            let piece = hostile.filler.repeat(repeats);
            while counted.load(Ordering::SeqCst) < ENDLESS {
                if stream.write_all(&piece).await.is_err() {
                    return;
                }
                counted.fetch_add(piece.len(), Ordering::SeqCst);
                if !hostile.pause.is_zero() {
                    tokio::time::sleep(hostile.pause).await;
                }
            }
        });
        (address, sent)
    }

    #[tokio::test]
    async fn a_hostile_answer_is_a_bounded_error_never_a_panic_or_a_hang() {
        const SWIFT: Duration = Duration::ZERO;
        let cases = [
            // A chunk size that wraps the body's length (u64::MAX - 1 after five bytes).
            (
                "huge chunk size",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nfffffffffffffffe\r\n",
                    filler: b"x",
                    pause: SWIFT,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "endless chunk extension",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=",
                    filler: b"a",
                    pause: SWIFT,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "endless trailer",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: ",
                    filler: b"a",
                    pause: SWIFT,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "endless trailer lines",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
                    filler: b"X-Trailer: t\r\n",
                    pause: SWIFT,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "endless header",
                Hostile { opening: b"HTTP/1.1 200 OK\r\nX-Header: ", filler: b"a", pause: SWIFT },
                io::ErrorKind::InvalidData,
            ),
            (
                "endless interim answers",
                Hostile { opening: b"", filler: b"HTTP/1.1 100 Continue\r\n\r\n", pause: SWIFT },
                io::ErrorKind::InvalidData,
            ),
            (
                "a body longer than its length",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more",
                    filler: b"",
                    pause: Duration::from_secs(3600),
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "bytes after a chunked answer",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
                    filler: b"",
                    pause: Duration::from_secs(3600),
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "two lengths",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello",
                    filler: b"",
                    pause: Duration::from_secs(3600),
                },
                io::ErrorKind::InvalidData,
            ),
            (
                "a slow drip",
                Hostile {
                    opening: b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
                    filler: b"x",
                    pause: Duration::from_millis(20),
                },
                io::ErrorKind::TimedOut,
            ),
        ];
        let deadlines = Deadlines { connect: Duration::from_secs(5), answer: Duration::from_millis(500) };
        for (name, hostile, kind) in cases {
            let (address, sent) = serve_hostile(hostile).await;
            let client = Client::with_deadlines(Box::new(PlainTcp { address }), deadlines);
            // The bound only turns a hang into a failure; the client's own deadline is far shorter.
            let outcome = tokio::time::timeout(Duration::from_secs(30), client.send(HEAD, b"{}"))
                .await
                .unwrap_or_else(|_| panic!("{name}: the call hung"));
            let error = outcome.expect_err(name);
            assert_eq!(error.kind(), kind, "{name}: {error}");
            // What the client took is bounded by its limits (plus socket buffers), not by the peer.
            let taken = sent.load(Ordering::SeqCst);
            assert!(taken < 16 * 1024 * 1024, "{name}: the client took {taken} bytes");
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
