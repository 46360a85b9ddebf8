//! SIP campaigns end to end, on SQLite and PostgreSQL: the real server (LiveKit's signed
//! webhooks, the agent API, the REST and admin routes), the runtime dialing through the
//! simulated LiveKit (`CreateSIPParticipant` through an outbound trunk, the agent
//! dispatched into the call's room and reporting its outcome with the call's token).
//!
//! A campaign over six contacts runs to completion: answered with the agent's outcome,
//! busy, declined, carrier capacity then answered on the retry, no answer, and answered
//! then hung up by the callee (the `participant_left` webhook ends it, the outcome is
//! derived). Retries follow the policy, every attempt is exactly one SIP call in the
//! simulator's own record, and every room is deleted at the end. A callee answered with
//! no agent in the room is abandoned (judged by the agent's presence) and hung up. A
//! campaign whose trunk the operator stops allowing its tenant while it runs dials no more:
//! its next reservation is withdrawn before LiveKit is asked and its agent gate closes,
//! naming the trunk, until the operator allows it again.
//! `sip_operations.rs` covers starting, hanging up and recovering SIP calls.

use serde_json::{Value, json};
use std::time::Duration;
use switchboard_engine::CampaignId;
use switchboard_engine::campaign::{CampaignStatus, LivekitAllowlist};
use switchboard_engine::store::AttemptStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::Outcome;
use switchboard_loadtest::livekit::{SimLiveKitConfig, SipAgentScript, SipScript};
use switchboard_tests::sip_world::{
    self as world, LIVEKIT_KEY, LIVEKIT_SECRET, SipWorld, sip_campaign, wait_until,
};

/// Actors are named per process and every test database numbers from 1: scenarios take
/// turns, each waiting for its actors to be gone.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn actors_gone() {
    wait_until(
        "the runtime's actors are gone",
        Duration::from_secs(20),
        async || ractor::registry::registered().is_empty(),
    )
    .await;
}

const ANSWERED: &str = "+12125550601";
const BUSY: &str = "+12125550602";
const DECLINED: &str = "+12125550603";
const CAPACITY: &str = "+12125550604";
const NO_ANSWER: &str = "+12125550605";
const HANGS_UP: &str = "+12125550606";

fn retry_policy() -> Value {
    json!({"max_attempts": 3, "min_gap_minutes": 1,
           "busy": {"max_attempts": 2, "delay_minutes": 30},
           "no_answer": {"max_attempts": 1, "delay_minutes": 30},
           "failed": {"max_attempts": 1, "delay_minutes": 30}})
}

