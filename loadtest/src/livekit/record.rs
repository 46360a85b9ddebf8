//! What the simulated LiveKit saw and did, kept for assertions.

use std::time::Duration;

use livekit_api::access_token::Claims;
use livekit_protocol as proto;

/// One Twirp request.
#[derive(Debug, Clone)]
pub struct TwirpRequest {
    /// `livekit.RoomService`, `livekit.AgentDispatchService`, `livekit.SIP`, …
    pub service: String,
    /// `CreateRoom`, `CreateDispatch`, …
    pub method: String,
    /// The verified token's claims (`None`: no or an invalid token).
    pub claims: Option<Claims>,
    /// The Twirp error code answered, if any.
    pub error: Option<String>,
}

impl TwirpRequest {
    /// `Service/Method` without the `livekit.` package.
    pub fn name(&self) -> String {
        let service = self
            .service
            .strip_prefix("livekit.")
            .unwrap_or(&self.service);
        format!("{service}/{}", self.method)
    }
}

/// A room, as created (by `CreateRoom`, or implicitly by a dispatch or a SIP call).
#[derive(Debug, Clone, PartialEq)]
pub struct SimRoom {
    /// The room as LiveKit returns it.
    pub room: proto::Room,
    /// Created by `CreateRoom` (not implicitly).
    pub explicit: bool,
    /// Deleted by `DeleteRoom`.
    pub deleted: bool,
    /// Participants in the room now.
    pub participants: Vec<proto::ParticipantInfo>,
}

impl SimRoom {
    /// The room's name.
    pub fn name(&self) -> &str {
        &self.room.name
    }
}

/// An agent dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDispatch {
    /// The dispatch as returned.
    pub dispatch: proto::AgentDispatch,
    /// The metadata, parsed as JSON when it is.
    pub metadata_json: Option<serde_json::Value>,
}

/// An outcome the simulated agent of a SIP call reported to Switchboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAgentReport {
    /// The call's room.
    pub room: String,
    /// The call id sent (from the dispatch metadata).
    pub call_id: String,
    /// The outcome reported.
    pub outcome: crate::agent::Outcome,
    /// Switchboard's HTTP status (`None`: no answer).
    pub http_status: Option<u16>,
    /// Why the report failed, if it did.
    pub error: Option<String>,
}

/// Where a SIP call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipCallState {
    /// Still ringing.
    Ringing,
    /// Answered; the callee is in the room.
    Answered,
    /// Ended with a final SIP failure.
    Rejected {
        /// SIP status code.
        code: u16,
    },
    /// Nobody answered within the ringing timeout.
    NoAnswer,
    /// The room was deleted before the call connected.
    Canceled,
    /// Answered, then ended (the callee hung up, the room was deleted, or the maximum
    /// duration passed).
    Ended,
}

/// A `CreateSIPParticipant` call.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSipCall {
    /// The request as received.
    pub request: proto::CreateSipParticipantRequest,
    /// What was (or will be) returned on success.
    pub info: proto::SipParticipantInfo,
    /// The ringing timeout applied.
    pub ringing_timeout: Duration,
    /// The maximum call duration requested, if any.
    pub max_call_duration: Option<Duration>,
    /// Where the call is.
    pub state: SipCallState,
}

/// A webhook the simulator emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentWebhook {
    /// The event.
    pub event: proto::WebhookEvent,
    /// The JSON body sent.
    pub body: String,
    /// The receiver's HTTP status (`None`: no webhook URL, or the request failed).
    pub status: Option<u16>,
    /// Why delivery failed, if it did.
    pub error: Option<String>,
}

impl SentWebhook {
    /// The event name (`room_started`, …).
    pub fn name(&self) -> &str {
        &self.event.event
    }

    /// The room name.
    pub fn room(&self) -> &str {
        self.event.room.as_ref().map_or("", |r| r.name.as_str())
    }

    /// The participant's identity, for participant events.
    pub fn participant(&self) -> Option<&str> {
        self.event.participant.as_ref().map(|p| p.identity.as_str())
    }
}

/// From a protobuf duration's `(seconds, nanos)` (negative or absent: `None`).
pub(crate) fn duration(parts: Option<(i64, i32)>) -> Option<Duration> {
    let (seconds, nanos) = parts?;
    let secs = u64::try_from(seconds).ok()?;
    let nanos = u64::try_from(nanos).ok()?;
    Some(Duration::from_secs(secs) + Duration::from_nanos(nanos))
}
