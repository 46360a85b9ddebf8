//! The media-stream endpoint: the carrier opens a WebSocket here for each answered call;
//! Switchboard identifies the call from `start.customParameters`, opens the agent's
//! WebSocket with the call context, and relays until either side ends.

use crate::app::AppState;
use crate::call_probe::CallProbe;
use crate::problem::Problem;
use crate::relay::{RelayLimits, RelayStats, relay};
use crate::twilio_hooks::SIGNATURE_HEADER;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use secrecy::ExposeSecret;
use serde_json::json;
use std::time::Duration;
use switchboard_engine::campaign::AgentConfig;
use switchboard_engine::store::{AttemptStatus, CallEvent};
use switchboard_engine::{AttemptId, CampaignId};
use switchboard_media::StreamEvent;
use switchboard_media::streams::{MediaFormat, StartInfo};
use switchboard_media::twilio::signature;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long the carrier has to send `connected` and `start` after the upgrade.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket settings for both sides of a call. Media frames are about 350 bytes and arrive
/// one at a time (every 20 ms each way), so a 2 KiB read buffer still takes several per
/// read when a backlog forms. Tungstenite's 128 KiB default is zero-filled before every
/// read (a 128 KiB memset per frame) and stays resident; the buffer also doubles once in
/// a long call, so what each socket keeps is twice this size (heap profile at 200 calls:
/// 8 KiB per socket with 4 KiB, the largest per-call allocation).
fn media_socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MEDIA_MESSAGE))
        .max_frame_size(Some(MAX_MEDIA_MESSAGE))
}

/// Largest Media Streams message accepted (a `start` with its custom parameters).
const MAX_MEDIA_MESSAGE: usize = 256 * 1024;

/// `GET /twilio/media`: the carrier's media stream (a WebSocket upgrade, signed).
pub async fn media_stream(
    State(state): State<AppState>,
    mut request: Request,
) -> Result<Response, Problem> {
    let headers = request.headers().clone();
    verify_upgrade(&state, &headers)?;
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or_else(|| {
        Problem::bad_request("sec-websocket-key", "a websocket upgrade is required")
    })?;
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_upgrade {
        return Err(Problem::bad_request(
            "upgrade",
            "a websocket upgrade is required",
        ));
    }
    let Some(place) = state.calls.sessions.place() else {
        metrics::counter!("switchboard_media_sessions_refused_total").increment(1);
        tracing::warn!(
            cap = state.calls.sessions.cap(),
            "media stream refused: this process relays as many as limits.media_sessions allows"
        );
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many media sessions",
            format!(
                "this process already relays {} media streams (limits.media_sessions)",
                state.calls.sessions.cap()
            ),
        ));
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let calls = state.calls.clone();
    calls.sessions.spawn(place, async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(media_socket_config()),
                )
                .await;
                run_session(state, ws).await;
            }
            Err(e) => tracing::warn!(error = %e, "media stream upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upgrade failed",
                e.to_string(),
            )
        })
}

/// The carrier signs the stream URL it was given (no parameters). Both the `wss://` form
/// and its `https://` twin are accepted: each proves the sender holds the auth token.
fn verify_upgrade(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
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
    let ws_url = state.calls.urls.media_stream();
    let http_url = ws_url
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    let ok = [ws_url, http_url]
        .iter()
        .any(|url| signature::validate(token.expose_secret(), url, &[], given));
    if ok {
        Ok(())
    } else {
        Err(Problem::forbidden("invalid X-Twilio-Signature"))
    }
}

/// Why a session ended before its relay started.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("the carrier did not start the stream: {0}")]
    NoStart(String),
    #[error("start.customParameters has no valid attempt id")]
    NoAttempt,
    #[error(transparent)]
    Store(#[from] switchboard_engine::Error),
    #[error("call {0} is already over")]
    Ended(AttemptId),
    #[error("the campaign's agent cannot take a media stream: {0}")]
    Agent(String),
    #[error("the agent at {url} is unreachable: {reason}")]
    AgentUnreachable {
        campaign: CampaignId,
        url: String,
        reason: String,
    },
    /// The stream does not prove it belongs to the call it names: nothing is stored with
    /// that call (anyone could name it).
    #[error("the stream is not bound to call {attempt}: {reason}")]
    Unbound {
        attempt: AttemptId,
        reason: &'static str,
    },
}

