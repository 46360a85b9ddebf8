//! The HTTP application: state, router, and the server bound to a socket.

use crate::calls::{CallServices, CampaignCache, RelayTotals};
use crate::config::Settings;
use crate::limits::Guards;
use crate::live_events::{EventHub, HubSettings, SnapshotSource};
use crate::livekit_hooks::{LiveKitHooks, StoreEventSink};
use crate::webhook_worker::{WebhookWorker, WorkerSettings};
use crate::{limits, metrics, request_id};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_actors::agent_reach::AgentProber;
use switchboard_actors::clock::SystemClock;
use switchboard_actors::dial::{DialSettings, Dialer, SipDialer};
use switchboard_actors::urls::PublicUrls;
use switchboard_actors::{EventWriter, Runtime, RuntimeSettings, Services, WriterSettings};
use switchboard_engine::store::{Store, StoreOptions};
use switchboard_media::livekit::{LiveKitAgents, LiveKitOptions, SipDialOptions};
use switchboard_media::{AgentConnector, TwilioClient, twilio::client::TwilioConfig};
use tokio::net::TcpListener;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The calls' writes (carrier callbacks, outcomes, relay figures), batched.
    pub writer: EventWriter,
    /// Call endpoints' settings and totals.
    pub calls: Arc<CallServices>,
    /// LiveKit webhook verification and where its events go.
    pub livekit: Arc<LiveKitHooks>,
    /// The campaign runtime (running when Twilio is configured).
    pub runtime: Option<Runtime>,
    /// What the REST API needs from the settings.
    pub api: Arc<crate::rest::ApiSettings>,
    /// The live changes, shared by every event stream client.
    pub events: EventHub,
    /// The bounds every tenant is held to while the server runs.
    pub guards: Arc<Guards>,
}

impl FromRef<AppState> for Arc<LiveKitHooks> {
    fn from_ref(state: &AppState) -> Self {
        state.livekit.clone()
    }
}

/// Largest request body of a route that does not say otherwise (campaign configurations,
/// agent reports with their transcript); the CSV imports and the contact routes set their
/// own.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Every route Switchboard serves: the documented ones (the OpenAPI spec) and the
/// deliberately undocumented ones ([`crate::internal::UNDOCUMENTED`]), nothing else.
pub fn router(state: AppState) -> Router {
    let (documented, spec) = crate::openapi::documented();
    let spec: Arc<str> = serde_json::to_string(&spec)
        .expect("the spec serializes")
        .into();
    let guards = state.guards.clone();
    crate::internal::add_routes(documented, &spec)
        .layer(axum::middleware::from_fn_with_state(guards, limits::layer))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// A built application: database open and migrated, socket bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The runtime's database pool (the state holds the API's).
    store: Store,
    webhooks: WorkerSettings,
    shutdown_grace: std::time::Duration,
    retention: Option<(
        switchboard_engine::store::RetentionPolicy,
        std::time::Duration,
    )>,
    server: crate::server::ServerLimits,
}

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] switchboard_engine::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The campaign runtime did not start.
    #[error("the campaign runtime did not start: {0}")]
    Runtime(String),
    /// The Twilio settings are unusable.
    #[error("twilio configuration: {0}")]
    Twilio(String),
    /// The LiveKit settings are unusable.
    #[error("livekit configuration: {0}")]
    LiveKit(String),
    /// A setting is unusable.
    #[error("setting {0}")]
    Setting(String),
    /// The operating system gave no randomness for the call token secret.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The dialer, when Twilio is fully configured (account, token and caller id).
fn dialer(
    settings: &Settings,
    urls: &PublicUrls,
    stream_secret: &SecretString,
) -> Result<Option<Dialer>, StartError> {
    let (Some(sid), Some(token), Some(from)) = (
        &settings.twilio_account_sid,
        &settings.twilio_auth_token,
        &settings.twilio_from,
    ) else {
        return Ok(None);
    };
    let from = switchboard_engine::E164::parse(from, None)
        .map_err(|e| StartError::Twilio(format!("twilio_from: {e}")))?
        .to_string();
    let config = TwilioConfig::new(sid.clone(), token.clone())
        .with_api_base(settings.twilio_api_base.clone());
    let client = TwilioClient::new(config).map_err(|e| StartError::Twilio(e.to_string()))?;
    let dial = DialSettings {
        from,
        ..DialSettings::default()
    };
    Ok(Some(Dialer::new(
        client,
        urls.clone(),
        dial,
        stream_secret.clone(),
    )))
}

