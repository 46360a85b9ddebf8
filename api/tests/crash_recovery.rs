//! Killing the server mid-campaign: `switchboard serve` runs a campaign through the
//! simulated carrier and scripted agent, is killed with SIGKILL while calls are live, and is
//! started again. No attempt record is lost, no attempt is dialed twice (the carrier's own
//! record is the witness), and the campaign finishes.

use chrono::{Timelike, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_engine::E164;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{
    AgentConfig, AnswerMix, CarrierConfig, Millis, ScriptedAgent, SimCarrier,
};

const ACCOUNT: &str = "ACcrash0000000000000000000000000000";
const TOKEN: &str = "crash-test-token";
const CONTACTS: usize = 16;

/// A fixed-offset zone where it is now between 10:00 and 18:00, so the calling window is
/// open whenever the test runs.
fn daytime_zone() -> String {
    let hour = Utc::now().hour() as i32;
    let offset = (14 - hour).clamp(-12, 14);
    // Etc/GMT-N is N hours east of UTC.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// A server process, killed when dropped (also when the test fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(db_url: &str, port: u16, carrier: &str) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env_remove("SWITCHBOARD_CONFIG")
        .env("SWITCHBOARD_DATABASE_URL", db_url)
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT)
        .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", TOKEN)
        .env("SWITCHBOARD_TWILIO_FROM", "+14155550000")
        .env("SWITCHBOARD_AGENT_ALLOW_PRIVATE_ADDRESSES", "true")
        .env("SWITCHBOARD_TWILIO_API_BASE", carrier)
        .env("SWITCHBOARD_TWILIO_CPS", "20")
        // The restarted process is a new owner: it takes the campaign over once the dead
        // one's lease expires.
        .env("SWITCHBOARD_LEASE_TTL_SECS", "3")
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchboard starts");
    Server(child)
}

async fn killing_the_server_mid_campaign_loses_nothing_and_dials_nobody_twice(db: TestDb) {
    let store = db.store().clone();
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 100,
        talk_ms: 1500,
        listen_ms: 1500,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let mut carrier_config = CarrierConfig::new(ACCOUNT, TOKEN).cps(None);
    carrier_config.mix = AnswerMix::all_human();
    carrier_config.ring_ms = Millis::Fixed(300);
    carrier_config.talk_ms = Millis::Fixed(600_000);
    // Creates take Twilio's 80-250 ms (the strict default): a kill while one is in flight
    // leaves an attempt without its call sid, found again in the carrier's list of calls.
    let carrier = SimCarrier::start(carrier_config).await.unwrap();

    let tenant = store.create_tenant("acme").await.unwrap().id;
    let zone = daytime_zone();
    let contacts: Vec<NewContact> = (0..CONTACTS)
        .map(|i| {
            let mut c =
                NewContact::new(E164::parse(&format!("+1415555{:04}", 4000 + i), None).unwrap());
            c.timezone = Some(zone.clone());
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": "Crash",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello"},
        "schedule": {"days": ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"], "start": "08:00", "end": "21:00"},
        "retry": {"min_gap_minutes": 0, "failed": {"max_attempts": 1, "delay_minutes": 1}},
        "max_concurrent_calls": 4,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    store
        .transition_campaign(
            tenant,
            campaign.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    store
        .transition_campaign(
            tenant,
            campaign.id,
            CampaignStatus::Active,
            Cause::User,
            "start",
            None,
        )
        .await
        .unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = serve(db.url(), port, &carrier.base_url());
    // Kill it while calls are live: some answered, the campaign far from done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let calls = carrier.calls();
        let live = calls
            .iter()
            .filter(|c| c.answered_at.is_some() && c.ended_at.is_none())
            .count();
        if live >= 2 && calls.len() < CONTACTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never had live calls: {} calls",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    let placed_before = carrier.calls().len();

    let server = serve(db.url(), port, &carrier.base_url());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = store.campaign(tenant, campaign.id).await.unwrap().status;
        if status == CampaignStatus::Completed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign did not finish after the restart (still {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);

    let attempts = store.campaign_attempts(campaign.id, 1000).await.unwrap();
    let calls = carrier.calls();
    assert!(
        calls.len() > placed_before,
        "the restarted server went on dialing"
    );
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
    for (phone, placed) in per_phone {
        let recorded = attempts
            .iter()
            .filter(|a| a.phone == phone && a.carrier_call_id.is_some())
            .count();
        assert_eq!(
            placed, recorded,
            "{phone}: every call the carrier placed is an attempt of its own"
        );
    }
    assert!(
        store
            .unfinished_attempts()
            .await
            .unwrap()
            .iter()
            .all(|a| a.campaign_id != campaign.id),
        "every attempt is settled"
    );
    carrier.shutdown().await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_campaign_on_sqlite() {
    killing_the_server_mid_campaign_loses_nothing_and_dials_nobody_twice(TestDb::sqlite().await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_campaign_on_postgres() {
    if let Some(db) = TestDb::postgres().await {
        killing_the_server_mid_campaign_loses_nothing_and_dials_nobody_twice(db).await;
    }
}
