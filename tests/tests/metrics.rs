//! `/metrics` and `/readyz` over a real socket: a campaign run by the server's own runtime
//! through the simulated carrier and the scripted agent shows up in the scrape (live calls
//! while they last, then originations, calls by result and outcome, abandonment and relay
//! histograms), and readiness fails when the database is gone.
//!
//! The same run checks the JSON logs: call lines carry the campaign and call ids, HTTP
//! lines the request id.
//!
//! The metrics registry is process-wide, so this binary runs one campaign only.

use chrono::Timelike;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::E164;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::{CALLER_ID, TestServer, answering_carrier};

async fn scrape(server: &TestServer) -> String {
    let response = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The sum of the samples of `name` that carry every one of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A zone where it is about noon now, so the calling window is open whenever this runs.
fn midday_zone() -> String {
    let offset = 12 - chrono::Utc::now().hour() as i32;
    // Etc/GMT zones count the other way: Etc/GMT-3 is UTC+3.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

async fn readyz(server: &TestServer) -> (u16, Value) {
    let response = reqwest::get(server.url("/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Log lines written by the process's subscriber, as `log_format = "json"` writes them.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// Installs the JSON format of `switchboard serve` writing here.
    fn install() -> Captured {
        let captured = Captured::default();
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .json()
            .with_current_span(true)
            .with_writer(captured.clone())
            .init();
        captured
    }

    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

/// Whether a log line's spans carry `field` (with `value`, when given).
fn in_span(line: &Value, field: &str, value: Option<&str>) -> bool {
    line["spans"].as_array().is_some_and(|spans| {
        spans.iter().any(|s| match (&s[field], value) {
            (Value::Null, _) => false,
            (_, None) => true,
            (v, Some(want)) => v.as_str() == Some(want),
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_counts_the_calls_of_a_running_campaign() {
    let logs = Captured::install();
    let db = TestDb::sqlite().await;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 1500,
        listen_ms: 200,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();
    let mut settings = Settings::for_tests(db.url());
    settings.twilio_from = Some(CALLER_ID.to_owned());
    settings.twilio_api_base = carrier.base_url();
    let server = TestServer::start_with(settings).await;
    let runtime = server.state.runtime.clone().expect("Twilio is configured");
    let (status, ready) = readyz(&server).await;
    assert_eq!(
        (status, &ready["runtime"]["status"]),
        (200, &json!("ok")),
        "{ready}"
    );

    let store = server.store().clone();
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let zone = midday_zone();
    let contacts: Vec<NewContact> = (0..4)
        .map(|i| {
            let mut c =
                NewContact::new(E164::parse(&format!("+29831{:04}", 4000 + i), None).unwrap());
            c.timezone = Some(zone.clone());
            if i == 3 {
                // The agent speaks after 2.5 s: this caller was abandoned.
                let late = json!({"agent_greeting_delay_ms": 2500});
                c.attributes = late.as_object().unwrap().clone();
            }
            c
        })
        .collect();
    store.upsert_contacts(tenant, &contacts).await.unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": "Metrics",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": agent.ws_url()},
        "script": {"template": "Hello"},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "09:00", "end": "17:00"},
        "max_concurrent_calls": 4,
        "max_calls_per_minute": null
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    runtime.start_campaign(tenant, campaign.id).await.unwrap();
    let id = campaign.id.to_string();
    let this = [("campaign_id", id.as_str())];

    // While calls are up, the scrape shows them live.
    let deadline = Instant::now() + Duration::from_secs(20);
    let live_text = loop {
        let text = scrape(&server).await;
        if value(&text, "switchboard_live_calls", &this) >= 1.0 {
            assert!(value(&text, "switchboard_campaign_dialing", &this) == 1.0);
            assert!(
                text.contains(&format!(
                    "switchboard_campaign_figure{{campaign_id=\"{id}\",figure=\"dialed\"}}"
                )),
                "{text}"
            );
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no live call was ever scraped:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    while store.campaign(tenant, campaign.id).await.unwrap().status != CampaignStatus::Completed {
        assert!(Instant::now() < deadline, "the campaign did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let text = scrape(&server).await;
    assert_eq!(
        value(&text, "switchboard_calls_originated_total", &this),
        4.0,
        "{text}"
    );
    let completed = [
        ("campaign_id", id.as_str()),
        ("result", "completed"),
        ("outcome", "interested"),
    ];
    assert_eq!(
        value(&text, "switchboard_calls_total", &this),
        4.0,
        "{text}"
    );
    assert!(
        value(&text, "switchboard_calls_total", &completed) >= 3.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "switchboard_calls_answered_by_human_total", &this),
        4.0
    );
    assert_eq!(
        value(&text, "switchboard_calls_abandoned_total", &this),
        1.0,
        "{text}"
    );
    assert_eq!(value(&text, "switchboard_relayed_calls", &[]), 4.0);
    assert!(value(&text, "switchboard_agent_first_audio_seconds_count", &[]) >= 3.0);
    let late = [("le", "2")];
    assert_eq!(
        value(&text, "switchboard_agent_first_audio_seconds_bucket", &late),
        3.0,
        "three agents spoke within 2 s: {text}"
    );
    let frames = value(&text, "switchboard_relay_frame_latency_seconds_count", &[]);
    assert!(frames > 100.0);
    // The histogram is cumulative and its last bucket holds every frame.
    let bucket = |le| {
        value(
            &text,
            "switchboard_relay_frame_latency_seconds_bucket",
            &[("le", le)],
        )
    };
    assert_eq!(bucket("+Inf"), frames, "{text}");
    assert!(bucket("0.00005") <= bucket("0.001") && bucket("0.001") <= bucket("0.1"));
    assert!(
        bucket("0.1") > 0.0,
        "loopback frames are relayed within 100 ms: {text}"
    );
    assert!(value(&text, "switchboard_relay_frame_latency_seconds_sum", &[]) > 0.0);
    assert!(
        value(
            &text,
            "switchboard_relay_latency_quantile_seconds",
            &[("quantile", "0.99")]
        ) > 0.0
    );
    assert!(text.contains("# TYPE switchboard_relay_frame_latency_seconds histogram"));
    assert_eq!(
        value(&text, "switchboard_live_calls", &this),
        0.0,
        "a finished campaign leaves the scrape"
    );
    // Every metric the shipped Grafana dashboard and Prometheus alerting rules query is one
    // these scrapes expose, while calls were live or once they ended (Prometheus's own `up`
    // aside).
    for file in [
        "deploy/grafana/dashboards/switchboard.json",
        "deploy/prometheus/alerts.yml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(file);
        let source = std::fs::read_to_string(&path).unwrap();
        let names = queried_metrics(&source);
        assert!(names.len() >= 5, "{file} queries only {names:?}");
        for name in names {
            let exposed = text.lines().chain(live_text.lines()).any(|line| {
                line.strip_prefix(name.as_str())
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            });
            assert!(
                exposed,
                "{file} queries {name}, which /metrics does not expose:\n{text}"
            );
        }
    }

    // The JSON logs name the campaign and the call on call lines, the request on HTTP lines.
    let lines = logs.lines();
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "call finished")
        .collect();
    assert_eq!(finished.len(), 4, "one line per call");
    for line in &finished {
        assert!(in_span(line, "campaign_id", Some(&id)), "{line}");
        assert!(line["fields"]["call_id"].is_string(), "{line}");
    }
    let outcome = lines
        .iter()
        .find(|l| l["fields"]["message"] == "agent outcome")
        .expect("the agent's report is logged");
    assert!(in_span(outcome, "request_id", None), "{outcome}");
    assert!(outcome["fields"]["call_id"].is_string(), "{outcome}");

    // An engine supervisor that no longer answers makes the process not ready.
    runtime.shutdown();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, ready) = readyz(&server).await;
        if status == 503 {
            assert_eq!(ready["runtime"]["status"], "unresponsive", "{ready}");
            assert_eq!(ready["database"], "ok", "{ready}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still ready without its runtime: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    carrier.shutdown().await;
    agent.shutdown().await;
    server.stop().await;
}

async fn readiness_fails_when_the_database_is_gone(db: TestDb) {
    let server = TestServer::start(&db).await;
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert_eq!(
        ready["runtime"], "not_configured",
        "without a caller id nothing dials"
    );
    let echoed = reqwest::Client::new()
        .get(server.url("/readyz"))
        .header("x-request-id", "probe-7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        echoed.headers()["x-request-id"],
        "probe-7",
        "a caller's request id is kept"
    );
    let made_up = reqwest::get(server.url("/healthz")).await.unwrap();
    assert!(
        !made_up.headers()["x-request-id"].is_empty(),
        "every response has one"
    );
    server.store().close().await;
    let (status, ready) = readyz(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["database"], "unreachable");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_is_gone_on_sqlite() {
    readiness_fails_when_the_database_is_gone(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_when_the_database_is_gone_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    readiness_fails_when_the_database_is_gone(db).await;
}

/// Every `switchboard_*` series name a dashboard or rule file mentions.
fn queried_metrics(source: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("switchboard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
