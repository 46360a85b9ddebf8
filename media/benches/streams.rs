//! The media path per frame: telling a frame's event (what the relay does for every frame),
//! against decoding it fully, for Twilio's inbound media frame and an agent's outbound one.
//!
//! `cargo bench -p switchboard-media --bench streams`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::audio::{FRAME_MS, tone};
use switchboard_media::{StreamEvent, peek_event};

/// A Twilio inbound frame as it arrives: 160 bytes of mu-law, `event` first.
fn twilio_media() -> String {
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.encode(tone(300.0, FRAME_MS, 0.2));
    format!(
        r#"{{"event":"media","sequenceNumber":"1234","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0","media":{{"track":"inbound","chunk":"1233","timestamp":"24660","payload":"{payload}"}}}}"#
    )
}

/// The same frame with `event` last, as some agents write it (the parser's path).
fn event_last() -> String {
    let frame = twilio_media();
    let body = &frame[r#"{"event":"media","#.len()..frame.len() - 1];
    format!(r#"{{{body},"event":"media"}}"#)
}

fn bench(c: &mut Criterion) {
    let media = twilio_media();
    let reordered = event_last();
    assert!(peek_event(&reordered).is_some(), "{reordered}");
    let mut group = c.benchmark_group("media_frame");
    group.throughput(Throughput::Elements(1));
    group.bench_function("peek_event", |b| b.iter(|| peek_event(black_box(&media))));
    group.bench_function("peek_event_event_last", |b| {
        b.iter(|| peek_event(black_box(&reordered)))
    });
    group.bench_function("parse", |b| {
        b.iter(|| StreamEvent::parse(black_box(&media)).map(|e| e.kind()))
    });
    group.bench_function("parse_and_decode_audio", |b| {
        b.iter(|| match StreamEvent::parse(black_box(&media)) {
            Ok(StreamEvent::Media { media, .. }) => media.audio().map(|a| a.len()).ok(),
            _ => None,
        })
    });
    let event = StreamEvent::media_from_audio("MZ1", &tone(440.0, FRAME_MS, 0.3));
    group.bench_function("encode_outbound", |b| {
        b.iter(|| black_box(&event).to_json())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
