//! Connections for the reader's own HTTP client: TCP, or TLS over TCP with
//! the system's root certificates (as the SDK's client uses).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to the server.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// A connection being opened.
pub(crate) type Connecting<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn Transport>>> + Send + 'a>>;

/// Opens connections to one endpoint.
pub(crate) trait Connect: Send + Sync + std::fmt::Debug {
    fn connect(&self) -> Connecting<'_>;
}

/// Plain TCP to `host:port`.
#[derive(Debug)]
pub(crate) struct PlainTcp {
    pub(crate) address: String,
}

impl Connect for PlainTcp {
    fn connect(&self) -> Connecting<'_> {
        Box::pin(async move { Ok(Box::new(tcp(&self.address).await?) as Box<dyn Transport>) })
    }
}

/// TLS over TCP, the certificate checked for the endpoint's host name.
pub(crate) struct Tls {
    address: String,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("address", &self.address).field("server_name", &self.server_name).finish()
    }
}

impl Tls {
    /// TLS to `address` (`host:port`), the certificate checked for `name`, trusting `config`'s roots.
    pub(crate) fn new(address: String, name: &str, config: Arc<rustls::ClientConfig>) -> io::Result<Tls> {
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: {error}")))?;
        Ok(Tls { address, server_name, connector: config.into() })
    }
}

impl Connect for Tls {
    fn connect(&self) -> Connecting<'_> {
        Box::pin(async move {
            let stream = tcp(&self.address).await?;
            let tls = self.connector.connect(self.server_name.clone(), stream).await?;
            Ok(Box::new(tls) as Box<dyn Transport>)
        })
    }
}

async fn tcp(address: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(address).await?;
    // Requests go out in one write; no reason to wait for an acknowledgement first.
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A client configuration trusting `roots`, speaking HTTP/1.1.
pub(crate) fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The process' configuration with the system's root certificates, loaded once;
/// `None` when none could be loaded (the caller stays with the SDK's client).
pub(crate) fn system_config() -> Option<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                tracing::warn!("no system root certificates: Kinesis calls stay with the SDK's HTTP client");
                return None;
            }
            client_config(roots).ok()
        })
        .clone()
}
