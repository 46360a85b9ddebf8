//! What may go to the carrier: the agent's frames, checked the way Twilio checks them
//! before they reach the caller.
//!
//! Twilio accepts three messages from the server on a bidirectional stream: `media` with
//! only `event`, `streamSid` and `media.payload` (base64 of μ-law), `mark` with a
//! `mark.name`, and `clear`, each with the stream's own `streamSid`; anything else is
//! flagged (warning 31951) or, for binary frames, an error (31950). An agent sits between
//! Switchboard and the caller, so its frames are checked here:
//!
//! - a frame that is already exactly right (the common case: `event` first, this stream's
//!   SID, a clean payload) is forwarded as it came, checked without being parsed;
//! - a frame that means something valid but is shaped otherwise (spaces, other key order,
//!   extra fields, another or no `streamSid`) is re-encoded in the canonical form with this
//!   stream's SID: the carrier only ever sees its own `streamSid`;
//! - a frame that means nothing valid (not JSON, no payload, a payload that is not base64,
//!   a mark without a name, an event the server may not send) is dropped with the reason.
//!
//! One bad frame never ends a call: the caller hears a 20 ms gap, not a hang-up.

use super::{EventKind, StreamEvent};
use base64::Engine as _;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Why an agent's frame was not sent to the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameViolation {
    /// A binary WebSocket frame (Twilio error 31950).
    Binary,
    /// Text that is not a JSON object with a string `event`.
    NotAnEvent,
    /// An event a server may not send on a stream (`start`, `stop`, `dtmf`, unknown).
    UnsupportedEvent,
    /// A `media` frame without `media.payload`, or with fields of the wrong type.
    MissingPayload,
    /// A `media` payload that is empty or not valid base64.
    InvalidPayload,
    /// A `mark` frame without a string `mark.name`.
    MissingMarkName,
}

impl FrameViolation {
    /// Every violation, for metrics that list them all.
    pub const ALL: [FrameViolation; 6] = [
        FrameViolation::Binary,
        FrameViolation::NotAnEvent,
        FrameViolation::UnsupportedEvent,
        FrameViolation::MissingPayload,
        FrameViolation::InvalidPayload,
        FrameViolation::MissingMarkName,
    ];

    /// A short code for metrics labels and call events.
    pub fn code(self) -> &'static str {
        match self {
            FrameViolation::Binary => "binary",
            FrameViolation::NotAnEvent => "not_an_event",
            FrameViolation::UnsupportedEvent => "unsupported_event",
            FrameViolation::MissingPayload => "missing_payload",
            FrameViolation::InvalidPayload => "invalid_payload",
            FrameViolation::MissingMarkName => "missing_mark_name",
        }
    }
}

/// What to do with one text frame from the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Forward the frame exactly as it came.
    Forward(EventKind),
    /// Send this canonical re-encoding instead (the frame meant something valid).
    Rewrite(EventKind, String),
    /// Send nothing.
    Drop(FrameViolation),
}

impl Outbound {
    /// The kind of event sent, if any.
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            Outbound::Forward(kind) | Outbound::Rewrite(kind, _) => Some(*kind),
            Outbound::Drop(_) => None,
        }
    }
}

/// Checks one text frame from the agent for the stream `stream_sid`.
pub fn check_agent_frame(text: &str, stream_sid: &str) -> Outbound {
    if is_canonical_media(text, stream_sid) {
        return Outbound::Forward(EventKind::Media);
    }
    match normalize(text, stream_sid) {
        // A mark or clear already in its canonical form goes as it came.
        Outbound::Rewrite(kind, canonical) if canonical == text => Outbound::Forward(kind),
        other => other,
    }
}

/// `{"event":"media","streamSid":"<sid>","media":{"payload":"<base64>"}}`, exactly.
fn is_canonical_media(text: &str, stream_sid: &str) -> bool {
    let Some(rest) = text.strip_prefix(r#"{"event":"media","streamSid":""#) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(stream_sid) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(r#"","media":{"payload":""#) else {
        return false;
    };
    rest.strip_suffix(r#""}}"#).is_some_and(is_base64)
}

/// Standard base64 with padding, non-empty: what Twilio decodes into μ-law bytes. Checked
/// byte by byte without decoding.
fn is_base64(payload: &str) -> bool {
    let bytes = payload.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return false;
    }
    let body = &bytes[..bytes.len() - padding];
    if !body
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    {
        return false;
    }
    // The last character before padding must not carry bits past the data (strict decoders
    // such as Twilio's refuse them); the standard engine checks exactly that.
    padding == 0
        || base64::engine::general_purpose::STANDARD
            .decode(&payload[payload.len() - 4..])
            .is_ok()
}

