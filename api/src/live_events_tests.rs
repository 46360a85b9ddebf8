use super::*;
use chrono::Utc;
use std::sync::atomic::AtomicUsize;
use switchboard_actors::agent_reach::AgentReach;
use switchboard_actors::campaign::LiveCall;
use switchboard_engine::ContactId;

fn snapshot(campaign: i64, tenant: i64, dialing: bool, calls: &[(i64, bool)]) -> CampaignSnapshot {
    CampaignSnapshot {
        campaign_id: CampaignId(campaign),
        tenant_id: TenantId(tenant),
        live_calls: calls.len(),
        bridged_calls: 0,
        dialing,
        dialed: 0,
        skipped: HashMap::new(),
        pacing: None,
        calls: calls
            .iter()
            .map(|&(id, answered)| LiveCall {
                attempt_id: AttemptId(id),
                contact_id: ContactId(id),
                started_at: Utc::now(),
                answered_at: answered.then(Utc::now),
            })
            .collect(),
        owner: "test".into(),
        lease_expires_at: None,
        agent: reach(Reach::Reachable),
    }
}

fn reach(status: Reach) -> AgentReach {
    AgentReach {
        status,
        reachable: status == Reach::Reachable,
        reason: (status == Reach::Unreachable).then(|| "connection refused".into()),
        since: Utc::now(),
        failed_probes: 0,
        next_probe_at: None,
    }
}

#[test]
fn an_agent_that_goes_away_and_comes_back_is_told_as_campaign_changes() {
    let (_, seen) = diff(&Seen::default(), &[snapshot(7, 1, true, &[])]);
    let mut down = snapshot(7, 1, true, &[]);
    down.agent = reach(Reach::Unreachable);
    let (events, seen) = diff(&seen, std::slice::from_ref(&down));
    assert_eq!(changes(&events), ["campaign 7 agent_unreachable"]);
    let (events, seen) = diff(&seen, &[down]);
    assert!(events.is_empty());
    let (events, _) = diff(&seen, &[snapshot(7, 1, true, &[])]);
    assert_eq!(changes(&events), ["campaign 7 agent_reachable"]);
}

fn change(event: &LiveEvent) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    let id = data.get("attempt_id").unwrap_or(&data["campaign_id"]);
    format!("{} {id} {}", event.name, data["change"].as_str().unwrap())
}

fn changes(events: &[LiveEvent]) -> Vec<String> {
    events.iter().map(change).collect()
}

#[test]
fn the_producer_sees_campaigns_and_calls_start_answer_and_end() {
    let (events, seen) = diff(&Seen::default(), &[snapshot(7, 1, true, &[(1, false)])]);
    assert_eq!(changes(&events), ["campaign 7 running", "call 1 started"]);

    let (events, seen) = diff(&seen, &[snapshot(7, 1, true, &[(1, true), (2, true)])]);
    assert_eq!(
        changes(&events),
        ["call 1 answered", "call 2 started", "call 2 answered"]
    );

    let (events, seen) = diff(&seen, &[snapshot(7, 1, true, &[(1, true), (2, true)])]);
    assert!(events.is_empty(), "nothing changed: {:?}", changes(&events));

    let (events, seen) = diff(&seen, &[snapshot(7, 1, false, &[(2, true)])]);
    assert_eq!(changes(&events), ["campaign 7 not_dialing", "call 1 ended"]);

    let (events, _) = diff(&seen, &[]);
    assert_eq!(changes(&events), ["call 2 ended", "campaign 7 gone"]);
    assert!(events.iter().all(|e| e.tenant_id == TenantId(1)));
}

/// A runtime whose state the test sets: step `n` has calls `1..=n` live in campaign 7 of
/// tenant 1, and a campaign 8 of tenant 2 with no calls.
#[derive(Default)]
struct Steps {
    step: AtomicUsize,
    polls: AtomicUsize,
}

impl Steps {
    fn go_to(&self, step: usize) {
        self.step.store(step, Ordering::SeqCst);
    }
}

impl SnapshotSource for Steps {
    fn snapshots(&self) -> BoxFuture<'_, Result<Vec<CampaignSnapshot>, String>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let n = self.step.load(Ordering::SeqCst) as i64;
        let calls: Vec<(i64, bool)> = (1..=n).map(|id| (id, false)).collect();
        let state = vec![snapshot(7, 1, true, &calls), snapshot(8, 2, false, &[])];
        Box::pin(async move { Ok(state) })
    }
}

const TICK: Duration = Duration::from_millis(5);

fn hub(capacity: usize) -> (EventHub, Arc<Steps>) {
    let steps = Arc::new(Steps::default());
    steps.go_to(1);
    let settings = HubSettings {
        poll: TICK,
        capacity,
    };
    let source: Arc<dyn SnapshotSource> = steps.clone();
    (EventHub::new(Some(source), settings), steps)
}

async fn next_change(subscription: &mut Subscription) -> String {
    match tokio::time::timeout(Duration::from_secs(5), subscription.next()).await {
        Ok(Some(Received::Event(event))) => change(&event),
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn changes_of(subscription: &mut Subscription, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_change(subscription).await);
    }
    out
}

