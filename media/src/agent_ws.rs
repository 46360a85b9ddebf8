//! The outward WebSocket to an agent (any media-stream URL: the campaign's agent, or the
//! LiveKit Twilio connector URL): `ws://` in the clear, `wss://` over rustls with the web
//! PKI roots plus an optional extra CA bundle for private agents.
//!
//! One [`AgentConnector`] serves both the media relay ([`AgentConnector::connect`]) and
//! the campaign's reachability probe ([`AgentConnector::probe`]: handshake, then close),
//! so the probe fails exactly when a call would. A connector may carry an
//! [`AddressGuard`]: every address a tenant's agent URL resolves to is judged before any
//! connection, and the connection goes only to the addresses judged (the name is not
//! resolved twice). Every failure is an
//! [`AgentConnectError`] whose text names the reason (`certificate not trusted for
//! agent.example.com: unknown issuer`, `connection refused by 10.0.0.7:443`, …).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a connection (DNS, TCP, TLS and the upgrade together) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `User-Agent` of a probe, so that an agent's logs (and the scripted agent) can tell
/// a reachability check from a call.
pub const PROBE_USER_AGENT: &str = "switchboard-agent-probe";

pub use rustls::pki_types::CertificateDer;

/// A connected agent socket.
pub type AgentSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why an agent could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentConnectError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("invalid agent url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host name did not resolve.
    #[error("dns lookup failed for {host}: {reason}")]
    Dns {
        /// The host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// Nothing listens at the address.
    #[error("connection refused by {addr}")]
    Refused {
        /// The address tried.
        addr: SocketAddr,
    },
    /// The TCP connection failed otherwise (unreachable network, reset).
    #[error("could not connect to {addr}: {reason}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The agent's certificate does not chain to a trusted root (web PKI or the extra CA),
    /// or is otherwise unacceptable (expired, for another name, revoked).
    #[error("certificate not trusted for {host}: {reason}")]
    CertificateNotTrusted {
        /// The host name checked.
        host: String,
        /// What was wrong with the certificate.
        reason: String,
    },
    /// The TLS handshake failed for another reason (protocol versions, alerts, a plain
    /// HTTP server on a `wss://` port).
    #[error("tls handshake with {host} failed: {reason}")]
    Tls {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The agent answered the upgrade with an HTTP status instead of 101.
    #[error("the agent refused the websocket upgrade with http {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// The upgrade failed after the connection was made (a broken handshake, a reset).
    #[error("websocket handshake failed: {reason}")]
    Handshake {
        /// Why.
        reason: String,
    },
    /// The URL's host is, or resolves to, an address the connector's guard refuses.
    #[error("{}", forbidden_text(.host, .ip, .why))]
    Forbidden {
        /// The URL's host.
        host: String,
        /// The refused address.
        ip: IpAddr,
        /// Why the guard refuses it.
        why: String,
    },
    /// No connection within the time allowed.
    #[error("timed out after {} ms", after.as_millis())]
    TimedOut {
        /// The time allowed.
        after: Duration,
    },
}

/// `10.0.0.7 is a private address`, `agent.internal resolves to 10.0.0.7, a private address`.
fn forbidden_text(host: &str, ip: &IpAddr, why: &str) -> String {
    if host.parse::<IpAddr>().is_ok() {
        format!("{host} is {why}")
    } else {
        format!("{host} resolves to {ip}, {why}")
    }
}

/// Judges one address a URL's host resolves to: `Some(why)` refuses it (`why` completes
/// "10.0.0.7 is …").
pub type AddressGuard = Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>;

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or holds no certificate.
    #[error("agent ca file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("tls settings: {0}")]
    Rustls(String),
}

/// Opens agent WebSockets. Cheap to clone: the TLS settings are shared.
#[derive(Clone)]
pub struct AgentConnector {
    tls: Arc<ClientConfig>,
    timeout: Duration,
    guard: Option<AddressGuard>,
}

impl fmt::Debug for AgentConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConnector")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for AgentConnector {
    /// The web PKI roots only, [`DEFAULT_CONNECT_TIMEOUT`].
    fn default() -> Self {
        AgentConnector::new(&[]).expect("the web pki roots make a valid client config")
    }
}

