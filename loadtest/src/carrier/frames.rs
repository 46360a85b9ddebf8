//! Checks every frame the far side (Switchboard) sends on a media stream the way Twilio
//! does: a bidirectional stream accepts only `media` (exactly `event`, `streamSid` and
//! `media.payload`, base64 μ-law), `mark` (`event`, `streamSid`, `mark.name`) and `clear`
//! (`event`, `streamSid`), always with the stream's own `streamSid`, as JSON text. Anything
//! else raises Twilio's warning 31951 (binary frames: error 31950) and is dropped; here it is
//! counted per kind, so any test can assert there were none.
//!
//! The check is cheap for the frame that matters (50 a second per call): a `media` frame
//! laid out exactly as `{"event":"media","streamSid":"MZ…","media":{"payload":"…"}}` is
//! recognised by comparing its prefix and suffix and scanning the payload's alphabet, with
//! no JSON parse and no allocation. Any other layout takes the full parse.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde_json::{Map, Value};

/// What a valid frame from the far side asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FarFrame<'a> {
    /// Audio to play (the payload, base64).
    Media,
    /// A mark to echo once the audio before it has played.
    Mark(std::borrow::Cow<'a, str>),
    /// Drop the buffered audio.
    Clear,
}

/// Why Twilio would refuse a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameViolation {
    /// A binary WebSocket frame (31950).
    Binary,
    /// Text that is not a JSON object.
    NotJson,
    /// An `event` other than `media`, `mark` or `clear` (or none).
    UnknownEvent,
    /// A `streamSid` that is missing or not this stream's.
    WrongStreamSid,
    /// A required field is missing or of the wrong type (`media.payload`, `mark.name`).
    MissingField,
    /// A field Twilio does not accept on this message (e.g. `sequenceNumber`,
    /// `media.track`).
    UnexpectedField,
    /// A `media.payload` that is empty or not valid base64.
    BadPayload,
}

/// Counts of refused frames, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameViolations {
    /// Binary frames.
    pub binary: u64,
    /// Text that is not a JSON object.
    pub not_json: u64,
    /// Unknown or missing `event`.
    pub unknown_event: u64,
    /// Missing or foreign `streamSid`.
    pub wrong_stream_sid: u64,
    /// Missing required fields.
    pub missing_field: u64,
    /// Fields Twilio does not accept.
    pub unexpected_field: u64,
    /// Empty or non-base64 payloads.
    pub bad_payload: u64,
}

impl FrameViolations {
    /// All refused frames.
    pub fn total(&self) -> u64 {
        self.binary
            + self.not_json
            + self.unknown_event
            + self.wrong_stream_sid
            + self.missing_field
            + self.unexpected_field
            + self.bad_payload
    }
}

/// [`FrameViolations`] as counters bumped from the media path.
#[derive(Debug, Default)]
pub(crate) struct ViolationCounts {
    counts: [AtomicU64; 7],
}

impl ViolationCounts {
    pub(crate) fn bump(&self, violation: FrameViolation) {
        self.counts[violation as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> FrameViolations {
        let read = |v: FrameViolation| self.counts[v as usize].load(Ordering::Relaxed);
        FrameViolations {
            binary: read(FrameViolation::Binary),
            not_json: read(FrameViolation::NotJson),
            unknown_event: read(FrameViolation::UnknownEvent),
            wrong_stream_sid: read(FrameViolation::WrongStreamSid),
            missing_field: read(FrameViolation::MissingField),
            unexpected_field: read(FrameViolation::UnexpectedField),
            bad_payload: read(FrameViolation::BadPayload),
        }
    }
}

const MEDIA_HEAD: &str = r#"{"event":"media","streamSid":""#;
const MEDIA_MIDDLE: &str = r#"","media":{"payload":""#;
const MEDIA_TAIL: &str = r#""}}"#;

/// Checks one text frame from the far side of stream `stream_sid`.
pub(crate) fn check<'a>(text: &'a str, stream_sid: &str) -> Result<FarFrame<'a>, FrameViolation> {
    if let Some(payload) = exact_media_payload(text, stream_sid) {
        return if plausible_base64(payload) {
            Ok(FarFrame::Media)
        } else {
            Err(FrameViolation::BadPayload)
        };
    }
    full_check(text, stream_sid)
}

/// The payload of a `media` frame in Twilio's exact layout for this stream, if it is one.
fn exact_media_payload<'a>(text: &'a str, stream_sid: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(MEDIA_HEAD)?;
    let rest = rest.strip_prefix(stream_sid)?;
    let rest = rest.strip_prefix(MEDIA_MIDDLE)?;
    let payload = rest.strip_suffix(MEDIA_TAIL)?;
    // A quote or backslash inside means the layout is not the simple one: parse it.
    (!payload.bytes().any(|b| b == b'"' || b == b'\\')).then_some(payload)
}

