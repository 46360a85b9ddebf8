//! What happens to a contact after one of its attempts ends: [`next_step`] decides between
//! another attempt at a given instant and done.
//!
//! The rules, in order:
//! 1. An agent outcome of `do_not_call`, `wrong_number`, `interested` or `not_interested`
//!    ends the contact's part in the campaign, whatever else happened on the call.
//! 2. `callback`: the callee asked to be called again, so the next attempt is at
//!    `callback_at` (or [`DEFAULT_CALLBACK_MINUTES`] from now without a time). The request
//!    is honoured even when the attempt budget is spent, at most [`MAX_CALLBACKS`] times
//!    per contact.
//! 3. A machine answered (or the outcome is `voicemail`): the voicemail rule.
//! 4. No answer: the no-answer rule; busy or declined: the busy rule.
//! 5. The call failed, was canceled, was abandoned (a person answered and no agent came
//!    within 2 seconds), or a person answered and no outcome came: the failed rule.
//! 6. The carrier had no capacity (SIP 480/503, Twilio 429): the callee never said no, so
//!    it counts against no budget of the callee's; it retries after an exponential backoff
//!    ([`CAPACITY_BACKOFF_MINUTES`] doubled per earlier capacity failure, at most
//!    [`CAPACITY_BACKOFF_MAX_MINUTES`]) and gives up after [`MAX_CAPACITY_FAILURES`].
//!
//! Budgets: under rules 3 to 5 the contact is done when the attempts that ended with that
//! result reach the rule's `max_attempts`, or when all its attempts (every result but
//! carrier capacity) reach the policy's `max_attempts`; otherwise it retries after the
//! rule's `delay_minutes`. Every retry, of any kind, is at least `min_gap_minutes` after
//! now; a retry instant past the end of time is done instead.

use crate::campaign::{Outcome, RetryPolicy, RetryableResult};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Callbacks honoured per contact and campaign, even past the attempt budget.
pub const MAX_CALLBACKS: u32 = 3;
/// Minutes until a callback asked for without a time.
pub const DEFAULT_CALLBACK_MINUTES: u32 = 120;
/// Carrier-capacity failures per contact before it is given up.
pub const MAX_CAPACITY_FAILURES: u32 = 10;
/// First backoff after a carrier-capacity failure, in minutes.
pub const CAPACITY_BACKOFF_MINUTES: u32 = 5;
/// Longest backoff after a carrier-capacity failure, in minutes.
pub const CAPACITY_BACKOFF_MAX_MINUTES: u32 = 60;

/// How an attempt ended, as the call actor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CallResult {
    /// Answered, and over; the agent's outcome if it reported one.
    Completed {
        /// Whether machine detection said a machine answered.
        answered_by_machine: bool,
        /// The agent's (or derived) outcome.
        outcome: Option<Outcome>,
    },
    /// Rang out unanswered.
    NoAnswer,
    /// Busy, or declined by the callee.
    Busy,
    /// Not placed or dropped before an answer.
    Failed {
        /// The carrier was full (SIP 480/503, Twilio 429): not the callee's doing.
        carrier_capacity: bool,
    },
    /// Canceled before it connected.
    Canceled,
    /// A person answered and no agent was there within 2 seconds.
    Abandoned,
    /// The number cannot be called (the carrier said invalid or unreachable: Twilio 13224,
    /// 21217, 21211, SIP 404/604): never retried.
    InvalidNumber,
}

/// Twilio error codes that mean the number cannot be called: 13224 (invalid or
/// unsupported number), 21217 (number does not appear valid), 21211 (invalid `To`).
pub const INVALID_NUMBER_CODES: [i64; 3] = [13224, 21217, 21211];

