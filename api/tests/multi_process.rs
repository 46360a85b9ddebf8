//! Two real `switchboard serve` processes on one fresh database (PostgreSQL, the backend
//! several processes share; and the same on one SQLite file) and one simulated carrier,
//! whose own record is the witness: a running campaign is dialed by
//! exactly one process (the holder of its lease); a pause or resume taken by the other
//! process reaches the owner; when the owner is killed with calls live, the other takes
//! the campaign over once the lease has expired, reconciles and finishes it, dialing
//! nobody twice and losing no attempt; and the carrier's calls-per-second limit holds for
//! both processes together.

#[path = "multi_process/servers.rs"]
mod servers;

use servers::{
    Server, Setup, activate, agent, campaign, carrier, tenant, wait_for_status, wait_until,
};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use switchboard_engine::campaign::CampaignStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::driver::measure::max_in_any_second;
use switchboard_loadtest::{CallRecord, ScriptedAgent, SimCarrier};

const LEASE_TTL_SECS: u64 = 3;

/// The scenarios take turns: each runs two servers, and the calls-per-second one measures
/// timing on a small machine.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const A: &str = "+14155550001";
const B: &str = "+14155550002";

fn from(calls: &[CallRecord], number: &str) -> usize {
    calls.iter().filter(|c| c.from == number).count()
}

fn live(calls: &[CallRecord]) -> usize {
    calls
        .iter()
        .filter(|c| c.answered_at.is_some() && c.ended_at.is_none())
        .count()
}

async fn one_owner_dials_and_the_other_takes_over_when_it_dies(db: TestDb) {
    const CONTACTS: u32 = 20;
    let _turn = TURN.lock().await;
    let store = db.store().clone();
    let agent = ScriptedAgent::start(agent(1500, 1500)).await.unwrap();
    let carrier = SimCarrier::start(carrier(300)).await.unwrap();
    let (tenant, key, admin) = tenant(&store).await;
    let id = campaign(&store, tenant, "x", 4000, CONTACTS, 4, &agent.ws_url()).await;
    activate(&store, tenant, id).await;

    // Both start at once and race for the campaign's lease.
    let setup = Setup {
        db_url: db.url(),
        carrier: &carrier.base_url(),
        cps: 20,
        lease_ttl_secs: LEASE_TTL_SECS,
    };
    let mut servers = [Server::spawn(setup, A), Server::spawn(setup, B)];
    for server in &servers {
        server.ready().await;
    }
    wait_until(
        "a third of the contacts were dialed",
        Duration::from_secs(60),
        async || carrier.calls().len() >= (CONTACTS / 3) as usize,
    )
    .await;

    // (a) Exactly one process dials it: the holder of its lease, as its admin view says.
    let calls = carrier.calls();
    let owner = if from(&calls, A) > 0 { 0 } else { 1 };
    let other = 1 - owner;
    assert_eq!(
        from(&calls, &servers[other].from),
        0,
        "both processes dialed the campaign"
    );
    let owner_view = servers[owner].admin_campaigns(&admin).await;
    let other_view = servers[other].admin_campaigns(&admin).await;
    let items = owner_view["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{owner_view}");
    assert_eq!(items[0]["campaign_id"], id.0);
    assert_eq!(items[0]["owner"], owner_view["instance"]);
    assert_eq!(
        other_view["items"].as_array().unwrap().len(),
        0,
        "{other_view}"
    );
    assert_ne!(owner_view["instance"], other_view["instance"]);
    let lease = store.campaign_lease(id).await.unwrap().unwrap();
    assert_eq!(lease.owner, owner_view["instance"].as_str().unwrap());

    // A pause taken by the other process reaches the owner at its next heartbeat...
    servers[other].control(&key, id, "pause").await;
    wait_until(
        "the owner stops dialing",
        Duration::from_secs(LEASE_TTL_SECS),
        async || {
            let view = servers[owner].admin_campaigns(&admin).await;
            view["items"][0]["dialing"] == false
        },
    )
    .await;
    // A dial of the tick before may still be on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = carrier.calls().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(carrier.calls().len(), paused_at, "no dials while paused");
    // ... and so does a resume, which the other process cannot run itself.
    servers[other].control(&key, id, "resume").await;
    wait_until(
        "the owner dials again",
        Duration::from_secs(10),
        async || carrier.calls().len() > paused_at,
    )
    .await;
    assert_eq!(from(&carrier.calls(), &servers[other].from), 0);

    // (b) Kill the owner while calls are live.
    wait_until("calls are live", Duration::from_secs(30), async || {
        let calls = carrier.calls();
        live(&calls) >= 2 && calls.len() < CONTACTS as usize
    })
    .await;
    let killed = Instant::now();
    servers[owner].kill();
    let placed_before = carrier.calls().len();
    wait_for_status(
        &store,
        tenant,
        id,
        CampaignStatus::Completed,
        Duration::from_secs(120),
    )
    .await;

    let calls = carrier.calls();
    let survivor = &servers[other].from;
    assert!(calls.len() > placed_before, "the survivor went on dialing");
    let dead = &servers[owner].from;
    assert!(
        calls
            .iter()
            .all(|c| &c.from != dead || c.requested_at < killed + Duration::from_secs(1)),
        "nothing dialed from the killed process"
    );
    let first_taken_over = calls
        .iter()
        .filter(|c| &c.from == survivor)
        .map(|c| c.created_at)
        .min()
        .unwrap();
    eprintln!(
        "takeover: first call from the survivor {:?} after the kill; {} calls in all",
        first_taken_over.saturating_duration_since(killed),
        calls.len()
    );
    // The owner renewed at most a heartbeat (a third of the time to live) before dying.
    assert!(
        first_taken_over >= killed + Duration::from_secs(LEASE_TTL_SECS) / 2,
        "the survivor dialed {:?} after the kill, before the lease could expire",
        first_taken_over.saturating_duration_since(killed)
    );
    let attempts = store.campaign_attempts(id, 1000).await.unwrap();
    let sids: HashMap<&str, i64> = attempts
        .iter()
        .filter_map(|a| a.carrier_call_id.as_deref().map(|s| (s, a.id.0)))
        .collect();
    for call in &calls {
        assert!(
            sids.contains_key(call.sid.as_str()),
            "call {} to {} has no attempt record",
            call.sid,
            call.to
        );
    }
    let distinct: HashSet<i64> = sids.values().copied().collect();
    assert_eq!(distinct.len(), sids.len(), "no attempt was dialed twice");
    let mut per_phone: HashMap<&str, usize> = HashMap::new();
    for call in &calls {
        *per_phone.entry(call.to.as_str()).or_default() += 1;
    }
    assert_eq!(
        per_phone.len(),
        CONTACTS as usize,
        "every contact was dialed"
    );
    for (phone, placed) in per_phone {
        let recorded = attempts
            .iter()
            .filter(|a| a.phone == phone && a.carrier_call_id.is_some())
            .count();
        assert_eq!(placed, recorded, "{phone}: one attempt per carrier call");
    }
    assert!(
        store
            .unfinished_attempts()
            .await
            .unwrap()
            .iter()
            .all(|a| a.campaign_id != id),
        "every attempt is settled"
    );
    carrier.shutdown().await;
    agent.shutdown().await;
}

