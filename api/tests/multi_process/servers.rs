//! Real `switchboard serve` processes on one database, one simulated carrier, and what
//! the scenarios need around them.

use chrono::{Timelike, Utc};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_engine::{CampaignId, E164, TenantId};
use switchboard_loadtest::{AgentConfig, AnswerMix, CarrierConfig, Millis};

/// The carrier account every server dials through.
pub const ACCOUNT: &str = "ACmulti0000000000000000000000000000";
/// Its auth token.
pub const TOKEN: &str = "multi-process-token";

/// A server process, killed when dropped (also when the test fails). Each server places
/// its calls from a caller id of its own, so the carrier's record tells who dialed.
pub struct Server {
    child: Child,
    port: u16,
    /// The caller id this server dials from.
    pub from: String,
    http: reqwest::Client,
}

/// How the servers are configured.
#[derive(Clone, Copy)]
pub struct Setup<'a> {
    /// The shared database.
    pub db_url: &'a str,
    /// The simulated carrier's base URL.
    pub carrier: &'a str,
    /// The account's calls-per-second limit.
    pub cps: u32,
    /// The campaign lease's time to live, in seconds.
    pub lease_ttl_secs: u64,
}

/// The variable naming a directory for the servers' logs.
const LOG_DIR: &str = "MULTI_PROCESS_LOG_DIR";

/// Where a server's log goes: a file in `MULTI_PROCESS_LOG_DIR` when set (to read after a
/// failure), nowhere otherwise.
fn log_file(port: u16) -> Stdio {
    let Some(dir) = std::env::var_os(LOG_DIR) else {
        return Stdio::null();
    };
    let path = std::path::Path::new(&dir).join(format!("switchboard-{port}.log"));
    std::fs::File::create(path).map_or_else(|_| Stdio::null(), Stdio::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `switchboard serve`, dialing from `from`.
    pub fn spawn(setup: Setup<'_>, from: &str) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .env_remove("SWITCHBOARD_CONFIG")
            .env("SWITCHBOARD_DATABASE_URL", setup.db_url)
            .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("SWITCHBOARD_TWILIO_ACCOUNT_SID", ACCOUNT)
            .env("SWITCHBOARD_TWILIO_AUTH_TOKEN", TOKEN)
            .env("SWITCHBOARD_TWILIO_FROM", from)
            .env("SWITCHBOARD_AGENT_ALLOW_PRIVATE_ADDRESSES", "true")
            .env("SWITCHBOARD_TWILIO_API_BASE", setup.carrier)
            .env("SWITCHBOARD_TWILIO_CPS", setup.cps.to_string())
            .env(
                "SWITCHBOARD_LEASE_TTL_SECS",
                setup.lease_ttl_secs.to_string(),
            )
            .env(
                "SWITCHBOARD_LOG",
                if std::env::var_os(LOG_DIR).is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .stdout(log_file(port))
            .stderr(Stdio::null())
            .spawn()
            .expect("switchboard starts");
        Server {
            child,
            port,
            from: from.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until the server answers `/readyz`.
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} never got ready", self.from);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /admin/campaigns`: this process's instance id and the campaigns it runs.
    pub async fn admin_campaigns(&self, admin_key: &str) -> Value {
        let r = self
            .http
            .get(self.url("/admin/campaigns"))
            .bearer_auth(admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// `POST /api/v1/campaigns/{id}/{action}` (start, pause, resume, stop) through this
    /// process; the campaign as stored.
    pub async fn control(&self, key: &str, id: CampaignId, action: &str) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/api/v1/campaigns/{id}/{action}")))
            .bearer_auth(key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "{action}: {body}");
        body
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixed-offset zone where it is now between 10:00 and 18:00, so the calling window is
/// open whenever the test runs.
pub fn daytime_zone() -> String {
    let hour = Utc::now().hour() as i32;
    let offset = (14 - hour).clamp(-12, 14);
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// A carrier where everyone answers after `ring_ms` and stays on until the agent's side
/// ends the call, with no limit of its own (so its record shows what the servers sent).
pub fn carrier(ring_ms: u64) -> CarrierConfig {
    let mut config = CarrierConfig::new(ACCOUNT, TOKEN).cps(None);
    config.mix = AnswerMix::all_human();
    config.ring_ms = Millis::Fixed(ring_ms);
    config.talk_ms = Millis::Fixed(600_000);
    // Creates take Twilio's 80-250 ms (the strict default): a process killed while one is
    // in flight leaves an attempt without its call sid, and the carrier's callbacks go to
    // the dead process's URL; the process taking over finds the call in the carrier's
    // list of calls to the number.
    config
}

/// A scripted agent that talks for `talk_ms` and listens for `listen_ms`.
pub fn agent(talk_ms: u64, listen_ms: u64) -> AgentConfig {
    AgentConfig {
        greeting_delay_ms: 100,
        talk_ms,
        listen_ms,
        ..AgentConfig::default()
    }
}

/// A tenant with a tenant key and an admin key.
pub async fn tenant(store: &Store) -> (TenantId, String, String) {
    let tenant = store.create_tenant("acme").await.unwrap().id;
    let (_, key) = switchboard_api::auth::create_key(store, tenant, "ops", ApiKeyScope::Tenant)
        .await
        .unwrap();
    let (_, admin) = switchboard_api::auth::create_key(store, tenant, "sup", ApiKeyScope::Admin)
        .await
        .unwrap();
    (tenant, key, admin)
}

/// A campaign over `contacts` new contacts (numbers from `first`) tagged `tag`, calling
/// every day, one attempt each, at most `concurrency` calls at once; left as a draft.
pub async fn campaign(
    store: &Store,
    tenant: TenantId,
    tag: &str,
    first: u32,
    contacts: u32,
    concurrency: u32,
    agent_url: &str,
) -> CampaignId {
    let zone = daytime_zone();
    let rows: Vec<NewContact> = (0..contacts)
        .map(|i| {
            let phone = format!("+1415555{:04}", first + i);
            let mut c = NewContact::new(E164::parse(&phone, None).unwrap());
            c.timezone = Some(zone.clone());
            c.attributes = json!({"batch": tag}).as_object().unwrap().clone();
            c
        })
        .collect();
    store.upsert_contacts(tenant, &rows).await.unwrap();
    let config = CampaignConfig::from_json(json!({
        "name": tag,
        "audience": {"query": {"batch": tag}},
        "agent": {"mode": "media_stream", "url": agent_url},
        "script": {"template": "Hello"},
        "schedule": {"days": ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"], "start": "08:00", "end": "21:00"},
        "retry": {"min_gap_minutes": 0, "failed": {"max_attempts": 1, "delay_minutes": 1}},
        "max_concurrent_calls": concurrency,
        "max_calls_per_minute": null
    }))
    .unwrap();
    store.create_campaign(tenant, &config).await.unwrap().id
}

/// Activates a draft straight in the database (as if started before any server ran).
pub async fn activate(store: &Store, tenant: TenantId, id: CampaignId) {
    store
        .start_campaign(tenant, id, Cause::User, "start")
        .await
        .unwrap();
}

/// Waits until `check` holds, polling every 50 ms; fails the test past `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the campaign is `status`.
pub async fn wait_for_status(
    store: &Store,
    tenant: TenantId,
    id: CampaignId,
    status: CampaignStatus,
    timeout: Duration,
) {
    let what = format!("campaign {id} is {}", status.as_str());
    wait_until(&what, timeout, async || {
        store.campaign(tenant, id).await.unwrap().status == status
    })
    .await;
}
