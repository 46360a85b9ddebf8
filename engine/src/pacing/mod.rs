//! The dial-rate controller: how many new lines a campaign opens now. Pure: the pacing
//! actor feeds it what happens to attempts and asks it each tick.
//!
//! # Measures
//!
//! The pacer is fed each attempt when its ring phase ends ([`RingEnd`]: answered by whom,
//! ring time, abandoned) and each answered call when it ends ([`CallEnd`]: handle time).
//! Over sliding windows ([`Observations`]) it measures:
//! - p, the answer probability (a person or a machine: both take an agent), over the
//!   newest `window_attempts` attempts dialed at least a ring timeout ago (the longest
//!   unanswered ring seen), all of whose fates are known. Counting ring ends as they come
//!   would be biased: answers arrive before give-ups. p⁺ is its one-sided Wilson upper
//!   bound at z = `answer_z` (1.28, 90%): over-estimating p opens fewer lines, so a small
//!   sample is conservative;
//! - r, the mean time to answer of that cohort's answered attempts;
//! - h, the handle time: the exponential estimate with right-censoring, (time bridged by
//!   the calls that ended in the window + time bridged so far by live calls) / calls
//!   ended, once `min_call_ends` (20) ended; before that no agent is expected to free up;
//! - a, the abandonment rate (abandoned / answered by a person) over the last
//!   `abandonment_window_secs` (30 minutes: short enough to react within a regulator's
//!   window), or the ledger's rolling rate if worse.
//!
//! # Decision
//!
//! With `free` = agent slots − bridged calls, and q = 1 − e^(−r/h) the chance that a
//! bridged call ends within one ring time:
//! 1. **Warm-up** (fewer than `min_observations`, 30, attempts in the cohort): one line
//!    per free slot, minus lines already ringing. 1:1 dialing cannot abandon anyone.
//! 2. **Feedback.** At or above the target abandonment rate, dial 1:1 as in warm-up, so
//!    the rate only falls and pacing never takes it to `max_rate`. Below it, a factor f,
//!    1 up to half the target and falling linearly to 0 at the target, scales the budget.
//! 3. **Mean rule** (DESIGN): new lines = (free + bridged × q − E[answers from lines
//!    already ringing]) / p⁺, with at most `max_ratio` (10) lines out per available agent.
//!    A line that has rung for t seconds is answered still with chance
//!    p⁺·S(t) / (1 − p⁺ + p⁺·S(t)), S(t) being the share of the cohort's answered
//!    attempts that rang longer than t: a line near the ring timeout is almost spent,
//!    and counting it as a fresh line would leave agents idle.
//! 4. **Risk cap.** With X = answers of the ringing lines (Poisson-binomial over those
//!    chances) + Binomial(lines, p⁺) and F ~
//!    Binomial(bridged, q) agents freeing up, lines are cut to the largest count whose
//!    expected answers finding no agent, E[(X − free − F)⁺], are at most f × target ×
//!    E[X]. The mean rule alone would leave an answer without an agent about half the
//!    time. Never below the 1:1 count.
//! 5. **Limits.** The result is bounded by campaign max concurrency (minus lines in
//!    flight), calls per minute (minus those started in the last minute), the daily cap
//!    (minus those started today) and the carrier bucket's tokens; the decision says
//!    which one bound it.
//!
//! In a simulation (50 agents, exponential 120 s calls, answers 5–25 s after dial, give-up
//! at 25 s, answer rate swinging 10%–60% every hour, an answered person waiting up to the
//! 2-second rule for an agent, one tick a second, 4 hours) this gave 87.7–88.8% agent
//! occupancy with 0.75–1.1% abandonment overall and at most 2.6% in any 15-minute window,
//! over eight seeds (`cargo run -p switchboard-engine --example pacing_sim -- SEED 50 4`).

mod math;

use crate::campaign::CampaignConfig;
use crate::quality::wilson_interval;
use chrono::{DateTime, TimeDelta, Utc};
#[cfg(test)]
use math::excess_ratio;
use math::{binomial_pmf, convolve, excess_share, largest, poisson_binomial};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Most lines, ringing and new, the controller reasons about: bounds its work.
pub const MAX_LINES: u32 = 100_000;

/// Who answered an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// A person.
    Human,
    /// An answering machine.
    Machine,
}

/// The end of an attempt's ring phase: answered and connected to an agent (or abandoned),
/// or given up. Fed as soon as that is known, not when the call ends: an answered call
/// ends minutes after an unanswered one, so counting attempts at their end would see
/// too few answers whenever the answer rate rises (and at every start).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RingEnd {
    /// When the ring phase ended.
    pub at: DateTime<Utc>,
    /// Who answered, if anyone.
    pub answered: Option<AnsweredBy>,
    /// Seconds from dial to answer, or to giving up.
    pub ring_secs: f64,
    /// A person answered and no agent was there within 2 seconds.
    pub abandoned: bool,
}