/// What the attempt and its campaign learn from a call whose agent could not be reached:
/// the attempt ends with `end_reason` `agent_unreachable` and the reason, and the
/// campaign's supervisor stops opening lines until its agent answers again.
async fn record_unreachable(
    state: &AppState,
    attempt: AttemptId,
    campaign: CampaignId,
    reason: &str,
) {
    switchboard_actors::agent_reach::agent_unreachable(campaign, reason.to_owned());
    let mut detail = serde_json::Map::new();
    detail.insert("end_reason".into(), json!("agent_unreachable"));
    detail.insert("end_reason_detail".into(), json!(reason));
    let update = switchboard_engine::store::AttemptUpdate {
        detail: Some(detail),
        ..Default::default()
    };
    if let Err(e) = state.writer.update_attempt(attempt, update).await {
        tracing::error!(error = %e, "could not store why the agent was unreachable");
    }
}

async fn run_session<S>(state: AppState, mut carrier: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let start = match read_start(&mut carrier).await {
        Ok(start) => start,
        Err(e) => {
            tracing::warn!(error = %e, "media stream refused");
            let _ = carrier.close(None).await;
            return;
        }
    };
    let answered = std::time::Instant::now();
    let attempt = start
        .custom_parameters
        .get("attempt")
        .and_then(|v| v.parse().ok())
        .map(AttemptId);
    let span =
        tracing::info_span!("call", call_id = ?attempt.map(|a| a.0), call_sid = %start.call_sid);
    let _guard = span.enter();
    let result = match attempt {
        Some(attempt) => bridge(&state, attempt, &start, answered, carrier).await,
        None => {
            let _ = carrier.close(None).await;
            Err(SessionError::NoAttempt)
        }
    };
    match (attempt, result) {
        (Some(attempt), Ok(stats)) => finish(&state, attempt, &stats).await,
        (None, Ok(_)) => {}
        (_, Err(e @ SessionError::Unbound { .. })) => {
            tracing::warn!(error = %e, "media stream refused");
        }
        (attempt, Err(e)) => {
            tracing::warn!(error = %e, "media stream ended before the agent");
            if let (
                Some(attempt),
                SessionError::AgentUnreachable {
                    campaign, reason, ..
                },
            ) = (attempt, &e)
            {
                record_unreachable(&state, attempt, *campaign, reason).await;
            }
            if let Some(attempt) = attempt {
                let event = CallEvent {
                    attempt_id: attempt,
                    at: switchboard_engine::time::now(),
                    kind: "stream.refused".into(),
                    data: json!({ "reason": e.to_string() }),
                };
                let _ = state.writer.append_events(vec![event]).await;
            }
        }
    }
}

/// Reads `connected` (optional) and `start`.
async fn read_start<S>(carrier: &mut WebSocketStream<S>) -> Result<StartInfo, SessionError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        while let Some(frame) = carrier.next().await {
            let text = match frame {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) => break,
                Ok(Message::Binary(_)) => return Err(SessionError::NoStart("binary frame".into())),
                Ok(_) => continue,
                Err(e) => return Err(SessionError::NoStart(e.to_string())),
            };
            match StreamEvent::parse(&text) {
                Ok(StreamEvent::Start { start, .. }) => return Ok(start),
                Ok(StreamEvent::Connected { .. }) => continue,
                Ok(other) => {
                    return Err(SessionError::NoStart(format!(
                        "{} before start",
                        other.kind().as_str()
                    )));
                }
                Err(e) => return Err(SessionError::NoStart(e.to_string())),
            }
        }
        Err(SessionError::NoStart("closed before start".into()))
    };
    tokio::time::timeout(START_TIMEOUT, read)
        .await
        .map_err(|_| SessionError::NoStart("timed out".into()))?
}

