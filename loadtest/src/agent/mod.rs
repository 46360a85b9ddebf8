//! A scripted AI agent: a WebSocket server speaking the Twilio Media Streams dialect in the
//! agent's role, driven per call by the contact's attributes, that reports the call's
//! outcome to Switchboard with the call's bearer token.
//!
//! The agent contract it implements: `start.customParameters` carries `call_id`, `token`,
//! `outcome_url`, `campaign_id`, `script`, `contact` (JSON) and `vars` (JSON). After
//! `greeting_delay_ms` it streams a tone for `talk_ms`, places the `greeting-done` mark,
//! listens for `listen_ms`, then `POST {outcome_url}` with `Authorization: Bearer {token}`
//! and `{"call_id","outcome","notes","callback_at"?,"transcript"}`, and closes. The
//! opt-out digit reports `do_not_call` at once.

pub(crate) mod config;
mod record;
pub(crate) mod report;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use switchboard_media::twilio::signature::validate;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{AgentConfig, Finish, Outcome, UnknownOutcome};
pub use record::{AgentCallRecord, AgentCloseReason, OutcomeReport};
pub use session::GREETING_MARK;

use crate::Error;
use crate::wait::{WaitTimedOut, poll_until};
use record::AgentEntry;

/// Path of the agent's WebSocket endpoint.
pub const AGENT_PATH: &str = "/agent";
/// Longest an outcome report request may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

struct Shared {
    config: Arc<AgentConfig>,
    http: reqwest::Client,
    calls: Mutex<Vec<Arc<AgentEntry>>>,
    shutdown: watch::Receiver<bool>,
    accepted: AtomicU64,
    ended: AtomicU64,
}

impl Shared {
    fn entries(&self) -> Vec<Arc<AgentEntry>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Streams the agent has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Streams accepted (calls bridged to the agent).
    pub accepted: u64,
    /// Streams ended.
    pub ended: u64,
}

impl AgentStats {
    /// Streams open now.
    pub fn live(&self) -> u64 {
        self.accepted.saturating_sub(self.ended)
    }
}

/// A running scripted agent; dropping it stops it too, without waiting.
pub struct ScriptedAgent {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for ScriptedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedAgent")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedAgent {
    /// Binds `config.bind` and starts accepting media streams on [`AGENT_PATH`].
    pub async fn start(config: AgentConfig) -> Result<ScriptedAgent, Error> {
        let bind = config.bind;
        let bind_error = |source| Error::Bind { addr: bind, source };
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let http = reqwest::Client::builder().timeout(REPORT_TIMEOUT).build()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            http,
            calls: Mutex::new(Vec::new()),
            shutdown: shutdown_rx.clone(),
            accepted: AtomicU64::new(0),
            ended: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(AGENT_PATH, get(upgrade))
            .with_state(shared.clone());
        let mut stop = shutdown_rx;
        // Media frames are small and timed: no Nagle delay on the agent's sockets.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "scripted agent server failed");
            }
        });
        tracing::info!(%addr, "scripted agent listening");
        Ok(ScriptedAgent {
            shared,
            addr,
            shutdown,
            server,
        })
    }

    /// `ws://127.0.0.1:PORT/agent`: the URL to put in `<Stream url>` or the engine's config.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{AGENT_PATH}", self.addr)
    }

    /// The socket address the agent listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshots of every stream accepted, in connection order.
    pub fn calls(&self) -> Vec<AgentCallRecord> {
        self.shared
            .entries()
            .iter()
            .map(|entry| entry.record())
            .collect()
    }

    /// Streams accepted and ended so far, without copying any call's record.
    pub fn stats(&self) -> AgentStats {
        AgentStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            ended: self.shared.ended.load(Ordering::Relaxed),
        }
    }

    /// Waits until `condition` holds over the calls, or `timeout` passes.
    pub async fn wait_until(
        &self,
        condition: impl Fn(&[AgentCallRecord]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<AgentCallRecord>, WaitTimedOut<AgentCallRecord>> {
        poll_until(|| self.calls(), condition, timeout).await
    }

    /// Stops accepting streams, ends live ones and waits for the server.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

impl Drop for ScriptedAgent {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// Accepts the WebSocket, noting whether its signature is valid when a token is set.
async fn upgrade(State(shared): State<Arc<Shared>>, mut request: Request) -> Response {
    let headers = request.headers().clone();
    let uri = request.uri().clone();
    let Some(accept) = handshake_accept(&headers) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::from("a websocket upgrade is required"))
            .unwrap_or_default();
    };
    let upgrade = hyper::upgrade::on(&mut request);
    let signature_valid = shared.config.signature_token.as_deref().map(|token| {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let url = format!("ws://{host}{uri}");
        let signature = headers
            .get(crate::carrier::SIGNATURE_HEADER)
            .and_then(|s| s.to_str().ok())
            .unwrap_or_default();
        validate(token, &url, &[], signature)
    });
    // A reachability probe (handshake, then close) is not a call: not recorded.
    let probe = headers
        .get(header::USER_AGENT)
        .is_some_and(|v| v.as_bytes() == switchboard_media::agent_ws::PROBE_USER_AGENT.as_bytes());
    if probe {
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut socket = server_socket(upgraded).await;
                let _ = futures_util::StreamExt::next(&mut socket).await;
            }
        });
        return switching(accept);
    }
    let entry = Arc::new(AgentEntry::new(signature_valid));
    shared
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(entry.clone());
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else {
            return;
        };
        let (sink, stream) = crate::ws::from_tungstenite(server_socket(upgraded).await);
        let session = session::Session {
            config: shared.config.clone(),
            http: shared.http.clone(),
            entry: entry.clone(),
            shutdown: shared.shutdown.clone(),
        };
        let reason = session::run(sink, stream, session).await;
        shared.ended.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(?reason, "agent stream ended");
        let mut record = entry.lock();
        record.close_reason = Some(reason);
        record.ended_at = Some(std::time::Instant::now());
    });
    switching(accept)
}

/// The `Sec-WebSocket-Accept` answer to a WebSocket upgrade request, or `None` when the
/// request is not one.
fn handshake_accept(headers: &HeaderMap) -> Option<String> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    upgrade.then(|| tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The `101 Switching Protocols` answer.
fn switching(accept: String) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_default()
}

/// The server side of an upgraded connection. A few media frames fit in 4 KiB; the 128 KiB
/// default is zeroed on every read.
async fn server_socket(
    upgraded: hyper::upgrade::Upgraded,
) -> tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Server,
        Some(config),
    )
    .await
}
