//! Whether a campaign's agent can take calls, and the dialing gate that follows from it.
//!
//! An answered call whose agent cannot be reached is an abandoned callee, so a campaign
//! never dials into a dead agent: its supervisor probes the agent before the first dial
//! (a WebSocket handshake for media-stream agents, LiveKit's API answering for LiveKit and
//! SIP agents) and again as soon as one call could not reach it (the media path reports
//! that through [`agent_unreachable`]). While the agent is unreachable the campaign opens
//! no new lines (calls already ringing go on), shows why in its snapshot, and probes again
//! with backoff ([`ProbeBackoff`]: 2 s doubling to 30 s by default) until the agent
//! answers, then dials again by itself. The campaign's lifecycle status is untouched:
//! this is a gate like the calling window, not a pause.
//!
//! Probes run in their own task and report back by message: the supervisor's handler
//! never waits on the network.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;
use switchboard_engine::CampaignId;
use switchboard_engine::campaign::AgentConfig;
use switchboard_media::AgentConnector;
use switchboard_media::livekit::LiveKitAgents;

/// Probes agents the way calls reach them.
#[derive(Debug, Clone, Default)]
pub struct AgentProber {
    /// Media-stream agents' WebSockets (the relay uses the same connector).
    pub connector: AgentConnector,
    /// LiveKit, when configured (LiveKit and SIP agents).
    pub livekit: Option<LiveKitAgents>,
}

impl AgentProber {
    /// Whether `agent` can take a call now; the error is the reason, for people.
    pub async fn probe(&self, agent: Option<&AgentConfig>) -> Result<(), String> {
        match agent {
            Some(AgentConfig::MediaStream { url }) => self
                .connector
                .probe(url)
                .await
                .map_err(|e| format!("{url}: {e}")),
            Some(AgentConfig::Livekit { .. } | AgentConfig::Sip { .. }) => match &self.livekit {
                Some(livekit) => livekit.probe().await.map_err(|e| format!("livekit: {e}")),
                None => Err("livekit is not configured".into()),
            },
            None => Err("the campaign has no agent".into()),
        }
    }
}

/// Delays between probes of an unreachable agent: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeBackoff {
    /// The delay after the first failed probe.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for ProbeBackoff {
    fn default() -> Self {
        ProbeBackoff {
            first: Duration::from_secs(2),
            max: Duration::from_secs(30),
        }
    }
}

/// What is known of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Not probed yet: no dials until the first probe answers.
    Checking,
    /// The last probe (or call) reached it.
    Reachable,
    /// The last probe or call could not reach it.
    Unreachable,
}

/// The agent's reachability as the campaign shows it (`agent` in its snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentReach {
    /// `checking`, `reachable` or `unreachable`.
    pub status: Reach,
    /// Whether new lines may be opened.
    pub reachable: bool,
    /// Why it is unreachable (the last failure).
    pub reason: Option<String>,
    /// Since when it is in this status.
    pub since: DateTime<Utc>,
    /// Failed probes in a row.
    pub failed_probes: u32,
    /// When the next probe is due, while unreachable.
    pub next_probe_at: Option<DateTime<Utc>>,
}

/// A change of the gate worth telling (logged and stored as a campaign event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateChange {
    /// The agent answered: dialing (again).
    Opened,
    /// The agent could not be reached: no new lines.
    Closed(String),
}

/// The dialing gate: the agent's reach, the probe in flight and the backoff.
#[derive(Debug, Clone)]
pub struct AgentGate {
    reach: AgentReach,
    probing: bool,
    backoff: ProbeBackoff,
}

impl AgentGate {
    /// A gate for a campaign starting at `now`: closed until the first probe answers.
    pub fn new(backoff: ProbeBackoff, now: DateTime<Utc>) -> AgentGate {
        AgentGate {
            reach: AgentReach {
                status: Reach::Checking,
                reachable: false,
                reason: None,
                since: now,
                failed_probes: 0,
                next_probe_at: None,
            },
            probing: false,
            backoff,
        }
    }

    /// Whether new lines may be opened.
    pub fn open(&self) -> bool {
        self.reach.reachable
    }

    /// What the snapshot shows.
    pub fn reach(&self) -> &AgentReach {
        &self.reach
    }

    /// A probe should start now (`false`: one is already running).
    pub fn start_probe(&mut self) -> bool {
        !std::mem::replace(&mut self.probing, true)
    }

