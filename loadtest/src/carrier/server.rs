//! The carrier's shared state and its REST API: create, fetch and update calls as
//! Twilio's `2010-04-01` Calls resource does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use switchboard_media::{AnsweredBy, CallStatus};
use tokio::sync::{Notify, mpsc, watch};

use super::callbacks::{Delivery, deliver};
use super::config::{CallerAudio, CarrierConfig};
use super::record::{CallEntry, CallState, Counters, duration_secs};
use super::request::{ApiError, CallRequest};
use super::script::Planner;

/// How long an update waits for a hung-up call to reach its final status.
const HANGUP_SETTLE: Duration = Duration::from_secs(2);

type FormResult = Result<Form<Vec<(String, String)>>, FormRejection>;

/// State shared by the API handlers, the dial queue and the call tasks.
pub(crate) struct Shared {
    pub config: CarrierConfig,
    pub auth_token: Arc<str>,
    pub http: reqwest::Client,
    pub audio: AudioCache,
    calls: Mutex<CallTable>,
    planner: Mutex<Planner>,
    dial_queue: mpsc::UnboundedSender<Arc<CallEntry>>,
    sid_prefix: u64,
    sid_counter: AtomicU64,
    pub tally: super::tally::Tally,
    /// Create-call requests being handled now (the API concurrency in use).
    api_in_flight: AtomicU64,
    /// Seeded draws that are not a call's plan (API latency, callback delivery).
    pub(crate) rng: Arc<Mutex<rand::rngs::SmallRng>>,
    /// When each create-call request was refused with 429, in order.
    pub(crate) throttled_at: Mutex<Vec<std::time::Instant>>,
}

#[derive(Default)]
struct CallTable {
    by_sid: HashMap<String, Arc<CallEntry>>,
    in_order: Vec<Arc<CallEntry>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(
        config: CarrierConfig,
        http: reqwest::Client,
        dial_queue: mpsc::UnboundedSender<Arc<CallEntry>>,
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let config_seed = config.seed;
        Self {
            auth_token: Arc::from(config.auth_token.as_str()),
            planner: Mutex::new(Planner::new(config.seed)),
            config,
            http,
            audio: AudioCache::default(),
            calls: Mutex::new(CallTable::default()),
            dial_queue,
            sid_prefix: splitmix64(nanos ^ u64::from(std::process::id())),
            sid_counter: AtomicU64::new(0),
            tally: super::tally::Tally::default(),
            api_in_flight: AtomicU64::new(0),
            rng: Arc::new(Mutex::new(rand::SeedableRng::seed_from_u64(
                config_seed ^ 0x5EED_CA11_BAC4_0001,
            ))),
            throttled_at: Mutex::new(Vec::new()),
        }
    }

    /// A fresh SID: `prefix` and 32 lowercase hex digits, unique per carrier instance.
    pub(crate) fn new_sid(&self, prefix: &str) -> String {
        let n = self.sid_counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{:016x}{:016x}", self.sid_prefix, splitmix64(n))
    }

    pub(crate) fn entries(&self) -> Vec<Arc<CallEntry>> {
        lock(&self.calls).in_order.clone()
    }

    fn find(&self, sid: &str) -> Option<Arc<CallEntry>> {
        lock(&self.calls).by_sid.get(sid).cloned()
    }

    /// Takes one of the account's API concurrency slots for a create-call request, or
    /// refuses it as Twilio does (429, error 20429) when all are in use.
    fn enter_api(self: &Arc<Self>) -> Result<ApiSlot, ApiError> {
        let now_in_flight = self.api_in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = ApiSlot(self.clone());
        if let Some(limit) = self.config.api_concurrency
            && now_in_flight > u64::from(limit)
        {
            drop(slot);
            super::tally::Tally::bump(&self.tally.throttled);
            lock(&self.throttled_at).push(std::time::Instant::now());
            return Err(ApiError::too_many_requests());
        }
        self.tally
            .api_in_flight_max
            .fetch_max(now_in_flight, Ordering::Relaxed);
        Ok(slot)
    }

    /// A draw of the create-call latency.
    fn api_latency(&self) -> Duration {
        let ms = self.config.api_latency_ms.sample(&mut *lock(&self.rng));
        Duration::from_millis(ms)
    }
}

