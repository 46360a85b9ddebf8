//! The end-of-run report: what was held, how fast calls were placed, how long frames took,
//! and what it cost Switchboard (and the simulators) in CPU and memory.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::probe::ProbeSnapshot;

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    /// Seconds since the campaign started.
    pub t: u64,
    /// Calls dialled and not ended (ringing or talking).
    pub live: u64,
    /// Media streams open at the carrier (calls bridged through Switchboard).
    pub streaming: u64,
    /// Calls created at the carrier in the last second.
    pub originations: u64,
    /// Calls answered so far.
    pub answered: u64,
    /// Streams accepted by the agent so far.
    pub bridged: u64,
    /// Calls ended so far.
    pub ended: u64,
    /// Switchboard CPU over the last second, cores.
    pub server_cores: Option<f64>,
    /// Switchboard resident memory, KiB.
    pub server_rss_kib: Option<u64>,
    /// This process (carrier + agent simulators) CPU over the last second, cores.
    pub sims_cores: Option<f64>,
}

impl Tick {
    /// The progress line printed each second.
    pub fn line(&self) -> String {
        let server = match (self.server_cores, self.server_rss_kib) {
            (Some(cpu), Some(rss)) => format!(
                " | switchboard cpu {:>5.1}% rss {:>6.1} MiB",
                cpu * 100.0,
                rss as f64 / 1024.0
            ),
            _ => String::new(),
        };
        let sims = self
            .sims_cores
            .map(|c| format!(" | sims cpu {:>5.1}%", c * 100.0))
            .unwrap_or_default();
        format!(
            "t={:>4}s concurrent {:>5} (ringing+talking {:>5}) originations/s {:>4} answered {:>6} bridged {:>6} ended {:>6}{server}{sims}",
            self.t,
            self.streaming,
            self.live,
            self.originations,
            self.answered,
            self.bridged,
            self.ended
        )
    }
}

/// Percentiles of a latency histogram.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// Percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Frames of one direction.
#[derive(Debug, Clone, Serialize)]
pub struct FrameFigures {
    /// Stamped frames sent.
    pub sent: u64,
    /// Stamped frames received.
    pub received: u64,
    /// Frames missing from a stream's sequence.
    pub lost: u64,
    /// Frames later than 40 ms.
    pub late: u64,
    /// Media frames without a readable stamp.
    pub unstamped: u64,
    /// One-way latency, µs.
    pub latency_us: Latency,
}

impl From<&ProbeSnapshot> for FrameFigures {
    fn from(s: &ProbeSnapshot) -> Self {
        FrameFigures {
            sent: s.sent,
            received: s.received,
            lost: s.lost,
            late: s.late,
            unstamped: s.unstamped,
            latency_us: Latency::of(&s.latency_us),
        }
    }
}

/// CPU and memory of a process over the hold window.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Before any call (idle), cores.
    pub idle_cores: f64,
    /// Idle resident memory, KiB.
    pub idle_rss_kib: u64,
    /// Mean CPU while holding calls, cores.
    pub hold_cores: f64,
    /// Mean resident memory while holding calls, KiB.
    pub hold_rss_kib: u64,
    /// Peak resident memory, KiB.
    pub peak_rss_kib: u64,
    /// (hold − idle) CPU per live call, % of one core.
    pub cpu_pct_per_call: Option<f64>,
    /// (hold − idle) memory per live call, KiB.
    pub rss_kib_per_call: Option<f64>,
}

/// The whole report (also written as JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario run.
    pub scenario: super::Scenario,
    /// Where Switchboard ran, and whether the driver started it.
    pub server_url: String,
    /// Switchboard's pid, when known.
    pub server_pid: Option<u32>,
    /// Seconds from campaign start to the end of the run.
    pub seconds: u64,
    /// Calls created at the carrier.
    pub originated: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls bridged to the agent.
    pub bridged: u64,
    /// Most media streams open at once.
    pub peak_concurrent: u64,
    /// Fewest media streams open during the hold window (after the peak was first near).
    pub held_concurrent: u64,
    /// Seconds of the hold window.
    pub hold_seconds: u64,
    /// Highest originations in one second.
    pub peak_originations_per_sec: u64,
    /// Mean originations per second until the peak was first near.
    pub ramp_originations_per_sec: f64,
    /// Most calls the carrier was asked to create within any one-second window (sliding):
    /// what a calls-per-second limit bounds.
    pub max_originations_in_one_second: u64,
    /// Create-call requests the carrier refused with 429 / 20429 (its API concurrency).
    pub carrier_throttled: u64,
    /// Frames Switchboard sent the carrier that Twilio would refuse, per kind (all zero
    /// when Switchboard speaks the dialect exactly).
    pub frame_violations: crate::FrameViolations,
    /// Switchboard's own relay latency per frame, read → written to the other side (µs:
    /// p50, p99, p99.9, max), over every call, from its `/metrics`.
    pub server_relay_latency_us: Option<[u64; 4]>,
    /// Answer → the agent's first audio at the carrier, ms.
    pub answer_to_agent_audio_ms: Option<Latency>,
    /// Carrier → agent frames through Switchboard.
    pub carrier_to_agent: FrameFigures,
    /// Agent → carrier frames through Switchboard.
    pub agent_to_carrier: FrameFigures,
    /// Switchboard's cost.
    pub server: Option<Cost>,
    /// The simulators' cost (this process).
    pub sims: Option<Cost>,
    /// Campaign status at the end, as the API answered it.
    pub final_status: Option<serde_json::Value>,
    /// One entry per second.
    pub timeline: Vec<Tick>,
}

