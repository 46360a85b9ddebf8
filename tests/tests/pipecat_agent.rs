//! A third-party agent framework behind the relay: the Pipecat bot of `agents/pipecat`
//! (pipecat-ai's own `FastAPIWebsocketTransport` and `TwilioFrameSerializer`) is a
//! campaign's agent. The real server and runtime dial through the simulated carrier, the
//! carrier streams each answered call to Switchboard, and Switchboard relays it to the bot,
//! which speaks at once, listens, reports `interested` with its call token and hangs up by
//! closing the stream.
//!
//! The bot runs in the virtual environment `scripts/test` builds
//! (`PIPECAT_AGENT_PYTHON`, else `target/venv-pipecat`). Without one the test skips
//! with a message, and fails under `CI=true`.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::CampaignId;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, AttemptStatus, Store};
use switchboard_loadtest::SimCarrier;
use switchboard_tests::api_client::{Api, zone_at_noon};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

const CONTACTS: usize = 5;
/// How long the bot greets and then listens before it reports.
const GREETING_SECS: &str = "1.0";
const LISTEN_SECS: &str = "2.0";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// The Python of the bot's virtual environment, or `None` (skip) when there is none
/// outside CI.
fn pipecat_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("PIPECAT_AGENT_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .map(|t| t.join("venv-pipecat/bin/python")),
        )
        .chain([workspace_root().join("target/venv-pipecat/bin/python")]);
    let found = candidates.into_iter().find(|p| p.is_file());
    if found.is_none() {
        let why = "no Python environment for the Pipecat bot: run scripts/test (it builds \
                   target/venv-pipecat from agents/pipecat/requirements.txt) or set \
                   PIPECAT_AGENT_PYTHON";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipping the Pipecat agent test: {why}");
    }
    found
}

/// The bot, served by uvicorn on a loopback port; killed when dropped.
struct PipecatBot {
    child: std::process::Child,
    port: u16,
}

