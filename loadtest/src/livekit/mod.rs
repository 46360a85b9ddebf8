//! A simulated LiveKit server on loopback, speaking Twirp as LiveKit does: rooms
//! (`CreateRoom`, `DeleteRoom`, `ListParticipants`), agent dispatch (`CreateDispatch`),
//! SIP outbound (`CreateSIPParticipant`, with a script per called number) and the Twilio
//! connector (`ConnectTwilioCall`). Every request's bearer JWT is verified with
//! livekit-api's `TokenVerifier` and its grants checked; every room and participant change
//! becomes a signed webhook; everything is recorded for assertions. A dispatched agent
//! joins its room and, with [`SimLiveKitConfig::sip_agent`], plays a SIP call the way a
//! LiveKit Agents worker does: talks with the callee, reports the outcome to Switchboard's
//! agent API with the call's token, and hangs up by deleting the room.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_loadtest::Error> {
//! use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig, SipScript};
//! let config = SimLiveKitConfig::new("APIkey", "secret").sip("+15550001", SipScript::busy(50));
//! let livekit = SimLiveKit::start(config).await?;
//! println!("point LIVEKIT_URL at {}", livekit.url());
//! livekit.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Simplifications: rooms never close by themselves (no empty/departure timeouts), a room
//! may be joined beyond `max_participants`, a bad token gets a Twirp JSON error (real
//! LiveKit's middleware answers it with a plain-text 401), and any trunk id is accepted.

mod agent;
mod config;
mod record;
mod server;
mod sip;
mod state;
mod twirp;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livekit_protocol as proto;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use agent::SipAgentScript;
pub use config::{SimLiveKitConfig, SipOutcome, SipScript};
pub use record::{
    SentWebhook, SimAgentReport, SimDispatch, SimRoom, SimSipCall, SipCallState, TwirpRequest,
};
pub use webhooks::sign as sign_webhook;

use crate::Error;
use crate::wait::{WaitTimedOut, poll_until};
use state::Shared;

/// Longest a webhook delivery may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// A running simulated LiveKit; dropping it stops it too, without waiting.
pub struct SimLiveKit {
    shared: Arc<Shared>,
    webhooks: Arc<Mutex<Vec<SentWebhook>>>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    sender: JoinHandle<()>,
}

impl std::fmt::Debug for SimLiveKit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLiveKit")
            .field("addr", &self.addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SimLiveKit {
    /// Binds `config.bind` and starts serving.
    pub async fn start(config: SimLiveKitConfig) -> Result<SimLiveKit, Error> {
        let bind = config.bind;
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| Error::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr: bind, source })?;
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let webhooks = Arc::new(Mutex::new(Vec::new()));
        let sender = webhooks::Sender {
            http: http.clone(),
            url: config.webhook_url.clone(),
            api_key: config.api_key.clone(),
            api_secret: config.api_secret.clone(),
            log: webhooks.clone(),
        };
        let sender = tokio::spawn(sender.run(events_rx, shutdown_rx.clone()));
        let shared = Arc::new(Shared::new(config, events, http));
        let app = server::router(shared.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "simulated livekit server failed");
            }
        });
        tracing::info!(%addr, "simulated livekit listening");
        Ok(SimLiveKit {
            shared,
            webhooks,
            addr,
            shutdown,
            server,
            sender,
        })
    }

    /// `http://127.0.0.1:PORT`: the LiveKit URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key tokens must be issued by.
    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// The API secret tokens must be signed with.
    pub fn api_secret(&self) -> &str {
        &self.shared.config.api_secret
    }

    /// Every Twirp request so far, in order of completion.
    pub fn requests(&self) -> Vec<TwirpRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every room ever created, in creation order (deleted ones included).
    pub fn rooms(&self) -> Vec<SimRoom> {
        self.shared.lock().rooms.clone()
    }

    /// The latest room with this name.
    pub fn room(&self, name: &str) -> Option<SimRoom> {
        self.rooms().into_iter().rev().find(|r| r.room.name == name)
    }

    /// Every agent dispatch.
    pub fn dispatches(&self) -> Vec<SimDispatch> {
        self.shared.lock().dispatches.clone()
    }

    /// Every SIP call.
    pub fn sip_calls(&self) -> Vec<SimSipCall> {
        self.shared.lock().sip_calls.clone()
    }

    /// Every outcome the simulated agents of SIP calls reported, in order.
    pub fn agent_reports(&self) -> Vec<SimAgentReport> {
        self.shared.lock().agent_reports.clone()
    }

    /// Every webhook emitted so far (delivered or not), in order.
    pub fn webhooks(&self) -> Vec<SentWebhook> {
        self.webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until `condition` holds over the webhooks, or `timeout` passes.
    pub async fn wait_for_webhooks(
        &self,
        condition: impl Fn(&[SentWebhook]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<SentWebhook>, WaitTimedOut<SentWebhook>> {
        poll_until(|| self.webhooks(), condition, timeout).await
    }

    /// Waits until `condition` holds over the SIP calls, or `timeout` passes.
    pub async fn wait_for_sip_calls(
        &self,
        condition: impl Fn(&[SimSipCall]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<SimSipCall>, WaitTimedOut<SimSipCall>> {
        poll_until(|| self.sip_calls(), condition, timeout).await
    }

    /// The participant `identity` leaves `room` as if it hung up; false if not there.
    pub fn hang_up(&self, room: &str, identity: &str) -> bool {
        let left = self
            .shared
            .leave(room, identity, proto::DisconnectReason::ClientInitiated);
        if left {
            let mut state = self.shared.lock();
            for call in state.sip_calls.iter_mut() {
                if call.info.room_name == room
                    && call.info.participant_identity == identity
                    && call.state == SipCallState::Answered
                {
                    call.state = SipCallState::Ended;
                }
            }
        }
        left
    }

    /// Stops serving and sending webhooks, and waits for both.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.sender).await;
    }
}

impl Drop for SimLiveKit {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