/// The end of an answered call, for the handle time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CallEnd {
    /// When the call ended.
    pub at: DateTime<Utc>,
    /// Seconds from answer to end.
    pub handle_secs: f64,
}

/// Pacing settings; `Default` holds the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacingConfig {
    /// Attempts kept in the window; default 200.
    pub window_attempts: usize,
    /// Oldest attempt kept, in seconds; default 900 (15 minutes).
    pub window_secs: i64,
    /// Span of the abandonment rate's window, in seconds; default 1800.
    pub abandonment_window_secs: i64,
    /// Attempts needed before predictive dialing; default 30.
    pub min_observations: usize,
    /// Ended calls needed before counting on agents to free up; default 20.
    pub min_call_ends: usize,
    /// z of the answer-probability upper bound; default 1.28 (one-sided 90%).
    pub answer_z: f64,
    /// Most lines out per available agent; default 10.
    pub max_ratio: f64,
    /// Abandonment rate aimed under; default 0.02.
    pub target_abandonment: f64,
    /// Abandonment rate never to reach; default 0.03.
    pub max_abandonment: f64,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            window_attempts: 200,
            window_secs: 900,
            abandonment_window_secs: 1800,
            min_observations: 30,
            min_call_ends: 20,
            answer_z: 1.28,
            max_ratio: 10.0,
            target_abandonment: 0.02,
            max_abandonment: 0.03,
        }
    }
}

impl PacingConfig {
    /// The defaults with the campaign's abandonment target and cap.
    pub fn for_campaign(config: &CampaignConfig) -> Self {
        PacingConfig {
            target_abandonment: config.abandonment.target_rate,
            max_abandonment: config.abandonment.max_rate,
            ..PacingConfig::default()
        }
    }
}

/// Counts and means over the windows at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct WindowStats {
    /// Attempts in the answer-rate cohort (dialed at least a ring timeout ago).
    pub attempts: u64,
    /// Of those, answered by a person or a machine.
    pub answered: u64,
    /// Mean seconds from dial to answer over the cohort's answered attempts.
    pub ring_secs: Option<f64>,
    /// Answered calls ended within the calls' span.
    pub calls_ended: u64,
    /// Seconds those calls spent bridged within the span.
    pub call_exposure_secs: f64,
    /// The span the call ends cover, in seconds (the window, or less when it is full).
    pub call_span_secs: f64,
    /// The ring timeout seen: the longest ring of an unanswered attempt.
    pub horizon_secs: f64,
    /// Calls answered by a person in the abandonment window.
    pub live_answered: u64,
    /// Of those, abandoned.
    pub abandoned: u64,
}

/// Person-answered calls kept for the abandonment rate, at most.
const MAX_ANSWERS_KEPT: usize = 5000;

/// The sliding windows: ring ends (the newest `max_count` attempts whose fate is known,
/// no older than a maximum age), call ends (likewise) and person-answered calls (for
/// abandonment). Memory is bounded by counts; age is applied when reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    max_count: usize,
    max_age: f64,
    abandonment_age: f64,
    rings: VecDeque<RingEnd>,
    calls: VecDeque<CallEnd>,
    answers: VecDeque<(DateTime<Utc>, bool)>,
}

impl Observations {
    /// Windows of the last `max_count` attempts (at least 1) no older than `max_age`, and
    /// of person-answered calls no older than `abandonment_age`.
    pub fn new(max_count: usize, max_age: TimeDelta, abandonment_age: TimeDelta) -> Self {
        let secs = |d: TimeDelta| d.num_milliseconds() as f64 / 1e3;
        Observations {
            max_count: max_count.max(1),
            max_age: secs(max_age),
            abandonment_age: secs(abandonment_age),
            rings: VecDeque::new(),
            calls: VecDeque::new(),
            answers: VecDeque::new(),
        }
    }

    /// Adds the end of a ring phase (an attempt, for the answer and abandonment rates).
    pub fn record_ring(&mut self, ring: RingEnd) {
        if ring.answered == Some(AnsweredBy::Human) {
            let answer = (ring.at, ring.abandoned);
            push_bounded(&mut self.answers, answer, MAX_ANSWERS_KEPT);
        }
        // Keep more than N: the newest attempts are not in the cohort yet.
        push_bounded(&mut self.rings, ring, self.max_count.saturating_mul(4));
    }

    /// Adds the end of an answered call (for the handle time).
    pub fn record_call(&mut self, call: CallEnd) {
        push_bounded(&mut self.calls, call, self.max_count.saturating_mul(4));
    }