/// One create-call request in flight; released when dropped.
struct ApiSlot(Arc<Shared>);

impl Drop for ApiSlot {
    fn drop(&mut self) {
        self.0.api_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// SplitMix64: spreads a counter over 64 bits.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A caller audio as a map key: the tone's frequency and amplitude bits, `None` for silence.
type AudioKey = Option<(u32, u32)>;

/// One second of each caller audio, as base64 frame payloads shared by all calls.
#[derive(Default)]
pub(crate) struct AudioCache {
    loops: Mutex<HashMap<AudioKey, Arc<[String]>>>,
}

impl AudioCache {
    pub(crate) fn frames(&self, audio: CallerAudio) -> Arc<[String]> {
        use switchboard_media::audio::{FRAME_BYTES, silence, tone};
        let key = match audio {
            CallerAudio::Tone { freq_hz, amplitude } => {
                Some((freq_hz.to_bits(), amplitude.to_bits()))
            }
            CallerAudio::Silence => None,
        };
        lock(&self.loops)
            .entry(key)
            .or_insert_with(|| {
                let samples = match audio {
                    CallerAudio::Tone { freq_hz, amplitude } => tone(freq_hz, 1000, amplitude),
                    CallerAudio::Silence => silence(1000),
                };
                let engine = base64::engine::general_purpose::STANDARD;
                samples
                    .chunks(FRAME_BYTES)
                    .map(|frame| engine.encode(frame))
                    .collect()
            })
            .clone()
    }
}

/// The Calls API routes.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(create).get(list),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{sid}",
            get(fetch).post(update),
        )
        .with_state(shared)
}

/// Checks HTTP Basic credentials and the account in the path.
fn authorize(
    shared: &Shared,
    headers: &HeaderMap,
    account: &str,
    path: &str,
) -> Result<(), ApiError> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(ApiError::unauthorized());
    };
    if user != shared.config.account_sid || password != shared.config.auth_token {
        return Err(ApiError::unauthorized());
    }
    if account != shared.config.account_sid {
        return Err(ApiError::not_found(path));
    }
    Ok(())
}

fn form_params(form: FormResult) -> Result<Vec<(String, String)>, ApiError> {
    form.map(|Form(params)| params).map_err(|rejection| {
        ApiError::bad_request(20001, format!("invalid form body: {rejection}"))
    })
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    form: FormResult,
) -> Result<Response, ApiError> {
    // A create counts against the account's calls-per-second when it arrives, not when
    // the carrier gets round to answering it.
    let received_at = std::time::Instant::now();
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    authorize(&shared, &headers, &account, &path)?;
    // Held until the answer is written: the request counts against the account's API
    // concurrency for as long as the carrier takes to answer it.
    let _slot = shared.enter_api()?;
    tokio::time::sleep(shared.api_latency()).await;
    let request = CallRequest::from_form(&form_params(form)?)?;
    let plan = lock(&shared.planner).plan(&shared.config, &request);
    let (callback_tx, callback_rx) = mpsc::unbounded_channel();
    let entry = Arc::new(CallEntry {
        sid: shared.new_sid("CA"),
        account_sid: shared.config.account_sid.clone(),
        requested_at: received_at,
        created_at: std::time::Instant::now(),
        created_wall: chrono::Utc::now(),
        plan,
        counters: Counters::default(),
        state: Mutex::new(CallState {
            status: CallStatus::Queued,
            dial_started_at: None,
            dial_started_wall: None,
            answered_at: None,
            ended_at: None,
            ended_wall: None,
            answered_by: None,
            stream_url: None,
            stream_sid: None,
            first_far_audio_at: None,
            marks_sent_back: Vec::new(),
            dtmf_sent: Vec::new(),
            stream_close_reason: None,
            callbacks_sent: Vec::new(),
            amd_done: false,
            amd_sent: None,
            pending_twiml: None,
            said: Vec::new(),
            twiml_updates: 0,
            next_sequence: 0,
            callback_tx: Some(callback_tx),
        }),
        hangup_requested: Default::default(),
        redirect_requested: Default::default(),
        hangup: Notify::new(),
        ended: watch::Sender::new(false),
        request,
    });
    if let Some(url) = entry.request.status_callback.clone() {
        let delivery = Delivery {
            http: shared.http.clone(),
            auth_token: shared.auth_token.clone(),
            url,
            method: entry.request.status_callback_method,
            policy: shared.config.callbacks.clone(),
            rng: shared.rng.clone(),
        };
        tokio::spawn(deliver(delivery, callback_rx, entry.clone()));
    }
    {
        let mut table = lock(&shared.calls);
        table.by_sid.insert(entry.sid.clone(), entry.clone());
        table.in_order.push(entry.clone());
    }
    super::tally::Tally::bump(&shared.tally.created);
    tracing::debug!(call_sid = %entry.sid, to = %entry.request.to, "call queued");
    let body = call_json(&entry);
    if shared.dial_queue.send(entry).is_err() {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: 20003,
            message: "the simulated carrier is shutting down".to_owned(),
        });
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Resolves `{sid}.json` in the path to a call.
fn call_for(
    shared: &Shared,
    headers: &HeaderMap,
    account: &str,
    sid_json: &str,
) -> Result<Arc<CallEntry>, ApiError> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls/{sid_json}");
    authorize(shared, headers, account, &path)?;
    sid_json
        .strip_suffix(".json")
        .and_then(|sid| shared.find(sid))
        .ok_or_else(|| ApiError::not_found(&path))
}

