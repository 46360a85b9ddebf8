//! The abandonment rule and machine detection over real sockets: the real server and
//! runtime dial through the simulated carrier (asynchronous machine detection) to the
//! scripted agent, on SQLite and PostgreSQL.
//!
//! A person whose agent is heard within 2 s of the answer is connected, and the first
//! audio shows on the live view at once; a person whose agent is later hears the
//! campaign's identification message, the call ends and the ledger counts it. A machine
//! found before the verdict is never judged; one found after it is taken back out of the
//! abandonment figures. Pacing learns who answered either way.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, AttemptRecord, Store};
use switchboard_engine::{CampaignId, E164};
use switchboard_loadtest::{
    AgentConfig, CallScript, CarrierConfig, ScriptedAgent, SimCarrier, StreamCloseReason,
};
use switchboard_media::{AnsweredBy, CallStatus};
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

/// Actors are registered by name per process and every test database numbers campaigns
/// from 1: the scenarios take turns.
static RUNTIME_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The running world of one scenario.
struct World {
    server: TestServer,
    carrier: SimCarrier,
    agent: ScriptedAgent,
    tenant: Api,
    admin: Api,
    campaign: i64,
}

impl World {
    /// A server dialing through `carrier`, an agent that greets 50 ms after the stream
    /// starts (or `agent_greeting_delay_ms` of the contact) and keeps talking, and a
    /// running campaign calling `contacts` (phone, attributes).
    async fn start(db: &TestDb, carrier: CarrierConfig, contacts: &[(&str, Value)]) -> World {
        let agent = ScriptedAgent::start(AgentConfig {
            greeting_delay_ms: 50,
            talk_ms: 60_000,
            listen_ms: 100,
            ..AgentConfig::default()
        })
        .await
        .unwrap();
        let carrier = SimCarrier::start(carrier).await.unwrap();
        let mut settings = Settings::for_tests(db.url());
        settings.twilio_from = Some(CALLER_ID.to_owned());
        settings.twilio_api_base = carrier.base_url();
        let server = TestServer::start_with(settings).await;
        let tenant = Api::new_tenant(&server, "acme").await;
        let admin = Api::for_tenant(
            server.store(),
            &server.url(""),
            tenant.tenant,
            ApiKeyScope::Supervisor,
        )
        .await;
        let zone = zone_at_noon();
        for (phone, attributes) in contacts {
            let mut attributes = attributes.clone();
            attributes["segment"] = json!("abandonment");
            let contact = json!({"phone": phone, "timezone": zone, "attributes": attributes});
            tenant.post("/api/v1/contacts", contact).await.expect(201);
        }
        let campaign = tenant
            .start_new_campaign(json!({
                "name": "Renewals",
                "audience": {"query": {"segment": "abandonment"}},
                "agent": {"mode": "media_stream", "url": agent.ws_url()},
                "script": {"template": "Hello {name|there}.", "variables": {"caller_name": "Acme Homes"}},
                "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
                "max_concurrent_calls": contacts.len(),
                "max_calls_per_minute": null
            }))
            .await;
        World {
            server,
            carrier,
            agent,
            tenant,
            admin,
            campaign,
        }
    }

    fn store(&self) -> &Store {
        self.server.store()
    }

    /// The attempt that called `phone`, once reserved.
    async fn attempt(&self, phone: &str) -> Option<AttemptRecord> {
        let phone = E164::parse(phone, None).unwrap().to_string();
        let attempts = self
            .store()
            .campaign_attempts(CampaignId(self.campaign), 100)
            .await
            .unwrap();
        attempts.into_iter().find(|a| a.phone == phone)
    }

