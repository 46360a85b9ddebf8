//! The runtime's live changes, computed once and shared by every listener.
//!
//! One producer task compares the runtime's campaign snapshots every [`POLL`] with the
//! previous ones and sends what changed, as one batch, on a bounded
//! `tokio::sync::broadcast` channel. It starts with the first subscriber and stops at the
//! first tick that finds nobody listening; a subscriber arriving while it runs shares it.
//! A new subscriber first receives the current state (every running campaign and live
//! call, as `running` and `started` changes), taken under the same lock the producer
//! sends under, so nothing is missed or repeated between that state and the next batch.
//!
//! Memory is bounded by the channel: a subscriber that falls more than [`CAPACITY`]
//! batches behind loses its place and is told so ([`Received::Lagged`]); it holds
//! nothing while it lags.

use futures_util::future::BoxFuture;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard_actors::Runtime;
use switchboard_actors::agent_reach::Reach;
use switchboard_actors::campaign::CampaignSnapshot;
use switchboard_engine::{AttemptId, CampaignId, TenantId};
use tokio::sync::{broadcast, watch};

/// How often the producer compares the runtime's state with the previous one.
pub const POLL: Duration = Duration::from_millis(500);

/// Batches a subscriber may fall behind before it is told it lagged.
pub const CAPACITY: usize = 256;

/// Where the producer reads the runtime's state.
pub trait SnapshotSource: Send + Sync + 'static {
    /// Every running campaign supervisor's snapshot.
    fn snapshots(&self) -> BoxFuture<'_, Result<Vec<CampaignSnapshot>, String>>;
}

impl SnapshotSource for Runtime {
    fn snapshots(&self) -> BoxFuture<'_, Result<Vec<CampaignSnapshot>, String>> {
        Box::pin(async move { Runtime::snapshots(self).await.map_err(|e| e.to_string()) })
    }
}

/// One change, as every subscriber receives it: the event's name (`campaign` or `call`),
/// the tenant it belongs to, and its data, serialized once.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// `campaign` or `call`.
    pub name: &'static str,
    /// The tenant whose campaign changed.
    pub tenant_id: TenantId,
    /// The JSON data.
    pub data: Arc<str>,
}

impl LiveEvent {
    fn new(name: &'static str, tenant_id: TenantId, data: serde_json::Value) -> Self {
        LiveEvent {
            name,
            tenant_id,
            data: data.to_string().into(),
        }
    }
}

/// What a subscriber sees of the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every tenant's (an admin key).
    All,
    /// One tenant's.
    Tenant(TenantId),
}

impl Scope {
    fn sees(self, event: &LiveEvent) -> bool {
        match self {
            Scope::All => true,
            Scope::Tenant(tenant) => event.tenant_id == tenant,
        }
    }
}

/// What the producer last saw: each campaign's tenant, dialing flag and agent reach, each
/// call's campaign, tenant and whether it was answered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Seen {
    campaigns: HashMap<CampaignId, (TenantId, bool, Reach)>,
    calls: HashMap<AttemptId, (CampaignId, TenantId, bool)>,
}

/// A change of the agent's reach worth an event: it became unreachable, or reachable
/// again (the first probe of a starting campaign that succeeds is not news).
fn agent_change(was: Reach, now: Reach) -> Option<&'static str> {
    match (was, now) {
        (Reach::Unreachable, Reach::Reachable) => Some("agent_reachable"),
        (Reach::Checking | Reach::Reachable, Reach::Unreachable) => Some("agent_unreachable"),
        _ => None,
    }
}

/// The changes that turn `before` into `now`, and the new view.
pub fn diff(before: &Seen, now: &[CampaignSnapshot]) -> (Vec<LiveEvent>, Seen) {
    let mut events = Vec::new();
    let mut seen = Seen::default();
    for s in now {
        let reach = s.agent.status;
        let (change, agent_change) = match before.campaigns.get(&s.campaign_id) {
            None => (Some("running"), None),
            Some(&(_, dialing, was)) => (
                (dialing != s.dialing).then_some(if s.dialing { "dialing" } else { "not_dialing" }),
                agent_change(was, reach),
            ),
        };
        for change in [change, agent_change].into_iter().flatten() {
            let data = json!({"campaign_id": s.campaign_id, "tenant_id": s.tenant_id,
                              "change": change, "dialing": s.dialing, "live_calls": s.live_calls,
                              "agent": s.agent});
            events.push(LiveEvent::new("campaign", s.tenant_id, data));
        }
        seen.campaigns
            .insert(s.campaign_id, (s.tenant_id, s.dialing, reach));
        for call in &s.calls {
            let answered = call.answered_at.is_some();
            let data = |change: &str| {
                let data = json!({"attempt_id": call.attempt_id, "campaign_id": s.campaign_id,
                                  "tenant_id": s.tenant_id, "contact_id": call.contact_id,
                                  "change": change});
                LiveEvent::new("call", s.tenant_id, data)
            };
            match before.calls.get(&call.attempt_id) {
                None => {
                    events.push(data("started"));
                    if answered {
                        events.push(data("answered"));
                    }
                }
                Some(&(_, _, was)) if !was && answered => events.push(data("answered")),
                Some(_) => {}
            }
            seen.calls
                .insert(call.attempt_id, (s.campaign_id, s.tenant_id, answered));
        }
    }
    for (attempt, &(campaign, tenant, _)) in &before.calls {
        if !seen.calls.contains_key(attempt) {
            let data = json!({"attempt_id": attempt, "campaign_id": campaign,
                              "tenant_id": tenant, "change": "ended"});
            events.push(LiveEvent::new("call", tenant, data));
        }
    }
    for (campaign, &(tenant, _, _)) in &before.campaigns {
        if !seen.campaigns.contains_key(campaign) {
            let data = json!({"campaign_id": campaign, "tenant_id": tenant, "change": "gone"});
            events.push(LiveEvent::new("campaign", tenant, data));
        }
    }
    (events, seen)
}