/// What a carrier's codes for a call that ended unanswered say, when they say more than
/// its status: an invalid number (no retry), or the carrier's capacity (SIP 480 temporarily
/// unavailable, 503 service unavailable: retried without using the callee's budget).
pub fn carrier_failure(
    error_code: Option<i64>,
    sip_response_code: Option<u16>,
) -> Option<CallResult> {
    if error_code.is_some_and(|code| INVALID_NUMBER_CODES.contains(&code))
        || matches!(sip_response_code, Some(404 | 604))
    {
        return Some(CallResult::InvalidNumber);
    }
    match sip_response_code {
        Some(480 | 503) => Some(CallResult::Failed {
            carrier_capacity: true,
        }),
        _ => None,
    }
}

/// Which rule an attempt result falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Final(Outcome),
    Callback,
    Rule(RetryableResult),
    CarrierCapacity,
    InvalidNumber,
}

impl CallResult {
    fn kind(&self) -> Kind {
        use RetryableResult as R;
        match *self {
            CallResult::Completed {
                outcome: Some(Outcome::Callback),
                ..
            } => Kind::Callback,
            CallResult::Completed {
                outcome: Some(o), ..
            } if o != Outcome::Voicemail => Kind::Final(o),
            CallResult::Completed {
                outcome: Some(_), ..
            }
            | CallResult::Completed {
                answered_by_machine: true,
                ..
            } => Kind::Rule(R::Voicemail),
            CallResult::Completed { outcome: None, .. } => Kind::Rule(R::Failed),
            CallResult::NoAnswer => Kind::Rule(R::NoAnswer),
            CallResult::Busy => Kind::Rule(R::Busy),
            CallResult::Failed {
                carrier_capacity: true,
            } => Kind::CarrierCapacity,
            CallResult::Failed {
                carrier_capacity: false,
            }
            | CallResult::Canceled
            | CallResult::Abandoned => Kind::Rule(R::Failed),
            CallResult::InvalidNumber => Kind::InvalidNumber,
        }
    }
}

/// A contact's attempts in one campaign, counted the way the budgets count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AttemptHistory {
    /// Attempts of every result but carrier capacity (the total budget).
    pub attempts: u32,
    /// Attempts that rang out.
    pub no_answer: u32,
    /// Attempts that were busy or declined.
    pub busy: u32,
    /// Attempts that failed, were canceled or abandoned, or ended without an outcome.
    pub failed: u32,
    /// Attempts a machine answered.
    pub voicemail: u32,
    /// Callbacks asked for.
    pub callbacks: u32,
    /// Attempts the carrier refused for capacity.
    pub carrier_capacity: u32,
}

impl AttemptHistory {
    /// Counts one more ended attempt.
    pub fn record(&mut self, result: &CallResult) {
        let bump = |n: &mut u32| *n = n.saturating_add(1);
        match result.kind() {
            Kind::CarrierCapacity => return bump(&mut self.carrier_capacity),
            Kind::Callback => bump(&mut self.callbacks),
            Kind::Rule(r) => bump(self.count_mut(r)),
            Kind::Final(_) | Kind::InvalidNumber => {}
        }
        bump(&mut self.attempts);
    }

    /// This history with one more ended attempt.
    pub fn with(mut self, result: &CallResult) -> Self {
        self.record(result);
        self
    }

    /// Attempts that ended with one kind of retryable result.
    pub fn count(&self, result: RetryableResult) -> u32 {
        match result {
            RetryableResult::NoAnswer => self.no_answer,
            RetryableResult::Busy => self.busy,
            RetryableResult::Failed => self.failed,
            RetryableResult::Voicemail => self.voicemail,
        }
    }

    fn count_mut(&mut self, result: RetryableResult) -> &mut u32 {
        match result {
            RetryableResult::NoAnswer => &mut self.no_answer,
            RetryableResult::Busy => &mut self.busy,
            RetryableResult::Failed => &mut self.failed,
            RetryableResult::Voicemail => &mut self.voicemail,
        }
    }
}

/// Why another attempt is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryReason {
    /// The previous attempt ended with this result and its rule allows another.
    Result(RetryableResult),
    /// The callee asked to be called back.
    Callback,
    /// The carrier had no capacity.
    CarrierCapacity,
}