    /// Machine detection found a machine on a call recorded as answered by a person
    /// (`ring`, exactly as recorded): it stays an answered attempt, now by a machine, and
    /// leaves the abandonment window. Returns whether the ring was still in the window.
    pub fn reclassify_as_machine(&mut self, ring: &RingEnd) -> bool {
        let Some(kept) = self.rings.iter_mut().rev().find(|r| *r == ring) else {
            return false;
        };
        kept.answered = Some(AnsweredBy::Machine);
        kept.abandoned = false;
        let answer = (ring.at, ring.abandoned);
        if let Some(i) = self.answers.iter().rposition(|a| *a == answer) {
            self.answers.remove(i);
        }
        true
    }

    /// The windows' figures at `now`; older events are left out.
    pub fn stats(&self, now: DateTime<Utc>) -> WindowStats {
        let (attempts, answered, ring_secs, horizon_secs) = self.answer_cohort(now);
        let (calls_ended, call_exposure_secs, call_span_secs) = self.call_exposure(now);
        let answers = self.answers.iter();
        let answers = answers.filter(|(at, _)| secs_between(*at, now) <= self.abandonment_age);
        let count =
            |(n, a): (u64, u64), (_, abandoned): &(_, bool)| (n + 1, a + u64::from(*abandoned));
        let (live_answered, abandoned) = answers.fold((0, 0), count);
        WindowStats {
            attempts,
            answered,
            ring_secs,
            calls_ended,
            call_exposure_secs,
            call_span_secs,
            horizon_secs,
            live_answered,
            abandoned,
        }
    }

    /// The cohort: (attempts, answered, mean time to answer, ring timeout).
    fn answer_cohort(&self, now: DateTime<Utc>) -> (u64, u64, Option<f64>, f64) {
        let (attempts, answered, horizon) = self.cohort(now);
        let n = answered.len() as u64;
        (attempts, n, mean(answered.iter().sum(), n), horizon)
    }

    /// The cohort's attempts, its answered attempts' ring times (sorted) and the ring
    /// timeout.
    fn cohort(&self, now: DateTime<Utc>) -> (u64, Vec<f64>, f64) {
        // (seconds since dial, answered, ring seconds) of each attempt in the window.
        let fresh = self.rings.iter().map(|r| (secs_between(r.at, now), r));
        let fresh = fresh.filter(|(ago, _)| *ago <= self.max_age);
        let rings = fresh.map(|(ago, r)| {
            (
                ago + finite(r.ring_secs),
                r.answered.is_some(),
                finite(r.ring_secs),
            )
        });
        let rings: Vec<(f64, bool, f64)> = rings.collect();
        let unanswered = rings.iter().filter(|(_, answered, _)| !answered);
        let horizon = unanswered.map(|r| r.2).fold(0.0, f64::max).min(600.0);
        let mut cohort: Vec<_> = rings.into_iter().filter(|r| r.0 >= horizon).collect();
        cohort.sort_by(|a, b| a.0.total_cmp(&b.0));
        cohort.truncate(self.max_count);
        let mut answered: Vec<f64> = cohort.iter().filter(|r| r.1).map(|r| r.2).collect();
        answered.sort_by(f64::total_cmp);
        (cohort.len() as u64, answered, horizon)
    }

    /// Calls ended within the span the store covers, the time they spent bridged within
    /// it, and the span: dropping old calls must not leave their exposure behind.
    fn call_exposure(&self, now: DateTime<Utc>) -> (u64, f64, f64) {
        let full = self.calls.len() >= self.max_count.saturating_mul(4);
        let oldest = self
            .calls
            .front()
            .filter(|_| full)
            .map(|c| secs_between(c.at, now));
        let span = oldest
            .map_or(self.max_age, |o| o.min(self.max_age))
            .max(0.0);
        let ended = self
            .calls
            .iter()
            .map(|c| (secs_between(c.at, now), finite(c.handle_secs)));
        let ended = ended.filter(|(ago, _)| *ago <= span);
        ended.fold((0, 0.0, span), |(n, t, _), (ago, h)| {
            (n + 1, t + h.min(span - ago), span)
        })
    }
}

/// Seconds from `from` to `to`, negative when `to` is earlier.
fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    to.signed_duration_since(from).num_milliseconds() as f64 / 1e3
}

fn mean(total: f64, n: u64) -> Option<f64> {
    (n > 0).then(|| total / n as f64)
}

fn push_bounded<T>(items: &mut VecDeque<T>, item: T, max: usize) {
    while items.len() >= max {
        items.pop_front();
    }
    items.push_back(item);
}

/// A duration as given, or 0 when negative or not a number.
fn finite(secs: f64) -> f64 {
    if secs.is_finite() { secs.max(0.0) } else { 0.0 }
}

