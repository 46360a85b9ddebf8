//! LiveKit's webhooks: verifying them (a JWT in `Authorization` whose `sha256` claim is
//! the body's hash, checked by `livekit-api`'s `WebhookReceiver`), reading room and
//! participant events as events of the call the room belongs to, and signing them the way
//! LiveKit does (for simulators and tests).

use base64::Engine;
use livekit_api::access_token::{AccessToken, TokenVerifier};
use livekit_api::webhooks::{WebhookError as ReceiverError, WebhookReceiver};
use livekit_protocol as proto;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::agents::LiveKitParticipant;
use super::config::LiveKitConfig;
use super::context::call_id_from_room;
use super::error::LiveKitError;

/// The content type LiveKit posts webhooks with.
pub const WEBHOOK_CONTENT_TYPE: &str = "application/webhook+json";

/// How long a webhook token LiveKit signs stays valid.
pub const WEBHOOK_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No `Authorization` header.
    #[error("missing authorization header")]
    MissingAuthorization,
    /// The token is not ours: bad signature, another key, expired, not a JWT.
    #[error("invalid webhook token: {0}")]
    InvalidToken(String),
    /// The token is valid but signs another body.
    #[error("webhook body does not match the signed sha256")]
    BodyMismatch,
    /// Authentic, but not a webhook event.
    #[error("malformed webhook event: {0}")]
    Malformed(String),
}

impl WebhookError {
    /// True when the request is not authentic (answer 403 and record nothing); false for
    /// an authentic body that could not be read (answer 400).
    pub fn is_forged(&self) -> bool {
        !matches!(self, Self::Malformed(_))
    }
}

/// Verifies webhooks signed with the project's API key and secret.
#[derive(Debug, Clone)]
pub struct WebhookVerifier {
    receiver: WebhookReceiver,
}

impl WebhookVerifier {
    /// A verifier for webhooks signed with this configuration's key and secret.
    pub fn new(config: &LiveKitConfig) -> WebhookVerifier {
        let verifier = TokenVerifier::with_api_key(&config.api_key, config.secret());
        WebhookVerifier {
            receiver: WebhookReceiver::new(verifier),
        }
    }

    /// Checks the token in `authorization` (LiveKit sends it bare; a `Bearer ` prefix is
    /// tolerated) and the body's hash, then reads the event.
    pub fn verify(
        &self,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Result<LiveKitCallEvent, WebhookError> {
        let token = authorization
            .map(|value| value.trim())
            .map(|value| value.strip_prefix("Bearer ").unwrap_or(value).trim())
            .filter(|value| !value.is_empty())
            .ok_or(WebhookError::MissingAuthorization)?;
        // A body that is not UTF-8 cannot be what LiveKit signed.
        let text = std::str::from_utf8(body).map_err(|_| WebhookError::BodyMismatch)?;
        let event = self.receiver.receive(text, token).map_err(|e| match e {
            ReceiverError::InvalidAuth(e) => WebhookError::InvalidToken(e.to_string()),
            ReceiverError::InvalidSignature | ReceiverError::InvalidBase64(_) => {
                WebhookError::BodyMismatch
            }
            ReceiverError::InvalidData(e) => WebhookError::Malformed(e.to_string()),
        })?;
        Ok(LiveKitCallEvent::from(&event))
    }
}

/// Signs a webhook body as LiveKit does: an HS256 JWT (`iss` = key, valid 5 minutes) whose
/// `sha256` claim is base64(sha256(body)); send it as `Authorization: <jwt>` (no `Bearer`)
/// with `Content-Type: application/webhook+json`.
pub fn sign_webhook(config: &LiveKitConfig, body: &[u8]) -> Result<String, LiveKitError> {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    AccessToken::with_api_key(&config.api_key, config.secret())
        .with_ttl(WEBHOOK_TOKEN_TTL)
        .with_sha256(&hash)
        .to_jwt()
        .map_err(|e| LiveKitError::Config(format!("access token: {e}")))
}

/// What happened in a room, by LiveKit's event name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveKitEventKind {
    /// The room was created.
    RoomStarted,
    /// The room closed (deleted, or empty past its timeout).
    RoomFinished,
    /// A participant (the agent, the SIP callee) joined.
    ParticipantJoined,
    /// A participant left.
    ParticipantLeft,
    /// A participant failed to connect.
    ParticipantConnectionAborted,
    /// A track was published.
    TrackPublished,
    /// A track was unpublished.
    TrackUnpublished,
    /// Any other event (egress, ingress, agent jobs, …), by name.
    #[serde(untagged)]
    Other(String),
}

impl LiveKitEventKind {
    /// From LiveKit's event name.
    pub fn parse(name: &str) -> LiveKitEventKind {
        match name {
            "room_started" => Self::RoomStarted,
            "room_finished" => Self::RoomFinished,
            "participant_joined" => Self::ParticipantJoined,
            "participant_left" => Self::ParticipantLeft,
            "participant_connection_aborted" => Self::ParticipantConnectionAborted,
            "track_published" => Self::TrackPublished,
            "track_unpublished" => Self::TrackUnpublished,
            other => Self::Other(other.to_owned()),
        }
    }

