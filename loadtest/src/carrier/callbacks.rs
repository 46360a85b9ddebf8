//! Signed requests to the customer's URLs: status callbacks, TwiML fetches and
//! asynchronous machine detection results.
//!
//! Status callbacks are delivered as Twilio delivers them (see [`CallbackPolicy`]): each
//! one by its own task after a small random delay, so callbacks close together arrive in
//! no guaranteed order; some twice (seeded draws); a request whose connection fails is
//! retried once. A test may relax this to one after the other, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use switchboard_media::twilio::AmdCallback;
use switchboard_media::twilio::signature::sign;
use switchboard_media::{CallStatus, StatusCallback};
use tokio::sync::mpsc;

use super::config::{CallbackPolicy, DialResult};
use super::record::{CallEntry, SentAmd, SentCallback, duration_secs};
use super::request::Method;

/// Header carrying Twilio's request signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
/// `ApiVersion` sent with every request.
const API_VERSION: &str = "2010-04-01";

/// One status callback waiting to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub sequence_number: u64,
    pub status: CallStatus,
    pub form: Vec<(String, String)>,
}

/// How callbacks are delivered for one call.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub http: reqwest::Client,
    pub auth_token: Arc<str>,
    pub url: String,
    pub method: Method,
    pub policy: CallbackPolicy,
    /// The carrier's seeded draws (delays, duplicates).
    pub rng: Arc<std::sync::Mutex<rand::rngs::SmallRng>>,
}

impl Delivery {
    /// The delay before a callback and whether it is delivered twice.
    fn draw(&self) -> (std::time::Duration, bool) {
        use rand::RngExt as _;
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let jitter = rng.random_range(0..=self.policy.jitter_ms);
        let twice = rng.random::<f64>() < self.policy.duplicate_share;
        (
            std::time::Duration::from_millis(jitter),
            twice || self.policy.duplicate_all,
        )
    }
}

/// Sends a form to `url`, signed as Twilio signs: POST signs the URL and the form, GET
/// puts the form in the query string and signs the resulting URL alone.
pub(crate) async fn send_signed(
    http: &reqwest::Client,
    auth_token: &str,
    url: &str,
    method: Method,
    form: &[(String, String)],
) -> Result<reqwest::Response, reqwest::Error> {
    let request = match method {
        Method::Post => {
            let signature = sign(auth_token, url, form);
            http.post(url)
                .form(form)
                .header(SIGNATURE_HEADER, signature)
        }
        Method::Get => {
            let mut request = http.get(url).query(form).build()?;
            let signature = sign(auth_token, request.url().as_str(), &[]);
            if let Ok(value) = signature.parse() {
                request.headers_mut().insert(SIGNATURE_HEADER, value);
            }
            return http.execute(request).await;
        }
    };
    request.send().await
}

