//! Quality auto-pause and the abandonment ledger.
//!
//! [`QualityMonitor`] keeps the last `quality.window` finished attempts and judges them:
//! - the **success rate** is successes (per the campaign's success definition) over calls
//!   a person answered; the **connect rate** is calls a person answered over attempts;
//! - a rate pauses the campaign only when its denominator holds at least `min_sample`
//!   attempts AND even the upper end of its confidence interval is below the threshold.
//!   The bound is the one-sided Wilson score upper bound at `quality.confidence`:
//!   z = Φ⁻¹(confidence), 1.645 at the default 0.95, so "the true rate is below the
//!   threshold with 95% confidence". (The upper end of the two-sided 95% interval is the
//!   one-sided 97.5% bound, z = 1.96.) Three unlucky calls never pause a campaign: 0 of 3
//!   has an upper bound of 0.47;
//! - independently, [`DEFAULT_FAILURE_STREAK`] carrier failures in a row, or agent
//!   failures in a row, pause it with the last error.
//!
//! [`AbandonmentLedger`] counts live-answered and abandoned calls per UTC day, giving the
//! day's rate and the rolling 30-day rate the regulator looks at (FCC: 3% per 30 days).

use crate::campaign::{Outcome, QualityThresholds, SuccessDefinition};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::VecDeque;

/// Carrier (or agent) failures in a row that pause a campaign, unless configured.
pub const DEFAULT_FAILURE_STREAK: u32 = 10;
/// Days the ledger keeps, today included.
pub const LEDGER_DAYS: i64 = 31;
/// Days in the rolling abandonment rate, today included.
pub const ROLLING_DAYS: i64 = 30;

/// z such that P(Z ≤ z) = `confidence` for a standard normal Z (one-sided); the
/// confidence is clamped to [0.5, 0.999999], NaN reads as 0.95.
pub fn z_for_one_sided(confidence: f64) -> f64 {
    let p = if confidence.is_nan() {
        0.95
    } else {
        confidence.clamp(0.5, 0.999_999)
    };
    inverse_normal_cdf(p)
}

/// The Wilson score interval `(lower, upper)` for `successes` of `trials` at `z`; (0, 1)
/// for no trials. Successes above trials count as trials.
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z = if z.is_finite() { z.abs() } else { 0.0 };
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((center - half).clamp(0.0, p), (center + half).clamp(p, 1.0))
}

/// Acklam's rational approximation of Φ⁻¹ (relative error below 1.2e-9), p in (0, 1).
fn inverse_normal_cdf(p: f64) -> f64 {
    #[rustfmt::skip]
    const A: [f64; 6] = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2,
        1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    #[rustfmt::skip]
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2,
        6.680131188771972e1, -1.328068155288572e1];
    #[rustfmt::skip]
    const C: [f64; 6] = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838,
        -2.549732539343734, 4.374664141464968, 2.938163982698783];
    #[rustfmt::skip]
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996,
        3.754408661907416];
    let poly = |coef: &[f64], x: f64| coef.iter().fold(0.0, |acc, c| acc * x + c);
    let tail = |q: f64| poly(&C, q) / (poly(&D, q) * q + 1.0);
    const LOW: f64 = 0.02425;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        poly(&A, r) * q / (poly(&B, r) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Why an attempt failed, when it was the carrier's or the agent's doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "error", rename_all = "snake_case")]
pub enum AttemptFailure {
    /// The carrier could not place or carry the call; the error as reported.
    Carrier(String),
    /// The agent could not be reached or failed mid-call; the error as reported.
    Agent(String),
}

/// One finished attempt, as quality sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualitySample {
    /// A person (not a machine) answered.
    pub answered_by_human: bool,
    /// The agent's outcome, if any.
    pub outcome: Option<Outcome>,
    /// A carrier or agent failure, if any.
    pub failure: Option<AttemptFailure>,
}

/// Why a campaign pauses itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// A rate is below its threshold with confidence.
    Quality,
    /// Too many carrier failures in a row.
    CarrierFailures,
    /// Too many agent failures in a row.
    AgentFailures,
}

impl PauseReason {
    /// `quality`, `carrier_failures` or `agent_failures`, as stored with the pause.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Quality => "quality",
            PauseReason::CarrierFailures => "carrier_failures",
            PauseReason::AgentFailures => "agent_failures",
        }
    }
}