/// This process's instance id, as its campaign leases name it: the process id and 64
/// random bits, fresh at every start.
fn instance_id() -> Result<String, StartError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StartError::Random(e.to_string()))?;
    Ok(format!(
        "{}-{:016x}",
        std::process::id(),
        u64::from_be_bytes(bytes)
    ))
}

/// A fresh random secret for per-call tokens (32 bytes from the OS).
fn new_secret() -> Result<String, StartError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| StartError::Random(e.to_string()))?;
    Ok(switchboard_engine::call_token::new_secret(bytes))
}

impl Application {
    /// Opens the database (migrating it if configured), binds the listen address and loads
    /// the server's call token secret (created on first start).
    pub async fn build(settings: &Settings) -> Result<Application, StartError> {
        let limits = &settings.limits;
        limits.check().map_err(StartError::Setting)?;
        // Two pools: the runtime's (dialing, callbacks, the writer, webhooks) and the
        // API's, whose queries are also cut short on PostgreSQL, so that a heavy tenant
        // query cannot take the connections dialing needs.
        let store = Store::connect_with(
            settings.database_url(),
            StoreOptions {
                max_connections: limits.runtime_db_connections,
                ..StoreOptions::default()
            },
        )
        .await?;
        if settings.migrate_on_start {
            store.migrate().await?;
        }
        let api_store = Store::connect_with(
            settings.database_url(),
            StoreOptions {
                max_connections: limits.api_db_connections,
                statement_timeout: Some(std::time::Duration::from_millis(
                    limits.api_statement_timeout_ms,
                )),
                ..StoreOptions::default()
            },
        )
        .await?;
        let bind_error = |source| StartError::Bind {
            addr: settings.listen,
            source,
        };
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        let extra_roots = match &settings.agent_ca_file {
            Some(path) => switchboard_media::agent_ws::read_ca_file(path)
                .map_err(|e| StartError::Setting(format!("agent_ca_file: {e}")))?,
            None => Vec::new(),
        };
        let mut agent = AgentConnector::new(&extra_roots)
            .map_err(|e| StartError::Setting(format!("agent_ca_file: {e}")))?;
        if !settings.agent_allow_private_addresses {
            agent = agent.with_guard(crate::webhook_guard::agent_guard());
        }
        let writer = EventWriter::start(store.clone(), WriterSettings::default());
        let candidate = new_secret()?;
        let secret = store
            .server_setting_or_init(switchboard_engine::call_token::SECRET_SETTING, || candidate)
            .await?;
        let calls = CallServices {
            store: store.clone(),
            urls: PublicUrls::new(&public_url),
            twilio_account_sid: settings.twilio_account_sid.clone(),
            twilio_auth_token: settings.twilio_auth_token.clone(),
            call_token_secret: SecretString::from(secret),
            totals: RelayTotals::default(),
            campaigns: CampaignCache::default(),
            relays: crate::calls::LiveRelays::default(),
            sessions: crate::sessions::MediaSessions::with_cap(limits.media_sessions),
            agent: agent.clone(),
            livekit: match settings.livekit() {
                Some(config) => {
                    let options = LiveKitOptions {
                        twilio_connector: settings.livekit_twilio_connector,
                        ..Default::default()
                    };
                    Some(
                        LiveKitAgents::with_options(config, options)
                            .map_err(|e| StartError::LiveKit(e.to_string()))?,
                    )
                }
                None => None,
            },
        };
        let livekit = match settings.livekit() {
            Some(config) => {
                LiveKitHooks::new(&config, Arc::new(StoreEventSink::new(writer.clone())))
            }
            None => LiveKitHooks::disabled(),
        };
        let runtime = match dialer(settings, &calls.urls, &calls.call_token_secret)? {
            Some(dialer) => {
                // SIP campaigns dial through LiveKit, with the agent tokens the agent API checks.
                let sip = calls.livekit.clone().map(|livekit| {
                    let options = SipDialOptions {
                        ringing_timeout: std::time::Duration::from_secs(u64::from(
                            DialSettings::default().ring_timeout_secs,
                        )),
                        ..SipDialOptions::default()
                    };
                    SipDialer::new(livekit, calls.urls.clone(), options)
                        .with_token_secret(calls.call_token_secret.expose_secret().as_bytes())
                });
                let services = Services {
                    store: store.clone(),
                    writer: writer.clone(),
                    dialer,
                    sip,
                    agents: AgentProber {
                        connector: agent,
                        livekit: calls.livekit.clone(),
                    },
                    clock: Arc::new(SystemClock),
                    settings: RuntimeSettings {
                        carrier_cps: settings.carrier_cps().map_err(StartError::Setting)?,
                        lease_ttl: settings.lease_ttl().map_err(StartError::Setting)?,
                        instance: instance_id()?,
                        ..RuntimeSettings::default()
                    },
                };
                Some(
                    Runtime::start(services)
                        .await
                        .map_err(|e| StartError::Runtime(e.to_string()))?,
                )
            }
            None => {
                tracing::warn!("twilio is not configured: campaigns will not dial");
                None
            }
        };
        let retention = settings.retention().map_err(StartError::Setting)?;
        let api = crate::rest::ApiSettings::from_settings(settings, runtime.is_some())?;
        let source = runtime
            .clone()
            .map(|r| Arc::new(r) as Arc<dyn SnapshotSource>);
        let state = AppState {
            store: api_store,
            writer,
            calls: Arc::new(calls),
            livekit: Arc::new(livekit),
            runtime,
            api: Arc::new(api),
            events: EventHub::new(source, HubSettings::default()),
            guards: Guards::new(settings.limits.clone()),
        };
        metrics::handle();
        metrics::start_counters();
        Ok(Application {
            listener,
            state,
            store,
            webhooks: WorkerSettings {
                extra_roots,
                ..settings.webhook_worker()
            },
            shutdown_grace: std::time::Duration::from_secs(settings.shutdown_grace_secs),
            retention: settings.purge_interval().map(|every| (retention, every)),
            server: settings.limits.server(),
        })
    }

