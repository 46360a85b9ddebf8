//! What the call-facing endpoints share: public URLs, the Twilio auth token, the call
//! token secret, and the running totals of every relay.

use crate::relay::{RelayStats, latency_histogram};
use axum::http::Uri;
use hdrhistogram::Histogram;
use secrecy::SecretString;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_actors::urls::PublicUrls;
use switchboard_engine::store::{CampaignRecord, Store};
use switchboard_engine::{CampaignId, TenantId};

/// Settings and shared state of the call endpoints.
pub struct CallServices {
    /// The runtime's database pool: the call path never waits behind the API's queries.
    pub store: switchboard_engine::store::Store,
    /// Switchboard's public URLs.
    pub urls: PublicUrls,
    /// The Twilio account calls are placed from: a media stream must name it.
    pub twilio_account_sid: Option<String>,
    /// Twilio's auth token, to check webhook signatures (`None`: Twilio is not configured).
    pub twilio_auth_token: Option<SecretString>,
    /// The secret that signs per-call agent tokens.
    pub call_token_secret: SecretString,
    /// Totals over every relay since start.
    pub totals: RelayTotals,
    /// Configurations of campaigns with live calls.
    pub campaigns: CampaignCache,
    /// LiveKit, when configured: sessions for `livekit` agents.
    pub livekit: Option<switchboard_media::livekit::LiveKitAgents>,
    /// What the relays of recent calls reported, for the admin live view.
    pub relays: LiveRelays,
    /// The media sessions running now (drained at shutdown, capped by
    /// `limits.media_sessions`).
    pub sessions: crate::sessions::MediaSessions,
    /// Opens agents' WebSockets (`wss://` with the web PKI and `agent_ca_file`).
    pub agent: switchboard_media::AgentConnector,
}

impl CallServices {
    /// The URL a request was sent to, as the carrier sees it: public base + path + query.
    pub fn public_url_for(&self, uri: &Uri) -> String {
        self.urls
            .for_path(uri.path_and_query().map_or("/", |p| p.as_str()))
    }
}

/// Relay figures summed over every call.
pub struct RelayTotals {
    inner: Mutex<Totals>,
}

struct Totals {
    calls: u64,
    frames_from_carrier: u64,
    frames_from_agent: u64,
    gaps: u64,
    latency_us: Histogram<u64>,
    first_audio_ms: Histogram<u64>,
}

/// Relay latency in Prometheus histogram form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyBuckets {
    /// Frames at or under each bound.
    pub cumulative: Vec<u64>,
    /// All frames.
    pub count: u64,
    /// Sum of the latencies, µs (to the histogram's precision).
    pub sum_us: u64,
}

/// A snapshot of [`RelayTotals`].
#[derive(Debug, Clone, Serialize)]
pub struct RelayTotalsSnapshot {
    /// Calls relayed.
    pub calls: u64,
    /// Media frames carrier → agent.
    pub frames_from_carrier: u64,
    /// Media frames agent → carrier.
    pub frames_from_agent: u64,
    /// Late carrier frames.
    pub gaps: u64,
    /// Relay latency percentiles (µs): p50, p99, p99.9, max.
    pub latency_us: [u64; 4],
    /// Answer to agent first audio (ms): p50, p99, max; calls with agent audio.
    pub first_audio_ms: [u64; 3],
    /// Calls where the agent produced audio.
    pub calls_with_agent_audio: u64,
}

impl Default for RelayTotals {
    fn default() -> Self {
        RelayTotals {
            inner: Mutex::new(Totals {
                calls: 0,
                frames_from_carrier: 0,
                frames_from_agent: 0,
                gaps: 0,
                latency_us: latency_histogram(),
                first_audio_ms: Histogram::new_with_bounds(1, 600_000, 2)
                    .expect("static histogram bounds are valid"),
            }),
        }
    }
}

impl RelayTotals {
    /// Adds one finished relay (once per call, not per frame).
    pub fn add(&self, stats: &RelayStats) {
        crate::metrics::relay_finished(stats);
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        t.calls += 1;
        t.frames_from_carrier += stats.frames_from_carrier;
        t.frames_from_agent += stats.frames_from_agent;
        t.gaps += stats.gaps;
        for value in stats.latency_us.iter_recorded() {
            let _ = t
                .latency_us
                .record_n(value.value_iterated_to(), u64::from(value.count_at_value()));
        }
        if let Some(first) = stats.first_agent_audio {
            let _ = t.first_audio_ms.record((first.as_millis() as u64).max(1));
        }
    }

    /// Per-frame latencies so far, counted at or under each bound (µs, ascending).
    pub fn latency_buckets(&self, bounds: &[u64]) -> LatencyBuckets {
        let t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cumulative = vec![0; bounds.len()];
        let mut sum_us = 0u64;
        for v in t.latency_us.iter_recorded() {
            let (value, count) = (v.value_iterated_to(), v.count_at_value());
            sum_us = sum_us.saturating_add(value.saturating_mul(count));
            for (slot, bound) in cumulative.iter_mut().zip(bounds) {
                if value <= *bound {
                    *slot += count;
                }
            }
        }
        LatencyBuckets {
            cumulative,
            count: t.latency_us.len(),
            sum_us,
        }
    }

    /// The figures so far.
    pub fn snapshot(&self) -> RelayTotalsSnapshot {
        let t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        RelayTotalsSnapshot {
            calls: t.calls,
            frames_from_carrier: t.frames_from_carrier,
            frames_from_agent: t.frames_from_agent,
            gaps: t.gaps,
            latency_us: [
                t.latency_us.value_at_quantile(0.5),
                t.latency_us.value_at_quantile(0.99),
                t.latency_us.value_at_quantile(0.999),
                t.latency_us.max(),
            ],
            first_audio_ms: [
                t.first_audio_ms.value_at_quantile(0.5),
                t.first_audio_ms.value_at_quantile(0.99),
                t.first_audio_ms.max(),
            ],
            calls_with_agent_audio: t.first_audio_ms.len(),
        }
    }
}

