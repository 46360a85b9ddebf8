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

    /// Sets how long asynchronous machine detection takes on this call.
    pub fn with_amd_ms(mut self, amd_ms: u64) -> Self {
        self.amd_ms = Some(amd_ms);
        self
    }
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
    /// Deliver every status callback twice.
    pub duplicate_callbacks: bool,
    /// Deliver status callbacks of a call in swapped pairs (1, 0, 3, 2, …).
    pub out_of_order_callbacks: bool,
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
            duplicate_callbacks: false,
            out_of_order_callbacks: false,
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
            .field("duplicate_callbacks", &self.duplicate_callbacks)
            .field("out_of_order_callbacks", &self.out_of_order_callbacks)
            .field("probe", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}
