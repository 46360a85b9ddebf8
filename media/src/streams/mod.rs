//! The Twilio Media Streams dialect: JSON text frames over a WebSocket.
//!
//! Switchboard speaks it twice: as the server Twilio connects to, and as "Twilio" toward
//! the agent. [`peek_event`] tells a frame's kind without decoding it, so the relay can
//! forward media frames as they came; [`StreamEvent::parse`] decodes fully when needed.

mod number_like;
pub mod outbound;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Longest text of a serde message kept in an error.
const MAX_REASON: usize = 200;

/// What kind of frame a message is, read from its `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `connected`: first message of a stream.
    Connected,
    /// `start`: stream metadata and custom parameters.
    Start,
    /// `media`: one chunk of base64 mu-law audio.
    Media,
    /// `dtmf`: a key press.
    Dtmf,
    /// `mark`: a label placed in the outgoing audio, echoed once played.
    Mark,
    /// `clear`: drop buffered outgoing audio (barge-in).
    Clear,
    /// `stop`: last message of a stream.
    Stop,
    /// Any other event name.
    Unknown,
}

impl EventKind {
    /// The kind named by an `event` value; unknown names give [`EventKind::Unknown`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "connected" => Self::Connected,
            "start" => Self::Start,
            "media" => Self::Media,
            "dtmf" => Self::Dtmf,
            "mark" => Self::Mark,
            "clear" => Self::Clear,
            "stop" => Self::Stop,
            _ => Self::Unknown,
        }
    }

    /// The wire name, e.g. `media`; `unknown` for [`EventKind::Unknown`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Start => "start",
            Self::Media => "media",
            Self::Dtmf => "dtmf",
            Self::Mark => "mark",
            Self::Clear => "clear",
            Self::Stop => "stop",
            Self::Unknown => "unknown",
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The frame is not JSON.
    #[error("stream message is not valid json: {0}")]
    Json(String),
    /// The frame is JSON but has no string `event` field.
    #[error("stream message has no string event field")]
    MissingEvent,
    /// A known event lacks a field or has one of the wrong type; the reason names it.
    #[error("invalid {event} message: {reason}")]
    Invalid {
        /// The event name.
        event: &'static str,
        /// What serde said, e.g. ``missing field `streamSid` ``.
        reason: String,
    },
    /// A media payload is not valid base64.
    #[error("invalid media payload: {0}")]
    Payload(String),
}

/// Stream metadata carried by the `start` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartInfo {
    /// Stream SID (`MZ…`).
    pub stream_sid: String,
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Call SID (`CA…`).
    pub call_sid: String,
    /// Tracks streamed, e.g. `["inbound"]`.
    #[serde(default)]
    pub tracks: Vec<String>,
    /// Audio encoding of `media` payloads.
    pub media_format: MediaFormat,
    /// The `<Parameter>` values from the TwiML.
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
}

/// Audio format of a stream: `audio/x-mulaw`, 8000 Hz, 1 channel on Twilio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    /// MIME-like encoding name, e.g. `audio/x-mulaw`.
    pub encoding: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
}

impl Default for MediaFormat {
    fn default() -> Self {
        Self {
            encoding: "audio/x-mulaw".to_owned(),
            sample_rate: crate::audio::SAMPLE_RATE,
            channels: 1,
        }
    }
}

/// One chunk of audio; only `payload` is present in frames sent to Twilio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaPayload {
    /// `inbound` or `outbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Chunk number, as a string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number_like::option"
    )]
    pub chunk: Option<String>,
    /// Milliseconds since the stream started, as a string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number_like::option"
    )]
    pub timestamp: Option<String>,
    /// Base64 of raw mu-law bytes.
    pub payload: String,
}

impl MediaPayload {
    /// Decodes `payload` into raw mu-law bytes.
    pub fn audio(&self) -> Result<Vec<u8>, StreamError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|error| StreamError::Payload(error.to_string()))
    }
}

/// A key press reported by the `dtmf` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfInfo {
    /// Track the tone was heard on, e.g. `inbound_track`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// The key: `0`-`9`, `*`, `#`.
    pub digit: String,
}

/// The label of a `mark` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkInfo {
    /// Name chosen by whoever placed the mark.
    pub name: String,
}

/// Identifiers carried by the `stop` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopInfo {
    /// Account SID.
    pub account_sid: String,
    /// Call SID.
    pub call_sid: String,
}

