//! One load run, start to report.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::measure::{Sampler, answer_to_agent_audio, max_in_any_second};
use super::report::{FrameFigures, Latency, Report};
use super::scenario::Scenario;
use super::server::{Api, CarrierAccess, SpawnedServer, sibling_binary};
use crate::Error;
use crate::agent::{AgentConfig, Finish, ScriptedAgent};
use crate::carrier::{CarrierConfig, SimCarrier};
use crate::probe::{Direction, FrameProbe};

/// Where Switchboard is and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// A running Switchboard (`http://host:port`); `None` starts one.
    pub url: Option<String>,
    /// The API key for `url` (a started server gets a fresh tenant).
    pub api_key: Option<String>,
    /// Switchboard's pid, to read its CPU and memory when it was not started here.
    pub pid: Option<u32>,
    /// The `switchboard` binary to start; default: next to this executable.
    pub binary: Option<PathBuf>,
    /// Directory for the server's database and log; default: a fresh temporary one.
    pub dir: Option<PathBuf>,
    /// Print a progress line every second.
    pub progress: bool,
}

/// Account and token shared by the simulated carrier and a server started here.
const ACCOUNT_SID: &str = "ACload0000000000000000000000000000";
const AUTH_TOKEN: &str = "loadtest-auth-token";

/// Runs `scenario` and returns its report.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<Report, Error> {
    let probe = FrameProbe::new();
    let mut carrier_config =
        CarrierConfig::new(ACCOUNT_SID, AUTH_TOKEN).cps(scenario.carrier_cps());
    carrier_config.burst = 1;
    carrier_config.mix = scenario.mix();
    carrier_config.ring_ms = scenario.ring();
    carrier_config.talk_ms = scenario.talk();
    carrier_config.probe = Some(probe.clone());
    let carrier = SimCarrier::start(carrier_config).await?;
    let hold_ms = scenario.duration_secs.saturating_add(120) * 1_000;
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: scenario.greeting_delay_ms,
        talk_ms: scenario.agent_talk_ms.unwrap_or(hold_ms),
        listen_ms: hold_ms,
        finish: Finish::WaitForStop,
        probe: Some(probe.clone()),
        ..AgentConfig::default()
    })
    .await?;

    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("switchboard-load-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let (spawned, url, key) = match &options.url {
        Some(url) => {
            let key = options.api_key.clone().ok_or_else(|| {
                Error::Server("--url needs --api-key (a tenant's API key)".to_owned())
            })?;
            (None, url.clone(), key)
        }
        None => {
            let binary = match &options.binary {
                Some(binary) => binary.clone(),
                None => sibling_binary()?,
            };
            let access = CarrierAccess {
                api_base: carrier.base_url(),
                account_sid: ACCOUNT_SID.to_owned(),
                auth_token: AUTH_TOKEN.to_owned(),
                cps: scenario.carrier_cps(),
            };
            let server =
                SpawnedServer::start(&binary, &dir, scenario.database_url.as_deref(), &access)
                    .await?;
            let key = server.create_tenant("loadtest")?;
            let url = server.url.clone();
            (Some(server), url, key)
        }
    };
    let pid = options.pid.or(spawned.as_ref().map(SpawnedServer::pid));
    let api = Api::new(&url, &key)?;

    let run_id = format!("run{}", std::process::id());
    let imported = api.import_contacts(contacts_csv(scenario, &run_id)).await?;
    tracing::info!(%imported, "contacts imported");
    let campaign = api
        .create_campaign(&campaign_config(scenario, &run_id, &agent.ws_url()))
        .await?;

    // Idle baseline: the server with its data loaded and nothing calling.
    let mut sampler = Sampler::start(pid, Duration::from_secs(2), &carrier).await;
    api.campaign_action(&campaign, "start").await?;
    for _ in 0..scenario.duration_secs {
        let tick = sampler.tick(&carrier, &agent).await;
        if options.progress {
            eprintln!("{}", tick.line());
        }
    }
    let final_status = api.status(&campaign).await.ok();
    let _ = api.campaign_action(&campaign, "stop").await;

    let answer_to_audio = answer_to_agent_audio(&carrier);
    let stats = carrier.stats();
    let bridged = agent.stats().accepted;
    let busiest_second =
        max_in_any_second(carrier.calls().iter().map(|c| c.requested_at).collect());
    carrier.shutdown().await;
    // Let the last frames and stops drain before reading the probe; the relays end with
    // the carrier's streams and add their figures to the server's totals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server_relay_latency_us = match api.relay_latency_us().await {
        Ok(figures) => Some(figures),
        Err(e) => {
            tracing::warn!(error = %e, "could not read Switchboard's relay latency");
            None
        }
    };
    agent.shutdown().await;
    if let Some(server) = spawned {
        server.stop().await;
    }

    let summary = sampler.summary(None);
    Ok(Report {
        scenario: scenario.clone(),
        server_url: url,
        server_pid: pid,
        seconds: scenario.duration_secs,
        originated: stats.created,
        answered: stats.answered,
        bridged,
        peak_concurrent: summary.peak,
        held_concurrent: summary.held,
        hold_seconds: summary.hold_seconds,
        peak_originations_per_sec: summary.peak_originations,
        ramp_originations_per_sec: summary.ramp_originations,
        max_originations_in_one_second: busiest_second,
        carrier_throttled: stats.throttled,
        frame_violations: stats.frame_violations,
        server_relay_latency_us,
        answer_to_agent_audio_ms: answer_to_audio.map(|h| Latency::of(&h)),
        carrier_to_agent: FrameFigures::from(&probe.snapshot(Direction::CarrierToAgent)),
        agent_to_carrier: FrameFigures::from(&probe.snapshot(Direction::AgentToCarrier)),
        server: summary.server,
        sims: summary.sims,
        final_status,
        timeline: sampler.timeline,
    })
}

