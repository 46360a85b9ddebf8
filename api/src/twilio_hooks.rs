//! Webhooks Twilio calls: status callbacks, asynchronous answering machine detection
//! results and the TwiML of a call. Every request must carry a valid `X-Twilio-Signature`
//! over the public URL it was sent to; anything else is refused with 403 and changes
//! nothing.

use crate::app::AppState;
use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::Deserialize;
use switchboard_engine::AttemptId;
use switchboard_engine::store::CarrierUpdate;
use switchboard_media::twilio::{AmdCallback, callback::StatusCallback, signature};

/// The header Twilio signs requests with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Which call a webhook is about.
#[derive(Debug, Deserialize)]
pub struct AttemptParam {
    /// The attempt id Switchboard put in the URL when it dialed.
    pub attempt: i64,
}

/// Form parameters in order, repeated names kept.
pub fn form_params(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Checks a request's Twilio signature against the URL it was sent to (the public URL
/// plus the path and query) and its form parameters.
pub fn verify(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    params: &[(String, String)],
) -> Result<(), Problem> {
    let Some(token) = &state.calls.twilio_auth_token else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not configured",
            "twilio is not configured",
        ));
    };
    let Some(given) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(Problem::forbidden("missing X-Twilio-Signature"));
    };
    let url = state.calls.public_url_for(uri);
    if signature::validate(token.expose_secret(), &url, params, given) {
        Ok(())
    } else {
        tracing::warn!(%url, "refused a request with a bad twilio signature");
        Err(Problem::forbidden("invalid X-Twilio-Signature"))
    }
}

/// The form parameters of a carrier callback, once its signature is checked.
fn signed_form(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &[u8],
) -> Result<Vec<(String, String)>, Problem> {
    let params = form_params(body);
    verify(state, headers, uri, &params)?;
    Ok(params)
}

/// `POST /twilio/status?attempt=ID`: a call status callback.
pub async fn status_callback(
    State(state): State<AppState>,
    Query(AttemptParam { attempt }): Query<AttemptParam>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let params = signed_form(&state, &headers, &uri, &body)?;
    let callback = StatusCallback::from_form(&params)
        .map_err(|e| Problem::bad_request("form", e.to_string()))?;
    let attempt = state.calls.store.attempt(AttemptId(attempt)).await?;
    if let Some(sid) = &attempt.carrier_call_id
        && sid != &callback.call_sid
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "attempt {} is call {sid}, not {}",
                attempt.id, callback.call_sid
            ),
        ));
    }
    let (status, result) = switchboard_actors::dial::attempt_status(&callback.call_status);
    let update = CarrierUpdate {
        carrier_call_id: Some(callback.call_sid.clone()),
        status,
        result: result.map(str::to_owned),
        answered_by: callback.answered_by.as_ref().map(|a| a.as_str().to_owned()),
        sequence: callback.sequence_number,
        carrier_status: callback.call_status.as_str().to_owned(),
        at: switchboard_engine::time::now(),
        carrier_at: callback.timestamp.as_deref().and_then(carrier_time),
        error_code: callback.error_code,
        sip_response_code: callback.sip_response_code,
    };
    // Acknowledged only once stored: the writer answers after its transaction commits.
    state
        .writer
        .apply_carrier_update(attempt.id, update)
        .await?;
    switchboard_actors::call::notify(attempt.id);
    tracing::debug!(attempt_id = %attempt.id, status = %callback.call_status, "carrier status");
    Ok(StatusCode::NO_CONTENT)
}

/// Twilio's `Timestamp` (RFC 2822) as UTC; `None` when it does not parse.
fn carrier_time(timestamp: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc2822(timestamp)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `POST /twilio/amd?attempt=ID`: who answered, from asynchronous machine detection (the
/// call is connected already). Stored with the attempt (`answered_by`,
/// `machine_detection_ms`) and told to its call actor, which tells pacing.
pub async fn amd_callback(
    State(state): State<AppState>,
    Query(AttemptParam { attempt }): Query<AttemptParam>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let params = signed_form(&state, &headers, &uri, &body)?;
    let result =
        AmdCallback::from_form(&params).map_err(|e| Problem::bad_request("form", e.to_string()))?;
    let attempt = state.calls.store.attempt(AttemptId(attempt)).await?;
    if let Some(sid) = &attempt.carrier_call_id
        && sid != &result.call_sid
    {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "attempt {} is call {sid}, not {}",
                attempt.id, result.call_sid
            ),
        ));
    }
    state
        .writer
        .record_machine_detection(
            attempt.id,
            result.answered_by.as_str(),
            result.machine_detection_duration_ms,
            switchboard_engine::time::now(),
        )
        .await?;
    switchboard_actors::call::notify(attempt.id);
    tracing::debug!(attempt_id = %attempt.id, answered_by = %result.answered_by, "machine detection");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET|POST /twilio/twiml?attempt=ID`: the TwiML that connects a call to Switchboard's
/// media stream (used when a call is placed with a `Url` instead of inline TwiML).
pub async fn call_twiml(
    State(state): State<AppState>,
    Query(AttemptParam { attempt }): Query<AttemptParam>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, Problem> {
    signed_form(&state, &headers, &uri, &body)?;
    let attempt = state.calls.store.attempt(AttemptId(attempt)).await?;
    let xml = stream_twiml(&state, attempt.id);
    Ok(([(header::CONTENT_TYPE, "text/xml")], xml).into_response())
}

/// TwiML connecting the call to the media endpoint, naming the attempt.
pub fn stream_twiml(state: &AppState, attempt: AttemptId) -> String {
    switchboard_actors::dial::stream_twiml(
        &state.calls.urls,
        state.calls.call_token_secret.expose_secret().as_bytes(),
        attempt,
    )
}