    /// The bound address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The application's state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (and delivers webhooks) until `shutdown` completes. Then it stops dialing,
    /// lets live calls' media streams run for the configured grace (HTTP still answers, so
    /// carrier callbacks and agent reports land), closes the streams left with their figures
    /// stored, finishes in-flight requests and webhook sends, stores every write still
    /// queued for the event writer, and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.store.clone();
        let api_store = self.state.store.clone();
        let writer = self.state.writer.clone();
        let runtime = self.state.runtime.clone();
        let calls = self.state.calls.clone();
        let events = self.state.events.clone();
        let worker = WebhookWorker::start(store.clone(), self.webhooks)
            .map_err(|e| std::io::Error::other(format!("webhook worker: {e}")))?;
        let purge = self
            .retention
            .map(|(policy, every)| crate::retention::PurgeJob::start(store.clone(), policy, every));
        let upkeep = tokio::spawn(metrics::upkeep());
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        // The server runs as its own task so that it keeps accepting through the drain.
        let mut server = tokio::spawn(crate::server::serve(
            self.listener,
            router(self.state),
            self.server,
            async {
                let _ = http_stopped.await;
            },
        ));
        let joined = |r: Result<std::io::Result<()>, tokio::task::JoinError>| {
            r.unwrap_or_else(|e| {
                Err(std::io::Error::other(format!(
                    "the server task failed: {e}"
                )))
            })
        };
        let result = tokio::select! {
            // The server failed by itself: nothing left to drain through it.
            result = &mut server => Some(joined(result)),
            () = shutdown => None,
        };
        // Open event streams never end by themselves: end them, or the graceful shutdown
        // would wait for them forever.
        events.close();
        if let Some(runtime) = &runtime {
            // Dialing stops and the campaign leases are released: another process may
            // take the campaigns over while live calls drain here.
            runtime
                .shutdown_and_wait(std::time::Duration::from_secs(10))
                .await;
        }
        let result = match result {
            Some(result) => result,
            None => {
                calls.sessions.drain(self.shutdown_grace).await;
                let _ = stop_http.send(());
                joined(server.await)
            }
        };
        worker.shutdown().await;
        if let Some(purge) = purge {
            purge.shutdown().await;
        }
        upkeep.abort();
        // Everything the calls handed over is stored before the database closes.
        writer.shutdown().await;
        api_store.close().await;
        store.close().await;
        result
    }
}