    /// Waits until the attempt that called `phone` satisfies `check`; returns it.
    async fn attempt_when(
        &self,
        phone: &str,
        what: &str,
        check: impl Fn(&AttemptRecord) -> bool,
    ) -> AttemptRecord {
        let mut found = None;
        wait_until(what, Duration::from_secs(20), async || {
            found = self.attempt(phone).await.filter(|a| check(a));
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// The campaign's pacing figures from the admin view.
    async fn pacing(&self) -> Value {
        let campaigns = self.admin.get("/admin/campaigns").await;
        let items = campaigns.expect(200)["items"].as_array().unwrap().clone();
        items
            .into_iter()
            .find(|c| c["campaign_id"] == self.campaign)
            .map(|c| c["pacing"].clone())
            .unwrap_or(Value::Null)
    }

    async fn stop(self) {
        let stop = format!("/api/v1/campaigns/{}/stop", self.campaign);
        self.tenant.post_empty(&stop).await.expect(200);
        self.server.stop().await;
        wait_until(
            "the runtime's actors are gone",
            Duration::from_secs(20),
            async || ractor::registry::registered().is_empty(),
        )
        .await;
        self.carrier.shutdown().await;
        self.agent.shutdown().await;
    }
}

const PROMPT: &str = "+298317001";
const LATE: &str = "+298317002";

async fn a_late_agent_abandons_the_person_who_then_hears_who_called(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let late = json!({"agent_greeting_delay_ms": 3000});
    let world = World::start(
        &db,
        answering_carrier(50),
        &[(PROMPT, json!({})), (LATE, late)],
    )
    .await;

    // The prompt agent is heard at once: the live view shows it while the call runs.
    let prompt = world
        .attempt_when(PROMPT, "the prompt agent is heard", |a| {
            a.detail.contains_key("first_agent_audio_ms")
        })
        .await;
    let mut live = Value::Null;
    wait_until(
        "the live view shows the first audio",
        Duration::from_secs(10),
        async || {
            let calls = world.admin.get("/admin/calls").await;
            live = calls.expect(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["attempt_id"] == prompt.id.0)
                .cloned()
                .unwrap_or(Value::Null);
            live["relay"]["first_agent_audio_ms"].is_u64()
        },
    )
    .await;
    assert_eq!(live["state"], "bridged", "{live:#}");
    assert_eq!(live["relay"]["ended"], false, "still live: {live:#}");
    let first_ms = live["relay"]["first_agent_audio_ms"].as_u64().unwrap();
    assert!(first_ms < 2000, "{live:#}");
    assert_eq!(prompt.detail["first_agent_audio_ms"], json!(first_ms));
    let detail = world
        .admin
        .get(&format!("/admin/calls/{}", prompt.id))
        .await;
    let detail = detail.expect(200);
    assert_eq!(
        detail["attempt"]["detail"]["first_agent_audio_ms"],
        json!(first_ms)
    );
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "agent.first_audio" && e["data"]["ms"] == json!(first_ms)),
        "{detail:#}"
    );
    let prompt = world
        .attempt_when(PROMPT, "the prompt call is judged", |a| {
            a.detail.contains_key("abandoned")
        })
        .await;
    assert_eq!(prompt.detail["abandoned"], json!(false), "{prompt:?}");

    // Relay latency shows while the call runs, every 250 frames (audio flows both ways).
    wait_until(
        "the live view shows relay latency",
        Duration::from_secs(15),
        async || {
            let call = world
                .admin
                .get(&format!("/admin/calls/{}", prompt.id))
                .await;
            let relay = call.expect(200)["live"]["relay"].clone();
            relay["relay_latency_p99_us"].is_u64() && relay["ended"] == false
        },
    )
    .await;

    // The late agent: abandoned, the identification message is said, the call ends.
    let late = world
        .attempt_when(LATE, "the late call ends", |a| {
            a.status == switchboard_engine::store::AttemptStatus::Ended
        })
        .await;
    assert_eq!(late.detail["abandoned"], json!(true), "{late:?}");
    assert_eq!(late.result.as_deref(), Some("completed"));
    let sid = late.carrier_call_id.clone().unwrap();
    let call = world.carrier.call(&sid).unwrap();
    assert_eq!(call.status, CallStatus::Completed);
    assert_eq!(
        call.stream_close_reason,
        Some(StreamCloseReason::Redirected)
    );
    assert_eq!(call.said.len(), 1, "{call:?}");
    let said = &call.said[0];
    assert!(said.contains("Acme Homes"), "the caller is named: {said}");
    assert!(said.contains(CALLER_ID), "and how to call back: {said}");
    let answered = call.answered_at.unwrap();
    let hung_up = call.ended_at.unwrap().duration_since(answered);
    assert!(
        hung_up >= Duration::from_secs(2) && hung_up < Duration::from_secs(4),
        "ended {hung_up:?} after the answer"
    );
    let events = world.store().attempt_events(late.id).await.unwrap();
    let message = events.iter().find(|e| e.kind == "abandonment.message");
    assert_eq!(message.map(|e| &e.data["message"]), Some(&json!(said)));

    // The ledger and the campaign's figures count one abandoned person of two.
    let pacing = world.pacing().await;
    let today = &pacing["abandonment"]["today"];
    assert_eq!(
        (today["live_answered"].as_u64(), today["abandoned"].as_u64()),
        (Some(2), Some(1)),
        "{pacing:#}"
    );
    let status = world
        .tenant
        .get(&format!("/api/v1/campaigns/{}/status", world.campaign))
        .await;
    let status = status.expect(200);
    assert_eq!(status["calls"]["abandoned"], 1, "{status:#}");
    assert_eq!(status["rates"]["abandonment"], 0.5, "{status:#}");
    world.stop().await;
}

const MACHINE_EARLY: &str = "+298317101";
const MACHINE_LATE: &str = "+298317102";
const PERSON: &str = "+298317103";

async fn machines_are_found_after_the_answer_and_pacing_learns_them(db: TestDb) {
    let _turn = RUNTIME_TURN.lock().await;
    let machine = |amd_ms| {
        CallScript::answered(50, 600_000)
            .with_answered_by(AnsweredBy::MachineEndBeep)
            .with_amd_ms(amd_ms)
    };
    // One machine is found at 300 ms, before its (late) agent could be judged; the other
    // at 2.6 s, after its prompt agent connected the call.
    let carrier = answering_carrier(50)
        .script(MACHINE_EARLY, machine(300))
        .script(MACHINE_LATE, machine(2600));
    let late = json!({"agent_greeting_delay_ms": 3000});
    let contacts = [
        (MACHINE_EARLY, late),
        (MACHINE_LATE, json!({})),
        (PERSON, json!({})),
    ];
    let world = World::start(&db, carrier, &contacts).await;

    // Every call connects at once: nobody waits for machine detection.
    for phone in [MACHINE_EARLY, MACHINE_LATE, PERSON] {
        world
            .attempt_when(phone, "the call is bridged", |a| {
                a.status == switchboard_engine::store::AttemptStatus::Bridged
            })
            .await;
    }
    let early = world
        .attempt_when(MACHINE_EARLY, "detection reports a machine", |a| {
            a.detail.contains_key("answered_by")
        })
        .await;
    assert_eq!(early.detail["answered_by"], json!("machine_end_beep"));
    assert_eq!(early.detail["machine_detection_ms"], json!(300));
    let sid = early.carrier_call_id.clone().unwrap();
    let amd = world.carrier.call(&sid).unwrap().amd_sent.unwrap();
    assert_eq!(amd.http_status, Some(204), "the signed callback was taken");
    let events = world.store().attempt_events(early.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "carrier.amd"), "{events:?}");

