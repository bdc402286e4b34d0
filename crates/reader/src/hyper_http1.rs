//! The reader's calls through hyper's low-level HTTP/1.1 client
//! (`hyper::client::conn::http1`, no pool): one connection task per kept
//! connection, the answer collected from hyper's frames.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

use crate::transport::Connect;

const IDLE_CONNECTIONS: usize = 16;
const MAX_BODY: usize = 64 * 1024 * 1024;
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(4);

/// An answer: status, AWS' error type header, body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) error_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

pub(crate) struct Client {
    connector: Box<dyn Connect>,
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, tokio::time::Instant)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HyperClient").field("connector", &self.connector).finish_non_exhaustive()
    }
}

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

impl Client {
    pub(crate) fn new(connector: Box<dyn Connect>) -> Client {
        Client { connector, idle: Mutex::new(Vec::new()) }
    }

    fn reused(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock();
        while let Some((sender, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR_AT_MOST && sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> io::Result<SendRequest<Full<Bytes>>> {
        let stream = self.connector.connect().await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(other)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    pub(crate) async fn send(&self, request: http::Request<Full<Bytes>>) -> io::Result<Reply> {
        let (mut sender, response) = match self.reused() {
            Some(mut sender) => match sender.try_send_request(request).await {
                Ok(response) => (sender, response),
                Err(mut refused) => match refused.take_message() {
                    // Never sent: the server closed the idle connection.
                    Some(request) => {
                        let mut sender = self.connect().await?;
                        let response = sender.send_request(request).await.map_err(other)?;
                        (sender, response)
                    }
                    None => return Err(other(refused.into_error())),
                },
            },
            None => {
                let mut sender = self.connect().await?;
                let response = sender.send_request(request).await.map_err(other)?;
                (sender, response)
            }
        };
        let status = response.status().as_u16();
        let error_type =
            response.headers().get("x-amzn-errortype").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let length = response.headers().get(http::header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
        if length.is_some_and(|length| length > MAX_BODY) {
            return Err(other("the answer is too large"));
        }
        let mut body = Vec::with_capacity(length.unwrap_or(0));
        let mut incoming = response.into_body();
        while let Some(frame) = incoming.frame().await {
            if let Ok(data) = frame.map_err(other)?.into_data() {
                if body.len() + data.len() > MAX_BODY {
                    return Err(other("the answer is too large"));
                }
                body.extend_from_slice(&data);
            }
        }
        // The connection is ready again once the answer was read whole.
        if sender.ready().await.is_ok() {
            let mut idle = self.idle.lock();
            if idle.len() < IDLE_CONNECTIONS {
                idle.push((sender, tokio::time::Instant::now()));
            }
        }
        Ok(Reply { status, error_type, body })
    }
}