/// `GET /Calls.json`: the account's calls, newest first, filtered by `To` and `From` when
/// given, one page of `PageSize` (default 50, at most 1000, as Twilio's list does).
async fn list(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let path = format!("/2010-04-01/Accounts/{account}/Calls.json");
    authorize(&shared, &headers, &account, &path)?;
    let size = match query.get("PageSize") {
        None => 50,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(20001, format!("PageSize {n:?} must be 1 to 1000"))
            })?,
    };
    let wanted = |value: &str, filter: Option<&String>| filter.is_none_or(|f| f == value);
    let calls: Vec<serde_json::Value> = {
        let table = lock(&shared.calls);
        table
            .in_order
            .iter()
            .rev()
            .filter(|e| e.account_sid == account)
            .filter(|e| {
                wanted(&e.request.to, query.get("To")) && wanted(&e.request.from, query.get("From"))
            })
            .take(size)
            .cloned()
            .collect::<Vec<_>>()
    }
    .iter()
    .map(|entry| call_json(entry))
    .collect();
    let end = calls.len().saturating_sub(1);
    Ok(Json(serde_json::json!({
        "calls": calls,
        "page": 0,
        "page_size": size,
        "first_page_uri": format!("{path}?PageSize={size}&Page=0"),
        "next_page_uri": null,
        "previous_page_uri": null,
        "uri": format!("{path}?PageSize={size}&Page=0"),
        "start": 0,
        "end": end,
    })))
}