/// Looks up the call, opens the agent with the call context and relays.
async fn bridge<S>(
    state: &AppState,
    attempt_id: AttemptId,
    start: &StartInfo,
    answered: std::time::Instant,
    mut carrier: WebSocketStream<S>,
) -> Result<RelayStats, SessionError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let context = async {
        check_stream_key(state, attempt_id, start)?;
        let attempt = state.calls.store.attempt(attempt_id).await?;
        if attempt.status == AttemptStatus::Ended {
            return Err(SessionError::Ended(attempt_id));
        }
        check_call(state, &attempt, start)?;
        let (campaign, contact) = tokio::join!(
            state
                .calls
                .campaigns
                .get(&state.calls.store, attempt.tenant_id, attempt.campaign_id),
            state
                .calls
                .store
                .contact(attempt.tenant_id, attempt.contact_id)
        );
        Ok((attempt, campaign?, contact?))
    };
    let (attempt, campaign, contact) = match context.await {
        Ok(c) => c,
        Err(e) => {
            let _ = carrier.close(None).await;
            return Err(e);
        }
    };
    let context = switchboard_actors::context::call_context(
        &attempt,
        &campaign,
        &contact,
        &state.calls.urls,
        state.calls.call_token_secret.expose_secret().as_bytes(),
    );
    // The agent side: a media-stream agent's own URL, or the URL a LiveKit session yields
    // (the LiveKit Twilio connector), with the session closed when the call ends.
    let mut session = None;
    let url = match &campaign.config.agent {
        Some(AgentConfig::MediaStream { url }) => url.clone(),
        Some(AgentConfig::Livekit { .. }) => {
            let Some(livekit) = &state.calls.livekit else {
                let _ = carrier.close(None).await;
                return Err(SessionError::Agent("livekit is not configured".into()));
            };
            match livekit.open_session(&context).await {
                Ok(opened) => match opened.connector_url().map(str::to_owned) {
                    Some(url) => {
                        session = Some(opened);
                        url
                    }
                    None => {
                        let _ = opened.close().await;
                        let _ = carrier.close(None).await;
                        return Err(SessionError::Agent(
                            "the livekit session has no media stream url: enable livekit_twilio_connector"
                                .into(),
                        ));
                    }
                },
                Err(e) => {
                    let _ = carrier.close(None).await;
                    return Err(SessionError::Agent(format!("livekit session failed: {e}")));
                }
            }
        }
        Some(AgentConfig::Sip { .. }) => {
            let _ = carrier.close(None).await;
            return Err(SessionError::Agent(
                "a sip campaign's calls do not use media streams".into(),
            ));
        }
        None => {
            let _ = carrier.close(None).await;
            return Err(SessionError::Agent("the campaign has no agent".into()));
        }
    };
    let parameters = switchboard_actors::context::stream_parameters(&context);

    // A LiveKit session's connector URL is the operator's; a campaign's URL is the
    // tenant's and passes the destination guard.
    let connected = if session.is_some() {
        state
            .calls
            .agent
            .connect_trusted(&url, Some(media_socket_config()))
            .await
    } else {
        state
            .calls
            .agent
            .connect(&url, Some(media_socket_config()))
            .await
    };
    let mut agent = match connected {
        Ok(agent) => agent,
        Err(e) => {
            let _ = carrier.close(None).await;
            if let Some(session) = session.take() {
                let _ = session.close().await;
            }
            return Err(SessionError::AgentUnreachable {
                campaign: attempt.campaign_id,
                url,
                reason: e.to_string(),
            });
        }
    };
    let agent_start = StreamEvent::Start {
        sequence_number: Some("1".into()),
        stream_sid: start.stream_sid.clone(),
        start: StartInfo {
            stream_sid: start.stream_sid.clone(),
            account_sid: start.account_sid.clone(),
            call_sid: start.call_sid.clone(),
            tracks: start.tracks.clone(),
            media_format: MediaFormat {
                ..start.media_format.clone()
            },
            custom_parameters: parameters,
        },
    };
    let opened: Result<(), WsError> = async {
        agent
            .send(Message::text(StreamEvent::connected().to_json()))
            .await?;
        agent.send(Message::text(agent_start.to_json())).await
    }
    .await;
    if let Err(e) = opened {
        let _ = carrier.close(None).await;
        if let Some(session) = session.take() {
            let _ = session.close().await;
        }
        return Err(SessionError::AgentUnreachable {
            campaign: attempt.campaign_id,
            url,
            reason: e.to_string(),
        });
    }
    // Recorded while the audio already flows: nothing waits for the database here.
    let writer = state.writer.clone();
    let bridged = json!({ "agent_url": url });
    tokio::spawn(async move {
        if let Err(e) = writer.mark_bridged(attempt.id, bridged).await {
            tracing::error!(error = %e, call_id = %attempt.id, "could not record the bridge");
        }
    });
    state.calls.relays.bridged(attempt.id);
    let stop = state.calls.sessions.stop_token();
    let probe = CallProbe::new(state.calls.clone(), state.writer.clone(), attempt.id);
    let stats = relay(
        carrier,
        agent,
        &start.stream_sid,
        answered,
        RelayLimits::default(),
        stop,
        probe,
    )
    .await;
    if let Some(session) = session
        && let Err(e) = session.close().await
    {
        tracing::warn!(error = %e, call_id = %attempt.id, "could not close the livekit session");
    }
    Ok(stats)
}