type Batch = Arc<[LiveEvent]>;

/// How the hub polls and buffers (the defaults outside tests).
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    /// How often the producer compares states.
    pub poll: Duration,
    /// Batches a subscriber may fall behind.
    pub capacity: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            poll: POLL,
            capacity: CAPACITY,
        }
    }
}

/// The shared producer of live changes and its subscribers. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<Inner>,
}

struct Inner {
    source: Option<Arc<dyn SnapshotSource>>,
    settings: HubSettings,
    state: Mutex<HubState>,
    starts: AtomicU64,
    /// Set when the server shuts down: every subscription ends.
    closed: watch::Sender<bool>,
}

/// The running producer's channel (none while idle) and the state it last sent.
#[derive(Default)]
struct HubState {
    sender: Option<broadcast::Sender<Batch>>,
    last: Vec<CampaignSnapshot>,
}

impl EventHub {
    /// A hub over `source` (none: the runtime is not running, and nothing ever changes).
    pub fn new(source: Option<Arc<dyn SnapshotSource>>, settings: HubSettings) -> EventHub {
        EventHub {
            inner: Arc::new(Inner {
                source,
                settings,
                state: Mutex::default(),
                starts: AtomicU64::new(0),
                closed: watch::Sender::new(false),
            }),
        }
    }

    /// Subscribes with this scope: the current state first, then every change, starting
    /// the producer if it is idle.
    pub fn subscribe(&self, scope: Scope) -> Subscription {
        let mut state = self.inner.lock();
        let closed = self.inner.closed.subscribe();
        if *closed.borrow() {
            return Subscription {
                scope,
                pending: VecDeque::new(),
                receiver: None,
                quiet: false,
                closed,
            };
        }
        let receiver = match (&state.sender, &self.inner.source) {
            (Some(sender), _) => Some(sender.subscribe()),
            (None, Some(source)) => {
                let (sender, receiver) = broadcast::channel(self.inner.settings.capacity.max(1));
                state.sender = Some(sender);
                state.last.clear();
                self.inner.starts.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(produce(self.inner.clone(), source.clone()));
                Some(receiver)
            }
            (None, None) => None,
        };
        let (current, _) = diff(&Seen::default(), &state.last);
        Subscription {
            scope,
            pending: current.into_iter().filter(|e| scope.sees(e)).collect(),
            quiet: receiver.is_none(),
            receiver,
            closed,
        }
    }

    /// Ends every subscription (after what it has already been sent) and the producer;
    /// later subscriptions end at once. For the server's shutdown, which waits for open
    /// streams.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
        let mut state = self.inner.lock();
        state.sender = None;
        state.last.clear();
    }

    /// How many times the producer has started (it starts again only after idling).
    pub fn producer_starts(&self) -> u64 {
        self.inner.starts.load(Ordering::Relaxed)
    }

    /// Whether the producer runs now.
    pub fn producing(&self) -> bool {
        self.inner.lock().sender.is_some()
    }

    /// Subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.inner
            .lock()
            .sender
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer: polls, compares, broadcasts; returns when nobody listens.
async fn produce(inner: Arc<Inner>, source: Arc<dyn SnapshotSource>) {
    let mut seen = Seen::default();
    loop {
        {
            let mut state = inner.lock();
            if state
                .sender
                .as_ref()
                .is_none_or(|s| s.receiver_count() == 0)
            {
                state.sender = None;
                state.last.clear();
                return;
            }
        }
        match source.snapshots().await {
            Ok(now) => {
                let (events, next) = diff(&seen, &now);
                seen = next;
                let mut state = inner.lock();
                state.last = now;
                if let (false, Some(sender)) = (events.is_empty(), &state.sender) {
                    let _ = sender.send(events.into());
                }
            }
            Err(e) => tracing::debug!(error = %e, "live events: the runtime did not answer"),
        }
        tokio::time::sleep(inner.settings.poll).await;
    }
}

/// What a subscriber receives next.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A change in its scope.
    Event(LiveEvent),
    /// It fell behind and missed this many batches: its view is stale, and nothing more
    /// comes on this subscription (subscribe again for the current state).
    Lagged(u64),
}

/// One subscriber's place in the stream of changes.
pub struct Subscription {
    scope: Scope,
    pending: VecDeque<LiveEvent>,
    receiver: Option<broadcast::Receiver<Batch>>,
    /// No runtime: nothing will ever change, and the subscription waits until the hub
    /// closes.
    quiet: bool,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    /// The next change in scope; `None` when the subscription is over (after a lag, or
    /// when the hub closes). Without a runtime nothing ever comes.
    pub async fn next(&mut self) -> Option<Received> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Received::Event(event));
            }
            if self.quiet {
                let _ = self.closed.wait_for(|closed| *closed).await;
                self.quiet = false;
                return None;
            }
            let receiver = self.receiver.as_mut()?;
            match receiver.recv().await {
                Ok(batch) => {
                    let scope = self.scope;
                    self.pending
                        .extend(batch.iter().filter(|e| scope.sees(e)).cloned());
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.receiver = None;
                    return Some(Received::Lagged(missed));
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.receiver = None;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "live_events_tests.rs"]
mod tests;