/// Why the contact will not be called again in this campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneReason {
    /// The agent's outcome settles it.
    Outcome(Outcome),
    /// The policy's total `max_attempts` is reached.
    MaxAttempts,
    /// This result's own `max_attempts` is reached.
    ResultMaxAttempts(RetryableResult),
    /// [`MAX_CALLBACKS`] callbacks were already honoured.
    CallbackLimit,
    /// [`MAX_CAPACITY_FAILURES`] carrier-capacity failures.
    CarrierCapacityLimit,
    /// The retry instant would be past the end of time.
    OutOfRange,
    /// The carrier said the number cannot be called.
    InvalidNumber,
}

impl fmt::Display for RetryReason {
    /// `no_answer`, `callback`, `carrier_capacity`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Result(r) => f.write_str(r.as_str()),
            RetryReason::Callback => f.write_str("callback"),
            RetryReason::CarrierCapacity => f.write_str("carrier_capacity"),
        }
    }
}

impl fmt::Display for DoneReason {
    /// `interested`, `max_attempts`, `max_attempts:busy`, `callback_limit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DoneReason::Outcome(o) => f.write_str(o.as_str()),
            DoneReason::MaxAttempts => f.write_str("max_attempts"),
            DoneReason::ResultMaxAttempts(r) => write!(f, "max_attempts:{r}"),
            DoneReason::CallbackLimit => f.write_str("callback_limit"),
            DoneReason::CarrierCapacityLimit => f.write_str("carrier_capacity_limit"),
            DoneReason::OutOfRange => f.write_str("out_of_range"),
            DoneReason::InvalidNumber => f.write_str("invalid_number"),
        }
    }
}

/// The decision after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextStep {
    /// Attempt again, not before this instant (the calling window may delay it further).
    RetryAt(DateTime<Utc>, RetryReason),
    /// Do not call this contact again in this campaign.
    Done(DoneReason),
}

