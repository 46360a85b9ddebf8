//! Configuration of the simulated carrier: credentials, pacing, call outcome distributions
//! and per-number scripts that make a test deterministic.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use rand::RngExt as _;
use switchboard_media::AnsweredBy;

/// A duration in milliseconds drawn for each call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Millis {
    /// Always this many milliseconds.
    Fixed(u64),
    /// Uniform in `min..=max` (the bounds may come in either order).
    Uniform {
        /// Lower bound.
        min: u64,
        /// Upper bound.
        max: u64,
    },
    /// Exponential with this mean, cut at `max` (long-tailed talk times).
    Exponential {
        /// Mean in milliseconds.
        mean: u64,
        /// Longest value returned.
        max: u64,
    },
}

impl Millis {
    /// Draws one value.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> u64 {
        match *self {
            Self::Fixed(ms) => ms,
            Self::Uniform { min, max } => rng.random_range(min.min(max)..=max.max(min)),
            Self::Exponential { mean, max } => {
                // Inverse transform: -ln(U) * mean, with U in (0, 1].
                let uniform = 1.0 - rng.random::<f64>();
                let value = -uniform.ln() * mean as f64;
                // Float-to-int `as` saturates; NaN becomes 0.
                (value as u64).min(max)
            }
        }
    }
}

/// What the callee's side does with a dial attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialResult {
    /// Someone (or something, see `answered_by`) picks up.
    Answered,
    /// The line is busy (`busy`).
    Busy,
    /// The phone rings until the carrier gives up (`no-answer`).
    NoAnswer,
    /// The call cannot be placed (`failed`).
    Failed,
}

/// Relative weights of call results; they need not sum to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnswerMix {
    /// Answered by a person.
    pub human: f64,
    /// Answered by an answering machine.
    pub machine: f64,
    /// Busy.
    pub busy: f64,
    /// Not answered.
    pub no_answer: f64,
    /// Failed.
    pub failed: f64,
}

impl Default for AnswerMix {
    /// A rough outbound mix: 55 % human, 15 % machine, 10 % busy, 15 % no answer, 5 % failed.
    fn default() -> Self {
        Self {
            human: 0.55,
            machine: 0.15,
            busy: 0.10,
            no_answer: 0.15,
            failed: 0.05,
        }
    }
}

impl AnswerMix {
    /// Everybody answers in person.
    pub fn all_human() -> Self {
        Self {
            human: 1.0,
            machine: 0.0,
            busy: 0.0,
            no_answer: 0.0,
            failed: 0.0,
        }
    }

    /// Draws a result and, for an answer, whether a machine took it. Negative or non-finite
    /// weights count as 0; all-zero weights mean a human answers.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> (DialResult, bool) {
        let weight = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
        let choices = [
            (weight(self.human), DialResult::Answered, false),
            (weight(self.machine), DialResult::Answered, true),
            (weight(self.busy), DialResult::Busy, false),
            (weight(self.no_answer), DialResult::NoAnswer, false),
            (weight(self.failed), DialResult::Failed, false),
        ];
        let total: f64 = choices.iter().map(|(w, ..)| w).sum();
        if total <= 0.0 {
            return (DialResult::Answered, false);
        }
        let mut point = rng.random::<f64>() * total;
        for (w, result, machine) in choices {
            if point < w {
                return (result, machine);
            }
            point -= w;
        }
        (DialResult::Answered, false)
    }
}

/// The audio the callee's side streams toward the far side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CallerAudio {
    /// A sine tone (`audio::tone`).
    Tone {
        /// Frequency in hertz.
        freq_hz: f32,
        /// Amplitude, 0.0..=1.0 of full scale.
        amplitude: f32,
    },
    /// Digital silence (`audio::silence`).
    Silence,
}

impl Default for CallerAudio {
    /// A quiet 300 Hz tone, so energy meters see a talking callee.
    fn default() -> Self {
        Self::Tone {
            freq_hz: 300.0,
            amplitude: 0.2,
        }
    }
}