    // The late machine was first taken for a connected person, then reclassified.
    let reclassified = world
        .attempt_when(MACHINE_LATE, "the late machine is reclassified", |a| {
            a.detail.contains_key("answered_by")
        })
        .await;
    assert_eq!(reclassified.detail["abandoned"], json!(false));
    let mut pacing = Value::Null;
    wait_until(
        "pacing learns every answer",
        Duration::from_secs(10),
        async || {
            pacing = world.pacing().await;
            pacing["answers"]["machine"] == 2 && pacing["answers"]["human"] == 1
        },
    )
    .await;
    assert_eq!(pacing["answers"]["reclassified"], 1, "{pacing:#}");
    let today = &pacing["abandonment"]["today"];
    assert_eq!(
        (today["live_answered"].as_u64(), today["abandoned"].as_u64()),
        (Some(1), Some(0)),
        "only the person is in the ledger: {pacing:#}"
    );

    // The machine whose agent was late is not abandoned: it keeps its agent (who may
    // leave a message) and hears no identification message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let early = world.attempt(MACHINE_EARLY).await.unwrap();
    assert!(!early.detail.contains_key("abandoned"), "{early:?}");
    assert_eq!(
        early.status,
        switchboard_engine::store::AttemptStatus::Bridged
    );
    let call = world.carrier.call(&sid).unwrap();
    assert!(call.said.is_empty() && call.ended_at.is_none(), "{call:?}");
    let ledger = world
        .store()
        .abandonment_history(
            CampaignId(world.campaign),
            chrono::Utc::now() - chrono::Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(ledger.len(), 1, "the person only: {ledger:?}");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_late_agent_abandons_the_person_who_then_hears_who_called() {
    a_late_agent_abandons_the_person_who_then_hears_who_called(TestDb::sqlite().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_late_agent_abandons_the_person_who_then_hears_who_called() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_late_agent_abandons_the_person_who_then_hears_who_called(db).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_machines_are_found_after_the_answer_and_pacing_learns_them() {
    machines_are_found_after_the_answer_and_pacing_learns_them(TestDb::sqlite().await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_machines_are_found_after_the_answer_and_pacing_learns_them() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    machines_are_found_after_the_answer_and_pacing_learns_them(db).await
}