    /// A probe answered. Returns the change (if any) and, when it failed, how long to
    /// wait before the next probe.
    pub fn probed(
        &mut self,
        result: Result<(), String>,
        now: DateTime<Utc>,
    ) -> (Option<GateChange>, Option<Duration>) {
        self.probing = false;
        match result {
            Ok(()) => {
                let change = (self.reach.status != Reach::Reachable).then_some(GateChange::Opened);
                self.reach = AgentReach {
                    status: Reach::Reachable,
                    reachable: true,
                    reason: None,
                    since: if change.is_some() {
                        now
                    } else {
                        self.reach.since
                    },
                    failed_probes: 0,
                    next_probe_at: None,
                };
                (change, None)
            }
            Err(reason) => {
                let change = self.close(reason, now);
                self.reach.failed_probes = self.reach.failed_probes.saturating_add(1);
                let delay = self.delay(self.reach.failed_probes);
                self.reach.next_probe_at =
                    Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
                (change, Some(delay))
            }
        }
    }

    /// A call could not reach the agent. Returns the change and whether to probe now
    /// (only when the gate was open: a closed gate already has its next probe due).
    pub fn call_failed(
        &mut self,
        reason: String,
        now: DateTime<Utc>,
    ) -> (Option<GateChange>, bool) {
        if self.reach.status != Reach::Reachable {
            return (None, false);
        }
        (self.close(reason, now), true)
    }

    /// The agent's configuration changed: what was known no longer holds.
    pub fn reset(&mut self, now: DateTime<Utc>) {
        let backoff = self.backoff;
        let probing = self.probing;
        *self = AgentGate::new(backoff, now);
        self.probing = probing;
    }

    fn close(&mut self, reason: String, now: DateTime<Utc>) -> Option<GateChange> {
        let change =
            (self.reach.status != Reach::Unreachable).then(|| GateChange::Closed(reason.clone()));
        if change.is_some() {
            self.reach.since = now;
            self.reach.failed_probes = 0;
        }
        self.reach.status = Reach::Unreachable;
        self.reach.reachable = false;
        self.reach.reason = Some(reason);
        change
    }

    fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.backoff
            .first
            .saturating_mul(factor)
            .min(self.backoff.max)
    }
}

/// Tells a campaign's supervisor, if it runs in this process, that a call could not
/// reach its agent (`reason`: why, e.g. `certificate not trusted for agent.example.com`).
pub fn agent_unreachable(campaign: CampaignId, reason: String) {
    if let Some(actor) = ractor::registry::where_is(crate::campaign::actor_name_for(campaign)) {
        let actor: ractor::ActorRef<crate::campaign::CampaignMsg> = actor.into();
        let _ = actor.cast(crate::campaign::CampaignMsg::AgentUnreachable(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000 + secs, 0).unwrap_or_default()
    }

    fn gate() -> AgentGate {
        AgentGate::new(ProbeBackoff::default(), t(0))
    }

    #[test]
    fn a_new_campaign_dials_nobody_until_its_agent_answers_a_probe() {
        let mut gate = gate();
        assert!(!gate.open());
        assert_eq!(gate.reach().status, Reach::Checking);
        assert!(gate.start_probe());
        assert!(!gate.start_probe(), "one probe at a time");
        assert_eq!(gate.probed(Ok(()), t(1)), (Some(GateChange::Opened), None));
        assert!(gate.open());
        assert_eq!(gate.reach().since, t(1));
    }

    #[test]
    fn an_unreachable_agent_is_probed_again_with_backoff_up_to_thirty_seconds() {
        let mut gate = gate();
        let delays: Vec<_> = (0..7)
            .map(|i| {
                gate.start_probe();
                gate.probed(Err("connection refused".into()), t(i))
                    .1
                    .unwrap()
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 30, 30, 30]);
        assert!(!gate.open());
        let reach = gate.reach();
        assert_eq!(reach.reason.as_deref(), Some("connection refused"));
        assert_eq!(reach.since, t(0), "since the first failure");
        assert_eq!(reach.failed_probes, 7);
        gate.start_probe();
        assert_eq!(gate.probed(Ok(()), t(60)).0, Some(GateChange::Opened));
        assert_eq!(gate.reach().failed_probes, 0);
    }

    #[test]
    fn the_first_call_that_cannot_reach_the_agent_closes_the_gate_and_asks_for_a_probe() {
        let mut gate = gate();
        gate.start_probe();
        gate.probed(Ok(()), t(1));
        let (change, probe) = gate.call_failed("timed out after 5000 ms".into(), t(5));
        assert_eq!(
            change,
            Some(GateChange::Closed("timed out after 5000 ms".into()))
        );
        assert!(probe);
        assert!(!gate.open());
        let (change, probe) = gate.call_failed("timed out after 5000 ms".into(), t(6));
        assert_eq!(
            (change, probe),
            (None, false),
            "the next calls change nothing"
        );
        assert_eq!(gate.reach().since, t(5));
    }
}