    /// LiveKit's event name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RoomStarted => "room_started",
            Self::RoomFinished => "room_finished",
            Self::ParticipantJoined => "participant_joined",
            Self::ParticipantLeft => "participant_left",
            Self::ParticipantConnectionAborted => "participant_connection_aborted",
            Self::TrackPublished => "track_published",
            Self::TrackUnpublished => "track_unpublished",
            Self::Other(name) => name,
        }
    }
}

/// A verified webhook event, reduced to what a call needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveKitCallEvent {
    /// What happened.
    pub kind: LiveKitEventKind,
    /// LiveKit's unique event id (deliveries can repeat: use it to deduplicate).
    pub id: String,
    /// When LiveKit created the event (Unix seconds; 0 when absent).
    pub created_at: i64,
    /// The room's name (`call-<id>` for Switchboard's rooms; empty when none).
    pub room: String,
    /// The room's id (`RM_…`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room_sid: String,
    /// The participant, for `participant_*` and `track_*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<LiveKitParticipant>,
}

impl LiveKitCallEvent {
    /// The call the event belongs to, when the room is one of Switchboard's.
    pub fn call_id(&self) -> Option<i64> {
        call_id_from_room(&self.room)
    }

    /// The call event kind it is stored as: `livekit.participant_joined`, …
    pub fn event_kind(&self) -> String {
        format!("livekit.{}", self.kind.as_str())
    }
}

impl From<&proto::WebhookEvent> for LiveKitCallEvent {
    fn from(event: &proto::WebhookEvent) -> Self {
        let room = event.room.as_ref();
        LiveKitCallEvent {
            kind: LiveKitEventKind::parse(&event.event),
            id: event.id.clone(),
            created_at: event.created_at,
            room: room.map(|r| r.name.clone()).unwrap_or_default(),
            room_sid: room.map(|r| r.sid.clone()).unwrap_or_default(),
            participant: event.participant.as_ref().map(LiveKitParticipant::from),
        }
    }
}

/// Where verified room and participant events of calls go (the call runtime provides
/// one; Switchboard's default records them as call events).
pub trait LiveKitEventSink: Send + Sync {
    /// One event of call `call_id`. Must not block: hand slow work to a task.
    fn on_event(&self, call_id: i64, event: LiveKitCallEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> LiveKitConfig {
        LiveKitConfig::new("http://127.0.0.1:7880", "APIkey", secret.to_owned().into())
    }

    const BODY: &str = r#"{"event":"participant_joined","room":{"sid":"RM_1","name":"call-42"},"participant":{"sid":"PA_1","identity":"callee-42","kind":"SIP","state":"ACTIVE"},"id":"EV_1","createdAt":"1700000000"}"#;

    #[test]
    fn a_signed_event_verifies_and_names_its_call() {
        let verifier = WebhookVerifier::new(&config("secret"));
        let token = sign_webhook(&config("secret"), BODY.as_bytes()).unwrap();
        let event = verifier.verify(BODY.as_bytes(), Some(&token)).unwrap();
        assert_eq!(event.kind, LiveKitEventKind::ParticipantJoined);
        assert_eq!(event.call_id(), Some(42));
        assert_eq!(event.created_at, 1_700_000_000);
        assert_eq!(event.event_kind(), "livekit.participant_joined");
        let participant = event.participant.unwrap();
        assert_eq!(
            (participant.kind.as_str(), participant.state.as_str()),
            ("sip", "active")
        );
        let bearer = format!("Bearer {token}");
        assert!(verifier.verify(BODY.as_bytes(), Some(&bearer)).is_ok());
    }

    #[test]
    fn forged_webhooks_are_refused() {
        let verifier = WebhookVerifier::new(&config("secret"));
        let token = sign_webhook(&config("secret"), BODY.as_bytes()).unwrap();
        let missing = verifier.verify(BODY.as_bytes(), None).unwrap_err();
        assert_eq!(missing, WebhookError::MissingAuthorization);
        let other_secret = sign_webhook(&config("another"), BODY.as_bytes()).unwrap();
        let wrong = verifier
            .verify(BODY.as_bytes(), Some(&other_secret))
            .unwrap_err();
        assert!(matches!(wrong, WebhookError::InvalidToken(_)), "{wrong:?}");
        let tampered = BODY.replace("call-42", "call-43");
        let mismatch = verifier
            .verify(tampered.as_bytes(), Some(&token))
            .unwrap_err();
        assert_eq!(mismatch, WebhookError::BodyMismatch);
        let garbage = verifier
            .verify(BODY.as_bytes(), Some("not-a-jwt"))
            .unwrap_err();
        assert!(garbage.is_forged());
        for error in [missing, wrong, mismatch] {
            assert!(error.is_forged());
        }
    }

    #[test]
    fn an_authentic_body_that_is_not_an_event_is_malformed_not_forged() {
        let body = b"[1,2,3]";
        let token = sign_webhook(&config("secret"), body).unwrap();
        let error = WebhookVerifier::new(&config("secret"))
            .verify(body, Some(&token))
            .unwrap_err();
        assert!(matches!(error, WebhookError::Malformed(_)) && !error.is_forged());
    }

    #[test]
    fn unknown_event_names_are_kept() {
        let kind = LiveKitEventKind::parse("egress_started");
        assert_eq!(kind.as_str(), "egress_started");
        assert_eq!(serde_json::to_string(&kind).unwrap(), "\"egress_started\"");
        assert_eq!(
            serde_json::to_string(&LiveKitEventKind::RoomStarted).unwrap(),
            "\"room_started\""
        );
    }
}