impl Drop for PipecatBot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PipecatBot {
    async fn start(python: &Path) -> PipecatBot {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let bot_dir = workspace_root().join("agents/pipecat");
        let child = std::process::Command::new(python)
            .arg(bot_dir.join("bot.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(&bot_dir)
            .env("BOT_GREETING_SECS", GREETING_SECS)
            .env("BOT_LISTEN_SECS", LISTEN_SECS)
            .env("LOGURU_LEVEL", "INFO")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .spawn()
            .expect("the bot starts");
        let mut bot = PipecatBot { child, port };
        bot.wait_ready(Duration::from_secs(60)).await;
        bot
    }

    /// Waits until the bot answers `GET /healthz` (importing Pipecat takes seconds).
    async fn wait_ready(&mut self, timeout: Duration) {
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("the bot's status") {
                panic!("the Pipecat bot exited before serving: {status}");
            }
            if let Ok(answer) = reqwest::get(&url).await
                && answer.status().is_success()
            {
                let health: Value = answer.json().await.unwrap();
                eprintln!("Pipecat bot up on port {}: {health}", self.port);
                return;
            }
            assert!(Instant::now() < deadline, "the Pipecat bot did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The URL a campaign's `media_stream` agent points at.
    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

/// Fails if the carrier refused any frame Switchboard sent it: the simulated carrier checks
/// every frame as Twilio does (31950/31951) and counts what it would refuse, per call and
/// over the run.
fn assert_no_rejected_frames(carrier: &SimCarrier) {
    for call in carrier.calls() {
        assert_eq!(
            (call.protocol_errors, call.frame_violations.total()),
            (0, 0),
            "the carrier saw frames it would reject on the call to {}: {:?}",
            call.to,
            call.frame_violations
        );
    }
    let refused = carrier.stats().frame_violations;
    assert_eq!(
        refused.total(),
        0,
        "frames Twilio would refuse: {refused:?}"
    );
}

/// Waits until every attempt of the campaign has ended with its relay summary stored.
async fn settled(store: &Store, campaign: CampaignId, timeout: Duration) -> Vec<AttemptRecord> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempts = store.campaign_attempts(campaign, 100).await.unwrap();
        let done = attempts.len() == CONTACTS
            && attempts.iter().all(|a| {
                a.status == AttemptStatus::Ended
                    && a.detail.contains_key("relay")
                    && a.outcome.is_some()
            });
        if done {
            return attempts;
        }
        if Instant::now() > deadline {
            let summary: Vec<_> = attempts
                .iter()
                .map(|a| (a.id, a.status, a.outcome.clone(), a.detail.clone()))
                .collect();
            panic!("the campaign's calls did not settle: {summary:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_pipecat_bot_answers_a_campaign(db: TestDb) {
    let Some(python) = pipecat_python() else {
        return;
    };
    let started = Instant::now();
    let bot = PipecatBot::start(&python).await;
    let carrier = SimCarrier::start(answering_carrier(100)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let tenant = Api::new_tenant(&server, "acme").await;

    let zone = zone_at_noon();
    for i in 0..CONTACTS {
        let contact = json!({
            "phone": format!("+29831{:04}", 3100 + i),
            "name": format!("Caller {i}"),
            "timezone": zone,
            "attributes": {"segment": "pipecat"},
        });
        tenant.post("/api/v1/contacts", contact).await.expect(201);
    }
    let campaign = tenant
        .start_new_campaign(json!({
            "name": "Pipecat renewals",
            "audience": {"query": {"segment": "pipecat"}},
            "agent": {"mode": "media_stream", "url": bot.ws_url()},
            "script": {"template": "Hello {name|there}, a quick word about your renewal."},
            "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
            "retry": {"max_attempts": 1},
            "success": {"outcomes": ["interested"]},
            "max_concurrent_calls": CONTACTS,
            "max_calls_per_minute": null
        }))
        .await;

    let store = server.store();
    let attempts = settled(store, CampaignId(campaign), Duration::from_secs(90)).await;
    let carrier_calls = carrier
        .wait_until_all_ended(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(carrier_calls.len(), CONTACTS, "one call per contact");

    for attempt in &attempts {
        let relay = &attempt.detail["relay"];
        // Bridged to the bot.
        let events = store.attempt_events(attempt.id).await.unwrap();
        let bridged = events.iter().find(|e| e.kind == "agent.bridged");
        assert_eq!(
            bridged.map(|e| e.data["agent_url"].clone()),
            Some(json!(bot.ws_url())),
            "bridged to the bot: {events:?}"
        );
        // Heard within 2 s of the answer.
        let first_ms = attempt.detail["first_agent_audio_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no first agent audio: {:#?}", attempt.detail));
        assert!(first_ms < 2000, "agent first heard after {first_ms} ms");
        assert_eq!(relay["first_agent_audio_ms"], json!(first_ms), "{relay}");
        // The outcome as the bot reported it, naming what it heard.
        assert_eq!(
            attempt.outcome.as_deref(),
            Some("interested"),
            "{attempt:?}"
        );
        assert_eq!(attempt.result.as_deref(), Some("completed"), "{attempt:?}");
        let notes = attempt.detail["notes"].as_str().unwrap_or_default();
        let heard: u64 = notes
            .split_once(" heard ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("notes name the frames heard: {notes:?}"));
        assert!(heard > 0, "the bot heard the callee: {notes:?}");
        assert!(notes.starts_with("pipecat-ai "), "{notes:?}");
        // The bot ended the call by closing its stream; audio went both ways.
        assert_eq!(relay["end"]["by"], "agent_closed", "{relay}");
        assert!(
            relay["frames_from_carrier"].as_u64().unwrap() > 0,
            "{relay}"
        );
        let from_agent = relay["frames_from_agent"].as_u64().unwrap();
        assert!(from_agent > 0, "{relay}");
        // Pipecat writes its frames with Python's json.dumps (spaces after separators):
        // valid, re-encoded in Twilio's exact form; none meaningless.
        assert_eq!(relay["agent_frames_dropped"], 0, "{relay}");
        assert!(
            relay["agent_frames_rewritten"].as_u64().unwrap() >= from_agent,
            "{relay}"
        );
        let on_carrier = carrier_calls
            .iter()
            .find(|c| c.to == attempt.phone)
            .expect("the carrier placed the call");
        assert_eq!(
            on_carrier.frames_received, from_agent,
            "the bot's frames reach the callee"
        );
        assert!(on_carrier.first_far_audio_at.is_some());
        eprintln!(
            "call {}: first agent audio {first_ms} ms, {from_agent} frames from the bot, \
             {} to it; {notes}",
            attempt.id, relay["frames_from_carrier"]
        );
    }
    assert_no_rejected_frames(&carrier);

    // Every contact is done: the campaign completes by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = tenant.get(&format!("/api/v1/campaigns/{campaign}")).await;
        if current.expect(200)["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the campaign did not complete");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "Pipecat campaign of {CONTACTS} calls done in {:?}",
        started.elapsed()
    );

    server.stop().await;
    carrier.shutdown().await;
    drop(bot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipecat_bot_answers_a_campaign_on_sqlite() {
    a_pipecat_bot_answers_a_campaign(TestDb::sqlite().await).await;
}