/// The stream carries its call's key ([`switchboard_engine::call_token::stream_key`], a
/// `<Parameter>` of the TwiML only Switchboard and the carrier saw): the upgrade's
/// signature is the same for every call, so without the key a captured upgrade could
/// attach to any live call's agent. Checked before anything is read from the database.
fn check_stream_key(
    state: &AppState,
    attempt: AttemptId,
    start: &StartInfo,
) -> Result<(), SessionError> {
    let unbound = |reason| SessionError::Unbound { attempt, reason };
    let key = start
        .custom_parameters
        .get(switchboard_actors::dial::STREAM_KEY_PARAMETER)
        .ok_or(unbound("no stream_key parameter"))?;
    let secret = state.calls.call_token_secret.expose_secret().as_bytes();
    if !switchboard_engine::call_token::verify_stream_key(secret, attempt, key) {
        return Err(unbound("wrong stream_key"));
    }
    if state.calls.twilio_account_sid.as_deref() != Some(start.account_sid.as_str()) {
        return Err(unbound("accountSid is not this server's twilio account"));
    }
    Ok(())
}

/// The stream names the call the attempt placed, and is its first: a second stream for
/// a call already bridged (here or, as the attempt says, by another process) is refused.
/// An attempt whose call sid is not stored yet (the answer raced the create's response)
/// is bound by its key alone.
fn check_call(
    state: &AppState,
    attempt: &switchboard_engine::store::AttemptRecord,
    start: &StartInfo,
) -> Result<(), SessionError> {
    let unbound = |reason| SessionError::Unbound {
        attempt: attempt.id,
        reason,
    };
    if attempt
        .carrier_call_id
        .as_deref()
        .is_some_and(|sid| sid != start.call_sid)
    {
        return Err(unbound("callSid is not the attempt's call"));
    }
    if attempt.status == AttemptStatus::Bridged || !state.calls.relays.claim_stream(attempt.id) {
        return Err(unbound("the call already has a media stream"));
    }
    Ok(())
}

/// Stores what the relay saw with the call, and adds it to the server's totals.
async fn finish(state: &AppState, attempt: AttemptId, stats: &RelayStats) {
    let summary = stats.summary();
    tracing::info!(
        end = stats.end.code(),
        frames_in = stats.frames_from_carrier,
        frames_out = stats.frames_from_agent,
        "media stream ended"
    );
    state.calls.totals.add(stats);
    state.calls.relays.finished(attempt, stats);
    let now = switchboard_engine::time::now();
    if let Some(first) = stats.first_agent_audio {
        // Recorded when it was heard (see `CallProbe`); this only fills a gap left by a
        // failed write, and changes nothing otherwise.
        let since =
            chrono::Duration::from_std(stats.duration.saturating_sub(first)).unwrap_or_default();
        let ms = u64::try_from(first.as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = state
            .writer
            .record_first_agent_audio(attempt, now - since, ms)
            .await
        {
            tracing::error!(error = %e, "could not store the agent's first audio");
        }
    }
    let event = CallEvent {
        attempt_id: attempt,
        at: now,
        kind: "stream.ended".into(),
        data: json!(summary),
    };
    if let Err(e) = state.writer.append_events(vec![event]).await {
        tracing::error!(error = %e, "could not store the stream's events");
    }
    let mut detail = serde_json::Map::new();
    detail.insert("relay".into(), json!(summary));
    let update = switchboard_engine::store::AttemptUpdate {
        detail: Some(detail),
        ..Default::default()
    };
    if let Err(e) = state.writer.update_attempt(attempt, update).await {
        tracing::error!(error = %e, "could not store the relay summary");
    }
}