/// Per-number override of the random draws; every field left `None` is drawn as usual.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallScript {
    /// Milliseconds from dial start to answer (or to busy / failed / giving up).
    pub ring_ms: Option<u64>,
    /// What happens.
    pub result: Option<DialResult>,
    /// Who answers when the result is `Answered` (default a human).
    pub answered_by: Option<AnsweredBy>,
    /// Milliseconds after the answer at which the callee hangs up.
    pub talk_ms: Option<u64>,
    /// Key presses sent on the media stream: (milliseconds after `start`, digit).
    pub dtmf: Vec<(u64, String)>,
    /// The audio the callee streams.
    pub caller_audio: Option<CallerAudio>,
    /// Milliseconds asynchronous machine detection takes on this call.
    pub amd_ms: Option<u64>,
    /// Why the call fails, when its result is `Failed`.
    pub failure: Option<Failure>,
    /// The callee declines (SIP 603) rather than being busy (486), when the result is `Busy`.
    pub declined: Option<bool>,
}

impl CallScript {
    /// A call answered by a person after `ring_ms` who hangs up `talk_ms` later.
    pub fn answered(ring_ms: u64, talk_ms: u64) -> Self {
        Self {
            ring_ms: Some(ring_ms),
            result: Some(DialResult::Answered),
            answered_by: Some(AnsweredBy::Human),
            talk_ms: Some(talk_ms),
            ..Self::default()
        }
    }

    /// A call that ends with `result` after `ring_ms`.
    pub fn ends(result: DialResult, ring_ms: u64) -> Self {
        Self {
            ring_ms: Some(ring_ms),
            result: Some(result),
            ..Self::default()
        }
    }

    /// Adds a key press `at_ms` after the stream's `start`.
    pub fn with_dtmf(mut self, at_ms: u64, digit: impl Into<String>) -> Self {
        self.dtmf.push((at_ms, digit.into()));
        self
    }

    /// Sets who answers.
    pub fn with_answered_by(mut self, answered_by: AnsweredBy) -> Self {
        self.answered_by = Some(answered_by);
        self
    }

    /// Sets the audio the callee streams.
    pub fn with_audio(mut self, audio: CallerAudio) -> Self {
        self.caller_audio = Some(audio);
        self
    }

    /// A call that fails after `ring_ms` for this reason.
    pub fn fails(failure: Failure, ring_ms: u64) -> Self {
        Self {
            failure: Some(failure),
            ..Self::ends(DialResult::Failed, ring_ms)
        }
    }

    /// Sets how long asynchronous machine detection takes on this call.
    pub fn with_amd_ms(mut self, amd_ms: u64) -> Self {
        self.amd_ms = Some(amd_ms);
        self
    }
}

/// Twilio's commonly documented default account concurrency for REST API requests: generous
/// for one engine, finite, so a burst of creates far past it meets 429 / 20429.
pub const DEFAULT_API_CONCURRENCY: u32 = 100;

/// How status callbacks are delivered, by default as Twilio does it: each one its own
/// request, concurrently (so in no guaranteed order), some twice, one retry after a failed
/// connection, a 15 s timeout per request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackPolicy {
    /// Each callback is sent by its own task, after a random delay in `0..=jitter_ms`
    /// (callbacks close together then overtake each other). `false` (a relaxation) sends
    /// a call's callbacks one after the other, in order.
    pub concurrent: bool,
    /// Longest random delay before a callback is sent.
    pub jitter_ms: u64,
    /// Share of callbacks delivered a second time (seeded draws).
    pub duplicate_share: f64,
    /// Deliver every callback twice (overrides `duplicate_share`).
    pub duplicate_all: bool,
    /// Deliver a call's callbacks in swapped pairs (1, 0, 3, 2, …); implies sequential.
    pub swapped_pairs: bool,
    /// Retries after a failed connection (Twilio's default connection override: one).
    pub retries: u32,
    /// Read timeout of one request.
    pub timeout: std::time::Duration,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        Self {
            concurrent: true,
            jitter_ms: 40,
            duplicate_share: 0.1,
            duplicate_all: false,
            swapped_pairs: false,
            retries: 1,
            timeout: std::time::Duration::from_secs(15),
        }
    }
}

impl CallbackPolicy {
    /// In order, once each, no jitter: the friendly delivery a test may ask for.
    pub fn in_order() -> Self {
        Self {
            concurrent: false,
            jitter_ms: 0,
            duplicate_share: 0.0,
            ..Self::default()
        }
    }
}

/// Why a failed call failed, as Twilio reports it in its callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The number does not exist (`failed`, ErrorCode 13224, SIP 404).
    InvalidNumber,
    /// The far network said temporarily unavailable (`failed`, ErrorCode 31480, SIP 480).
    Unavailable,
    /// The far network is overloaded (`failed`, ErrorCode 31503, SIP 503).
    Overloaded,
}

