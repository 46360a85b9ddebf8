//! One sample a second of the calls (from the simulators' counters) and of the processes
//! (Switchboard's and this one), and what they add up to over the hold window.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::procstat::ProcSample;
use super::report::{Cost, Tick};
use crate::{ScriptedAgent, SimCarrier};

type Pair = (Option<ProcSample>, Option<ProcSample>);

/// Samples a run.
#[derive(Debug)]
pub struct Sampler {
    pid: Option<u32>,
    idle: (Pair, Pair),
    last: (Pair, u64),
    next: Instant,
    t: u64,
    /// One tick a second.
    pub timeline: Vec<Tick>,
    samples: Vec<Pair>,
}

/// What the timeline adds up to.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Most streams open at once.
    pub peak: u64,
    /// Fewest streams open in the hold window.
    pub held: u64,
    /// Seconds of the hold window.
    pub hold_seconds: u64,
    /// Highest originations in one second.
    pub peak_originations: u64,
    /// Mean originations a second before the hold window.
    pub ramp_originations: f64,
    /// Switchboard's cost (when its pid is known).
    pub server: Option<Cost>,
    /// This process's cost (the simulators).
    pub sims: Option<Cost>,
}

impl Sampler {
    /// Reads an idle baseline of `pid` (Switchboard) and this process over `idle`, then
    /// starts the clock of the run.
    pub async fn start(pid: Option<u32>, idle: Duration, carrier: &SimCarrier) -> Sampler {
        let from = (ProcSample::read(pid), ProcSample::read(None));
        tokio::time::sleep(idle).await;
        let to = (ProcSample::read(pid), ProcSample::read(None));
        Sampler {
            pid,
            idle: (from, to),
            last: (to, carrier.stats().created),
            next: Instant::now() + Duration::from_secs(1),
            t: 0,
            timeline: Vec::new(),
            samples: Vec::new(),
        }
    }

    /// Waits for the next second and samples it.
    pub async fn tick(&mut self, carrier: &SimCarrier, agent: &ScriptedAgent) -> &Tick {
        tokio::time::sleep_until(self.next.into()).await;
        self.next += Duration::from_secs(1);
        self.t += 1;
        let now = (ProcSample::read(self.pid), ProcSample::read(None));
        let c = carrier.stats();
        let a = agent.stats();
        let cores = |now: Option<ProcSample>, before: Option<ProcSample>| {
            now.zip(before).map(|(n, b)| n.cores_since(&b))
        };
        let tick = Tick {
            t: self.t,
            live: c.live(),
            streaming: c.streaming(),
            originations: c.created.saturating_sub(self.last.1),
            answered: c.answered,
            bridged: a.accepted,
            ended: c.ended,
            server_cores: cores(now.0, self.last.0.0),
            server_rss_kib: now.0.map(|s| s.rss_kib),
            sims_cores: cores(now.1, self.last.0.1),
        };
        self.last = (now, c.created);
        self.samples.push(now);
        self.timeline.push(tick);
        self.timeline.last().expect("a tick was just pushed")
    }

    /// The hold window starts the first second the open streams reach 95 % of their peak
    /// and lasts until `hold_end` ticks (or the end); costs are measured over it.
    pub fn summary(&self, hold_end: Option<usize>) -> Summary {
        let end = hold_end
            .unwrap_or(self.timeline.len())
            .min(self.timeline.len());
        let timeline = &self.timeline[..end];
        let peak = timeline.iter().map(|t| t.streaming).max().unwrap_or(0);
        let start = timeline
            .iter()
            .position(|t| t.streaming > 0 && t.streaming * 100 >= peak * 95)
            .unwrap_or(timeline.len());
        let window = &timeline[start..];
        let held = window.iter().map(|t| t.streaming).min().unwrap_or(0);
        let ramp = &timeline[..start];
        let samples = &self.samples[start..end];
        let mean_calls =
            window.iter().map(|t| t.streaming as f64).sum::<f64>() / window.len().max(1) as f64;
        Summary {
            peak,
            held,
            hold_seconds: window.len().saturating_sub(1) as u64,
            peak_originations: self
                .timeline
                .iter()
                .map(|t| t.originations)
                .max()
                .unwrap_or(0),
            ramp_originations: ramp.iter().map(|t| t.originations).sum::<u64>() as f64
                / ramp.len().max(1) as f64,
            server: cost(samples, |s| s.0, (self.idle.0.0, self.idle.1.0), mean_calls),
            sims: cost(samples, |s| s.1, (self.idle.0.1, self.idle.1.1), mean_calls),
        }
    }
}