/// The judgement on a campaign's recent attempts, with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityVerdict {
    /// Keep going; the figures for the snapshot.
    Healthy(Value),
    /// Pause the campaign (cause `pacing`) with this reason and figures.
    Pause {
        /// Why.
        reason: PauseReason,
        /// Rates, bounds, counts, thresholds and the last error.
        figures: Value,
    },
}

/// The sliding window of finished attempts and the failure streaks.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityMonitor {
    window: usize,
    streak_limit: u32,
    samples: VecDeque<(bool, Option<Outcome>)>,
    carrier_streak: u32,
    agent_streak: u32,
    last_error: Option<AttemptFailure>,
}

impl QualityMonitor {
    /// A monitor keeping the last `window` attempts (at least 1) that pauses after
    /// `streak_limit` failures in a row (at least 1; [`DEFAULT_FAILURE_STREAK`] usually).
    pub fn new(window: u32, streak_limit: u32) -> Self {
        QualityMonitor {
            window: window.max(1) as usize,
            streak_limit: streak_limit.max(1),
            samples: VecDeque::new(),
            carrier_streak: 0,
            agent_streak: 0,
            last_error: None,
        }
    }

    /// A monitor for a campaign's thresholds with the default failure streak.
    pub fn for_thresholds(thresholds: &QualityThresholds) -> Self {
        QualityMonitor::new(thresholds.window, DEFAULT_FAILURE_STREAK)
    }

    /// Keeps the newest `window` attempts from now on (an edited campaign's window),
    /// dropping the oldest if it shrank.
    pub fn resize(&mut self, window: u32) {
        self.window = window.max(1) as usize;
        while self.samples.len() > self.window {
            self.samples.pop_front();
        }
    }

    /// Adds a finished attempt. A call the carrier carried ends the carrier streak; a call
    /// a person answered with no agent failure ends the agent streak.
    pub fn record(&mut self, sample: QualitySample) {
        if self.samples.len() >= self.window {
            self.samples.pop_front();
        }
        self.samples
            .push_back((sample.answered_by_human, sample.outcome));
        match &sample.failure {
            Some(AttemptFailure::Carrier(_)) => self.carrier_streak += 1,
            Some(AttemptFailure::Agent(_)) => {
                self.carrier_streak = 0;
                self.agent_streak += 1;
            }
            None => {
                self.carrier_streak = 0;
                if sample.answered_by_human {
                    self.agent_streak = 0;
                }
            }
        }
        if sample.failure.is_some() {
            self.last_error = sample.failure;
        }
    }

    /// Judges the window against the thresholds; failure streaks are checked first.
    pub fn verdict(&self, t: &QualityThresholds, success: &SuccessDefinition) -> QualityVerdict {
        let z = z_for_one_sided(t.confidence);
        let attempts = self.samples.len() as u64;
        let connected = self.samples.iter().filter(|(human, _)| *human).count() as u64;
        let successes = self
            .samples
            .iter()
            .filter(|(human, o)| *human && o.is_some_and(|o| success.is_success(o)));
        let successes = successes.count() as u64;
        let min_sample = u64::from(t.min_sample.max(1));
        let judge = |hits: u64, n: u64, threshold: Option<f64>| {
            let (_, upper) = wilson_interval(hits, n, z);
            let rate = (n > 0).then(|| hits as f64 / n as f64);
            let below = threshold.is_some_and(|th| n >= min_sample && upper < th);
            (
                json!({"rate": rate, "upper_bound": upper, "threshold": threshold,
                    "count": hits, "of": n, "below": below}),
                below,
            )
        };
        let (success_fig, success_low) = judge(successes, connected, t.min_success_rate);
        let (connect_fig, connect_low) = judge(connected, attempts, t.min_connect_rate);
        let error = self.last_error.as_ref().map(|e| match e {
            AttemptFailure::Carrier(e) | AttemptFailure::Agent(e) => e.clone(),
        });
        let figures = json!({
            "success_rate": success_fig, "connect_rate": connect_fig,
            "attempts": attempts, "window": self.window, "min_sample": min_sample,
            "confidence": t.confidence, "z": z,
            "consecutive_carrier_failures": self.carrier_streak,
            "consecutive_agent_failures": self.agent_streak,
            "failure_streak_limit": self.streak_limit, "last_error": error,
        });
        let reason = if self.carrier_streak >= self.streak_limit {
            PauseReason::CarrierFailures
        } else if self.agent_streak >= self.streak_limit {
            PauseReason::AgentFailures
        } else if success_low || connect_low {
            PauseReason::Quality
        } else {
            return QualityVerdict::Healthy(figures);
        };
        QualityVerdict::Pause { reason, figures }
    }
}

