//! The HTTP application: state, router, and the server bound to a socket.

use crate::calls::{CallServices, CampaignCache, RelayTotals};
use crate::config::Settings;
use crate::livekit_hooks::{self, LiveKitHooks, StoreEventSink};
use crate::webhook_worker::{WebhookWorker, WorkerSettings};
use crate::{agent_api, media_ws, metrics, request_id, twilio_hooks, webhooks};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_actors::clock::SystemClock;
use switchboard_actors::dial::{DialSettings, Dialer};
use switchboard_actors::urls::PublicUrls;
use switchboard_actors::{Runtime, RuntimeSettings, Services};
use switchboard_engine::store::Store;
use switchboard_media::livekit::{LiveKitAgents, LiveKitOptions};
use switchboard_media::{TwilioClient, twilio::client::TwilioConfig};
use tokio::net::TcpListener;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Call endpoints' settings and totals.
    pub calls: Arc<CallServices>,
    /// LiveKit webhook verification and where its events go.
    pub livekit: Arc<LiveKitHooks>,
    /// The campaign runtime (running when Twilio is configured).
    pub runtime: Option<Runtime>,
    /// What the REST API needs from the settings.
    pub api: Arc<crate::rest::ApiSettings>,
}

impl FromRef<AppState> for Arc<LiveKitHooks> {
    fn from_ref(state: &AppState) -> Self {
        state.livekit.clone()
    }
}

/// Every route Switchboard serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/twilio/status", post(twilio_hooks::status_callback))
        .route("/twilio/amd", post(twilio_hooks::amd_callback))
        .route(
            "/twilio/twiml",
            get(twilio_hooks::call_twiml).post(twilio_hooks::call_twiml),
        )
        .route("/twilio/media", get(media_ws::media_stream))
        .route("/api/v1/agent/outcome", post(agent_api::report_outcome))
        .route("/livekit/webhook", post(livekit_hooks::livekit_webhook))
        .merge(crate::openapi::router())
        .merge(crate::admin::routes())
        .merge(crate::dashboard::routes())
        .route("/metrics", get(metrics::scrape))
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route("/api/v1/webhooks/{id}", delete(webhooks::delete))
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// Liveness: the process is up and serving HTTP.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// How long readiness waits for the database and for the engine supervisor.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers and the engine supervisor replies (when the runtime
/// runs; without Twilio it is reported `not_configured` and does not block readiness).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "unreachable"
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer in time");
            "timeout"
        }
    };
    let runtime = match &state.runtime {
        None => json!("not_configured"),
        Some(runtime) => match runtime.ping(READY_TIMEOUT).await {
            Ok(campaigns) => json!({ "status": "ok", "running_campaigns": campaigns }),
            Err(e) => {
                tracing::warn!(error = %e, "readiness: the engine supervisor does not answer");
                json!({ "status": "unresponsive" })
            }
        },
    };
    let runtime_ok = runtime == json!("not_configured") || runtime["status"] == "ok";
    let ready = database == "ok" && runtime_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": database,
        "runtime": runtime,
    });
    (status, Json(body))
}

/// A built application: database open and migrated, socket bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    webhooks: WorkerSettings,
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
fn dialer(settings: &Settings, urls: &PublicUrls) -> Result<Option<Dialer>, StartError> {
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
    Ok(Some(Dialer::new(client, urls.clone(), dial)))
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
        let store = Store::connect(settings.database_url()).await?;
        if settings.migrate_on_start {
            store.migrate().await?;
        }
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
        let candidate = new_secret()?;
        let secret = store
            .server_setting_or_init(switchboard_engine::call_token::SECRET_SETTING, || candidate)
            .await?;
        let calls = CallServices {
            urls: PublicUrls::new(&public_url),
            twilio_auth_token: settings.twilio_auth_token.clone(),
            call_token_secret: SecretString::from(secret),
            totals: RelayTotals::default(),
            campaigns: CampaignCache::default(),
            relays: crate::calls::LiveRelays::default(),
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
                LiveKitHooks::new(&config, Arc::new(StoreEventSink::new(store.clone())))
            }
            None => LiveKitHooks::disabled(),
        };
        let runtime = match dialer(settings, &calls.urls)? {
            Some(dialer) => {
                let services = Services {
                    store: store.clone(),
                    dialer,
                    clock: Arc::new(SystemClock),
                    settings: RuntimeSettings {
                        carrier_cps: settings.carrier_cps(),
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
        let api = crate::rest::ApiSettings::from_settings(settings, runtime.is_some())?;
        let state = AppState {
            store,
            calls: Arc::new(calls),
            livekit: Arc::new(livekit),
            runtime,
            api: Arc::new(api),
        };
        metrics::handle();
        Ok(Application {
            listener,
            state,
            webhooks: settings.webhook_worker(),
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

    /// Serves (and delivers webhooks) until `shutdown` completes, then finishes in-flight
    /// requests and webhook sends and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let runtime = self.state.runtime.clone();
        let worker = WebhookWorker::start(store.clone(), self.webhooks)
            .map_err(|e| std::io::Error::other(format!("webhook worker: {e}")))?;
        let upkeep = tokio::spawn(metrics::upkeep());
        let result = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(runtime) = runtime {
            runtime.shutdown();
        }
        worker.shutdown().await;
        upkeep.abort();
        store.close().await;
        result
    }
}