/// Nothing arrives within a few ticks.
async fn quiet(subscription: &mut Subscription) -> bool {
    tokio::time::timeout(TICK * 20, subscription.next())
        .await
        .is_err()
}

#[tokio::test]
async fn two_subscribers_share_one_producer_and_receive_the_same_changes() {
    let (hub, steps) = hub(16);
    let mut first = hub.subscribe(Scope::All);
    assert_eq!(hub.producer_starts(), 1);
    assert_eq!(
        changes_of(&mut first, 3).await,
        ["campaign 7 running", "call 1 started", "campaign 8 running"]
    );

    // A later subscriber joins the running producer and starts from the current state.
    let mut second = hub.subscribe(Scope::All);
    assert_eq!(hub.producer_starts(), 1, "the producer is not restarted");
    assert_eq!(hub.subscribers(), 2);
    assert_eq!(
        changes_of(&mut second, 3).await,
        ["campaign 7 running", "call 1 started", "campaign 8 running"]
    );
    assert!(quiet(&mut first).await && quiet(&mut second).await);

    // From here on both receive the same changes.
    for step in 2..5 {
        steps.go_to(step);
        let expected = format!("call {step} started");
        assert_eq!(next_change(&mut first).await, expected);
        assert_eq!(next_change(&mut second).await, expected);
    }
    assert_eq!(hub.producer_starts(), 1);
}

#[tokio::test]
async fn the_producer_idles_when_nobody_listens_and_starts_again_for_the_next_subscriber() {
    let (hub, steps) = hub(16);
    let mut only = hub.subscribe(Scope::All);
    next_change(&mut only).await;
    drop(only);
    tokio::time::sleep(TICK * 10).await;
    assert!(!hub.producing(), "nobody listens: the producer stopped");
    let polls = steps.polls.load(Ordering::SeqCst);
    tokio::time::sleep(TICK * 20).await;
    assert_eq!(
        steps.polls.load(Ordering::SeqCst),
        polls,
        "no polls while idle"
    );

    let mut again = hub.subscribe(Scope::All);
    assert_eq!(hub.producer_starts(), 2);
    assert_eq!(next_change(&mut again).await, "campaign 7 running");
}

#[tokio::test]
async fn a_subscriber_sees_only_its_tenants_changes() {
    let (hub, steps) = hub(16);
    let mut tenant = hub.subscribe(Scope::Tenant(TenantId(2)));
    let mut admin = hub.subscribe(Scope::All);
    assert_eq!(next_change(&mut tenant).await, "campaign 8 running");
    changes_of(&mut admin, 3).await;
    steps.go_to(2);
    assert_eq!(next_change(&mut admin).await, "call 2 started");
    assert!(
        quiet(&mut tenant).await,
        "tenant 1's calls are not tenant 2's"
    );
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_told_it_lagged_and_its_stream_ends() {
    let (hub, steps) = hub(2);
    let mut slow = hub.subscribe(Scope::All);
    let mut keeping_up = hub.subscribe(Scope::All);
    changes_of(&mut keeping_up, 3).await;
    // Eight more batches, one call each; the slow one reads nothing meanwhile.
    for step in 2..10 {
        steps.go_to(step);
        assert_eq!(
            next_change(&mut keeping_up).await,
            format!("call {step} started")
        );
    }
    match slow.next().await {
        Some(Received::Lagged(missed)) => assert_eq!(missed, 7, "9 batches, 2 kept"),
        other => panic!("expected a lag, got {other:?}"),
    }
    assert_eq!(slow.next().await, None, "nothing more after a lag");
    // The others carry on.
    steps.go_to(10);
    assert_eq!(next_change(&mut keeping_up).await, "call 10 started");
    assert_eq!(hub.producer_starts(), 1);
}

#[tokio::test]
async fn without_a_runtime_a_subscriber_waits_quietly() {
    let hub = EventHub::new(None, HubSettings::default());
    let mut subscription = hub.subscribe(Scope::All);
    assert!(quiet(&mut subscription).await);
    assert_eq!(hub.producer_starts(), 0);
}

#[tokio::test]
async fn closing_the_hub_ends_every_subscription_and_the_producer() {
    let (hub, _) = hub(16);
    let mut running = hub.subscribe(Scope::All);
    changes_of(&mut running, 3).await;
    let quiet_hub = EventHub::new(None, HubSettings::default());
    let mut waiting = quiet_hub.subscribe(Scope::All);
    hub.close();
    quiet_hub.close();
    let ended = tokio::time::timeout(Duration::from_secs(5), running.next()).await;
    assert_eq!(ended.unwrap(), None);
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting.next()).await;
    assert_eq!(ended.unwrap(), None);
    assert!(!hub.producing());
    let mut late = hub.subscribe(Scope::All);
    assert_eq!(
        late.next().await,
        None,
        "a subscription after the close ends at once"
    );
    assert_eq!(hub.producer_starts(), 1);
}