/// Live-answered and abandoned calls on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerDay {
    /// The UTC day.
    pub day: NaiveDate,
    /// Calls a person answered.
    pub live_answered: u64,
    /// Of those, calls abandoned (no agent audio within 2 seconds).
    pub abandoned: u64,
}

impl LedgerDay {
    /// abandoned / live-answered; `None` with no live answer.
    pub fn rate(&self) -> Option<f64> {
        (self.live_answered > 0).then(|| self.abandoned as f64 / self.live_answered as f64)
    }
}

/// A campaign's abandonment counts per UTC day, the last [`LEDGER_DAYS`] days only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AbandonmentLedger {
    days: Vec<LedgerDay>,
}

/// The ledger's figures at one instant, for a campaign snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AbandonmentFigures {
    /// Today's counts (UTC).
    pub today: LedgerDay,
    /// Today's rate.
    pub today_rate: Option<f64>,
    /// The last [`ROLLING_DAYS`] days' counts together, `day` being today.
    pub rolling: LedgerDay,
    /// The rolling rate.
    pub rolling_rate: Option<f64>,
}

impl AbandonmentLedger {
    /// Counts a call a person answered at `at`, abandoned or not. Days older than the
    /// newest day's window are dropped; a call on such a day is ignored.
    pub fn record(&mut self, at: DateTime<Utc>, abandoned: bool) {
        let day = at.date_naive();
        let newest = self
            .days
            .iter()
            .map(|d| d.day)
            .max()
            .map_or(day, |n| n.max(day));
        let oldest = newest - TimeDelta::days(LEDGER_DAYS - 1);
        self.days.retain(|d| d.day >= oldest);
        if day < oldest {
            return;
        }
        let index = match self.days.iter().position(|d| d.day == day) {
            Some(i) => i,
            None => {
                let empty = LedgerDay {
                    day,
                    live_answered: 0,
                    abandoned: 0,
                };
                self.days.push(empty);
                self.days.sort_by_key(|d| d.day);
                self.days
                    .iter()
                    .position(|d| d.day == day)
                    .unwrap_or_default()
            }
        };
        if let Some(d) = self.days.get_mut(index) {
            d.live_answered = d.live_answered.saturating_add(1);
            d.abandoned = d.abandoned.saturating_add(u64::from(abandoned));
        }
    }

    /// Takes back a call [`Self::record`] counted (machine detection found a machine where
    /// a person was assumed): its day loses one live answer, and one abandonment if it was
    /// abandoned. A day no longer kept is left alone.
    pub fn forget(&mut self, at: DateTime<Utc>, abandoned: bool) {
        let day = at.date_naive();
        if let Some(d) = self.days.iter_mut().find(|d| d.day == day) {
            d.live_answered = d.live_answered.saturating_sub(1);
            d.abandoned = d.abandoned.saturating_sub(u64::from(abandoned));
        }
    }

    /// The counts of `days` days ending with `now`'s UTC day, added up.
    fn total(&self, now: DateTime<Utc>, days: i64) -> LedgerDay {
        let day = now.date_naive();
        let first = day - TimeDelta::days(days - 1);
        let in_span = self.days.iter().filter(|d| d.day >= first && d.day <= day);
        in_span.fold(
            LedgerDay {
                day,
                live_answered: 0,
                abandoned: 0,
            },
            |t, d| LedgerDay {
                live_answered: t.live_answered.saturating_add(d.live_answered),
                abandoned: t.abandoned.saturating_add(d.abandoned),
                ..t
            },
        )
    }

    /// The abandonment rate of `now`'s UTC day.
    pub fn day_rate(&self, now: DateTime<Utc>) -> Option<f64> {
        self.total(now, 1).rate()
    }

    /// The abandonment rate over the [`ROLLING_DAYS`] UTC days ending with `now`'s.
    pub fn rolling_rate(&self, now: DateTime<Utc>) -> Option<f64> {
        self.total(now, ROLLING_DAYS).rate()
    }

    /// Today's and the rolling figures at `now`.
    pub fn figures(&self, now: DateTime<Utc>) -> AbandonmentFigures {
        let (today, rolling) = (self.total(now, 1), self.total(now, ROLLING_DAYS));
        AbandonmentFigures {
            today,
            today_rate: today.rate(),
            rolling,
            rolling_rate: rolling.rate(),
        }
    }

