//! What every actor of the runtime shares: the database, the dialers, the clock and the
//! timings.

use crate::clock::Clock;
use crate::dial::{Dialer, SipDialer};
use std::sync::Arc;
use std::time::Duration;
use switchboard_engine::store::Store;

/// How the runtime paces itself.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// How often a campaign supervisor opens new lines.
    pub tick: Duration,
    /// How often a call actor re-reads its attempt (webhooks also nudge it at once).
    pub call_poll: Duration,
    /// How long an answered call's agent may take to report after the hang-up.
    pub outcome_grace: Duration,
    /// Longest call before the call actor hangs it up.
    pub max_call: Duration,
    /// Restarts of one campaign supervisor within `restart_window` before the campaign
    /// is marked failed.
    pub max_restarts: u32,
    /// See `max_restarts`.
    pub restart_window: Duration,
    /// The carrier account's calls-per-second limit, shared by every campaign (`None`:
    /// unlimited). Twilio accounts start at 1.
    pub carrier_cps: Option<f64>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            tick: Duration::from_millis(500),
            call_poll: Duration::from_secs(2),
            outcome_grace: Duration::from_secs(5),
            max_call: Duration::from_secs(3600),
            max_restarts: 3,
            restart_window: Duration::from_secs(300),
            carrier_cps: Some(1.0),
        }
    }
}

/// What every actor of the runtime shares.
pub struct Services {
    /// The database (reads, reservations, campaign changes).
    pub store: Store,
    /// The calls' writes, batched (share it with the HTTP handlers).
    pub writer: crate::writer::EventWriter,
    /// Places calls.
    pub dialer: Dialer,
    /// Places the calls of campaigns whose agent is `sip`, through LiveKit (`None`: LiveKit
    /// is not configured, and such campaigns are not started).
    pub sip: Option<SipDialer>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Timings and limits.
    pub settings: RuntimeSettings,
}