fn cost(
    window: &[Pair],
    pick: fn(&Pair) -> Option<ProcSample>,
    idle: (Option<ProcSample>, Option<ProcSample>),
    calls: f64,
) -> Option<Cost> {
    let (idle_from, idle_to) = (idle.0?, idle.1?);
    let first = pick(window.first()?)?;
    let last = pick(window.last()?)?;
    let rss: Vec<u64> = window
        .iter()
        .filter_map(|s| pick(s).map(|p| p.rss_kib))
        .collect();
    let hold_rss = rss.iter().sum::<u64>() / rss.len().max(1) as u64;
    let idle_cores = idle_to.cores_since(&idle_from);
    let hold_cores = last.cores_since(&first);
    let per_call = (calls >= 1.0 && window.len() > 1).then_some(calls);
    Some(Cost {
        idle_cores,
        idle_rss_kib: idle_to.rss_kib,
        hold_cores,
        hold_rss_kib: hold_rss,
        peak_rss_kib: rss.iter().copied().max().unwrap_or(0),
        cpu_pct_per_call: per_call.map(|n| (hold_cores - idle_cores).max(0.0) * 100.0 / n),
        rss_kib_per_call: per_call.map(|n| (hold_rss as f64 - idle_to.rss_kib as f64).max(0.0) / n),
    })
}

/// Answer → first agent frame at the carrier (ms), over answered calls that heard the agent.
pub fn answer_to_agent_audio(carrier: &SimCarrier) -> Option<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000, 3).ok()?;
    for call in carrier.calls() {
        if let (Some(answered), Some(heard)) = (call.answered_at, call.first_far_audio_at) {
            let ms = heard.saturating_duration_since(answered).as_millis();
            h.saturating_record(u64::try_from(ms).unwrap_or(u64::MAX).max(1));
        }
    }
    (!h.is_empty()).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(t: u64, streaming: u64) -> Tick {
        Tick {
            t,
            live: streaming,
            streaming,
            originations: 0,
            answered: 0,
            bridged: 0,
            ended: 0,
            server_cores: None,
            server_rss_kib: None,
            sims_cores: None,
        }
    }

    #[test]
    fn the_hold_window_starts_once_streams_near_their_peak() {
        let sampler = Sampler {
            pid: None,
            idle: ((None, None), (None, None)),
            last: ((None, None), 0),
            next: Instant::now(),
            t: 4,
            timeline: vec![
                tick(1, 10),
                tick(2, 96),
                tick(3, 100),
                tick(4, 99),
                tick(5, 3),
            ],
            samples: vec![(None, None); 5],
        };
        let summary = sampler.summary(Some(4));
        assert_eq!(
            (summary.peak, summary.held, summary.hold_seconds),
            (100, 96, 2)
        );
        assert!(summary.server.is_none(), "no pid, no cost");
    }
}

/// The most instants falling in any one-second window (sliding, not aligned to seconds):
/// what a calls-per-second limit bounds.
pub fn max_in_any_second(mut at: Vec<Instant>) -> u64 {
    at.sort_unstable();
    let mut most = 0;
    let mut first = 0;
    for (last, t) in at.iter().enumerate() {
        while t.duration_since(at[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most as u64
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn the_busiest_second_is_found_across_second_boundaries() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        // 3 in [0, 1000), but 4 in [600, 1600): the sliding window sees the burst.
        let at = vec![ms(0), ms(600), ms(700), ms(900), ms(1500), ms(2600)];
        assert_eq!(max_in_any_second(at), 4);
        assert_eq!(max_in_any_second(vec![ms(0), ms(1000), ms(2000)]), 1);
        assert_eq!(max_in_any_second(Vec::new()), 0);
    }
}