/// One Media Streams message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum StreamEvent {
    /// First message: the protocol and its version.
    Connected {
        /// `Call` on Twilio.
        protocol: String,
        /// `1.0.0` on Twilio.
        version: String,
    },
    /// Stream metadata, sent once after `connected`.
    #[serde(rename_all = "camelCase")]
    Start {
        /// Message number within the stream, as a string.
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// Stream SID.
        stream_sid: String,
        /// The metadata.
        start: StartInfo,
    },
    /// A chunk of audio.
    #[serde(rename_all = "camelCase")]
    Media {
        /// Message number within the stream (absent toward Twilio).
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// Stream SID.
        stream_sid: String,
        /// The audio and its position.
        media: MediaPayload,
    },
    /// A key press.
    #[serde(rename_all = "camelCase")]
    Dtmf {
        /// Message number within the stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// Stream SID.
        stream_sid: String,
        /// The key.
        dtmf: DtmfInfo,
    },
    /// A mark placed by the server, or its echo once the audio before it played.
    #[serde(rename_all = "camelCase")]
    Mark {
        /// Message number within the stream (absent toward Twilio).
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// Stream SID.
        stream_sid: String,
        /// The label.
        mark: MarkInfo,
    },
    /// Drop audio buffered toward the caller (barge-in); server to Twilio only.
    #[serde(rename_all = "camelCase")]
    Clear {
        /// Stream SID.
        stream_sid: String,
    },
    /// Last message of the stream.
    #[serde(rename_all = "camelCase")]
    Stop {
        /// Message number within the stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<String>,
        /// Stream SID.
        stream_sid: String,
        /// Call identifiers.
        stop: StopInfo,
    },
    /// An event this crate does not know; only its name is kept.
    #[serde(skip)]
    Unknown {
        /// The `event` value.
        event: String,
    },
}

/// Only the `event` field; everything else is skipped without being decoded.
#[derive(Deserialize)]
struct Peek<'a> {
    event: &'a str,
}

/// Tells a frame's event without decoding its payload or allocating.
///
/// `None` when the frame is not a JSON object with a plain string `event`.
pub fn peek_event(text: &str) -> Option<EventKind> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    // Twilio writes `event` first, as `{"event":"media",`: read the name without parsing
    // the rest. Frames that are shaped otherwise take the full (validating) path.
    if let Some(kind) = leading_event(text) {
        return Some(kind);
    }
    serde_json::from_str::<Peek<'_>>(text)
        .ok()
        .map(|peek| EventKind::from_name(peek.event))
}

/// The event of a frame that starts exactly `{"event":"NAME",` and ends with `}`, for a
/// name of known events; anything else is left to the parser.
fn leading_event(text: &str) -> Option<EventKind> {
    const PREFIX: &str = "{\"event\":\"";
    let rest = text.strip_prefix(PREFIX)?;
    if !text.ends_with('}') {
        return None;
    }
    let end = rest.find('"')?;
    let (name, after) = rest.split_at(end);
    if !after.starts_with("\",") {
        return None;
    }
    match EventKind::from_name(name) {
        EventKind::Unknown => None,
        kind => Some(kind),
    }
}

