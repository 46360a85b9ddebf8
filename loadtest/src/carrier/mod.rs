//! A simulated Twilio carrier on loopback: the Calls REST API, queueing under a
//! calls-per-second limit, scripted or random call outcomes, signed status callbacks,
//! TwiML, and real-time Media Streams to the `<Connect><Stream>` URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchboard_loadtest::Error> {
//! use switchboard_loadtest::{CallScript, CarrierConfig, SimCarrier};
//! let config = CarrierConfig::new("AC123", "token").script("+15550001", CallScript::answered(100, 2_000));
//! let carrier = SimCarrier::start(config).await?;
//! println!("point the engine's Twilio api_base at {}", carrier.base_url());
//! carrier.shutdown().await;
//! # Ok(()) }
//! ```

mod callbacks;
mod config;
mod frames;
mod lifecycle;
mod pacer;
mod playout;
mod record;
mod request;
mod script;
mod server;
mod stream;
mod tally;
mod twiml;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use callbacks::SIGNATURE_HEADER;
pub use config::{
    AnswerMix, CallScript, CallbackPolicy, CallerAudio, CarrierConfig, DEFAULT_API_CONCURRENCY,
    DialResult, Failure, FailureMix, MachineMix, Millis,
};
pub use frames::{FrameViolation, FrameViolations};
pub use record::{CallRecord, SentAmd, SentCallback, StreamCloseReason};
pub use tally::CarrierStats;

use crate::Error;
use crate::wait::{WaitTimedOut, poll_until};
use server::Shared;

/// Longest a status callback or TwiML fetch may take: Twilio's default read timeout.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running simulated carrier; dropping it stops it too, without waiting.
pub struct SimCarrier {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    pacer: JoinHandle<()>,
}

impl std::fmt::Debug for SimCarrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCarrier")
            .field("addr", &self.addr)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl SimCarrier {
    /// Binds `config.bind` and starts serving the Calls API.
    pub async fn start(config: CarrierConfig) -> Result<SimCarrier, Error> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.bind,
            source,
        })?;
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .pool_max_idle_per_host(64)
            .build()?;
        let (dial_tx, dial_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, http, dial_tx));
        let pacer = tokio::spawn(pacer::run(shared.clone(), dial_rx, shutdown_rx.clone()));
        let app = server::router(shared.clone());
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "simulated carrier server failed");
            }
        });
        tracing::info!(%addr, "simulated carrier listening");
        Ok(SimCarrier {
            shared,
            addr,
            shutdown,
            server,
            pacer,
        })
    }

    /// `http://127.0.0.1:PORT`: the base URL to use instead of `https://api.twilio.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The account SID the carrier accepts.
    pub fn account_sid(&self) -> &str {
        &self.shared.config.account_sid
    }

    /// The auth token that authenticates API requests and signs callbacks.
    pub fn auth_token(&self) -> &str {
        &self.shared.config.auth_token
    }

    /// Snapshots of every call, in creation order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared
            .entries()
            .iter()
            .map(|entry| entry.record())
            .collect()
    }

    /// How many calls reached each step, without copying any call's record.
    pub fn stats(&self) -> CarrierStats {
        self.shared.tally.snapshot()
    }

    /// When each create-call request refused with 429 / 20429 was refused, in order.
    pub fn throttled_at(&self) -> Vec<std::time::Instant> {
        self.shared
            .throttled_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A snapshot of one call.
    pub fn call(&self, sid: &str) -> Option<CallRecord> {
        self.shared
            .entries()
            .iter()
            .find(|entry| entry.sid == sid)
            .map(|entry| entry.record())
    }

    /// Waits until `condition` holds over the calls, or `timeout` passes.
    pub async fn wait_until(
        &self,
        condition: impl Fn(&[CallRecord]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<CallRecord>, WaitTimedOut<CallRecord>> {
        poll_until(|| self.calls(), condition, timeout).await
    }

    /// Waits until every call has a final status and its callbacks were all delivered.
    pub async fn wait_until_all_ended(
        &self,
        timeout: Duration,
    ) -> Result<Vec<CallRecord>, WaitTimedOut<CallRecord>> {
        let entries = self.shared.entries();
        let settled = move || {
            entries.iter().all(|entry| {
                *entry.ended.borrow()
                    && entry.counters.callbacks_in_flight.load(Ordering::Acquire) == 0
            })
        };
        poll_until(
            || self.calls(),
            |calls| !calls.is_empty() && settled(),
            timeout,
        )
        .await
    }

    /// Stops accepting requests, ends live calls (sending `stop`) and waits for the server.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.pacer).await;
    }
}

impl Drop for SimCarrier {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