/// One contact per row, in a place where it is afternoon now (so the calling window is
/// open), tagged with the run so the campaign's audience is exactly these. The numbers
/// belong to the place's country and the contacts carry its zone: Switchboard refuses a
/// zone outside the number's country, and calls only when both say it is day.
fn contacts_csv(scenario: &Scenario, run_id: &str) -> String {
    let place = afternoon_place(chrono::Utc::now());
    let mut csv = String::from("phone,name,timezone,loadtest_run\n");
    for i in 0..scenario.contacts {
        csv.push_str(&format!(
            "{},Load {i},{},{run_id}\n",
            place.number(i),
            place.zone
        ));
    }
    csv
}

/// A place with numbers to call: the zone, its offset from UTC in standard time (summer
/// time moves it by an hour, still afternoon), and its numbers.
#[derive(Debug, Clone, Copy)]
struct Place {
    zone: &'static str,
    utc_offset_min: i64,
    number: fn(u64) -> String,
}

impl Place {
    fn number(&self, i: u64) -> String {
        (self.number)(i)
    }
}

/// Places around the world, so that one of them is in its afternoon at any hour.
const PLACES: [Place; 6] = [
    Place {
        zone: "Pacific/Honolulu",
        utc_offset_min: -600,
        number: |i| format!("+1808{:03}{:04}", 200 + i / 10_000, i % 10_000),
    },
    Place {
        zone: "America/Los_Angeles",
        utc_offset_min: -480,
        number: |i| format!("+1415{:03}{:04}", 200 + i / 10_000, i % 10_000),
    },
    Place {
        zone: "America/New_York",
        utc_offset_min: -300,
        number: |i| format!("+1212{:03}{:04}", 200 + i / 10_000, i % 10_000),
    },
    Place {
        zone: "Europe/London",
        utc_offset_min: 0,
        number: |i| format!("+44207{:07}", i % 10_000_000),
    },
    Place {
        zone: "Asia/Kolkata",
        utc_offset_min: 330,
        number: |i| format!("+9198{:08}", i % 100_000_000),
    },
    Place {
        zone: "Asia/Tokyo",
        utc_offset_min: 540,
        number: |i| format!("+8135{:07}", i % 10_000_000),
    },
];

/// The place whose local time at `now` is nearest 14:00.
fn afternoon_place(now: chrono::DateTime<chrono::Utc>) -> Place {
    use chrono::Timelike as _;
    let minute_of_day = i64::from(now.hour() * 60 + now.minute());
    let distance = |p: &&Place| {
        let local = (minute_of_day + p.utc_offset_min).rem_euclid(24 * 60);
        let off = (local - 14 * 60).abs();
        off.min(24 * 60 - off)
    };
    *PLACES
        .iter()
        .min_by_key(distance)
        .expect("places are listed")
}

/// The campaign: every contact of the run, the scripted agent, all week, open late.
fn campaign_config(scenario: &Scenario, run_id: &str, agent_url: &str) -> serde_json::Value {
    json!({
        "name": format!("load test {run_id}"),
        "audience": {"query": {"loadtest_run": run_id}},
        "agent": {"mode": "media_stream", "url": agent_url},
        "script": {"template": "Hello {name|there}, this is a load test."},
        "schedule": {
            "days": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
            "start": "09:00",
            "end": "20:00"
        },
        // Calls are held for the whole run: an agent later than the 2-second rule is
        // still counted as abandoned (the report shows how many), but kept on the line.
        "abandonment": {"keep_agent_if_late": true},
        "max_concurrent_calls": scenario.concurrency,
        "max_calls_per_minute": scenario.calls_per_minute(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn at_every_hour_some_place_is_in_its_afternoon() {
        for hour in 0..24 {
            for minute in [0, 30] {
                let now = chrono::Utc
                    .with_ymd_and_hms(2026, 3, 2, hour, minute, 0)
                    .unwrap();
                let place = afternoon_place(now);
                let local =
                    (i64::from(hour * 60 + minute) + place.utc_offset_min).rem_euclid(24 * 60);
                assert!(
                    (11 * 60..=17 * 60).contains(&local),
                    "{hour}:{minute:02} UTC is minute {local} of the day in {}",
                    place.zone
                );
            }
        }
        let five = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 5, 0, 0).unwrap();
        let tokyo = afternoon_place(five);
        assert_eq!(
            (tokyo.zone, tokyo.number(7).as_str()),
            ("Asia/Tokyo", "+81350000007")
        );
    }
}