impl StreamEvent {
    /// Decodes one text frame; unknown events become [`StreamEvent::Unknown`].
    pub fn parse(text: &str) -> Result<StreamEvent, StreamError> {
        if !text.trim_start().starts_with('{') {
            // Serde would read a struct from a JSON array too; a frame must be an object.
            return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Err(StreamError::MissingEvent),
                Err(error) => Err(StreamError::Json(cut(error.to_string()))),
            };
        }
        let event = match serde_json::from_str::<OwnedPeek>(text) {
            Ok(OwnedPeek { event: Some(event) }) => event,
            Ok(OwnedPeek { event: None }) => return Err(StreamError::MissingEvent),
            Err(error) if error.is_data() => return Err(StreamError::MissingEvent),
            Err(error) => return Err(StreamError::Json(cut(error.to_string()))),
        };
        let kind = EventKind::from_name(&event);
        let invalid = |error: serde_json::Error| StreamError::Invalid {
            event: kind.as_str(),
            reason: cut(error.to_string()),
        };
        Ok(match kind {
            EventKind::Connected => {
                let ConnectedBody { protocol, version } =
                    serde_json::from_str(text).map_err(invalid)?;
                Self::Connected { protocol, version }
            }
            EventKind::Start => {
                let b: StartBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Start {
                    sequence_number: b.sequence_number,
                    stream_sid: b.stream_sid,
                    start: b.start,
                }
            }
            EventKind::Media => {
                let b: MediaBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Media {
                    sequence_number: b.sequence_number,
                    stream_sid: b.stream_sid,
                    media: b.media,
                }
            }
            EventKind::Dtmf => {
                let b: DtmfBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Dtmf {
                    sequence_number: b.sequence_number,
                    stream_sid: b.stream_sid,
                    dtmf: b.dtmf,
                }
            }
            EventKind::Mark => {
                let b: MarkBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Mark {
                    sequence_number: b.sequence_number,
                    stream_sid: b.stream_sid,
                    mark: b.mark,
                }
            }
            EventKind::Clear => {
                let b: ClearBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Clear {
                    stream_sid: b.stream_sid,
                }
            }
            EventKind::Stop => {
                let b: StopBody = serde_json::from_str(text).map_err(invalid)?;
                Self::Stop {
                    sequence_number: b.sequence_number,
                    stream_sid: b.stream_sid,
                    stop: b.stop,
                }
            }
            EventKind::Unknown => Self::Unknown { event },
        })
    }

    /// Encodes the message as one JSON text frame, `event` first, absent fields left out.
    pub fn to_json(&self) -> String {
        match self {
            Self::Unknown { event } => serde_json::json!({ "event": event }).to_string(),
            known => serde_json::to_string(known).unwrap_or_default(),
        }
    }

    /// The kind of this message.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Connected { .. } => EventKind::Connected,
            Self::Start { .. } => EventKind::Start,
            Self::Media { .. } => EventKind::Media,
            Self::Dtmf { .. } => EventKind::Dtmf,
            Self::Mark { .. } => EventKind::Mark,
            Self::Clear { .. } => EventKind::Clear,
            Self::Stop { .. } => EventKind::Stop,
            Self::Unknown { .. } => EventKind::Unknown,
        }
    }

    /// The stream SID, for every event that carries one.
    pub fn stream_sid(&self) -> Option<&str> {
        match self {
            Self::Start { stream_sid, .. }
            | Self::Media { stream_sid, .. }
            | Self::Dtmf { stream_sid, .. }
            | Self::Mark { stream_sid, .. }
            | Self::Clear { stream_sid }
            | Self::Stop { stream_sid, .. } => Some(stream_sid),
            Self::Connected { .. } | Self::Unknown { .. } => None,
        }
    }

    /// The `connected` message Twilio sends first (`protocol` `Call`, version `1.0.0`).
    pub fn connected() -> Self {
        Self::Connected {
            protocol: "Call".to_owned(),
            version: "1.0.0".to_owned(),
        }
    }

    /// An outgoing `media` frame (payload only) carrying raw mu-law `audio`.
    pub fn media_from_audio(stream_sid: impl Into<String>, audio: &[u8]) -> Self {
        Self::Media {
            sequence_number: None,
            stream_sid: stream_sid.into(),
            media: MediaPayload {
                track: None,
                chunk: None,
                timestamp: None,
                payload: base64::engine::general_purpose::STANDARD.encode(audio),
            },
        }
    }

    /// An outgoing `mark` frame.
    pub fn mark(stream_sid: impl Into<String>, name: impl Into<String>) -> Self {
        Self::Mark {
            sequence_number: None,
            stream_sid: stream_sid.into(),
            mark: MarkInfo { name: name.into() },
        }
    }

    /// A `clear` frame (barge-in).
    pub fn clear(stream_sid: impl Into<String>) -> Self {
        Self::Clear {
            stream_sid: stream_sid.into(),
        }
    }
}

fn cut(mut text: String) -> String {
    if let Some((index, _)) = text.char_indices().nth(MAX_REASON) {
        text.truncate(index);
    }
    text
}

/// The `event` field, owned and optional, for error reporting in [`StreamEvent::parse`].
#[derive(Deserialize)]
struct OwnedPeek {
    #[serde(default)]
    event: Option<String>,
}

#[derive(Deserialize)]
struct ConnectedBody {
    protocol: String,
    version: String,
}

/// Declares the private decoding target of one stream-bound event: the shared
/// `sequenceNumber` and `streamSid`, plus the event's own object.
macro_rules! body {
    ($name:ident { $($field:ident: $ty:ty),* }) => {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct $name {
            #[serde(default, deserialize_with = "number_like::option")]
            sequence_number: Option<String>,
            stream_sid: String,
            $($field: $ty,)*
        }
    };
}

body!(StartBody { start: StartInfo });
body!(MediaBody {
    media: MediaPayload
});
body!(DtmfBody { dtmf: DtmfInfo });
body!(MarkBody { mark: MarkInfo });
body!(StopBody { stop: StopInfo });

/// `clear` carries only the stream SID.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClearBody {
    stream_sid: String,
}

#[cfg(test)]
mod tests;