async fn a_sip_campaign_runs_to_completion(db: TestDb) {
    let _turn = TURN.lock().await;
    let config = SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
        .sip(ANSWERED, SipScript::answered(50))
        .sip(BUSY, SipScript::busy(50))
        .sip(DECLINED, SipScript::declined(50))
        .sip_sequence(
            CAPACITY,
            vec![SipScript::service_unavailable(50), SipScript::answered(50)],
        )
        .sip(NO_ANSWER, SipScript::no_answer())
        .sip(HANGS_UP, SipScript::answered(50).hang_up_after(300))
        .sip_agent(SipAgentScript::default());
    let world = SipWorld::start(&db, config).await;
    let store = world.store.clone();
    let tenant = world
        .tenant_with_contacts(&[
            (ANSWERED, json!({})),
            (BUSY, json!({})),
            (DECLINED, json!({})),
            (CAPACITY, json!({"agent_outcome": "not_interested"})),
            (NO_ANSWER, json!({})),
            (
                HANGS_UP,
                json!({"agent_no_report": "true", "agent_talk_ms": 5000}),
            ),
        ])
        .await;
    let config = sip_campaign("SIP spring", retry_policy());
    let config = switchboard_engine::campaign::CampaignConfig::from_json(config).unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap().id;
    let runtime = world.runtime(true).await;
    runtime.start_campaign(tenant, campaign).await.unwrap();

    // The first round: three contacts are done, three wait for their retry.
    wait_until(
        "the first round is over",
        Duration::from_secs(40),
        async || {
            let queue = store.queue_counts(campaign).await.unwrap();
            queue.in_progress == 0 && queue.done == 3 && queue.queued == 3
        },
    )
    .await;
    let first = world.attempts_to(campaign, CAPACITY).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].result.as_deref(), Some("carrier_capacity"));
    assert_eq!(first[0].detail["sip_status_code"], 503);
    assert_eq!(first[0].detail["retryable"], true);

    // Carrier capacity backs off five minutes; busy and declined wait their 30.
    world.clock.advance(chrono::Duration::minutes(6));
    wait_until(
        "the capacity retry is answered",
        Duration::from_secs(20),
        async || store.queue_counts(campaign).await.unwrap().done == 4,
    )
    .await;
    assert_eq!(
        world.attempts_to(campaign, BUSY).await.len(),
        1,
        "busy waits 30 minutes"
    );
    world.clock.advance(chrono::Duration::minutes(31));
    wait_until(
        "the campaign completes",
        Duration::from_secs(40),
        async || {
            store.campaign(tenant, campaign).await.unwrap().status == CampaignStatus::Completed
        },
    )
    .await;

    // Every contact's attempts and results.
    type Results = Vec<(Option<String>, Option<String>)>;
    let results = |attempts: &[switchboard_engine::store::AttemptRecord]| -> Results {
        attempts
            .iter()
            .map(|a| (a.result.clone(), a.outcome.clone()))
            .collect()
    };
    let s = |v: &str| Some(v.to_owned());
    let expected = [
        (ANSWERED, vec![(s("completed"), s("interested"))]),
        (BUSY, vec![(s("busy"), None), (s("busy"), None)]),
        (DECLINED, vec![(s("declined"), None), (s("declined"), None)]),
        (
            CAPACITY,
            vec![
                (s("carrier_capacity"), None),
                (s("completed"), s("not_interested")),
            ],
        ),
        (NO_ANSWER, vec![(s("no_answer"), None)]),
        (HANGS_UP, vec![(s("completed"), None)]),
    ];
    for (phone, want) in &expected {
        let attempts = world.attempts_to(campaign, phone).await;
        assert_eq!(&results(&attempts), want, "{phone}: {attempts:#?}");
    }
    for (phone, code) in [(BUSY, 486), (DECLINED, 603)] {
        for attempt in world.attempts_to(campaign, phone).await {
            assert_eq!(attempt.detail["sip_status_code"], code, "{phone}");
        }
    }

    let attempts = store.campaign_attempts(campaign, 1000).await.unwrap();
    assert_eq!(attempts.len(), 9);
    for attempt in &attempts {
        assert_eq!(attempt.status, AttemptStatus::Ended);
        assert_eq!(
            world.sip_calls_for(attempt),
            1,
            "one SIP call per attempt: {attempt:?}"
        );
        assert!(attempt.dialed_at.is_some(), "{attempt:?}");
        if attempt.answered_at.is_some() {
            // Media bypasses Switchboard: the agent's presence in the room judged it.
            assert_eq!(attempt.detail["abandoned"], false, "{attempt:?}");
            assert_eq!(attempt.detail["abandonment_basis"], "agent_presence");
            assert!(attempt.detail.contains_key("agent_joined_at"));
            assert!(attempt.ended_at.is_some());
        }
    }
    assert_eq!(world.livekit.sip_calls().len(), attempts.len());
    let ledger = store
        .abandonment_history(campaign, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(ledger.len(), 3, "three people answered");
    assert!(ledger.iter().all(|(_, abandoned)| !abandoned));

    // The callee who hung up ended the call through LiveKit's webhook.
    let hung_up = &world.attempts_to(campaign, HANGS_UP).await[0];
    let events = store.attempt_events(hung_up.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "carrier.sip.participant_left"),
        "{events:#?}"
    );
    let reports = world.livekit.agent_reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports.iter().all(|r| r.http_status == Some(200)),
        "{reports:?}"
    );
    assert!(reports.iter().any(|r| r.outcome == Outcome::Interested));
    wait_until(
        "every room is deleted",
        Duration::from_secs(10),
        async || world.livekit.rooms().iter().all(|r| r.deleted),
    )
    .await;
    assert_eq!(world.livekit.rooms().len(), attempts.len());
    world.stop(runtime).await;
    actors_gone().await;
}

