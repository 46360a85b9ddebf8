//! Helpers shared by the end-to-end tests: a real server on a loopback port over a fresh
//! database, and the records a call needs.
#![warn(missing_docs)]

pub mod api_client;
pub mod campaign_run;
pub mod sip_world;
pub mod supervision;

use secrecy::SecretString;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::agent_reach::{AgentProber, ProbeBackoff};
use switchboard_actors::clock::Clock;
use switchboard_actors::dial::{DialSettings, Dialer};
use switchboard_actors::urls::PublicUrls;
use switchboard_actors::{EventWriter, RuntimeSettings, Services, WriterSettings};
use switchboard_api::{AppState, Application, Settings};
use switchboard_engine::campaign::CampaignConfig;
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, NewAttempt, Store};
use switchboard_engine::{CampaignId, E164, TenantId};
use switchboard_loadtest::{AnswerMix, CarrierConfig, Millis};
use switchboard_media::{TwilioClient, twilio::client::TwilioConfig};

/// The Twilio auth token the test server and the simulated carrier share.
pub const AUTH_TOKEN: &str = "test-auth-token";
/// The Twilio account the test server and the simulated carrier share.
pub const ACCOUNT_SID: &str = "ACtest00000000000000000000000000000";

/// The caller id test calls are placed from.
pub const CALLER_ID: &str = "+14155550000";

/// A simulated carrier configuration for these credentials where every call is answered
/// by a person after `ring_ms` and the callee stays on the line for ten minutes (the agent
/// or the test ends the call), with no calls-per-second limit. Machine detection takes
/// 300 ms, and a `<Say>` plays fast (2 ms a character, 400 ms at most).
pub fn answering_carrier(ring_ms: u64) -> CarrierConfig {
    let mut config = CarrierConfig::new(ACCOUNT_SID, AUTH_TOKEN).cps(None);
    config.mix = AnswerMix::all_human();
    config.ring_ms = Millis::Fixed(ring_ms);
    config.talk_ms = Millis::Fixed(600_000);
    config.amd_ms = Millis::Fixed(300);
    config.say_ms_per_char = 2;
    config.say_max_ms = 400;
    config
}

/// Runtime services with fast ticks (and agent probes every 200 ms to 1 s) for tests, reading time from `clock`, with an event
/// writer of their own over `store`.
pub fn fast_runtime(store: &Store, dialer: Dialer, clock: Arc<dyn Clock>) -> Services {
    let settings = RuntimeSettings {
        tick: Duration::from_millis(100),
        call_poll: Duration::from_millis(200),
        outcome_grace: Duration::from_secs(2),
        carrier_cps: None,
        agent_probe: ProbeBackoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(1),
        },
        ..RuntimeSettings::default()
    };
    Services {
        store: store.clone(),
        writer: EventWriter::start(store.clone(), WriterSettings::default()),
        dialer,
        sip: None,
        agents: AgentProber::default(),
        clock,
        settings,
    }
}

/// A running server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (store, call services).
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts Switchboard on port 0 over this database, with Twilio configured.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(Settings::for_tests(db.url())).await
    }

    /// Starts Switchboard with these settings (port 0), with Twilio configured.
    pub async fn start_with(mut settings: Settings) -> TestServer {
        settings.twilio_auth_token = Some(secrecy::SecretString::from(AUTH_TOKEN.to_owned()));
        settings.twilio_account_sid = Some(ACCOUNT_SID.to_owned());
        let app = Application::build(&settings)
            .await
            .expect("the server starts");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A dialer through the simulated carrier at `carrier_base_url`, with this server's
    /// public URLs in every call it places.
    pub fn dialer(&self, carrier_base_url: &str) -> Dialer {
        let config = TwilioConfig::new(ACCOUNT_SID, SecretString::from(AUTH_TOKEN.to_owned()))
            .with_api_base(carrier_base_url.to_owned());
        let twilio = TwilioClient::new(config).expect("a valid Twilio configuration");
        let settings = DialSettings {
            from: CALLER_ID.into(),
            ..DialSettings::default()
        };
        let secret = self.state.calls.call_token_secret.clone();
        Dialer::new(twilio, PublicUrls::new(&self.url("")), settings, secret)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The server's event writer (the calls' batched writes).
    pub fn writer(&self) -> &EventWriter {
        &self.state.writer
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A tenant, one contact per phone number and a campaign whose agent is `agent_url`, with
/// every contact queued. Returns the tenant and the attempts reserved for each contact.
pub async fn seed_calls(
    store: &Store,
    agent_url: &str,
    contacts: &[(&str, serde_json::Value)],
) -> (TenantId, Vec<AttemptRecord>) {
    seed_calls_with(
        store,
        json!({"mode": "media_stream", "url": agent_url}),
        contacts,
    )
    .await
}

/// Queues the contact with this phone in the campaign and reserves its first attempt, as a
/// campaign supervisor would before dialing.
pub async fn reserve_for(
    store: &Store,
    tenant: TenantId,
    campaign: CampaignId,
    phone: &E164,
) -> AttemptRecord {
    let contact = store
        .contact_by_phone(tenant, phone)
        .await
        .unwrap()
        .unwrap();
    store
        .enqueue_contacts(campaign, &[contact.id], 0)
        .await
        .unwrap();
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: tenant,
            campaign_id: campaign,
            contact_id: contact.id,
            phone: contact.phone.clone(),
            attempts_seen: 0,
        })
        .await
        .unwrap()
}

/// [`seed_calls`] with any agent configuration (`{"mode": "sip", ...}`).
pub async fn seed_calls_with(
    store: &Store,
    agent: serde_json::Value,
    contacts: &[(&str, serde_json::Value)],
) -> (TenantId, Vec<AttemptRecord>) {
    let tenant = store.create_tenant("test").await.unwrap().id;
    let config = CampaignConfig::from_json(json!({
        "name": "Test calls",
        "audience": {"query": {}},
        "agent": agent,
        "script": {"template": "Hello {name|there}, this is Sarah from Acme.", "variables": {"offer": "10%"}},
    }))
    .unwrap();
    let campaign = store.create_campaign(tenant, &config).await.unwrap();
    let mut attempts = Vec::new();
    let new: Vec<NewContact> = contacts
        .iter()
        .map(|(phone, attributes)| {
            let mut c = NewContact::new(E164::parse(phone, None).unwrap());
            c.name = Some(format!("Contact {phone}"));
            c.attributes = attributes.as_object().cloned().unwrap_or_default();
            c
        })
        .collect();
    store.upsert_contacts(tenant, &new).await.unwrap();
    for c in &new {
        attempts.push(reserve_for(store, tenant, campaign.id, &c.phone).await);
    }
    (tenant, attempts)
}
