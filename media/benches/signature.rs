//! Twilio request signatures: validating a status callback (form parameters) and a
//! media-stream upgrade (no parameters), as Switchboard does for every webhook.
//!
//! `cargo bench -p switchboard-media --bench signature`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use switchboard_media::twilio::signature::{sign, validate};

const TOKEN: &str = "12345678901234567890123456789012";

fn status_callback() -> Vec<(String, String)> {
    [
        ("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA1234567890ABCDE1234567890ABCDE12"),
        ("CallStatus", "in-progress"),
        ("Called", "+14155550101"),
        ("Caller", "+14155550100"),
        ("Direction", "outbound-api"),
        ("From", "+14155550100"),
        ("SequenceNumber", "2"),
        ("Timestamp", "Mon, 23 Nov 2026 15:00:01 +0000"),
        ("To", "+14155550101"),
        ("CallbackSource", "call-progress-events"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn bench(c: &mut Criterion) {
    let url = "https://switchboard.example.com/twilio/status?attempt=123456";
    let params = status_callback();
    let signature = sign(TOKEN, url, &params);
    assert!(validate(TOKEN, url, &params, &signature));
    let ws_url = "wss://switchboard.example.com/twilio/media";
    let ws_signature = sign(TOKEN, ws_url, &[]);
    let mut group = c.benchmark_group("signature");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate_status_callback", |b| {
        b.iter(|| validate(TOKEN, black_box(url), black_box(&params), &signature))
    });
    group.bench_function("validate_media_upgrade", |b| {
        b.iter(|| validate(TOKEN, black_box(ws_url), &[], &ws_signature))
    });
    group.bench_function("reject_forged", |b| {
        b.iter(|| {
            validate(
                TOKEN,
                black_box(url),
                &params,
                "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
