//! What the runtime is given: its timings and limits, and the services every actor shares:
//! the database, the event writer, the dialers and the clock.

use crate::clock::Clock;
use crate::dial::{Dialer, SipDialer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The carrier account's calls-per-second limit, shared by every campaign of every
    /// process on the database (`None`: unlimited). Twilio accounts start at 1.
    pub carrier_cps: Option<f64>,
    /// How long a campaign lease lasts unless renewed: a process that dies holding one
    /// leaves its campaigns to the others after this long. Renewed every third of it.
    pub lease_ttl: Duration,
    /// This process's instance id: the owner its campaign leases name. Unique per start.
    pub instance: String,
    /// Delays between probes of an unreachable agent (2 s doubling to 30 s).
    pub agent_probe: crate::agent_reach::ProbeBackoff,
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
            lease_ttl: Duration::from_secs(15),
            instance: instance_id(),
            agent_probe: crate::agent_reach::ProbeBackoff::default(),
        }
    }
}

impl RuntimeSettings {
    /// How often a campaign supervisor renews its lease, and the engine supervisor looks
    /// for running campaigns nobody holds: a third of the lease's time to live.
    pub fn heartbeat(&self) -> Duration {
        crate::lease::heartbeat(self.lease_ttl)
    }
}

/// A fresh instance id: the process id, the start time and a counter, so that two
/// starts (or two runtimes in one test process) never share one. Servers may pass their
/// own (random) id instead.
pub fn instance_id() -> String {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    format!("{}-{:x}-{n}", std::process::id(), nanos)
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
    /// Probes campaigns' agents before and between dials (see [`crate::agent_reach`]).
    pub agents: crate::agent_reach::AgentProber,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Timings and limits.
    pub settings: RuntimeSettings,
}