impl Failure {
    /// `(ErrorCode, SipResponseCode)` sent with the `failed` callback.
    pub fn codes(self) -> (i64, u16) {
        match self {
            Failure::InvalidNumber => (13224, 404),
            Failure::Unavailable => (31480, 480),
            Failure::Overloaded => (31503, 503),
        }
    }
}

/// Relative weights of the failure kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureMix {
    /// Invalid or unreachable number.
    pub invalid_number: f64,
    /// SIP 480.
    pub unavailable: f64,
    /// SIP 503.
    pub overloaded: f64,
}

impl Default for FailureMix {
    fn default() -> Self {
        Self {
            invalid_number: 0.5,
            unavailable: 0.3,
            overloaded: 0.2,
        }
    }
}

impl FailureMix {
    /// Draws a failure kind; all-zero weights mean an invalid number.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Failure {
        let choices = [
            (self.invalid_number, Failure::InvalidNumber),
            (self.unavailable, Failure::Unavailable),
            (self.overloaded, Failure::Overloaded),
        ];
        pick(&choices, rng).unwrap_or(Failure::InvalidNumber)
    }
}

/// Relative weights of what machine detection reports for a call a machine (or a fax, or
/// nobody recognisable) answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineMix {
    /// `machine_start`.
    pub machine_start: f64,
    /// `machine_end_beep`.
    pub machine_end_beep: f64,
    /// `machine_end_silence`.
    pub machine_end_silence: f64,
    /// `machine_end_other`.
    pub machine_end_other: f64,
    /// `fax`.
    pub fax: f64,
    /// `unknown`.
    pub unknown: f64,
}

impl Default for MachineMix {
    fn default() -> Self {
        Self {
            machine_start: 0.3,
            machine_end_beep: 0.3,
            machine_end_silence: 0.15,
            machine_end_other: 0.1,
            fax: 0.05,
            unknown: 0.1,
        }
    }
}

impl MachineMix {
    /// Draws a detection result; all-zero weights mean `machine_start`.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> AnsweredBy {
        let choices = [
            (self.machine_start, AnsweredBy::MachineStart),
            (self.machine_end_beep, AnsweredBy::MachineEndBeep),
            (self.machine_end_silence, AnsweredBy::MachineEndSilence),
            (self.machine_end_other, AnsweredBy::MachineEndOther),
            (self.fax, AnsweredBy::Fax),
            (self.unknown, AnsweredBy::Unknown("unknown".to_owned())),
        ];
        pick(&choices, rng).unwrap_or(AnsweredBy::MachineStart)
    }
}

/// Picks one of `choices` by weight; `None` when no weight is positive. Negative or
/// non-finite weights count as 0.
fn pick<T: Clone>(choices: &[(f64, T)], rng: &mut impl rand::Rng) -> Option<T> {
    let weight = |w: f64| if w.is_finite() && w > 0.0 { w } else { 0.0 };
    let total: f64 = choices.iter().map(|(w, _)| weight(*w)).sum();
    if total <= 0.0 {
        return None;
    }
    let mut point = rng.random::<f64>() * total;
    for (w, value) in choices {
        if point < weight(*w) {
            return Some(value.clone());
        }
        point -= weight(*w);
    }
    choices.last().map(|(_, v)| v.clone())
}