/// Campaign records for the call path, read once per campaign instead of once per call.
/// What the call path reads of them (agent, script, variables) cannot change once a
/// campaign runs (a running campaign's edits are limited to pacing, caps and thresholds,
/// which its supervisor reads), so a cached record is never stale where it matters;
/// entries expire after a minute anyway.
#[derive(Default)]
pub struct CampaignCache {
    entries: Mutex<HashMap<CampaignId, (Instant, Arc<CampaignRecord>)>>,
}

const CAMPAIGN_TTL: Duration = Duration::from_secs(60);
const CAMPAIGN_CACHE_MAX: usize = 1024;

impl CampaignCache {
    /// The campaign, from the cache or the store.
    pub async fn get(
        &self,
        store: &Store,
        tenant: TenantId,
        id: CampaignId,
    ) -> Result<Arc<CampaignRecord>, switchboard_engine::Error> {
        if let Some((at, record)) = self.lock().get(&id)
            && at.elapsed() < CAMPAIGN_TTL
            && record.tenant_id == tenant
        {
            return Ok(record.clone());
        }
        let record = Arc::new(store.campaign(tenant, id).await?);
        let mut entries = self.lock();
        if entries.len() >= CAMPAIGN_CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < CAMPAIGN_TTL);
        }
        entries.insert(id, (Instant::now(), record.clone()));
        Ok(record)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CampaignId, (Instant, Arc<CampaignRecord>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the relay knows of one bridged call, for the admin live view. Written at the
/// bridge, at the agent's first audio, with the latency every
/// [`crate::relay::LATENCY_REPORT_FRAMES`] frames, and when the relay ends: never per frame.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RelayLive {
    /// When the agent side was connected.
    #[schema(value_type = String, format = DateTime)]
    pub bridged_at: chrono::DateTime<chrono::Utc>,
    /// Answer (the stream's start) to the agent's first audio (ms), from the moment it is
    /// heard.
    pub first_agent_audio_ms: Option<u64>,
    /// Per-frame relay latency, median (µs), updated while the call runs.
    pub relay_latency_p50_us: Option<u64>,
    /// Per-frame relay latency, 99th percentile (µs), updated while the call runs.
    pub relay_latency_p99_us: Option<u64>,
    /// Whether the relay is over (its figures are final).
    pub ended: bool,
}

/// The relays of recent calls, by attempt (bounded: old entries are dropped).
#[derive(Default)]
pub struct LiveRelays {
    entries: Mutex<HashMap<switchboard_engine::AttemptId, RelayLive>>,
    /// Attempts whose media stream this process took, when: a call has one stream.
    streams: Mutex<HashMap<switchboard_engine::AttemptId, chrono::DateTime<chrono::Utc>>>,
}

const LIVE_RELAYS_MAX: usize = 10_000;
const LIVE_RELAY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(2);

impl LiveRelays {
    /// Takes the one media stream of `attempt`: false when this process already took one.
    pub fn claim_stream(&self, attempt: switchboard_engine::AttemptId) -> bool {
        let now = chrono::Utc::now();
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if streams.len() >= LIVE_RELAYS_MAX {
            streams.retain(|_, at| now - *at < LIVE_RELAY_TTL);
        }
        match streams.entry(attempt) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(now);
                true
            }
        }
    }

    /// The call was bridged to its agent.
    pub fn bridged(&self, attempt: switchboard_engine::AttemptId) {
        let now = chrono::Utc::now();
        let mut entries = self.lock();
        if entries.len() >= LIVE_RELAYS_MAX {
            entries.retain(|_, e| now - e.bridged_at < LIVE_RELAY_TTL);
        }
        entries.insert(
            attempt,
            RelayLive {
                bridged_at: now,
                first_agent_audio_ms: None,
                relay_latency_p50_us: None,
                relay_latency_p99_us: None,
                ended: false,
            },
        );
    }

    /// The agent was first heard `ms` after the answer.
    pub fn first_audio(&self, attempt: switchboard_engine::AttemptId, ms: u64) {
        if let Some(entry) = self.lock().get_mut(&attempt) {
            entry.first_agent_audio_ms.get_or_insert(ms);
        }
    }

    /// The call's relay latency so far.
    pub fn latency(&self, attempt: switchboard_engine::AttemptId, p50_us: u64, p99_us: u64) {
        if let Some(entry) = self.lock().get_mut(&attempt) {
            entry.relay_latency_p50_us = Some(p50_us);
            entry.relay_latency_p99_us = Some(p99_us);
        }
    }

    /// The call's relay ended with these figures.
    pub fn finished(&self, attempt: switchboard_engine::AttemptId, stats: &RelayStats) {
        if let Some(entry) = self.lock().get_mut(&attempt) {
            entry.ended = true;
            entry.first_agent_audio_ms = stats.first_agent_audio.map(|d| d.as_millis() as u64);
            if !stats.latency_us.is_empty() {
                entry.relay_latency_p50_us = Some(stats.latency_us.value_at_quantile(0.5));
                entry.relay_latency_p99_us = Some(stats.latency_us.value_at_quantile(0.99));
            }
        }
    }

    /// What is known of the call's relay.
    pub fn get(&self, attempt: switchboard_engine::AttemptId) -> Option<RelayLive> {
        self.lock().get(&attempt).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<switchboard_engine::AttemptId, RelayLive>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
