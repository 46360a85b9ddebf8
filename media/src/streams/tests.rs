//! Media Streams codec tests: the documented frames, round trips and hostile input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::*;

/// Counts allocations made by the current thread, to prove `peek_event` makes none.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const CONNECTED: &str = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
const START: &str = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","start":{"streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","accountSid":"AC123","callSid":"CA123","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"call_id":"42","token":"t0k"}}}"#;
const MEDIA: &str = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"/////w=="}}"#;
const DTMF: &str = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#;
const MARK: &str =
    r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"greeting-end"}}"#;
const STOP: &str = r#"{"event":"stop","sequenceNumber":"6","streamSid":"MZ1","stop":{"accountSid":"AC123","callSid":"CA123"}}"#;
const OUT_MEDIA: &str = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"/////w=="}}"#;
const OUT_MARK: &str = r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#;
const OUT_CLEAR: &str = r#"{"event":"clear","streamSid":"MZ1"}"#;

#[test]
fn parses_the_documented_connected_and_start_messages() {
    assert_eq!(
        StreamEvent::parse(CONNECTED).unwrap(),
        StreamEvent::connected()
    );
    let StreamEvent::Start {
        sequence_number,
        stream_sid,
        start,
    } = StreamEvent::parse(START).unwrap()
    else {
        panic!("not a start event");
    };
    assert_eq!(sequence_number.as_deref(), Some("1"));
    assert_eq!(stream_sid, "MZ18ad3ab5a668481ce02b83e7395059f0");
    assert_eq!(start.call_sid, "CA123");
    assert_eq!(start.account_sid, "AC123");
    assert_eq!(start.tracks, ["inbound"]);
    assert_eq!(start.media_format, MediaFormat::default());
    assert_eq!(start.custom_parameters["call_id"], "42");
    assert_eq!(start.custom_parameters["token"], "t0k");
}

#[test]
fn parses_the_documented_media_dtmf_mark_and_stop_messages() {
    let media = StreamEvent::parse(MEDIA).unwrap();
    let StreamEvent::Media { media: payload, .. } = &media else {
        panic!("not media");
    };
    assert_eq!(payload.track.as_deref(), Some("inbound"));
    assert_eq!(payload.chunk.as_deref(), Some("2"));
    assert_eq!(payload.timestamp.as_deref(), Some("5"));
    assert_eq!(payload.audio().unwrap(), [0xFF; 4]);
    assert_eq!(media.stream_sid(), Some("MZ1"));

    let dtmf = StreamEvent::parse(DTMF).unwrap();
    assert!(matches!(&dtmf, StreamEvent::Dtmf { dtmf, .. }
        if dtmf.digit == "1" && dtmf.track.as_deref() == Some("inbound_track")));
    let mark = StreamEvent::parse(MARK).unwrap();
    assert!(
        matches!(&mark, StreamEvent::Mark { mark, sequence_number: Some(n), .. }
        if mark.name == "greeting-end" && n == "4")
    );
    let stop = StreamEvent::parse(STOP).unwrap();
    assert!(matches!(&stop, StreamEvent::Stop { stop, .. } if stop.call_sid == "CA123"));
}

#[test]
fn server_frames_encode_exactly_as_documented() {
    assert_eq!(
        StreamEvent::media_from_audio("MZ1", &[0xFF; 4]).to_json(),
        OUT_MEDIA
    );
    assert_eq!(StreamEvent::mark("MZ1", "m1").to_json(), OUT_MARK);
    assert_eq!(StreamEvent::clear("MZ1").to_json(), OUT_CLEAR);
    assert_eq!(StreamEvent::connected().to_json(), CONNECTED);
}

