//! Receivers standing in for Switchboard's webhooks and agent API, and small helpers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use switchboard_loadtest::{CarrierConfig, SimCarrier};
use switchboard_media::twilio::signature::validate;
use switchboard_media::{TwilioClient, TwilioConfig};

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const TOKEN: &str = "loopback-auth-token";
pub const FROM: &str = "+15550000000";
/// Generous deadline for conditions that should hold within a second or two.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A carrier with the test credentials and no pacing.
/// These tests read each call's callbacks in arrival order to check what each one carries,
/// so callbacks are relaxed to one after the other, once each; the strict default (each its
/// own request, some twice) is checked by `callbacks::by_default_callbacks_*`.
pub fn carrier_config() -> CarrierConfig {
    CarrierConfig {
        callbacks: switchboard_loadtest::CallbackPolicy::in_order(),
        ..CarrierConfig::new(ACCOUNT, TOKEN).cps(None)
    }
}

pub async fn start_carrier(config: CarrierConfig) -> SimCarrier {
    SimCarrier::start(config).await.expect("carrier starts")
}

/// Media's own Twilio client, pointed at the simulated carrier.
pub fn twilio(carrier: &SimCarrier) -> TwilioClient {
    twilio_with_token(carrier, TOKEN)
}

/// Media's Twilio client with another auth token.
pub fn twilio_with_token(carrier: &SimCarrier, token: &str) -> TwilioClient {
    let config = TwilioConfig::new(ACCOUNT, token.into()).with_api_base(carrier.base_url());
    TwilioClient::new(config).expect("client builds")
}

/// A form POST with Basic auth, for requests media's client would refuse to send.
pub async fn raw_post(
    url: &str,
    password: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(ACCOUNT, Some(password))
        .form(form)
        .send()
        .await
        .expect("request is sent");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

pub fn calls_url(carrier: &SimCarrier) -> String {
    format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Calls.json",
        carrier.base_url()
    )
}

/// One request seen by the receiver.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub params: Vec<(String, String)>,
    pub signature_valid: bool,
    pub authorization: Option<String>,
    pub json: Option<serde_json::Value>,
}

impl Hit {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct ReceiverState {
    base_url: String,
    hits: Mutex<Vec<Hit>>,
    twiml: Mutex<String>,
    outcome_failures_left: AtomicU32,
}

/// Switchboard's side of the wire: status callbacks (`/status`), machine detection results
/// (`/amd`), TwiML (`/twiml`) and outcome reports (`/outcome`), all recorded with their
/// signature or token.
pub struct Receiver {
    pub base_url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(ReceiverState {
            base_url: base_url.clone(),
            ..ReceiverState::default()
        });
        let app = Router::new()
            .route("/status", post(form_hit))
            .route("/amd", post(form_hit))
            .route("/twiml", post(twiml))
            .route("/outcome", post(outcome))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { base_url, state }
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.state.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    /// Waits until at least `count` requests reached `path`.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let hits = self.hits(path);
            if hits.len() >= count || tokio::time::Instant::now() > deadline {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn set_twiml(&self, twiml: &str) {
        *self.state.twiml.lock().unwrap() = twiml.to_owned();
    }

    /// The next `n` outcome reports get a 503.
    pub fn fail_outcomes(&self, n: u32) {
        self.state.outcome_failures_left.store(n, Ordering::SeqCst);
    }
}

fn record_form(
    state: &ReceiverState,
    uri: &Uri,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) {
    let url = format!("{}{}", state.base_url, uri);
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let hit = Hit {
        path: uri.path().to_owned(),
        signature_valid: validate(TOKEN, &url, &params, signature),
        params,
        authorization: None,
        json: None,
    };
    state.hits.lock().unwrap().push(hit);
}

async fn form_hit(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    record_form(&state, &uri, &headers, params);
    StatusCode::NO_CONTENT
}

async fn twiml(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> impl IntoResponse {
    record_form(&state, &uri, &headers, params);
    let body = state.twiml.lock().unwrap().clone();
    ([("content-type", "application/xml")], body)
}

async fn outcome(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.hits.lock().unwrap().push(Hit {
        path: uri.path().to_owned(),
        params: Vec::new(),
        signature_valid: false,
        authorization,
        json: Some(body),
    });
    let failing = state
        .outcome_failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}