/// The form parameters every request about a call carries (TwiML fetch, callbacks).
pub(crate) fn call_form(entry: &CallEntry, status: &CallStatus) -> Vec<(String, String)> {
    let pairs = [
        ("CallSid", entry.sid.as_str()),
        ("AccountSid", entry.account_sid.as_str()),
        ("From", entry.request.from.as_str()),
        ("To", entry.request.to.as_str()),
        ("CallStatus", status.as_str()),
        ("Direction", "outbound-api"),
        ("ApiVersion", API_VERSION),
    ];
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Queues the status callback for `status` if the customer asked for that event.
///
/// Sequence numbers count the callbacks actually queued for the call, from 0. After the
/// terminal status the queue is closed, which ends the call's delivery task.
pub(crate) fn emit(entry: &CallEntry, status: CallStatus) {
    let events = entry.request.events;
    let requested = match status {
        CallStatus::Initiated => events.initiated,
        CallStatus::Ringing => events.ringing,
        CallStatus::InProgress => events.answered,
        ref other => other.is_terminal() && events.completed,
    };
    let mut state = entry.lock();
    let terminal = status.is_terminal();
    if requested && entry.request.status_callback.is_some() {
        let sequence_number = state.next_sequence;
        state.next_sequence += 1;
        let callback = StatusCallback {
            call_sid: entry.sid.clone(),
            account_sid: Some(entry.account_sid.clone()),
            call_status: status.clone(),
            sequence_number: Some(sequence_number),
            answered_by: if entry.answered_by_known(&state) {
                state.answered_by.clone()
            } else {
                None
            },
            call_duration_secs: terminal
                .then(|| duration_secs(state.answered_at, state.ended_at).unwrap_or(0)),
            timestamp: Some(chrono::Utc::now().to_rfc2822()),
            from: Some(entry.request.from.clone()),
            to: Some(entry.request.to.clone()),
            direction: Some("outbound-api".to_owned()),
            callback_source: Some("call-progress-events".to_owned()),
            machine_detection_duration_ms: None,
            sip_response_code: terminal.then(|| end_codes(entry, &status).1).flatten(),
            error_code: terminal.then(|| end_codes(entry, &status).0).flatten(),
        };
        let mut form = callback.to_form();
        form.push(("ApiVersion".to_owned(), API_VERSION.to_owned()));
        if let Some(tx) = &state.callback_tx {
            let pending = Pending {
                sequence_number,
                status,
                form,
            };
            if tx.send(pending).is_ok() {
                entry
                    .counters
                    .callbacks_in_flight
                    .fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    if terminal {
        state.callback_tx = None;
    }
}

/// `(ErrorCode, SipResponseCode)` of a call's final status, as Twilio reports them: a
/// failure's code and SIP status, 486 busy or 603 declined, 487 for a call that rang out
/// or was canceled, 200 for an answered call.
fn end_codes(entry: &CallEntry, status: &CallStatus) -> (Option<i64>, Option<u16>) {
    match status {
        CallStatus::Failed if entry.plan.result == DialResult::Failed => {
            let (error, sip) = entry.plan.failure.codes();
            (Some(error), Some(sip))
        }
        CallStatus::Failed => (None, None),
        CallStatus::Busy if entry.plan.declined => (None, Some(603)),
        CallStatus::Busy => (None, Some(486)),
        CallStatus::NoAnswer | CallStatus::Canceled => (None, Some(487)),
        CallStatus::Completed => (None, Some(200)),
        _ => (None, None),
    }
}

/// Delivers a call's callbacks until its queue closes.
pub(crate) async fn deliver(
    delivery: Delivery,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    entry: Arc<CallEntry>,
) {
    if delivery.policy.swapped_pairs {
        // Swapped pairs: hold the even one, send the odd one first, then the held one.
        let mut held: Option<Pending> = None;
        while let Some(pending) = rx.recv().await {
            match held.take() {
                None => held = Some(pending),
                Some(earlier) => {
                    send_one(&delivery, &entry, &pending).await;
                    send_one(&delivery, &entry, &earlier).await;
                }
            }
        }
        if let Some(last) = held {
            send_one(&delivery, &entry, &last).await;
        }
        return;
    }
    let delivery = Arc::new(delivery);
    while let Some(pending) = rx.recv().await {
        if !delivery.policy.concurrent {
            send_one(&delivery, &entry, &pending).await;
            continue;
        }
        // Each callback its own request, as Twilio sends them: no order among them.
        let (delivery, entry) = (delivery.clone(), entry.clone());
        tokio::spawn(async move { send_one(&delivery, &entry, &pending).await });
    }
}

/// Sends one callback (twice when drawn so), each copy retried on a failed connection.
async fn send_one(delivery: &Delivery, entry: &CallEntry, pending: &Pending) {
    let (delay, twice) = delivery.draw();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    for _ in 0..(1 + u32::from(twice)) {
        for _try in 0..=delivery.policy.retries {
            let sent_at = Instant::now();
            let send = send_signed(
                &delivery.http,
                &delivery.auth_token,
                &delivery.url,
                delivery.method,
                &pending.form,
            );
            let http_status = match tokio::time::timeout(delivery.policy.timeout, send).await {
                Ok(Ok(response)) => Some(response.status().as_u16()),
                Ok(Err(error)) => {
                    tracing::debug!(call_sid = %entry.sid, %error, "status callback failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(call_sid = %entry.sid, "status callback timed out");
                    None
                }
            };
            entry.lock().callbacks_sent.push(SentCallback {
                sequence_number: pending.sequence_number,
                status: pending.status.clone(),
                http_status,
                sent_at,
            });
            if http_status.is_some() {
                break;
            }
        }
    }
    entry
        .counters
        .callbacks_in_flight
        .fetch_sub(1, Ordering::AcqRel);
}

/// Posts the asynchronous machine detection result (`CallSid`, `AccountSid`, `AnsweredBy`,
/// `MachineDetectionDuration`) and records it with the call. From then on the call's
/// status callbacks and resource carry `AnsweredBy` too.
pub(crate) async fn send_async_amd(
    http: &reqwest::Client,
    auth_token: &str,
    entry: &CallEntry,
    (url, method): &(String, Method),
    detection_ms: u64,
) {
    let answered_by = {
        let mut state = entry.lock();
        state.amd_done = true;
        state.answered_by.clone()
    };
    let Some(answered_by) = answered_by else {
        return;
    };
    let result = AmdCallback {
        call_sid: entry.sid.clone(),
        account_sid: Some(entry.account_sid.clone()),
        answered_by: answered_by.clone(),
        machine_detection_duration_ms: Some(detection_ms),
    };
    let sent_at = Instant::now();
    let http_status = match send_signed(http, auth_token, url, *method, &result.to_form()).await {
        Ok(response) => Some(response.status().as_u16()),
        Err(error) => {
            tracing::debug!(call_sid = %entry.sid, %error, "async amd callback failed");
            None
        }
    };
    entry.lock().amd_sent = Some(SentAmd {
        answered_by,
        detection_ms,
        http_status,
        sent_at,
    });
}