#[test]
fn every_variant_round_trips_through_json() {
    for text in [
        CONNECTED, START, MEDIA, DTMF, MARK, STOP, OUT_MEDIA, OUT_MARK, OUT_CLEAR,
    ] {
        let event = StreamEvent::parse(text).unwrap();
        let json = event.to_json();
        assert_eq!(StreamEvent::parse(&json).unwrap(), event, "{text}");
        assert_eq!(peek_event(&json), Some(event.kind()));
    }
    let unknown = StreamEvent::Unknown {
        event: "transcript".into(),
    };
    assert_eq!(unknown.to_json(), r#"{"event":"transcript"}"#);
    assert_eq!(StreamEvent::parse(&unknown.to_json()).unwrap(), unknown);
}

#[test]
fn encoded_fields_use_twilios_names_and_types() {
    let json: serde_json::Value =
        serde_json::from_str(&StreamEvent::parse(START).unwrap().to_json()).unwrap();
    assert_eq!(json["event"], "start");
    assert_eq!(json["sequenceNumber"], "1");
    assert_eq!(json["start"]["mediaFormat"]["sampleRate"], 8000);
    assert_eq!(json["start"]["mediaFormat"]["channels"], 1);
    assert_eq!(json["start"]["customParameters"]["call_id"], "42");
    assert_eq!(json["start"]["callSid"], "CA123");
}

#[test]
fn unknown_events_and_extra_fields_are_tolerated() {
    assert_eq!(
        StreamEvent::parse(r#"{"event":"transcript","text":"hi"}"#).unwrap(),
        StreamEvent::Unknown {
            event: "transcript".into()
        }
    );
    let extra = r#"{"event":"media","streamSid":"MZ1","extra":{"a":[1,2]},"media":{"payload":"","future":true}}"#;
    assert_eq!(peek_event(extra), Some(EventKind::Media));
    assert!(matches!(
        StreamEvent::parse(extra).unwrap(),
        StreamEvent::Media { .. }
    ));
}

#[test]
fn number_like_fields_also_accept_numbers() {
    let text = r#"{"event":"media","sequenceNumber":3,"streamSid":"MZ1","media":{"chunk":2,"timestamp":5.5,"payload":""}}"#;
    let StreamEvent::Media {
        sequence_number,
        media,
        ..
    } = StreamEvent::parse(text).unwrap()
    else {
        panic!("not media");
    };
    assert_eq!(sequence_number.as_deref(), Some("3"));
    assert_eq!(media.chunk.as_deref(), Some("2"));
    assert_eq!(media.timestamp.as_deref(), Some("5.5"));
}

#[test]
fn a_missing_field_is_named_in_the_error() {
    let error = StreamEvent::parse(r#"{"event":"media","media":{"payload":""}}"#).unwrap_err();
    assert!(
        matches!(&error, StreamError::Invalid { event: "media", reason } if reason.contains("`streamSid`")),
        "{error}"
    );
    let error = StreamEvent::parse(r#"{"event":"start","streamSid":"MZ1","start":{"streamSid":"MZ1","accountSid":"AC1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#).unwrap_err();
    assert!(error.to_string().contains("`callSid`"), "{error}");
    let error = StreamEvent::parse(r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{}}"#).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid dtmf message: missing field `digit`")
    );
}

#[test]
fn garbage_and_binary_input_are_errors_not_panics() {
    let binary = String::from_utf8_lossy(&[0x00, 0xFF, 0x7B, 0x22, 0x80, 0x01]).into_owned();
    let huge_number = format!(
        r#"{{"event":"connected","protocol":{},"version":"1"}}"#,
        "9".repeat(400)
    );
    for text in [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "\"media\"",
        binary.as_str(),
        huge_number.as_str(),
    ] {
        assert!(StreamEvent::parse(text).is_err(), "{text:?}");
    }
    assert!(matches!(StreamEvent::parse("{"), Err(StreamError::Json(_))));
    assert_eq!(StreamEvent::parse("{}"), Err(StreamError::MissingEvent));
    assert_eq!(
        StreamEvent::parse(r#"{"event":7}"#),
        Err(StreamError::MissingEvent)
    );
    assert_eq!(peek_event(&binary), None);
    assert_eq!(peek_event(r#"{"event":7}"#), None);
    assert_eq!(peek_event("{}"), None);
    assert_eq!(peek_event(r#"["media"]"#), None);
    assert_eq!(
        StreamEvent::parse(r#"["media"]"#),
        Err(StreamError::MissingEvent)
    );
    let bad_payload = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"@@@"}}"#;
    let StreamEvent::Media { media, .. } = StreamEvent::parse(bad_payload).unwrap() else {
        panic!("not media");
    };
    assert!(matches!(media.audio(), Err(StreamError::Payload(_))));
}

#[test]
fn peek_identifies_every_kind() {
    for (text, kind) in [
        (CONNECTED, EventKind::Connected),
        (START, EventKind::Start),
        (MEDIA, EventKind::Media),
        (DTMF, EventKind::Dtmf),
        (MARK, EventKind::Mark),
        (OUT_CLEAR, EventKind::Clear),
        (STOP, EventKind::Stop),
        (r#"{"streamSid":"MZ1","event":"later"}"#, EventKind::Unknown),
    ] {
        assert_eq!(peek_event(text), Some(kind), "{text}");
        assert_eq!(EventKind::from_name(kind.as_str()), kind);
    }
}

#[test]
fn peeking_a_full_media_frame_does_not_allocate() {
    let payload = "f".repeat(216);
    let frame = format!(
        r#"{{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{{"track":"inbound","chunk":"2","timestamp":"5","payload":"{payload}"}}}}"#
    );
    let frame_with_payload_first =
        format!(r#"{{"media":{{"payload":"{payload}"}},"streamSid":"MZ1","event":"media"}}"#);
    let before = allocations();
    let kinds = (peek_event(&frame), peek_event(&frame_with_payload_first));
    let after = allocations();
    assert_eq!(kinds, (Some(EventKind::Media), Some(EventKind::Media)));
    assert_eq!(after - before, 0);
}