async fn fetch(
    State(shared): State<Arc<Shared>>,
    Path((account, sid_json)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entry = call_for(&shared, &headers, &account, &sid_json)?;
    Ok(Json(call_json(&entry)))
}

/// `Status=completed` hangs up (or cancels a call not yet answered); `Status=canceled`
/// cancels a queued or ringing call and leaves an answered one alone; `Twiml` replaces what
/// an answered call is doing (see [`redirect`]).
async fn update(
    State(shared): State<Arc<Shared>>,
    Path((account, sid_json)): Path<(String, String)>,
    headers: HeaderMap,
    form: FormResult,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entry = call_for(&shared, &headers, &account, &sid_json)?;
    let params = form_params(form)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    if get("Url").is_some() {
        return Err(ApiError::bad_request(
            20001,
            "redirecting a live call to a Url is not supported by the simulated carrier",
        ));
    }
    let cancel_only = match (get("Status"), get("Twiml")) {
        (None, None) => return Ok(Json(call_json(&entry))),
        (None, Some(twiml)) => return redirect(&entry, twiml),
        (Some("completed"), _) => false,
        (Some("canceled"), _) => true,
        (Some(other), _) => {
            return Err(ApiError::bad_request(
                20001,
                format!("Status must be completed or canceled, not {other:?}"),
            ));
        }
    };
    let canceled_in_queue = {
        let state = entry.lock();
        let status = state.status.clone();
        let answered = status == CallStatus::InProgress;
        if status.is_terminal() || (cancel_only && answered) {
            drop(state);
            return Ok(Json(call_json(&entry)));
        }
        entry.hangup_requested.store(true, Ordering::Release);
        state.dial_started_at.is_none()
    };
    if canceled_in_queue {
        // Never dialled: the dial queue will skip it.
        super::lifecycle::finish(&entry, CallStatus::Canceled);
    } else {
        entry.hangup.notify_one();
        let mut ended = entry.ended.subscribe();
        let _ = tokio::time::timeout(HANGUP_SETTLE, ended.wait_for(|done| *done)).await;
    }
    Ok(Json(call_json(&entry)))
}

/// `Twiml=` on an answered call, as Twilio does it: the current verb stops (a media
/// stream gets `stop` and is closed), then the new document runs (`<Say>` plays, then the
/// call hangs up at `<Hangup/>` or the document's end). A call not in progress cannot
/// be redirected (21220); a document that does not parse is refused (12100).
fn redirect(entry: &CallEntry, twiml: &str) -> Result<Json<serde_json::Value>, ApiError> {
    if twiml.chars().count() > switchboard_media::twilio::call::MAX_TWIML_CHARS {
        return Err(ApiError::bad_request(
            21205,
            format!(
                "Twiml exceeds {} characters",
                switchboard_media::twilio::call::MAX_TWIML_CHARS
            ),
        ));
    }
    let document = super::twiml::parse(twiml).map_err(|error| {
        ApiError::bad_request(12100, format!("Document parse failure: {error}"))
    })?;
    {
        let mut state = entry.lock();
        if state.status != CallStatus::InProgress || entry.hangup_requested.load(Ordering::Acquire)
        {
            return Err(ApiError::bad_request(
                21220,
                format!(
                    "Call is not in-progress ({}). Cannot redirect.",
                    state.status
                ),
            ));
        }
        state.pending_twiml = Some(document);
        state.twiml_updates += 1;
        entry.redirect_requested.store(true, Ordering::Release);
    }
    entry.hangup.notify_one();
    Ok(Json(call_json(entry)))
}

/// The call resource's `answered_by`: only `human` or `machine` (a fax counts as a
/// machine), `null` before detection finished or when it could not tell.
fn resource_answered_by(entry: &CallEntry, state: &CallState) -> Option<&'static str> {
    let by = state.answered_by.as_ref()?;
    if !entry.answered_by_known(state) {
        return None;
    }
    match by {
        AnsweredBy::Human => Some("human"),
        AnsweredBy::Fax => Some("machine"),
        by if by.is_machine() => Some("machine"),
        _ => None,
    }
}

/// The call as Twilio's JSON describes it.
fn call_json(entry: &CallEntry) -> serde_json::Value {
    let state = entry.lock();
    let rfc2822 = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc2822());
    let duration = match state.status {
        CallStatus::Completed => {
            duration_secs(state.answered_at, state.ended_at).map(|s| s.to_string())
        }
        _ => None,
    };
    let queue_time = match state.dial_started_at {
        Some(at) => entry.queue_ms(at),
        None if state.status == CallStatus::Queued => entry.queue_ms(std::time::Instant::now()),
        None => 0,
    };
    let uri = format!(
        "/2010-04-01/Accounts/{}/Calls/{}.json",
        entry.account_sid, entry.sid
    );
    let updated = state
        .ended_wall
        .or(state.dial_started_wall)
        .unwrap_or(entry.created_wall);
    serde_json::json!({
        "sid": entry.sid,
        "account_sid": entry.account_sid,
        "to": entry.request.to,
        "to_formatted": entry.request.to,
        "from": entry.request.from,
        "from_formatted": entry.request.from,
        "status": state.status.as_str(),
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "date_created": entry.created_wall.to_rfc2822(),
        "date_updated": updated.to_rfc2822(),
        "start_time": rfc2822(state.dial_started_wall),
        "end_time": rfc2822(state.ended_wall),
        "duration": duration,
        "price": null,
        "price_unit": "USD",
        "answered_by": resource_answered_by(entry, &state),
        "queue_time": queue_time.to_string(),
        "caller_name": null,
        "parent_call_sid": null,
        "phone_number_sid": null,
        "forwarded_from": null,
        "group_sid": null,
        "trunk_sid": null,
        "annotation": null,
        "uri": uri,
        "subresource_uris": {
            "notifications": uri.replace(".json", "/Notifications.json"),
            "recordings": uri.replace(".json", "/Recordings.json"),
        },
    })
}