    /// The days kept, oldest first.
    pub fn days(&self) -> &[LedgerDay] {
        &self.days
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    fn thresholds(success: Option<f64>, connect: Option<f64>) -> QualityThresholds {
        QualityThresholds {
            min_success_rate: success,
            min_connect_rate: connect,
            ..Default::default()
        }
    }

    fn call(human: bool, outcome: Option<Outcome>) -> QualitySample {
        QualitySample {
            answered_by_human: human,
            outcome,
            failure: None,
        }
    }

    fn failed(failure: AttemptFailure) -> QualitySample {
        QualitySample {
            answered_by_human: false,
            outcome: None,
            failure: Some(failure),
        }
    }

    fn pause_reason(v: &QualityVerdict) -> Option<PauseReason> {
        match v {
            QualityVerdict::Healthy(_) => None,
            QualityVerdict::Pause { reason, .. } => Some(*reason),
        }
    }

    #[test]
    fn the_wilson_bound_matches_known_values() {
        let two_sided_95 = z_for_one_sided(0.975);
        assert!(close(two_sided_95, 1.95996) && close(z_for_one_sided(0.95), 1.64485));
        assert!(close(wilson_interval(0, 3, two_sided_95).1, 0.5615));
        assert!(close(
            wilson_interval(0, 3, z_for_one_sided(0.95)).1,
            0.4742
        ));
        let (lo, hi) = wilson_interval(5, 10, two_sided_95);
        assert!(close(lo, 0.2366) && close(hi, 0.7634), "{lo} {hi}");
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
        assert!(close(z_for_one_sided(f64::NAN), 1.64485) && z_for_one_sided(2.0) < 5.0);
    }

    #[test]
    fn three_failures_of_three_never_pause() {
        let t = QualityThresholds {
            min_sample: 1,
            ..thresholds(Some(0.1), Some(0.5))
        };
        let mut m = QualityMonitor::for_thresholds(&t);
        for _ in 0..3 {
            m.record(call(true, Some(Outcome::NotInterested)));
        }
        assert_eq!(
            pause_reason(&m.verdict(&t, &SuccessDefinition::default())),
            None
        );
    }

    #[test]
    fn no_success_in_a_hundred_connected_calls_pauses_under_a_ten_percent_floor() {
        let t = thresholds(Some(0.1), None);
        let mut m = QualityMonitor::for_thresholds(&t);
        for _ in 0..100 {
            m.record(call(true, Some(Outcome::NotInterested)));
        }
        let QualityVerdict::Pause { reason, figures } =
            m.verdict(&t, &SuccessDefinition::default())
        else {
            panic!("expected a pause");
        };
        assert_eq!(reason.as_str(), "quality");
        assert_eq!(figures["success_rate"]["rate"], json!(0.0));
        assert_eq!(figures["success_rate"]["of"], json!(100));
        let upper = figures["success_rate"]["upper_bound"]
            .as_f64()
            .unwrap_or(1.0);
        assert!(close(upper, 0.0263), "{upper}");
    }

    #[test]
    fn a_bad_rate_below_the_minimum_sample_does_not_pause() {
        let t = thresholds(None, Some(0.5));
        let mut m = QualityMonitor::for_thresholds(&t);
        for _ in 0..29 {
            m.record(call(false, None));
        }
        assert_eq!(
            pause_reason(&m.verdict(&t, &SuccessDefinition::default())),
            None
        );
        m.record(call(false, None));
        assert_eq!(
            pause_reason(&m.verdict(&t, &SuccessDefinition::default())),
            Some(PauseReason::Quality)
        );
    }

    #[test]
    fn the_window_forgets_old_attempts() {
        let t = thresholds(Some(0.1), None);
        let mut m = QualityMonitor::for_thresholds(&t);
        for _ in 0..100 {
            m.record(call(true, None));
        }
        for _ in 0..100 {
            m.record(call(true, Some(Outcome::Interested)));
        }
        let QualityVerdict::Healthy(figures) = m.verdict(&t, &SuccessDefinition::default()) else {
            panic!("expected healthy");
        };
        assert_eq!(figures["success_rate"]["rate"], json!(1.0));
        assert_eq!(figures["attempts"], json!(100));
    }

    #[test]
    fn failures_in_a_row_pause_with_the_error_and_a_good_call_resets_the_count() {
        let t = thresholds(None, None);
        let mut m = QualityMonitor::new(100, 3);
        let carrier = || failed(AttemptFailure::Carrier("twilio 503".into()));
        m.record(carrier());
        m.record(carrier());
        m.record(call(false, None));
        m.record(carrier());
        m.record(carrier());
        assert_eq!(
            pause_reason(&m.verdict(&t, &SuccessDefinition::default())),
            None
        );
        m.record(carrier());
        let QualityVerdict::Pause { reason, figures } =
            m.verdict(&t, &SuccessDefinition::default())
        else {
            panic!("expected a pause");
        };
        assert_eq!(reason, PauseReason::CarrierFailures);
        assert_eq!(figures["last_error"], json!("twilio 503"));
        let mut m = QualityMonitor::new(100, 2);
        m.record(failed(AttemptFailure::Agent("ws closed".into())));
        m.record(call(false, None));
        m.record(failed(AttemptFailure::Agent("ws closed".into())));
        assert_eq!(
            pause_reason(&m.verdict(&t, &SuccessDefinition::default())),
            Some(PauseReason::AgentFailures)
        );
    }

    fn day(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    #[test]
    fn a_call_found_to_be_a_machine_is_taken_out_of_its_day() {
        let mut ledger = AbandonmentLedger::default();
        ledger.record(day("2025-01-01T10:00:00Z"), true);
        ledger.record(day("2025-01-01T11:00:00Z"), false);
        ledger.forget(day("2025-01-01T10:00:00Z"), true);
        let f = ledger.figures(day("2025-01-01T12:00:00Z"));
        assert_eq!((f.today.live_answered, f.today.abandoned), (1, 0));
        ledger.forget(day("2024-12-01T10:00:00Z"), true);
        ledger.forget(day("2025-01-01T10:00:00Z"), false);
        ledger.forget(day("2025-01-01T10:00:00Z"), false);
        let f = ledger.figures(day("2025-01-01T12:00:00Z"));
        assert_eq!(
            (f.today.live_answered, f.today.abandoned),
            (0, 0),
            "never below zero"
        );
    }

    #[test]
    fn the_ledger_rolls_over_days_and_keeps_thirty_one() {
        let mut ledger = AbandonmentLedger::default();
        for i in 0..50 {
            ledger.record(day("2025-01-01T23:00:00Z"), i < 2);
        }
        ledger.record(day("2025-01-02T00:30:00Z"), false);
        assert_eq!(ledger.day_rate(day("2025-01-01T12:00:00Z")), Some(0.04));
        assert_eq!(ledger.day_rate(day("2025-01-02T12:00:00Z")), Some(0.0));
        let rolling = ledger.rolling_rate(day("2025-01-02T12:00:00Z"));
        assert_eq!(rolling, Some(2.0 / 51.0));
        // On January 30th, January 1st is among the 30 days; on the 31st it is not.
        assert_eq!(
            ledger.rolling_rate(day("2025-01-30T12:00:00Z")),
            Some(2.0 / 51.0)
        );
        assert_eq!(ledger.rolling_rate(day("2025-01-31T12:00:00Z")), Some(0.0));
        ledger.record(day("2025-02-01T08:00:00Z"), true);
        assert_eq!(
            ledger.days().len(),
            2,
            "January 1st is dropped after 31 days"
        );
        ledger.record(day("2025-01-01T08:00:00Z"), true);
        assert_eq!(ledger.days().len(), 2, "a call on a dropped day is ignored");
        let f = ledger.figures(day("2025-02-01T09:00:00Z"));
        assert_eq!(
            (f.today_rate, f.rolling.live_answered, f.rolling.abandoned),
            (Some(1.0), 1, 1)
        );
        let json = serde_json::to_value(&ledger).unwrap_or_default();
        assert_eq!(
            serde_json::from_value::<AbandonmentLedger>(json).ok(),
            Some(ledger)
        );
        assert_eq!(
            AbandonmentLedger::default().rolling_rate(day("2025-01-01T00:00:00Z")),
            None
        );
    }

    proptest! {
        #[test]
        fn the_wilson_interval_holds_the_observed_rate(
            hits in 0u64..500, n in 0u64..500, confidence in 0.5f64..0.9999,
        ) {
            let (lo, hi) = wilson_interval(hits, n, z_for_one_sided(confidence));
            let p = if n == 0 { lo } else { hits.min(n) as f64 / n as f64 };
            prop_assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
            prop_assert!(lo <= p && p <= hi);
        }
    }
}