/// Standard base64 with padding, non-empty, of whole 4-character groups: what decodes.
fn plausible_base64(payload: &str) -> bool {
    let bytes = payload.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = payload.trim_end_matches('=');
    if bytes.len() - body.len() > 2 {
        return false;
    }
    body.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn full_check<'a>(text: &'a str, stream_sid: &str) -> Result<FarFrame<'a>, FrameViolation> {
    let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
        return Err(FrameViolation::NotJson);
    };
    let event = frame.get("event").and_then(Value::as_str);
    let allowed: &[&str] = match event {
        Some("media") => &["event", "streamSid", "media"],
        Some("mark") => &["event", "streamSid", "mark"],
        Some("clear") => &["event", "streamSid"],
        _ => return Err(FrameViolation::UnknownEvent),
    };
    if frame.get("streamSid").and_then(Value::as_str) != Some(stream_sid) {
        return Err(FrameViolation::WrongStreamSid);
    }
    only(&frame, allowed)?;
    match event {
        Some("media") => {
            let media = object(&frame, "media")?;
            only(media, &["payload"])?;
            let payload = media
                .get("payload")
                .and_then(Value::as_str)
                .ok_or(FrameViolation::MissingField)?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(payload);
            match decoded {
                Ok(bytes) if !bytes.is_empty() => Ok(FarFrame::Media),
                _ => Err(FrameViolation::BadPayload),
            }
        }
        Some("mark") => {
            let mark = object(&frame, "mark")?;
            only(mark, &["name"])?;
            let name = mark
                .get("name")
                .and_then(Value::as_str)
                .ok_or(FrameViolation::MissingField)?;
            Ok(FarFrame::Mark(name.to_owned().into()))
        }
        _ => Ok(FarFrame::Clear),
    }
}

fn object<'m>(
    frame: &'m Map<String, Value>,
    key: &str,
) -> Result<&'m Map<String, Value>, FrameViolation> {
    frame
        .get(key)
        .and_then(Value::as_object)
        .ok_or(FrameViolation::MissingField)
}

fn only(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), FrameViolation> {
    if object.keys().all(|key| allowed.contains(&key.as_str())) {
        Ok(())
    } else {
        Err(FrameViolation::UnexpectedField)
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
    fn twilios_exact_shapes_pass() {
        assert_eq!(check(&media("f39/fw=="), SID), Ok(FarFrame::Media));
        let reordered =
            format!(r#"{{"media":{{"payload":"f39/"}},"streamSid":"{SID}","event":"media"}}"#);
        assert_eq!(check(&reordered, SID), Ok(FarFrame::Media));
        let mark =
            format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"greeting"}}}}"#);
        assert_eq!(check(&mark, SID), Ok(FarFrame::Mark("greeting".into())));
        let clear = format!(r#"{{"event":"clear","streamSid":"{SID}"}}"#);
        assert_eq!(check(&clear, SID), Ok(FarFrame::Clear));
    }

    #[test]
    fn each_kind_of_violation_is_caught() {
        use FrameViolation as V;
        let cases = [
            ("not json".to_owned(), V::NotJson),
            ("[1,2]".to_owned(), V::NotJson),
            (
                format!(r#"{{"event":"start","streamSid":"{SID}"}}"#),
                V::UnknownEvent,
            ),
            (r#"{"streamSid":"x"}"#.to_owned(), V::UnknownEvent),
            (media("f39/fw==").replace(SID, "MZother"), V::WrongStreamSid),
            (r#"{"event":"clear"}"#.to_owned(), V::WrongStreamSid),
            (
                format!(r#"{{"event":"media","streamSid":"{SID}"}}"#),
                V::MissingField,
            ),
            (
                format!(r#"{{"event":"media","streamSid":"{SID}","media":{{}}}}"#),
                V::MissingField,
            ),
            (
                format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{}}}}"#),
                V::MissingField,
            ),
            (
                format!(r#"{{"event":"mark","streamSid":"{SID}"}}"#),
                V::MissingField,
            ),
            (
                format!(
                    r#"{{"event":"media","sequenceNumber":"1","streamSid":"{SID}","media":{{"payload":"f39/"}}}}"#
                ),
                V::UnexpectedField,
            ),
            (
                format!(
                    r#"{{"event":"media","streamSid":"{SID}","media":{{"track":"outbound","payload":"f39/"}}}}"#
                ),
                V::UnexpectedField,
            ),
            (
                format!(r#"{{"event":"clear","streamSid":"{SID}","clear":{{}}}}"#),
                V::UnexpectedField,
            ),
            (
                format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"a","at":1}}}}"#),
                V::UnexpectedField,
            ),
            (media(""), V::BadPayload),
            (media("not base64!"), V::BadPayload),
            (media("f39"), V::BadPayload),
            (media("f==="), V::BadPayload),
            (
                format!(r#"{{"streamSid":"{SID}","event":"media","media":{{"payload":"%%%%"}}}}"#),
                V::BadPayload,
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(check(&frame, SID), Err(expected), "{frame}");
        }
    }

    #[test]
    fn violations_are_counted_per_kind() {
        let counts = ViolationCounts::default();
        counts.bump(FrameViolation::Binary);
        counts.bump(FrameViolation::BadPayload);
        counts.bump(FrameViolation::BadPayload);
        let seen = counts.snapshot();
        assert_eq!((seen.binary, seen.bad_payload, seen.total()), (1, 2, 3));
    }
}