/// What the runtime knows at a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacingInput {
    /// The tick's instant.
    pub now: DateTime<Utc>,
    /// Agent sessions the campaign may hold at once.
    pub agent_slots: u32,
    /// Live calls holding an agent slot (answered and bridged or being bridged).
    pub bridged: u32,
    /// Seconds those calls have been bridged so far, added up.
    pub bridged_secs: f64,
    /// Lines dialed and not yet answered or ended.
    pub ringing: u32,
    /// How long each of those lines has been ringing, in seconds (a line that rang long
    /// is less likely to be answered still). Empty: every ringing line counts as new.
    #[serde(default)]
    pub ringing_ages: Vec<f64>,
    /// Every live call of the campaign, counted against max concurrency.
    pub in_flight: u32,
    /// Campaign max concurrent calls.
    pub max_concurrent: u32,
    /// Calls-per-minute limit, if any.
    pub calls_per_minute: Option<u32>,
    /// Calls started in the last minute.
    pub started_last_minute: u32,
    /// Calls started in the last second (with a calls-per-minute limit, the minute is
    /// spread evenly: see [`per_second_allowance`]).
    #[serde(default)]
    pub started_last_second: u32,
    /// Daily cap, if any.
    pub daily_cap: Option<u32>,
    /// Calls started today.
    pub started_today: u32,
    /// Tokens available now in the carrier account's bucket.
    pub carrier_tokens: u32,
    /// The ledger's rolling 30-day abandonment rate, if known.
    pub rolling_abandonment: Option<f64>,
}

/// How the line count was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// Too few observations: 1:1.
    WarmUp,
    /// Abandonment at or above target: 1:1.
    OneToOne,
    /// Predictive dialing.
    Predictive,
}

/// What bounded the number of new lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// The pacing itself (agent capacity, answer rate, abandonment).
    Agents,
    /// Campaign max concurrent calls.
    MaxConcurrency,
    /// Calls per minute.
    CallsPerMinute,
    /// Daily cap.
    DailyCap,
    /// The carrier bucket.
    CarrierTokens,
}

/// The decision of one tick and the figures behind it, for the pacing snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PacingDecision {
    /// New lines to open now.
    pub lines: u32,
    /// Lines pacing wanted before the limits.
    pub wanted: u32,
    /// What bounded `lines`.
    pub bound: Bound,
    /// How `wanted` was reached.
    pub regime: Regime,
    /// Agent slots free now.
    pub free_slots: u32,
    /// Bridged calls expected to end within a ring time.
    pub expected_free: f64,
    /// Answer probability measured.
    pub answer_rate: Option<f64>,
    /// Its upper bound, used for dialing.
    pub answer_rate_bound: Option<f64>,
    /// Abandonment rate over the window.
    pub abandonment_rate: Option<f64>,
    /// Feedback factor applied to the abandonment budget (1 = full).
    pub feedback: f64,
    /// Mean time to answer, in seconds.
    pub ring_secs: Option<f64>,
    /// Mean handle time, in seconds.
    pub handle_secs: Option<f64>,
    /// Attempts in the window.
    pub observations: u64,
}

/// The controller: configuration and observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    config: PacingConfig,
    observations: Observations,
}

impl Pacer {
    /// A pacer with no observations yet.
    pub fn new(config: PacingConfig) -> Self {
        let age = |secs: i64| TimeDelta::try_seconds(secs.max(0)).unwrap_or(TimeDelta::MAX);
        let observations = Observations::new(
            config.window_attempts,
            age(config.window_secs),
            age(config.abandonment_window_secs),
        );
        Pacer {
            config,
            observations,
        }
    }