impl AgentConnector {
    /// Trusts the web PKI roots and these extra CA certificates.
    pub fn new(extra_roots: &[CertificateDer<'static>]) -> Result<AgentConnector, TlsSetupError> {
        Ok(AgentConnector {
            tls: Arc::new(client_config(extra_roots)?),
            timeout: DEFAULT_CONNECT_TIMEOUT,
            guard: None,
        })
    }

    /// Trusts the web PKI roots and every certificate of this PEM file (`None`: none).
    pub fn with_ca_file(path: Option<&Path>) -> Result<AgentConnector, TlsSetupError> {
        match path {
            Some(path) => AgentConnector::new(&read_ca_file(path)?),
            None => AgentConnector::new(&[]),
        }
    }

    /// The same connector with another connect timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> AgentConnector {
        self.timeout = timeout;
        self
    }

    /// The same connector judging every address of a URL it is given before connecting
    /// ([`AgentConnector::connect_trusted`] aside).
    pub fn with_guard(mut self, guard: AddressGuard) -> AgentConnector {
        self.guard = Some(guard);
        self
    }

    /// The TLS settings (to share with other outward clients).
    pub fn tls_config(&self) -> Arc<ClientConfig> {
        self.tls.clone()
    }

    /// Opens the agent's WebSocket: resolves the host, connects, speaks TLS for `wss://`
    /// and upgrades, all within the connect timeout.
    pub async fn connect(
        &self,
        url: &str,
        ws_config: Option<WebSocketConfig>,
    ) -> Result<AgentSocket, AgentConnectError> {
        self.connect_with(url, ws_config, None, self.guard.as_ref())
            .await
    }

    /// [`AgentConnector::connect`] without the guard: for URLs the operator configured
    /// (the LiveKit Twilio connector), never for a tenant's.
    pub async fn connect_trusted(
        &self,
        url: &str,
        ws_config: Option<WebSocketConfig>,
    ) -> Result<AgentSocket, AgentConnectError> {
        self.connect_with(url, ws_config, None, None).await
    }

    /// Whether the agent accepts a WebSocket now: the handshake, then a normal close.
    pub async fn probe(&self, url: &str) -> Result<(), AgentConnectError> {
        let mut socket = self
            .connect_with(url, None, Some(PROBE_USER_AGENT), self.guard.as_ref())
            .await?;
        // The close handshake is a courtesy: the agent answered, that is what counts.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        Ok(())
    }

    async fn connect_with(
        &self,
        url: &str,
        ws_config: Option<WebSocketConfig>,
        user_agent: Option<&'static str>,
        guard: Option<&AddressGuard>,
    ) -> Result<AgentSocket, AgentConnectError> {
        let target = Target::parse(url)?;
        let mut request = target.request;
        if let Some(agent) = user_agent {
            request
                .headers_mut()
                .insert("user-agent", HeaderValue::from_static(agent));
        }
        let host = target.host;
        let attempt = async {
            let tcp = tcp_connect(&host, target.port, guard).await?;
            let _ = tcp.set_nodelay(true);
            let stream = if target.tls {
                MaybeTlsStream::Rustls(tls_connect(&self.tls, &host, tcp).await?)
            } else {
                MaybeTlsStream::Plain(tcp)
            };
            tokio_tungstenite::client_async_with_config(request, stream, ws_config)
                .await
                .map(|(socket, _)| socket)
                .map_err(upgrade_error)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| AgentConnectError::TimedOut {
                after: self.timeout,
            })?
    }
}

/// What a URL says to connect to.
struct Target {
    request: tungstenite::handshake::client::Request,
    host: String,
    port: u16,
    tls: bool,
}

impl Target {
    fn parse(url: &str) -> Result<Target, AgentConnectError> {
        let invalid = |reason: &str| AgentConnectError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let request = url
            .into_client_request()
            .map_err(|e| invalid(&e.to_string()))?;
        let uri = request.uri();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(invalid("the scheme must be ws or wss")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target {
            request,
            host,
            port,
            tls,
        })
    }
}