#[derive(Deserialize)]
struct AnyFrame<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(default)]
    media: Option<MediaBody<'a>>,
    #[serde(default)]
    mark: Option<MarkBody<'a>>,
    #[serde(flatten, borrow)]
    _rest: BTreeMap<Cow<'a, str>, IgnoredAny>,
}

#[derive(Deserialize)]
struct MediaBody<'a> {
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MarkBody<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

/// The slow path: parse, decide, re-encode with this stream's SID.
fn normalize(text: &str, stream_sid: &str) -> Outbound {
    if !text.trim_start().starts_with('{') {
        return Outbound::Drop(FrameViolation::NotAnEvent);
    }
    let frame: AnyFrame<'_> = match serde_json::from_str(text) {
        Ok(frame) => frame,
        Err(_) => {
            // A known event whose `media` or `mark` has the wrong shape still names itself.
            return match super::peek_event(text) {
                Some(EventKind::Media) => Outbound::Drop(FrameViolation::MissingPayload),
                Some(EventKind::Mark) => Outbound::Drop(FrameViolation::MissingMarkName),
                Some(EventKind::Clear) => {
                    Outbound::Rewrite(EventKind::Clear, StreamEvent::clear(stream_sid).to_json())
                }
                Some(_) => Outbound::Drop(FrameViolation::UnsupportedEvent),
                None => Outbound::Drop(FrameViolation::NotAnEvent),
            };
        }
    };
    match EventKind::from_name(&frame.event) {
        EventKind::Media => {
            let Some(payload) = frame.media.and_then(|m| m.payload) else {
                return Outbound::Drop(FrameViolation::MissingPayload);
            };
            if !is_base64(&payload) {
                return Outbound::Drop(FrameViolation::InvalidPayload);
            }
            let canonical = format!(
                r#"{{"event":"media","streamSid":{},"media":{{"payload":"{payload}"}}}}"#,
                serde_json::Value::from(stream_sid)
            );
            Outbound::Rewrite(EventKind::Media, canonical)
        }
        EventKind::Mark => match frame.mark.and_then(|m| m.name) {
            Some(name) => Outbound::Rewrite(
                EventKind::Mark,
                StreamEvent::mark(stream_sid, name.into_owned()).to_json(),
            ),
            None => Outbound::Drop(FrameViolation::MissingMarkName),
        },
        EventKind::Clear => {
            Outbound::Rewrite(EventKind::Clear, StreamEvent::clear(stream_sid).to_json())
        }
        _ => Outbound::Drop(FrameViolation::UnsupportedEvent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "MZ00000000000000000000000000000001";

    fn media(payload: &str) -> String {
        format!(r#"{{"event":"media","streamSid":"{SID}","media":{{"payload":"{payload}"}}}}"#)
    }

    #[test]
    fn canonical_marks_and_clears_are_forwarded_as_they_came() {
        for frame in [
            StreamEvent::mark(SID, "greeting").to_json(),
            StreamEvent::clear(SID).to_json(),
        ] {
            assert!(
                matches!(check_agent_frame(&frame, SID), Outbound::Forward(_)),
                "{frame}"
            );
        }
    }

    #[test]
    fn a_canonical_media_frame_is_forwarded_as_it_came() {
        let payload = base64::engine::general_purpose::STANDARD.encode([0xffu8; 160]);
        assert_eq!(
            check_agent_frame(&media(&payload), SID),
            Outbound::Forward(EventKind::Media)
        );
        assert_eq!(
            check_agent_frame(&media("/w=="), SID),
            Outbound::Forward(EventKind::Media)
        );
    }

    #[test]
    fn a_media_frame_in_another_layout_is_rewritten_to_the_canonical_one() {
        // Python's json.dumps puts spaces after separators; some agents add fields.
        let spaced = format!(
            r#"{{"event": "media", "streamSid": "{SID}", "media": {{"payload": "/w=="}}}}"#
        );
        let extra = format!(
            r#"{{"streamSid":"{SID}","event":"media","sequenceNumber":"4","media":{{"track":"outbound","payload":"/w==","chunk":"2"}}}}"#
        );
        for text in [spaced, extra] {
            assert_eq!(
                check_agent_frame(&text, SID),
                Outbound::Rewrite(EventKind::Media, media("/w==")),
                "{text}"
            );
        }
    }

    #[test]
    fn the_carrier_only_ever_sees_its_own_stream_sid() {
        let other = r#"{"event":"media","streamSid":"MZother","media":{"payload":"/w=="}}"#;
        let missing = r#"{"event":"media","media":{"payload":"/w=="}}"#;
        for text in [other, missing] {
            assert_eq!(
                check_agent_frame(text, SID),
                Outbound::Rewrite(EventKind::Media, media("/w=="))
            );
        }
        let mark = r#"{"event":"mark","streamSid":"MZother","mark":{"name":"greeting"}}"#;
        assert_eq!(
            check_agent_frame(mark, SID),
            Outbound::Rewrite(
                EventKind::Mark,
                StreamEvent::mark(SID, "greeting").to_json()
            )
        );
        let clear = r#"{"event":"clear"}"#;
        assert_eq!(
            check_agent_frame(clear, SID),
            Outbound::Rewrite(EventKind::Clear, StreamEvent::clear(SID).to_json())
        );
    }

    #[test]
    fn frames_that_mean_nothing_valid_are_dropped_with_their_reason() {
        let cases = [
            ("not json", FrameViolation::NotAnEvent),
            ("[1,2]", FrameViolation::NotAnEvent),
            ("{\"media\":{}}", FrameViolation::NotAnEvent),
            ("{\"event\":7}", FrameViolation::NotAnEvent),
            (
                "{\"event\":\"media\",\"media\":{}}",
                FrameViolation::MissingPayload,
            ),
            ("{\"event\":\"media\"}", FrameViolation::MissingPayload),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":7}}",
                FrameViolation::MissingPayload,
            ),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":\"\"}}",
                FrameViolation::InvalidPayload,
            ),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":\"abc\"}}",
                FrameViolation::InvalidPayload,
            ),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":\"ab!d\"}}",
                FrameViolation::InvalidPayload,
            ),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":\"a===\"}}",
                FrameViolation::InvalidPayload,
            ),
            (
                "{\"event\":\"media\",\"media\":{\"payload\":\"/x==\"}}",
                FrameViolation::InvalidPayload,
            ),
            (
                "{\"event\":\"mark\",\"mark\":{}}",
                FrameViolation::MissingMarkName,
            ),
            ("{\"event\":\"mark\"}", FrameViolation::MissingMarkName),
            (
                "{\"event\":\"stop\",\"stop\":{}}",
                FrameViolation::UnsupportedEvent,
            ),
            ("{\"event\":\"start\"}", FrameViolation::UnsupportedEvent),
            ("{\"event\":\"dtmf\"}", FrameViolation::UnsupportedEvent),
            ("{\"event\":\"hello\"}", FrameViolation::UnsupportedEvent),
        ];
        for (text, violation) in cases {
            assert_eq!(
                check_agent_frame(text, SID),
                Outbound::Drop(violation),
                "{text}"
            );
        }
    }

    #[test]
    fn a_payload_of_the_canonical_shape_but_bad_base64_takes_the_checked_path() {
        assert_eq!(
            check_agent_frame(&media("ab!d"), SID),
            Outbound::Drop(FrameViolation::InvalidPayload)
        );
    }

    #[test]
    fn the_base64_check_agrees_with_a_strict_decoder() {
        let engine = base64::engine::general_purpose::STANDARD;
        for len in 1..40usize {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let encoded = engine.encode(&bytes);
            assert!(is_base64(&encoded), "{encoded}");
        }
        for text in [
            "A", "AB", "ABC", "AB=C", "====", "A===", "AB==CD==", "AQ==", "AR==",
        ] {
            assert_eq!(is_base64(text), engine.decode(text).is_ok(), "{text:?}");
        }
        assert!(!is_base64(""), "an empty payload is no audio");
    }
}