    /// Takes new settings (a running campaign's edited pacing or abandonment target),
    /// keeping what was observed; windows are rebuilt only when their sizes changed.
    pub fn reconfigure(&mut self, config: PacingConfig) {
        let same_windows = config.window_attempts == self.config.window_attempts
            && config.window_secs == self.config.window_secs
            && config.abandonment_window_secs == self.config.abandonment_window_secs;
        if same_windows {
            self.config = config;
        } else {
            *self = Pacer::new(config);
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    /// Feeds the end of a ring phase.
    pub fn record_ring(&mut self, ring: RingEnd) {
        self.observations.record_ring(ring);
    }

    /// Feeds the end of an answered call.
    pub fn record_call(&mut self, call: CallEnd) {
        self.observations.record_call(call);
    }

    /// A ring end fed as a person's answer turned out to be a machine's (asynchronous
    /// machine detection); see [`Observations::reclassify_as_machine`].
    pub fn reclassify_as_machine(&mut self, ring: &RingEnd) -> bool {
        self.observations.reclassify_as_machine(ring)
    }

    /// How many new lines to open now, following the module doc.
    pub fn decide(&self, input: &PacingInput) -> PacingDecision {
        let s = self.observations.stats(input.now);
        let e = self.estimates(&s, input);
        let room = limits(input);
        let max_room = room.iter().map(|(_, r)| *r).min().unwrap_or(u32::MAX);
        let one_to_one = e.free.saturating_sub(input.ringing);
        let (regime, wanted) = if (s.attempts as usize) < self.config.min_observations {
            (Regime::WarmUp, one_to_one)
        } else if e.feedback <= 0.0 {
            (Regime::OneToOne, one_to_one)
        } else {
            // Search no further than one past the tightest limit: enough to tell which binds.
            let most = max_room.saturating_add(1);
            (Regime::Predictive, self.predictive(&e, input, most))
        };
        let (bound, lines) = room
            .into_iter()
            .filter(|(_, r)| *r < wanted)
            .min_by_key(|(_, r)| *r)
            .unwrap_or((Bound::Agents, wanted));
        PacingDecision {
            lines,
            wanted,
            bound,
            regime,
            free_slots: e.free,
            expected_free: f64::from(input.bridged) * e.freeing_prob,
            answer_rate: e.answer_rate,
            answer_rate_bound: e.answer_bound,
            abandonment_rate: e.window_rate,
            feedback: e.feedback,
            ring_secs: s.ring_secs,
            handle_secs: e.handle_secs,
            observations: s.attempts,
        }
    }

    /// The rates and times the decision rests on.
    fn estimates(&self, s: &WindowStats, input: &PacingInput) -> Estimates {
        let c = &self.config;
        let window_rate = mean(s.abandoned as f64, s.live_answered);
        let worst = window_rate.into_iter().chain(input.rolling_abandonment);
        let target = c.target_abandonment.min(c.max_abandonment);
        let answer_bound =
            (s.attempts > 0).then(|| wilson_interval(s.answered, s.attempts, c.answer_z).1);
        // Handle time as an exponential rate with right-censoring: calls ended in the
        // span over all bridged time in it, the live calls' time included.
        let live = finite(input.bridged_secs).min(f64::from(input.bridged) * s.call_span_secs);
        let handle_secs = (s.calls_ended >= c.min_call_ends as u64)
            .then(|| (s.call_exposure_secs + live) / s.calls_ended as f64);
        let freeing_prob = match (s.ring_secs, handle_secs) {
            (Some(r), Some(h)) if h > 0.0 => 1.0 - (-r / h).exp(),
            _ => 0.0,
        };
        Estimates {
            free: input.agent_slots.saturating_sub(input.bridged),
            window_rate,
            feedback: feedback(worst.fold(0.0, f64::max), target),
            budget: target,
            answer_rate: mean(s.answered as f64, s.attempts),
            answer_bound,
            handle_secs,
            freeing_prob,
        }
    }

    /// Lines by the mean rule, cut by the risk cap, never below 1:1, at most `most`.
    fn predictive(&self, e: &Estimates, input: &PacingInput, most: u32) -> u32 {
        let one_to_one = e.free.saturating_sub(input.ringing);
        let expected_free = f64::from(input.bridged) * e.freeing_prob;
        let capacity = f64::from(e.free) + expected_free;
        let p = e.answer_bound.unwrap_or(1.0).clamp(1e-6, 1.0);
        let ratio = self.config.max_ratio;
        let ratio = if ratio.is_finite() {
            ratio.max(1.0)
        } else {
            1.0
        };
        // Lines already ringing answer with what is left of their chance.
        let ringing = self.ringing_chances(input, p);
        let expected_ringing: f64 = ringing.iter().sum();
        let wanted = ((capacity - expected_ringing).max(0.0) / p)
            .min(capacity * ratio - f64::from(input.ringing))
            .min(f64::from(MAX_LINES.saturating_sub(input.ringing)));
        let mean_rule = to_u32(wanted.floor());
        let hi = mean_rule.min(most).max(one_to_one);
        let freeing = match input.bridged {
            b if b <= MAX_LINES => binomial_pmf(b, e.freeing_prob),
            _ => vec![1.0],
        };
        let from_ringing = poisson_binomial(&ringing);
        let budget = e.budget * e.feedback;
        let fits = |lines: u32| {
            let n = input.ringing.saturating_add(lines);
            n <= MAX_LINES
                && excess_share(
                    &convolve(&from_ringing, &binomial_pmf(lines, p)),
                    e.free,
                    &freeing,
                ) <= budget
        };
        largest(one_to_one, hi, fits)
    }

    /// Each ringing line's chance to be answered still, from how long it has rung: with
    /// S(t) the share of answered attempts that rang longer than t, p·S(t) / (1 − p + p·S(t)).
    /// Lines without a known age count as new (chance p).
    fn ringing_chances(&self, input: &PacingInput, p: f64) -> Vec<f64> {
        let (_, answered, _) = self.observations.cohort(input.now);
        let mut chances: Vec<f64> = input
            .ringing_ages
            .iter()
            .take(input.ringing as usize)
            .map(|age| {
                if answered.is_empty() {
                    return p;
                }
                let longer = answered.len() - answered.partition_point(|r| *r <= *age);
                let survive = longer as f64 / answered.len() as f64;
                let still = p * survive;
                if still <= 0.0 {
                    0.0
                } else {
                    still / (1.0 - p + still)
                }
            })
            .collect();
        chances.resize(input.ringing as usize, p);
        chances
    }
}

/// What [`Pacer::decide`] estimates before choosing.
struct Estimates {
    free: u32,
    window_rate: Option<f64>,
    feedback: f64,
    budget: f64,
    answer_rate: Option<f64>,
    answer_bound: Option<f64>,
    handle_secs: Option<f64>,
    freeing_prob: f64,
}

/// Headroom under each limit.
fn limits(input: &PacingInput) -> Vec<(Bound, u32)> {
    let left = |limit: Option<u32>, used: u32| limit.map(|l| l.saturating_sub(used));
    [
        (
            Bound::MaxConcurrency,
            Some(input.max_concurrent.saturating_sub(input.in_flight)),
        ),
        (
            Bound::CallsPerMinute,
            left(input.calls_per_minute, input.started_last_minute).map(|minute| {
                let second = input
                    .calls_per_minute
                    .map_or(u32::MAX, per_second_allowance);
                minute.min(second.saturating_sub(input.started_last_second))
            }),
        ),
        (Bound::DailyCap, left(input.daily_cap, input.started_today)),
        (Bound::CarrierTokens, Some(input.carrier_tokens)),
    ]
    .into_iter()
    .filter_map(|(bound, room)| room.map(|r| (bound, r)))
    .collect()
}

/// The most dials of any one second under a calls-per-minute limit: its sixtieth, rounded
/// up, plus one. A minute's calls are spread over the minute, not spent in its first
/// moments (which would also ring every agent's line at once).
pub fn per_second_allowance(calls_per_minute: u32) -> u32 {
    calls_per_minute.div_ceil(60).saturating_add(1)
}

/// 1 while abandonment is at most half the target, 0 from the target up, linear between.
fn feedback(rate: f64, target: f64) -> f64 {
    if target.is_nan() || target <= 0.0 || rate.is_nan() || rate >= target {
        0.0
    } else {
        ((target - rate) / (target / 2.0)).clamp(0.0, 1.0)
    }
}

/// A non-negative count as `u32`, saturating.
fn to_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    fn ring(at: DateTime<Utc>, by: Option<AnsweredBy>, secs: f64, abandoned: bool) -> RingEnd {
        RingEnd {
            at,
            answered: by,
            ring_secs: secs,
            abandoned,
        }
    }

    /// A pacer fed `attempts` attempts of which `human` were answered by a person (the
    /// first `abandoned` of them abandoned), 20 s to answer and 120 s of talk.
    fn pacer(attempts: u32, human: u32, abandoned: u32) -> Pacer {
        let mut p = Pacer::new(PacingConfig::default());
        for i in 0..attempts {
            let by = (i < human).then_some(AnsweredBy::Human);
            p.record_ring(ring(t0(), by, 20.0, i < abandoned.min(human)));
            if i < human {
                p.record_call(CallEnd {
                    at: t0(),
                    handle_secs: 120.0,
                });
            }
        }
        p
    }

    /// 50 agents, 40 busy, nothing ringing, no limit in the way; then `change`.
    fn tick(change: impl FnOnce(&mut PacingInput)) -> PacingInput {
        let mut input = PacingInput {
            now: t0(),
            agent_slots: 50,
            bridged: 40,
            bridged_secs: 0.0,
            ringing: 0,
            ringing_ages: Vec::new(),
            in_flight: 40,
            max_concurrent: 1000,
            calls_per_minute: None,
            started_last_minute: 0,
            started_last_second: 0,
            daily_cap: None,
            started_today: 0,
            carrier_tokens: 1000,
            rolling_abandonment: None,
        };
        change(&mut input);
        input
    }

    #[test]
    fn a_person_reclassified_as_a_machine_stays_answered_but_leaves_the_abandonment_window() {
        let mut o = Observations::new(100, TimeDelta::hours(1), TimeDelta::hours(1));
        let person = ring(t0(), Some(AnsweredBy::Human), 5.0, true);
        o.record_ring(ring(t0(), Some(AnsweredBy::Human), 4.0, false));
        o.record_ring(person);
        let now = t0() + TimeDelta::seconds(600);
        let before = o.stats(now);
        assert_eq!((before.live_answered, before.abandoned), (2, 1));
        assert!(o.reclassify_as_machine(&person));
        let after = o.stats(now);
        assert_eq!((after.live_answered, after.abandoned), (1, 0));
        assert_eq!(
            (after.attempts, after.answered),
            (before.attempts, before.answered),
            "still an answered attempt"
        );
        assert!(
            !o.reclassify_as_machine(&person),
            "a ring end is reclassified once"
        );
    }

    #[test]
    fn warm_up_dials_one_line_per_free_agent() {
        let d = pacer(10, 3, 0).decide(&tick(|i| i.ringing = 3));
        assert_eq!(
            (d.regime, d.lines, d.bound),
            (Regime::WarmUp, 7, Bound::Agents)
        );
    }

    #[test]
    fn enough_observations_overdial_by_the_answer_rate_but_not_past_the_mean_rule() {
        let d = pacer(200, 50, 0).decide(&tick(|_| {}));
        assert_eq!(d.regime, Regime::Predictive);
        let bound = d.answer_rate_bound.unwrap_or(1.0);
        assert!(bound > 0.25 && d.answer_rate == Some(0.25));
        assert!(d.expected_free > 5.0 && d.expected_free < 7.0, "{d:?}");
        let mean_rule = (10.0 + d.expected_free) / bound;
        assert!(d.lines > 10 && f64::from(d.lines) <= mean_rule, "{d:?}");
    }

    #[test]
    fn lines_that_rang_past_every_answer_seen_no_longer_count_as_coming_answers() {
        // Every answer in the cohort came 20 s after the dial.
        let p = pacer(200, 50, 0);
        let fresh = p.decide(&tick(|i| {
            i.ringing = 20;
            i.ringing_ages = vec![1.0; 20];
        }));
        let spent = p.decide(&tick(|i| {
            i.ringing = 20;
            i.ringing_ages = vec![25.0; 20];
        }));
        assert!(
            spent.lines > fresh.lines,
            "spent lines leave room for new ones: {} vs {}",
            spent.lines,
            fresh.lines
        );
        // Unknown ages count as fresh lines.
        let unknown = p.decide(&tick(|i| i.ringing = 20));
        assert_eq!(unknown.lines, fresh.lines);
    }

    #[test]
    fn the_risk_cap_keeps_expected_abandonment_under_target() {
        let d = pacer(200, 50, 0).decide(&tick(|i| i.ringing = 5));
        let p = d.answer_rate_bound.unwrap_or(1.0);
        let freeing = binomial_pmf(40, d.expected_free / 40.0);
        assert!(excess_ratio(5 + d.lines, p, 10, &freeing) <= 0.02);
        // And it is the largest such count.
        assert!(excess_ratio(6 + d.lines, p, 10, &freeing) > 0.02);
    }

    #[test]
    fn abandonment_near_target_reduces_lines_and_at_target_goes_one_to_one() {
        let p = pacer(200, 50, 0);
        let full = p.decide(&tick(|_| {}));
        let half = p.decide(&tick(|i| i.rolling_abandonment = Some(0.015)));
        let at = p.decide(&tick(|i| i.rolling_abandonment = Some(0.02)));
        assert!(
            full.lines > half.lines && half.lines > at.lines,
            "{full:?} {half:?}"
        );
        assert!((half.feedback - 0.5).abs() < 1e-9);
        assert_eq!((at.regime, at.lines), (Regime::OneToOne, 10));
        let window = pacer(200, 50, 1).decide(&tick(|_| {}));
        let seen = (window.regime, window.abandonment_rate);
        assert_eq!(seen, (Regime::OneToOne, Some(0.02)));
    }

    #[test]
    fn each_limit_binds_when_it_is_the_tightest() {
        let p = pacer(200, 50, 0);
        let binds = |input: PacingInput, bound: Bound, lines: u32| {
            let d = p.decide(&input);
            assert_eq!((d.bound, d.lines), (bound, lines), "{d:?}");
            assert!(d.wanted > lines);
        };
        binds(tick(|i| i.max_concurrent = 43), Bound::MaxConcurrency, 3);
        let per_minute = tick(|i| (i.calls_per_minute, i.started_last_minute) = (Some(60), 58));
        binds(per_minute, Bound::CallsPerMinute, 2);
        // 600 a minute is 10 a second (plus one): the minute is not spent at once.
        let spread = tick(|i| (i.calls_per_minute, i.started_last_minute) = (Some(600), 0));
        binds(spread, Bound::CallsPerMinute, 11);
        let this_second = tick(|i| {
            (
                i.calls_per_minute,
                i.started_last_minute,
                i.started_last_second,
            ) = (Some(600), 9, 9)
        });
        binds(this_second, Bound::CallsPerMinute, 2);
        let daily = tick(|i| (i.daily_cap, i.started_today) = (Some(100), 99));
        binds(daily, Bound::DailyCap, 1);
        binds(tick(|i| i.carrier_tokens = 0), Bound::CarrierTokens, 0);
    }

    #[test]
    fn no_free_agent_or_too_much_ringing_opens_nothing() {
        let p = pacer(10, 3, 0);
        assert_eq!(p.decide(&tick(|i| i.bridged = 60)).lines, 0);
        assert_eq!(p.decide(&tick(|i| i.ringing = 20)).lines, 0);
        let nothing = Pacer::new(PacingConfig::default()).decide(&tick(|_| {}));
        assert_eq!((nothing.lines, nothing.answer_rate), (10, None));
    }

    #[test]
    fn the_window_forgets_attempts_past_its_age_and_count() {
        let mut obs = Observations::new(3, TimeDelta::minutes(15), TimeDelta::minutes(25));
        for minutes in [0, 10, 20, 30] {
            let at = t0() + TimeDelta::minutes(minutes);
            obs.record_ring(ring(at, Some(AnsweredBy::Human), f64::NAN, true));
            obs.record_call(CallEnd {
                at,
                handle_secs: 60.0 * minutes as f64,
            });
        }
        let s = obs.stats(t0() + TimeDelta::minutes(30));
        assert_eq!((s.attempts, s.answered, s.ring_secs), (2, 2, Some(0.0)));
        // Calls ended 10 and 0 minutes ago, bridged 300 s and 900 s within 15 minutes.
        assert_eq!((s.calls_ended, s.call_exposure_secs), (2, 1200.0));
        assert_eq!((s.live_answered, s.abandoned), (3, 3));
    }

    #[test]
    fn the_answer_rate_waits_until_every_attempt_of_a_cohort_is_known() {
        // Ten lines dialed at t0: two answer after 10 s, the rest give up after 30 s.
        let mut obs = Observations::new(200, TimeDelta::minutes(15), TimeDelta::hours(1));
        let at = |secs| t0() + TimeDelta::seconds(secs);
        for i in 0..10 {
            let (by, secs) = if i < 2 {
                (Some(AnsweredBy::Human), 10)
            } else {
                (None, 30)
            };
            obs.record_ring(ring(at(secs), by, secs as f64, false));
        }
        // A line dialed at t0 + 20 s answered at once: its cohort-mates may still ring.
        obs.record_ring(ring(at(21), Some(AnsweredBy::Machine), 1.0, false));
        let s = obs.stats(at(31));
        assert_eq!((s.attempts, s.answered, s.horizon_secs), (10, 2, 30.0));
        assert_eq!(obs.stats(at(51)).attempts, 11);
    }

    #[test]
    fn the_binomial_excess_matches_a_hand_computation() {
        // X ~ Bin(2, 0.5) over 1 free agent: P(X = 2) = 0.25, excess 1, E[X] = 1.
        assert!((excess_ratio(2, 0.5, 1, &[1.0]) - 0.25).abs() < 1e-12);
        assert_eq!(excess_ratio(5, 0.3, 5, &[1.0]), 0.0);
        // One sure answer, no free agent, one agent freeing up with probability 0.5.
        assert!((excess_ratio(1, 1.0, 0, &[0.5, 0.5]) - 0.5).abs() < 1e-12);
        assert!(excess_ratio(20_000, 0.5, 9_000, &[1.0]) > 0.09);
        assert_eq!(excess_ratio(0, 0.5, 0, &[1.0]), 0.0);
        assert_eq!(excess_ratio(3, f64::NAN, 0, &[1.0]), 0.0);
        assert!((binomial_pmf(10, 0.3).iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(binomial_pmf(2, 0.0), [1.0, 0.0, 0.0]);
        assert_eq!(binomial_pmf(2, 1.0), [0.0, 0.0, 1.0]);
        assert_eq!(largest(2, 9, |n| n <= 6), 6);
    }

    proptest! {
        #[test]
        fn lines_grow_with_free_agents_and_respect_every_limit(
            attempts in 0u32..300, human_share in 0.0f64..1.0, abandoned in 0u32..3,
            slots in 0u32..80, more in 0u32..20, bridged in 0u32..80, ringing in 0u32..40,
            max_concurrent in 1u32..400, tokens in 0u32..100, cpm in proptest::option::of(0u32..200),
        ) {
            let p = pacer(attempts, (f64::from(attempts) * human_share) as u32, abandoned);
            let state = tick(|i| {
                (i.agent_slots, i.bridged, i.ringing, i.in_flight) = (slots, bridged, ringing, bridged + ringing);
                (i.max_concurrent, i.carrier_tokens, i.calls_per_minute) = (max_concurrent, tokens, cpm);
            });
            let d = p.decide(&state);
            let wider = p.decide(&PacingInput { agent_slots: slots + more, ..state });
            prop_assert!(wider.lines >= d.lines, "{d:?} then {wider:?}");
            let per_minute = cpm.map_or(u32::MAX, |c| c.min(per_second_allowance(c)));
            let room = [tokens, max_concurrent.saturating_sub(bridged + ringing), per_minute];
            let room = room.into_iter().min().unwrap_or_default();
            prop_assert!(d.lines <= room);
            // Never below 1:1 within the limits.
            prop_assert!(d.lines >= slots.saturating_sub(bridged).saturating_sub(ringing).min(room));
        }
    }
}