/// Resolves `host`, judges every address with the guard (one refused address refuses the
/// host: a name is not half trusted), and connects to the first address that accepts.
async fn tcp_connect(
    host: &str,
    port: u16,
    guard: Option<&AddressGuard>,
) -> Result<TcpStream, AgentConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| AgentConnectError::Dns {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    if let Some(guard) = guard {
        for addr in &addrs {
            if let Some(why) = guard(addr.ip()) {
                return Err(AgentConnectError::Forbidden {
                    host: host.to_owned(),
                    ip: addr.ip(),
                    why,
                });
            }
        }
    }
    let mut last = AgentConnectError::Dns {
        host: host.to_owned(),
        reason: "no addresses".into(),
    };
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                last = AgentConnectError::Refused { addr };
            }
            Err(e) => {
                last = AgentConnectError::Connect {
                    addr,
                    reason: e.to_string(),
                };
            }
        }
    }
    Err(last)
}

async fn tls_connect(
    config: &Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, AgentConnectError> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| AgentConnectError::Tls {
        host: host.to_owned(),
        reason: format!("not a valid server name: {e}"),
    })?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(host, &e))
}

/// Reads a rustls failure out of the I/O error tokio-rustls wraps it in.
fn tls_error(host: &str, error: &io::Error) -> AgentConnectError {
    let host = host.to_owned();
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(problem)) => {
            AgentConnectError::CertificateNotTrusted {
                host,
                reason: certificate_problem(problem),
            }
        }
        Some(other) => AgentConnectError::Tls {
            host,
            reason: other.to_string(),
        },
        None => AgentConnectError::Tls {
            host,
            reason: error.to_string(),
        },
    }
}

fn certificate_problem(problem: &CertificateError) -> String {
    match problem {
        CertificateError::UnknownIssuer => "unknown issuer".into(),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "issued for another name".into()
        }
        CertificateError::Revoked => "revoked".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn upgrade_error(error: WsError) -> AgentConnectError {
    match error {
        WsError::Http(response) => AgentConnectError::HttpStatus {
            status: response.status().as_u16(),
        },
        other => AgentConnectError::Handshake {
            reason: other.to_string(),
        },
    }
}

/// The web PKI roots plus `extra`, over aws-lc-rs (the provider the HTTP clients use).
fn client_config(extra: &[CertificateDer<'static>]) -> Result<ClientConfig, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| TlsSetupError::Rustls(format!("extra ca certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate of a PEM file; a file without one is an error.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let error = |reason: String| TlsSetupError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no certificate in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_say_where_and_whether_to_speak_tls() {
        let t = Target::parse("wss://agent.example.com/media").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("agent.example.com", 443, true)
        );
        let t = Target::parse("ws://127.0.0.1:3901/agent").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 3901, false));
        let t = Target::parse("wss://[::1]:8443/a").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert!(matches!(
            Target::parse("https://agent.example.com/"),
            Err(AgentConnectError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn a_refused_certificate_names_its_host_and_why() {
        let inner = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, inner);
        assert_eq!(
            tls_error("agent.example.com", &io).to_string(),
            "certificate not trusted for agent.example.com: unknown issuer"
        );
    }

    #[tokio::test]
    async fn nothing_listening_reads_as_a_refused_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = AgentConnector::default()
            .probe(&format!("ws://{addr}/agent"))
            .await
            .unwrap_err();
        assert_eq!(error, AgentConnectError::Refused { addr });
        assert_eq!(error.to_string(), format!("connection refused by {addr}"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("no-certs-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let error = AgentConnector::with_ca_file(Some(&path)).unwrap_err();
        assert!(error.to_string().contains("no certificate"), "{error}");
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_guarded_connector_refuses_an_address_before_connecting_to_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let connector = AgentConnector::default()
            .with_timeout(Duration::from_millis(300))
            .with_guard(Arc::new(|ip: IpAddr| {
                ip.is_loopback().then(|| "a loopback address".to_owned())
            }));
        let error = connector
            .connect(&format!("ws://127.0.0.1:{port}/agent"), None)
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "127.0.0.1 is a loopback address");
        let error = connector
            .probe(&format!("ws://localhost:{port}/agent"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with("localhost resolves to ")
                && error.to_string().ends_with(", a loopback address"),
            "{error}"
        );
        // The operator's own URLs pass; the listener never answers the upgrade, so this
        // one times out after its connection was accepted: the only one it ever accepted.
        let error = connector
            .connect_trusted(&format!("ws://127.0.0.1:{port}/agent"), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, AgentConnectError::TimedOut { .. }),
            "{error}"
        );
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        server.abort();
    }
}
