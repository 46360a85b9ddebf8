//! `GET /metrics` in the Prometheus text format.
//!
//! Counters and histograms are recorded where things happen (the runtime's dials and call
//! ends, webhook sends, relays) through the `metrics` facade into one process-wide
//! Prometheus recorder. Figures that already exist somewhere are read at scrape time
//! instead of being mirrored: live calls and pacing come from the campaign supervisors'
//! snapshots, relay latency quantiles from the relay totals, the outbox size from the
//! database. A campaign that stopped running simply disappears from the scrape.

use crate::app::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;
use switchboard_engine::store::SendReport;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder's handle (installed on first use).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = |buckets: &[f64], builder: PrometheusBuilder, name: &str| {
                builder
                    .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                    .expect("static buckets are not empty")
            };
            let mut builder = PrometheusBuilder::new();
            builder = seconds(
                &[0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0],
                builder,
                "switchboard_agent_first_audio_seconds",
            );
            builder = seconds(
                &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                builder,
                "switchboard_webhook_send_duration_seconds",
            );
            builder = seconds(
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                builder,
                "switchboard_writer_batch_size",
            );
            builder = seconds(
                &[
                    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
                builder,
                "switchboard_writer_batch_seconds",
            );
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "another metrics recorder is installed; /metrics shows only scrape-time figures"
                );
            }
            handle
        })
        .clone()
}