impl Report {
    /// The text summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "switchboard              {} (pid {})",
            self.server_url,
            self.server_pid.map_or("?".to_owned(), |p| p.to_string())
        ));
        line(format!(
            "calls                    originated {}  answered {}  bridged {}",
            self.originated, self.answered, self.bridged
        ));
        line(format!(
            "concurrent calls         peak {}  held ≥ {} for {} s",
            self.peak_concurrent, self.held_concurrent, self.hold_seconds
        ));
        line(format!(
            "carrier refusals         {} with 429 (api concurrency); {} media frames Twilio would refuse {:?}",
            self.carrier_throttled,
            self.frame_violations.total(),
            self.frame_violations
        ));
        line(format!(
            "originations/s           peak {}  mean during ramp {:.1}  (carrier cps limit {})",
            self.peak_originations_per_sec,
            self.ramp_originations_per_sec,
            self.scenario
                .carrier_cps()
                .map_or("none".to_owned(), |c| c.to_string())
        ));
        let limit = self.scenario.carrier_cps();
        line(format!(
            "carrier create requests  most in any 1-s window {}{}",
            self.max_originations_in_one_second,
            match limit {
                Some(cps) if self.max_originations_in_one_second as f64 <= cps.ceil() => {
                    format!("  (limit {cps}: kept)")
                }
                Some(cps) => format!("  (limit {cps}: EXCEEDED)"),
                None => String::new(),
            }
        ));
        if let Some(l) = &self.server_relay_latency_us {
            line(format!(
                "relay in → out (server)  p50 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  (Switchboard's own per-frame figure)",
                l[0], l[1], l[2], l[3]
            ));
        }
        if let Some(a) = &self.answer_to_agent_audio_ms {
            line(format!(
                "answer → agent audio     p50 {} ms  p99 {} ms  max {} ms  ({} calls; agent greets after {} ms)",
                a.p50, a.p99, a.max, a.count, self.scenario.greeting_delay_ms
            ));
        }
        if let Some(calls) = self.final_status.as_ref().and_then(|s| s.get("calls")) {
            let count = |key: &str| calls.get(key).and_then(serde_json::Value::as_u64);
            if let (Some(abandoned), Some(answered)) = (count("abandoned"), count("answered")) {
                line(format!(
                    "abandoned (2-second rule) {abandoned} of {answered} answered  (agents kept on the line for the run)"
                ));
            }
        }
        for (name, f) in [
            ("carrier → agent", &self.carrier_to_agent),
            ("agent → carrier", &self.agent_to_carrier),
        ] {
            let l = &f.latency_us;
            line(format!(
                "{name:<24} p50 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  frames {}/{}  lost {}  late {}  unstamped {}",
                l.p50, l.p99, l.p999, l.max, f.received, f.sent, f.lost, f.late, f.unstamped
            ));
        }
        for (name, cost) in [("switchboard", &self.server), ("simulators", &self.sims)] {
            if let Some(c) = cost {
                line(format!(
                    "{name:<24} cpu idle {:.1}% hold {:.1}%  rss idle {:.1} MiB hold {:.1} MiB peak {:.1} MiB",
                    c.idle_cores * 100.0,
                    c.hold_cores * 100.0,
                    c.idle_rss_kib as f64 / 1024.0,
                    c.hold_rss_kib as f64 / 1024.0,
                    c.peak_rss_kib as f64 / 1024.0
                ));
                if let (Some(cpu), Some(rss)) = (c.cpu_pct_per_call, c.rss_kib_per_call) {
                    line(format!(
                        "{:<24} per live call: cpu {:.3}% of a core  rss {:.1} KiB",
                        "", cpu, rss
                    ));
                }
            }
        }
        out
    }
}