async fn a_callee_answered_with_no_agent_in_the_room_is_abandoned_and_hung_up(db: TestDb) {
    let _turn = TURN.lock().await;
    let config = SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
        .agent_join_delay(None)
        .sip_default(SipScript::answered(50));
    let world = SipWorld::start(&db, config).await;
    let store = world.store.clone();
    let tenant = world.tenant_with_contacts(&[(ANSWERED, json!({}))]).await;
    let config = sip_campaign("No agent", json!({"failed": {"max_attempts": 1}}));
    let config = switchboard_engine::campaign::CampaignConfig::from_json(config).unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap().id;
    let runtime = world.runtime(true).await;
    runtime.start_campaign(tenant, campaign).await.unwrap();
    wait_until(
        "the campaign completes",
        Duration::from_secs(30),
        async || {
            store.campaign(tenant, campaign).await.unwrap().status == CampaignStatus::Completed
        },
    )
    .await;
    let attempt = &world.attempts_to(campaign, ANSWERED).await[0];
    assert_eq!(attempt.result.as_deref(), Some("completed"), "{attempt:?}");
    assert_eq!(attempt.detail["abandoned"], true, "{attempt:?}");
    assert_eq!(attempt.detail["abandonment_basis"], "agent_presence");
    assert!(!attempt.detail.contains_key("agent_joined_at"));
    let events = store.attempt_events(attempt.id).await.unwrap();
    let hangup = events
        .iter()
        .find(|e| e.kind == "abandonment.hangup")
        .expect("the abandoned call is hung up");
    assert!(
        hangup.data["message_error"]
            .as_str()
            .unwrap()
            .contains("sip")
    );
    let ledger = store
        .abandonment_history(campaign, chrono::DateTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(ledger.iter().map(|(_, a)| *a).collect::<Vec<_>>(), [true]);
    assert!(
        world
            .livekit
            .room(&format!("call-{}", attempt.id))
            .unwrap()
            .deleted
    );
    world.stop(runtime).await;
    actors_gone().await;
}

/// The campaign's agent gate, from its supervisor's snapshot: whether it is open, why not,
/// and how many probes failed in a row.
async fn gate(runtime: &switchboard_actors::Runtime, campaign: CampaignId) -> (bool, String, u32) {
    let snapshots = runtime.snapshots().await.unwrap();
    let Some(snapshot) = snapshots.iter().find(|s| s.campaign_id == campaign) else {
        return (false, String::new(), 0);
    };
    let reach = &snapshot.agent;
    let reason = reach.reason.clone().unwrap_or_default();
    (reach.reachable, reason, reach.failed_probes)
}

async fn a_trunk_taken_off_the_allowlist_is_not_dialed_until_allowed_again(db: TestDb) {
    let _turn = TURN.lock().await;
    let config = SimLiveKitConfig::new(LIVEKIT_KEY, LIVEKIT_SECRET)
        .sip_default(SipScript::answered(50))
        .sip_agent(SipAgentScript::default());
    let world = SipWorld::start(&db, config).await;
    let store = world.store.clone();
    let talks = json!({"agent_talk_ms": 600_000});
    let tenant = world
        .tenant_with_contacts(&[(ANSWERED, talks.clone()), (BUSY, talks)])
        .await;
    let mut config = sip_campaign("Stored earlier", json!({"failed": {"max_attempts": 1}}));
    config["max_concurrent_calls"] = json!(1);
    let config = switchboard_engine::campaign::CampaignConfig::from_json(config).unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap().id;
    let runtime = world.runtime(true).await;
    runtime.start_campaign(tenant, campaign).await.unwrap();
    let mut first = None;
    wait_until(
        "the first call is bridged",
        Duration::from_secs(20),
        async || {
            let attempts = store.campaign_attempts(campaign, 10).await.unwrap();
            first = attempts
                .into_iter()
                .find(|a| a.status == AttemptStatus::Bridged);
            first.is_some()
        },
    )
    .await;
    let first = first.unwrap();

    // The operator moves the tenant to another trunk during the first call: the next
    // contact's dial is refused before LiveKit is asked, its reservation withdrawn, and
    // the campaign's gate closes with the reason; no line opens while it is closed.
    let moved = LivekitAllowlist {
        trunks: ["ST_other".to_owned()].into(),
        agent_names: ["outbound-sales".to_owned()].into(),
    };
    store.set_livekit_allowlist(tenant, &moved).await.unwrap();
    runtime.hangup_call(&first).await.unwrap();
    let mut reason = String::new();
    wait_until("the gate closes", Duration::from_secs(20), async || {
        let (reachable, why, _) = gate(&runtime, campaign).await;
        reason = why;
        !reachable && reason.contains("agent.trunk_id")
    })
    .await;
    assert!(reason.contains("`ST_trunk`"), "{reason}");
    let second = if first.phone == ANSWERED {
        BUSY
    } else {
        ANSWERED
    };
    // Probes of the agent fail on the allowlist too (every 200 ms to 1 s here): after two
    // more, still nothing was dialed.
    wait_until("two probes fail", Duration::from_secs(20), async || {
        let (reachable, why, failed) = gate(&runtime, campaign).await;
        assert!(!reachable && why.contains("agent.trunk_id"), "{why}");
        failed >= 2
    })
    .await;
    assert_eq!(
        world.livekit.sip_calls().len(),
        1,
        "LiveKit was asked to dial"
    );
    assert!(
        world.attempts_to(campaign, second).await.is_empty(),
        "the refused reservation is withdrawn, its contact's budget untouched"
    );

    // Allowed again, the campaign dials the second contact by itself.
    world::allow_livekit(&store, tenant).await;
    wait_until(
        "the second call is bridged",
        Duration::from_secs(20),
        async || {
            world
                .attempts_to(campaign, second)
                .await
                .iter()
                .any(|a| a.status == AttemptStatus::Bridged)
        },
    )
    .await;
    assert_eq!(world.livekit.sip_calls().len(), 2);
    world.stop(runtime).await;
    actors_gone().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_taken_off_the_allowlist_is_not_dialed_on_sqlite_and_postgres() {
    a_trunk_taken_off_the_allowlist_is_not_dialed_until_allowed_again(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        a_trunk_taken_off_the_allowlist_is_not_dialed_until_allowed_again(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_answered_with_no_agent_is_abandoned_on_sqlite_and_postgres() {
    a_callee_answered_with_no_agent_in_the_room_is_abandoned_and_hung_up(TestDb::sqlite().await)
        .await;
    if let Some(db) = TestDb::postgres().await {
        a_callee_answered_with_no_agent_in_the_room_is_abandoned_and_hung_up(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_campaign_runs_to_completion_on_sqlite_and_postgres() {
    a_sip_campaign_runs_to_completion(TestDb::sqlite().await).await;
    if let Some(db) = TestDb::postgres().await {
        a_sip_campaign_runs_to_completion(db).await;
    }
}