/// Everything the simulated carrier needs; `Debug` never prints the auth token.
#[derive(Clone)]
pub struct CarrierConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Account SID accepted in the URL path and as the Basic auth user.
    pub account_sid: String,
    /// Auth token: Basic auth password and the key of every signature sent.
    pub auth_token: String,
    /// Calls per second that start dialling; `None`, zero or non-finite means no limit.
    pub cps: Option<f64>,
    /// Dial starts allowed back to back before `cps` spacing applies (at least 1).
    pub burst: u32,
    /// Seed of the random draws (results, ring and talk times).
    pub seed: u64,
    /// Weights of call results for numbers without a script.
    pub mix: AnswerMix,
    /// Ring time before an answer, busy or failure.
    pub ring_ms: Millis,
    /// Talk time after the answer, before the callee hangs up.
    pub talk_ms: Millis,
    /// Time answering machine detection takes (asynchronous AMD callback delay).
    pub amd_ms: Millis,
    /// How long a `<Say>` plays per character of its text (text-to-speech pace).
    pub say_ms_per_char: u64,
    /// Longest a `<Say>` plays, whatever its length.
    pub say_max_ms: u64,
    /// Audio callees stream unless their script says otherwise.
    pub caller_audio: CallerAudio,
    /// Per-number overrides keyed by the exact `To` value.
    pub scripts: HashMap<String, CallScript>,
    /// Create-call requests allowed in flight at once (Twilio's account API concurrency);
    /// one more is refused with 429 / 20429. `None` means no limit (a relaxation).
    pub api_concurrency: Option<u32>,
    /// How long the carrier takes to answer a create-call request.
    pub api_latency_ms: Millis,
    /// Status callback delivery: concurrency, duplicates, timeouts (see [`CallbackPolicy`]).
    pub callbacks: CallbackPolicy,
    /// Failure kinds of calls that fail (`failed` in the mix), with their weights.
    pub failures: FailureMix,
    /// Share of busy results that are a decline (SIP 603) rather than busy (SIP 486).
    pub declined_share: f64,
    /// Who a machine-answered call is reported as, with weights (async AMD values).
    pub machines: MachineMix,
    /// When set, media frames are stamped and the far side's stamps recorded (one-way
    /// latency, lost and late frames), and frames are built without a serializer.
    pub probe: Option<crate::probe::FrameProbe>,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_sid: "AC00000000000000000000000000000000".to_owned(),
            auth_token: "sim-auth-token".to_owned(),
            cps: Some(1.0),
            burst: 1,
            seed: 0,
            mix: AnswerMix::default(),
            ring_ms: Millis::Uniform {
                min: 2_000,
                max: 8_000,
            },
            talk_ms: Millis::Exponential {
                mean: 30_000,
                max: 300_000,
            },
            amd_ms: Millis::Uniform {
                min: 1_500,
                max: 4_000,
            },
            say_ms_per_char: 60,
            say_max_ms: 20_000,
            caller_audio: CallerAudio::default(),
            scripts: HashMap::new(),
            api_concurrency: Some(DEFAULT_API_CONCURRENCY),
            api_latency_ms: Millis::Uniform { min: 80, max: 250 },
            callbacks: CallbackPolicy::default(),
            failures: FailureMix::default(),
            declined_share: 0.2,
            machines: MachineMix::default(),
            probe: None,
        }
    }
}

impl CarrierConfig {
    /// Default configuration with these credentials.
    pub fn new(account_sid: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            ..Self::default()
        }
    }

    /// Adds a script for calls to `to`.
    pub fn script(mut self, to: impl Into<String>, script: CallScript) -> Self {
        self.scripts.insert(to.into(), script);
        self
    }

    /// How long a `<Say>` of `text` plays: its characters at `say_ms_per_char`, at most
    /// `say_max_ms`.
    pub fn say_ms(&self, text: &str) -> u64 {
        let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
        chars
            .saturating_mul(self.say_ms_per_char)
            .min(self.say_max_ms)
    }

    /// Sets the create-call API concurrency (`None` for no limit, a relaxation).
    pub fn api_concurrency(mut self, limit: Option<u32>) -> Self {
        self.api_concurrency = limit;
        self
    }

    /// Sets the calls-per-second limit (`None` for none).
    pub fn cps(mut self, cps: Option<f64>) -> Self {
        self.cps = cps;
        self
    }
}

impl fmt::Debug for CarrierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarrierConfig")
            .field("bind", &self.bind)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"<redacted>")
            .field("cps", &self.cps)
            .field("burst", &self.burst)
            .field("seed", &self.seed)
            .field("mix", &self.mix)
            .field("ring_ms", &self.ring_ms)
            .field("talk_ms", &self.talk_ms)
            .field("amd_ms", &self.amd_ms)
            .field("say_ms_per_char", &self.say_ms_per_char)
            .field("say_max_ms", &self.say_max_ms)
            .field("scripts", &self.scripts.len())
            .field("api_concurrency", &self.api_concurrency)
            .field("api_latency_ms", &self.api_latency_ms)
            .field("callbacks", &self.callbacks)
            .field("failures", &self.failures)
            .field("declined_share", &self.declined_share)
            .field("machines", &self.machines)
            .field("probe", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}