/// Counters without labels start at 0 in every scrape, so that a rate over them (and an
/// alert on it) has a series before the first event.
pub fn start_counters() {
    for name in [
        "switchboard_api_rate_limited_total",
        "switchboard_api_timeouts_total",
        "switchboard_media_sessions_refused_total",
        "switchboard_contacts_erased_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Folds recorded histogram samples into their buckets every few seconds, so that memory
/// stays bounded when nobody scrapes. Runs until aborted.
pub async fn upkeep() {
    let handle = handle();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

/// Records what one retention purge removed, by kind
/// (`switchboard_retention_purged_rows_total{kind}`).
pub fn retention_purged(report: &switchboard_engine::store::PurgeReport) {
    for (kind, n) in [
        ("transcripts", report.transcripts),
        ("events", report.events),
        ("call_records", report.call_records),
        ("webhook_deliveries", report.webhook_deliveries),
    ] {
        metrics::counter!("switchboard_retention_purged_rows_total", "kind" => kind).increment(n);
    }
}

/// Records one contact erasure (`switchboard_contacts_erased_total`).
pub fn contact_erased() {
    metrics::counter!("switchboard_contacts_erased_total").increment(1);
}

/// Records one webhook send.
pub fn webhook_send(event: &str, report: &SendReport) {
    let result = if report.delivered() {
        "delivered"
    } else {
        "failed"
    };
    metrics::counter!("switchboard_webhook_sends_total", "event" => event.to_owned(), "result" => result)
        .increment(1);
    metrics::histogram!("switchboard_webhook_send_duration_seconds")
        .record(report.duration.as_secs_f64());
}

/// Records one finished relay's answer-to-agent-audio time. Its per-frame latencies are
/// not fed to the recorder: it would keep every sample until the next upkeep (a call of
/// two minutes is 12,000 of them); the scrape renders them from the relay totals instead.
pub fn relay_finished(stats: &crate::relay::RelayStats) {
    if let Some(first) = stats.first_agent_audio {
        metrics::histogram!("switchboard_agent_first_audio_seconds").record(first.as_secs_f64());
    }
    if stats.agent_frames_rewritten > 0 {
        metrics::counter!("switchboard_agent_frames_rewritten_total")
            .increment(stats.agent_frames_rewritten);
    }
}

/// Counts one agent frame dropped before it reached the carrier.
pub fn agent_frame_dropped(violation: switchboard_media::streams::outbound::FrameViolation) {
    metrics::counter!("switchboard_agent_frames_dropped_total", "reason" => violation.code())
        .increment(1);
}

/// Bucket bounds of `switchboard_relay_frame_latency_seconds`, µs.
const FRAME_LATENCY_BOUNDS_US: [u64; 11] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
];

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let handle = handle();
    handle.run_upkeep();
    let mut text = handle.render();
    scrape_time(&state, &mut text).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
}

/// Appends the per-frame relay latency over every call since start as a Prometheus
/// histogram, read from the relay totals.
fn frame_latency_histogram(state: &AppState, out: &mut String) {
    let name = "switchboard_relay_frame_latency_seconds";
    let buckets = state.calls.totals.latency_buckets(&FRAME_LATENCY_BOUNDS_US);
    let _ = writeln!(out, "# HELP {name} per-frame relay latency");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (bound, count) in FRAME_LATENCY_BOUNDS_US.iter().zip(&buckets.cumulative) {
        let le = *bound as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", buckets.count);
    let _ = writeln!(out, "{name}_sum {}", buckets.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", buckets.count);
}

/// Appends the figures read at scrape time.
async fn scrape_time(state: &AppState, out: &mut String) {
    let (ready, _) = crate::internal::readiness(state).await;
    gauge_header(
        out,
        "switchboard_ready",
        "1 when the server is ready (database and engine supervisor answer, as /readyz), else 0",
    );
    let _ = writeln!(out, "switchboard_ready {}", u8::from(ready));
    let relay = state.calls.totals.snapshot();
    frame_latency_histogram(state, out);
    gauge_header(
        out,
        "switchboard_relay_latency_quantile_seconds",
        "relay latency per frame over every call since start, by quantile",
    );
    for (q, v) in ["0.5", "0.99", "0.999", "1"].iter().zip(relay.latency_us) {
        let _ = writeln!(
            out,
            "switchboard_relay_latency_quantile_seconds{{quantile=\"{q}\"}} {}",
            v as f64 / 1e6
        );
    }
    gauge_header(
        out,
        "switchboard_relayed_calls",
        "calls relayed since start",
    );
    let _ = writeln!(out, "switchboard_relayed_calls {}", relay.calls);
    gauge_header(
        out,
        "switchboard_relay_late_frames",
        "carrier frames more than 40 ms late since start",
    );
    let _ = writeln!(out, "switchboard_relay_late_frames {}", relay.gaps);
    if let Ok(pending) = state.store.pending_deliveries().await {
        gauge_header(
            out,
            "switchboard_webhook_pending_deliveries",
            "webhook deliveries waiting to be sent or retried",
        );
        let _ = writeln!(out, "switchboard_webhook_pending_deliveries {pending}");
    }
    let Some(runtime) = &state.runtime else {
        return;
    };
    let Ok(snapshots) = runtime.snapshots().await else {
        return;
    };
    let total: usize = snapshots.iter().map(|s| s.live_calls).sum();
    gauge_header(
        out,
        "switchboard_live_calls_total",
        "live calls over every running campaign",
    );
    let _ = writeln!(out, "switchboard_live_calls_total {total}");
    gauge_header(
        out,
        "switchboard_running_campaigns",
        "campaign supervisors running in this process",
    );
    let _ = writeln!(out, "switchboard_running_campaigns {}", snapshots.len());
    let mut live = String::new();
    let mut dialing = String::new();
    let mut figures = String::new();
    for s in &snapshots {
        let id = s.campaign_id;
        let _ = writeln!(
            live,
            "switchboard_live_calls{{campaign_id=\"{id}\"}} {}",
            s.live_calls
        );
        let _ = writeln!(
            dialing,
            "switchboard_campaign_dialing{{campaign_id=\"{id}\"}} {}",
            u8::from(s.dialing)
        );
        // Every other number of the snapshot (dialed, skips, quality and pacing figures).
        if let Ok(Value::Object(map)) = serde_json::to_value(s) {
            for (key, value) in map {
                if !matches!(key.as_str(), "campaign_id" | "live_calls" | "dialing") {
                    flatten(&mut figures, &id.to_string(), &key, &value);
                }
            }
        }
    }
    gauge_header(
        out,
        "switchboard_live_calls",
        "live calls of a running campaign",
    );
    out.push_str(&live);
    gauge_header(
        out,
        "switchboard_campaign_dialing",
        "1 while a running campaign opens new lines",
    );
    out.push_str(&dialing);
    gauge_header(
        out,
        "switchboard_campaign_figure",
        "a running campaign's pacing and quality figures, by name",
    );
    out.push_str(&figures);
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Writes every number under `value` as `switchboard_campaign_figure{campaign_id, figure}`
/// (`figure` is the dotted path: `quality.success_rate`, `skipped.dnc`).
fn flatten(out: &mut String, campaign: &str, path: &str, value: &Value) {
    match value {
        Value::Number(n) => {
            if let Some(v) = n.as_f64().filter(|v| v.is_finite()) {
                let figure: String = path
                    .chars()
                    .map(|c| {
                        if c == '"' || c == '\\' || c == '\n' {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "switchboard_campaign_figure{{campaign_id=\"{campaign}\",figure=\"{figure}\"}} {v}"
                );
            }
        }
        Value::Bool(b) => flatten(out, campaign, path, &Value::from(u8::from(*b))),
        Value::Object(map) => {
            for (key, v) in map {
                flatten(out, campaign, &format!("{path}.{key}"), v);
            }
        }
        _ => {}
    }
}
