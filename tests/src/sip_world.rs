//! The world of a SIP-mode test: the real server (LiveKit's webhooks and the agent API),
//! the simulated LiveKit posting its signed webhooks to it, a SIP dialer through that
//! LiveKit with the server's call token secret, and a runtime on a manual clock that
//! dials SIP campaigns with it (its carrier dialer points nowhere: a SIP campaign never
//! reaches the carrier).

use crate::{TestServer, fast_runtime};
use chrono::{DateTime, TimeZone, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_actors::Runtime;
use switchboard_actors::clock::ManualClock;
use switchboard_actors::dial::SipDialer;
use switchboard_actors::urls::PublicUrls;
use switchboard_api::Settings;
use switchboard_engine::campaign::LivekitAllowlist;
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, Store};
use switchboard_engine::{CampaignId, E164, TenantId};
use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig};
use switchboard_media::livekit::{LiveKitAgents, LiveKitConfig, SipDialOptions};

/// The API key the server and the simulated LiveKit share.
pub const LIVEKIT_KEY: &str = "APIsipcampaign";
/// The API secret the server and the simulated LiveKit share.
pub const LIVEKIT_SECRET: &str = "sip-campaign-secret-that-is-long-enough-0";

/// Monday 2026-11-23 15:00 UTC: 10:00 in New York.
pub fn monday_morning_in_new_york() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 15, 0, 0).unwrap()
}

/// Waits until `check` holds, polling every 100 ms; fails the test past `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running SIP world.
pub struct SipWorld {
    /// The server.
    pub server: TestServer,
    /// The simulated LiveKit.
    pub livekit: SimLiveKit,
    /// The database.
    pub store: Store,
    /// The runtime's clock.
    pub clock: Arc<ManualClock>,
    /// Dials through the simulated LiveKit with the server's call token secret.
    pub dialer: SipDialer,
    /// The simulated LiveKit's API, as the runtime's agent prober asks it.
    pub agents: LiveKitAgents,
}

impl SipWorld {
    /// Starts the server (LiveKit configured for its webhooks), then the simulated
    /// LiveKit with `config`, posting webhooks to the server. Calls ring for 1 s at most.
    pub async fn start(db: &TestDb, config: SimLiveKitConfig) -> SipWorld {
        let mut settings = Settings::for_tests(db.url());
        // The server only verifies webhooks here: the runtime dials with its own dialer.
        settings.livekit_url = Some("http://127.0.0.1:9".into());
        settings.livekit_api_key = Some(LIVEKIT_KEY.into());
        settings.livekit_api_secret = Some(SecretString::from(LIVEKIT_SECRET.to_owned()));
        let server = TestServer::start_with(settings).await;
        let config = config.webhook_url(server.url("/livekit/webhook"));
        let livekit = SimLiveKit::start(config).await.unwrap();
        let agents = LiveKitAgents::new(LiveKitConfig::new(
            livekit.url(),
            LIVEKIT_KEY,
            SecretString::from(LIVEKIT_SECRET.to_owned()),
        ))
        .unwrap();
        let options = SipDialOptions {
            ringing_timeout: Duration::from_secs(1),
            max_call_duration: Duration::from_secs(120),
            ..SipDialOptions::default()
        };
        let secret = server
            .state
            .calls
            .call_token_secret
            .expose_secret()
            .to_owned();
        let dialer = SipDialer::new(agents.clone(), PublicUrls::new(&server.url("")), options)
            .with_token_secret(secret.as_bytes());
        SipWorld {
            store: server.store().clone(),
            server,
            livekit,
            clock: Arc::new(ManualClock::new(monday_morning_in_new_york())),
            dialer,
            agents,
        }
    }

    /// A runtime that dials SIP campaigns through the simulated LiveKit (`sip`: false
    /// leaves LiveKit out, as a server without it).
    pub async fn runtime(&self, sip: bool) -> Runtime {
        let nowhere = self.server.dialer("http://127.0.0.1:9");
        let mut services = fast_runtime(&self.store, nowhere, self.clock.clone());
        services.sip = sip.then(|| self.dialer.clone());
        // A SIP campaign dials only once LiveKit answers its agent probe.
        services.agents.livekit = sip.then(|| self.agents.clone());
        Runtime::start(services).await.unwrap()
    }

    /// A tenant with one New York contact per `(phone, attributes)`, allowed the trunk and
    /// agent of [`sip_campaign`].
    pub async fn tenant_with_contacts(&self, contacts: &[(&str, Value)]) -> TenantId {
        let tenant = self.store.create_tenant("acme").await.unwrap().id;
        allow_livekit(&self.store, tenant).await;
        let new: Vec<NewContact> = contacts
            .iter()
            .map(|(phone, attributes)| {
                let mut c = NewContact::new(E164::parse(phone, None).unwrap());
                c.name = Some(format!("Contact {phone}"));
                c.timezone = Some("America/New_York".into());
                c.attributes = attributes.as_object().cloned().unwrap_or_default();
                c
            })
            .collect();
        self.store.upsert_contacts(tenant, &new).await.unwrap();
        tenant
    }

    /// Every attempt of the campaign to `phone`, oldest first.
    pub async fn attempts_to(&self, campaign: CampaignId, phone: &str) -> Vec<AttemptRecord> {
        let mut attempts: Vec<_> = self
            .store
            .campaign_attempts(campaign, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.phone == phone)
            .collect();
        attempts.sort_by_key(|a| a.id);
        attempts
    }

    /// `CreateSIPParticipant` requests into this attempt's room, per the simulator's record.
    pub fn sip_calls_for(&self, attempt: &AttemptRecord) -> usize {
        let room = format!("call-{}", attempt.id);
        self.livekit
            .sip_calls()
            .iter()
            .filter(|c| c.request.room_name == room)
            .count()
    }

    /// Stops the runtime, the simulated LiveKit and the server.
    pub async fn stop(self, runtime: Runtime) {
        runtime.shutdown();
        self.livekit.shutdown().await;
        self.server.stop().await;
    }
}

/// Allows the tenant the trunk (`ST_trunk`) and agent (`outbound-sales`) of
/// [`sip_campaign`], as the operator does with `switchboard tenants livekit`.
pub async fn allow_livekit(store: &Store, tenant: TenantId) {
    let list = LivekitAllowlist {
        trunks: ["ST_trunk".to_owned()].into(),
        agent_names: ["outbound-sales".to_owned()].into(),
    };
    store.set_livekit_allowlist(tenant, &list).await.unwrap();
}

/// A SIP campaign's configuration: agent `outbound-sales` through trunk `ST_trunk`, every
/// day 08:00–21:00, six lines, with this retry policy.
pub fn sip_campaign(name: &str, retry: Value) -> Value {
    json!({
        "name": name,
        "audience": {"query": {}},
        "agent": {"mode": "sip", "agent_name": "outbound-sales", "trunk_id": "ST_trunk"},
        "script": {"template": "Hello {name|there}, this is Sarah from Acme."},
        "schedule": {"days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "start": "08:00", "end": "21:00"},
        "retry": retry,
        "max_concurrent_calls": 6,
        "max_calls_per_minute": null
    })
}