/// The next step for a contact whose attempt just ended with `result`; `prior` counts its
/// attempts before this one. The rules are in the module doc.
pub fn next_step(
    result: &CallResult,
    prior: &AttemptHistory,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
    callback_at: Option<DateTime<Utc>>,
) -> NextStep {
    let after = prior.with(result);
    let earliest = |minutes: u32| now.checked_add_signed(TimeDelta::minutes(minutes.into()));
    let retry = |minutes: u32, reason| match earliest(minutes.max(policy.min_gap_minutes)) {
        Some(at) => NextStep::RetryAt(at, reason),
        None => NextStep::Done(DoneReason::OutOfRange),
    };
    match result.kind() {
        Kind::Final(outcome) => NextStep::Done(DoneReason::Outcome(outcome)),
        Kind::InvalidNumber => NextStep::Done(DoneReason::InvalidNumber),
        Kind::Callback if prior.callbacks >= MAX_CALLBACKS => {
            NextStep::Done(DoneReason::CallbackLimit)
        }
        Kind::Callback => match (callback_at, earliest(policy.min_gap_minutes)) {
            (Some(asked), Some(gap)) => NextStep::RetryAt(asked.max(gap), RetryReason::Callback),
            (None, _) => retry(DEFAULT_CALLBACK_MINUTES, RetryReason::Callback),
            (Some(_), None) => NextStep::Done(DoneReason::OutOfRange),
        },
        Kind::CarrierCapacity if after.carrier_capacity >= MAX_CAPACITY_FAILURES => {
            NextStep::Done(DoneReason::CarrierCapacityLimit)
        }
        Kind::CarrierCapacity => {
            let doublings = prior.carrier_capacity.min(16);
            let backoff = CAPACITY_BACKOFF_MINUTES.saturating_mul(1 << doublings);
            retry(
                backoff.min(CAPACITY_BACKOFF_MAX_MINUTES),
                RetryReason::CarrierCapacity,
            )
        }
        Kind::Rule(kind) => {
            let rule = policy.rule_for(kind);
            if after.count(kind) >= rule.max_attempts {
                NextStep::Done(DoneReason::ResultMaxAttempts(kind))
            } else if after.attempts >= policy.max_attempts {
                NextStep::Done(DoneReason::MaxAttempts)
            } else {
                retry(rule.delay_minutes, RetryReason::Result(kind))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RetryableResult as R;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    fn in_minutes(m: i64) -> DateTime<Utc> {
        now() + TimeDelta::minutes(m)
    }

    fn answered(outcome: Option<Outcome>) -> CallResult {
        CallResult::Completed {
            answered_by_machine: false,
            outcome,
        }
    }

    fn step(result: CallResult, prior: AttemptHistory) -> NextStep {
        next_step(&result, &prior, &RetryPolicy::default(), now(), None)
    }

    #[test]
    fn the_carriers_codes_decide_invalid_numbers_and_capacity() {
        assert_eq!(
            carrier_failure(Some(13224), Some(404)),
            Some(CallResult::InvalidNumber)
        );
        assert_eq!(
            carrier_failure(Some(21217), None),
            Some(CallResult::InvalidNumber)
        );
        let capacity = Some(CallResult::Failed {
            carrier_capacity: true,
        });
        assert_eq!(carrier_failure(Some(31480), Some(480)), capacity);
        assert_eq!(carrier_failure(None, Some(503)), capacity);
        assert_eq!(carrier_failure(None, Some(486)), None);
        let invalid = step(CallResult::InvalidNumber, AttemptHistory::default());
        assert_eq!(invalid, NextStep::Done(DoneReason::InvalidNumber));
        // Capacity does not use the budget: with one attempt left, it is still retried.
        let policy = RetryPolicy::default();
        let mut prior = AttemptHistory::default();
        for _ in 1..policy.max_attempts {
            prior.record(&CallResult::NoAnswer);
        }
        let failed = CallResult::Failed {
            carrier_capacity: true,
        };
        assert!(matches!(
            next_step(&failed, &prior, &policy, now(), None),
            NextStep::RetryAt(_, RetryReason::CarrierCapacity)
        ));
        assert_eq!(prior.with(&failed).attempts, prior.attempts);
    }

    #[test]
    fn a_settling_outcome_ends_the_contact_even_on_a_machine() {
        for o in [
            Outcome::DoNotCall,
            Outcome::WrongNumber,
            Outcome::Interested,
            Outcome::NotInterested,
        ] {
            let done = NextStep::Done(DoneReason::Outcome(o));
            assert_eq!(step(answered(Some(o)), AttemptHistory::default()), done);
            let machine = CallResult::Completed {
                answered_by_machine: true,
                outcome: Some(o),
            };
            assert_eq!(step(machine, AttemptHistory::default()), done);
        }
    }

    #[test]
    fn a_callback_is_at_the_asked_time_but_never_before_the_minimum_gap() {
        let policy = RetryPolicy::default();
        let cb = answered(Some(Outcome::Callback));
        let prior = AttemptHistory::default();
        let asked = next_step(&cb, &prior, &policy, now(), Some(in_minutes(600)));
        assert_eq!(
            asked,
            NextStep::RetryAt(in_minutes(600), RetryReason::Callback)
        );
        let too_soon = next_step(&cb, &prior, &policy, now(), Some(in_minutes(5)));
        assert_eq!(
            too_soon,
            NextStep::RetryAt(in_minutes(60), RetryReason::Callback)
        );
        let untimed = next_step(&cb, &prior, &policy, now(), None);
        let default = in_minutes(DEFAULT_CALLBACK_MINUTES.into());
        assert_eq!(untimed, NextStep::RetryAt(default, RetryReason::Callback));
    }

    #[test]
    fn a_callback_is_honoured_past_the_attempt_budget_but_only_a_few_times() {
        let cb = answered(Some(Outcome::Callback));
        let spent = AttemptHistory {
            attempts: 3,
            no_answer: 2,
            callbacks: 1,
            ..Default::default()
        };
        assert!(matches!(
            step(cb, spent),
            NextStep::RetryAt(_, RetryReason::Callback)
        ));
        let many = AttemptHistory {
            callbacks: MAX_CALLBACKS,
            ..spent
        };
        assert_eq!(step(cb, many), NextStep::Done(DoneReason::CallbackLimit));
    }

    #[test]
    fn a_machine_follows_the_voicemail_rule() {
        let machine = CallResult::Completed {
            answered_by_machine: true,
            outcome: None,
        };
        let first = step(machine, AttemptHistory::default());
        assert_eq!(
            first,
            NextStep::RetryAt(in_minutes(1440), RetryReason::Result(R::Voicemail))
        );
        let once = AttemptHistory::default().with(&machine);
        assert_eq!((once.voicemail, once.attempts), (1, 1));
        let second = step(answered(Some(Outcome::Voicemail)), once);
        assert_eq!(
            second,
            NextStep::Done(DoneReason::ResultMaxAttempts(R::Voicemail))
        );
    }

    #[test]
    fn no_answer_and_busy_wait_their_delay_and_at_least_the_minimum_gap() {
        let none = AttemptHistory::default();
        let no_answer = NextStep::RetryAt(in_minutes(240), RetryReason::Result(R::NoAnswer));
        assert_eq!(step(CallResult::NoAnswer, none), no_answer);
        // The busy rule waits 30 minutes; the 60-minute gap wins.
        let busy = NextStep::RetryAt(in_minutes(60), RetryReason::Result(R::Busy));
        assert_eq!(step(CallResult::Busy, none), busy);
    }

    #[test]
    fn a_result_stops_at_its_own_budget_and_all_results_at_the_total() {
        let mut policy = RetryPolicy {
            max_attempts: 5,
            ..RetryPolicy::default()
        };
        policy.no_answer.max_attempts = 2;
        policy.failed.max_attempts = 5;
        let one = AttemptHistory::default().with(&CallResult::NoAnswer);
        let second = next_step(&CallResult::NoAnswer, &one, &policy, now(), None);
        assert_eq!(
            second,
            NextStep::Done(DoneReason::ResultMaxAttempts(R::NoAnswer))
        );
        // Busy, failed, busy, no answer: the fifth attempt spends the total of 5.
        let mixed = [
            CallResult::Busy,
            CallResult::Canceled,
            CallResult::Busy,
            CallResult::NoAnswer,
        ];
        let prior = mixed
            .iter()
            .fold(AttemptHistory::default(), |h, r| h.with(r));
        assert_eq!((prior.attempts, prior.busy, prior.failed), (4, 2, 1));
        let last = next_step(&CallResult::Abandoned, &prior, &policy, now(), None);
        assert_eq!(last, NextStep::Done(DoneReason::MaxAttempts));
    }

    #[test]
    fn failures_cancels_abandons_and_silent_answers_share_the_failed_rule() {
        let failed = NextStep::RetryAt(in_minutes(60), RetryReason::Result(R::Failed));
        let one = AttemptHistory {
            attempts: 1,
            failed: 1,
            ..Default::default()
        };
        let spent = NextStep::Done(DoneReason::ResultMaxAttempts(R::Failed));
        let plain = CallResult::Failed {
            carrier_capacity: false,
        };
        for result in [
            plain,
            CallResult::Canceled,
            CallResult::Abandoned,
            answered(None),
        ] {
            assert_eq!(
                step(result, AttemptHistory::default()),
                failed,
                "{result:?}"
            );
            assert_eq!(step(result, one), spent, "{result:?}");
        }
    }

    #[test]
    fn carrier_capacity_spends_no_budget_of_the_callee_and_backs_off() {
        let full = CallResult::Failed {
            carrier_capacity: true,
        };
        let prior = AttemptHistory {
            attempts: 2,
            failed: 1,
            ..Default::default()
        };
        let after = prior.with(&full);
        assert_eq!(
            (after.attempts, after.failed, after.carrier_capacity),
            (2, 1, 1)
        );
        let reason = RetryReason::CarrierCapacity;
        let mut policy = RetryPolicy {
            min_gap_minutes: 0,
            ..RetryPolicy::default()
        };
        let first = next_step(&full, &prior, &policy, now(), None);
        assert_eq!(first, NextStep::RetryAt(in_minutes(5), reason));
        let third = next_step(&full, &after.with(&full), &policy, now(), None);
        assert_eq!(third, NextStep::RetryAt(in_minutes(20), reason));
        policy.min_gap_minutes = 60;
        assert_eq!(
            next_step(&full, &prior, &policy, now(), None),
            NextStep::RetryAt(in_minutes(60), reason)
        );
        let worn = AttemptHistory {
            carrier_capacity: MAX_CAPACITY_FAILURES - 1,
            ..prior
        };
        assert_eq!(
            step(full, worn),
            NextStep::Done(DoneReason::CarrierCapacityLimit)
        );
    }

    #[test]
    fn a_retry_past_the_end_of_time_is_done_and_nothing_panics() {
        let end = DateTime::<Utc>::MAX_UTC;
        let policy = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        let none = AttemptHistory::default();
        let no_answer = next_step(
            &CallResult::NoAnswer,
            &none,
            &RetryPolicy::default(),
            end,
            None,
        );
        assert_eq!(no_answer, NextStep::Done(DoneReason::OutOfRange));
        let cb = answered(Some(Outcome::Callback));
        let late = next_step(&cb, &none, &RetryPolicy::default(), end, Some(end));
        assert_eq!(late, NextStep::Done(DoneReason::OutOfRange));
        let zero = next_step(&CallResult::Busy, &none, &policy, now(), None);
        assert_eq!(zero, NextStep::Done(DoneReason::MaxAttempts));
        let full = AttemptHistory {
            attempts: u32::MAX,
            busy: u32::MAX,
            ..none
        };
        assert_eq!(full.with(&CallResult::Busy).busy, u32::MAX);
    }

    #[test]
    fn reasons_read_as_short_codes() {
        assert_eq!(
            DoneReason::ResultMaxAttempts(R::Busy).to_string(),
            "max_attempts:busy"
        );
        assert_eq!(
            DoneReason::Outcome(Outcome::DoNotCall).to_string(),
            "do_not_call"
        );
        assert_eq!(RetryReason::Result(R::NoAnswer).to_string(), "no_answer");
        let json = serde_json::to_value(CallResult::Failed {
            carrier_capacity: true,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"result": "failed", "carrier_capacity": true})
        );
    }

    fn any_result() -> impl Strategy<Value = CallResult> {
        let outcome = proptest::option::of(proptest::sample::select(Outcome::ALL));
        prop_oneof![
            (any::<bool>(), outcome).prop_map(|(m, outcome)| CallResult::Completed {
                answered_by_machine: m,
                outcome
            }),
            Just(CallResult::NoAnswer),
            Just(CallResult::Busy),
            any::<bool>().prop_map(|c| CallResult::Failed {
                carrier_capacity: c
            }),
            Just(CallResult::Canceled),
            Just(CallResult::Abandoned),
        ]
    }

    proptest! {
        #[test]
        fn every_retry_keeps_the_gap_and_every_contact_is_eventually_done(
            results in proptest::collection::vec(any_result(), 1..8),
            max_attempts in 1u32..6, min_gap in 0u32..200, asked in -300i64..3000,
        ) {
            let policy = RetryPolicy { max_attempts, min_gap_minutes: min_gap, ..Default::default() };
            let mut history = AttemptHistory::default();
            // Repeating the results forever must end: every budget is finite.
            for (i, result) in results.iter().cycle().enumerate() {
                prop_assert!(i < 200, "never done");
                match next_step(result, &history, &policy, now(), Some(in_minutes(asked))) {
                    NextStep::RetryAt(at, _) => prop_assert!(at >= in_minutes(min_gap.into())),
                    NextStep::Done(_) => break,
                }
                history.record(result);
            }
        }
    }
}