async fn two_processes_keep_to_one_carrier_limit_together(db: TestDb) {
    const LIMIT: u32 = 5;
    const CONTACTS: u32 = 40;
    let _turn = TURN.lock().await;
    let store = db.store().clone();
    let agent = ScriptedAgent::start(agent(200, 200)).await.unwrap();
    let carrier = SimCarrier::start(carrier(100)).await.unwrap();
    let (tenant, key, admin) = tenant(&store).await;
    let setup = Setup {
        db_url: db.url(),
        carrier: &carrier.base_url(),
        cps: LIMIT,
        lease_ttl_secs: LEASE_TTL_SECS,
    };
    let servers = [Server::spawn(setup, A), Server::spawn(setup, B)];
    for server in &servers {
        server.ready().await;
    }
    // One campaign started through each process: each runs its own, same account.
    for (i, server) in servers.iter().enumerate() {
        let tag = format!("c{i}");
        let first = 5000 + 100 * i as u32;
        let id = campaign(&store, tenant, &tag, first, CONTACTS, 20, &agent.ws_url()).await;
        server.control(&key, id, "start").await;
    }
    let started = Instant::now();
    wait_until(
        "40 calls were placed",
        Duration::from_secs(60),
        async || carrier.calls().len() >= 40,
    )
    .await;
    let calls = carrier.calls();
    let busiest = max_in_any_second(calls.iter().map(|c| c.requested_at).collect());
    eprintln!(
        "calls per second: {} calls in {:?} ({} from {A}, {} from {B}), at most {busiest} in one second",
        calls.len(),
        started.elapsed(),
        from(&calls, A),
        from(&calls, B)
    );
    for server in &servers {
        assert!(
            from(&calls, &server.from) >= 5,
            "both processes dialed: {} from {}; {}",
            from(&calls, &server.from),
            server.from,
            server.admin_campaigns(&admin).await
        );
    }
    let t0 = calls.iter().map(|c| c.requested_at).min().unwrap();
    let timeline: Vec<String> = calls
        .iter()
        .map(|c| {
            let who = if c.from == A { "A" } else { "B" };
            format!("{}{who}", c.requested_at.duration_since(t0).as_millis())
        })
        .collect();
    assert_eq!(
        busiest,
        u64::from(LIMIT),
        "at most (and up to) {LIMIT} create requests in any one-second window: {timeline:?}"
    );
    drop(servers);
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_dials_and_the_other_takes_over_when_it_dies_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        one_owner_dials_and_the_other_takes_over_when_it_dies(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_keep_to_one_carrier_limit_together_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        two_processes_keep_to_one_carrier_limit_together(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_dials_and_the_other_takes_over_when_it_dies_on_sqlite() {
    one_owner_dials_and_the_other_takes_over_when_it_dies(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_keep_to_one_carrier_limit_together_on_sqlite() {
    two_processes_keep_to_one_carrier_limit_together(TestDb::sqlite().await).await;
}
