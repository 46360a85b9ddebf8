//! Turning the configured distributions and per-number scripts into one call's plan.

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use switchboard_media::AnsweredBy;

use super::config::{CallerAudio, CarrierConfig, DialResult, Failure};
use super::request::CallRequest;

/// What will happen to one call, fixed when the call is created.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallPlan {
    pub result: DialResult,
    /// Who answers, for `Answered`.
    pub answered_by: AnsweredBy,
    pub ring_ms: u64,
    pub talk_ms: u64,
    pub amd_ms: u64,
    pub dtmf: Vec<(u64, String)>,
    pub audio: CallerAudio,
    /// Why a `Failed` call fails.
    pub failure: Failure,
    /// A `Busy` call is a decline (SIP 603), not busy (486).
    pub declined: bool,
}

/// The seeded source of every random draw; draws happen in call creation order.
#[derive(Debug)]
pub(crate) struct Planner {
    rng: SmallRng,
}

impl Planner {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Draws the plan of a call; a script for `To` overrides each field it sets. The same
    /// number of draws happens either way, so a script never shifts other calls' draws.
    pub(crate) fn plan(&mut self, config: &CarrierConfig, request: &CallRequest) -> CallPlan {
        let (drawn_result, machine) = config.mix.sample(&mut self.rng);
        let drawn_ring = config.ring_ms.sample(&mut self.rng);
        let drawn_talk = config.talk_ms.sample(&mut self.rng);
        let amd_ms = config.amd_ms.sample(&mut self.rng);
        let machine_kind = config.machines.sample(&mut self.rng);
        let drawn_answered_by = if machine {
            machine_kind
        } else {
            AnsweredBy::Human
        };
        let drawn_failure = config.failures.sample(&mut self.rng);
        let drawn_declined = self.rng.random::<f64>() < config.declined_share;
        let script = config.scripts.get(&request.to);
        let result = script.and_then(|s| s.result).unwrap_or(drawn_result);
        let default_ring = match result {
            // Without a scripted ring time, an unanswered phone rings until the timeout.
            DialResult::NoAnswer => u64::from(request.timeout_secs) * 1000,
            DialResult::Busy | DialResult::Failed => drawn_ring / 4,
            DialResult::Answered => drawn_ring,
        };
        let mut dtmf = script.map(|s| s.dtmf.clone()).unwrap_or_default();
        dtmf.sort_by_key(|(at, _)| *at);
        CallPlan {
            result,
            answered_by: script
                .and_then(|s| s.answered_by.clone())
                .unwrap_or(drawn_answered_by),
            ring_ms: script.and_then(|s| s.ring_ms).unwrap_or(default_ring),
            talk_ms: script.and_then(|s| s.talk_ms).unwrap_or(drawn_talk),
            amd_ms: script.and_then(|s| s.amd_ms).unwrap_or(amd_ms),
            dtmf,
            audio: script
                .and_then(|s| s.caller_audio)
                .unwrap_or(config.caller_audio),
            failure: script.and_then(|s| s.failure).unwrap_or(drawn_failure),
            declined: script.and_then(|s| s.declined).unwrap_or(drawn_declined),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::config::{AnswerMix, CallScript, Millis};

    fn request(to: &str) -> CallRequest {
        let form = [("To", to), ("From", "+15550000"), ("Twiml", "<Response/>")];
        let form: Vec<_> = form
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        CallRequest::from_form(&form).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_plans() {
        let config = CarrierConfig::default();
        let plans = |seed| {
            let mut planner = Planner::new(seed);
            (0..20)
                .map(|_| planner.plan(&config, &request("+15551234")))
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(7), plans(7));
        assert_ne!(plans(7), plans(8));
    }

    #[test]
    fn a_script_overrides_the_draws_for_its_number_only() {
        let config = CarrierConfig {
            mix: AnswerMix::all_human(),
            ring_ms: Millis::Fixed(3000),
            ..CarrierConfig::default()
        }
        .script("+15550001", CallScript::ends(DialResult::Busy, 40));
        let mut planner = Planner::new(1);
        let busy = planner.plan(&config, &request("+15550001"));
        assert_eq!((busy.result, busy.ring_ms), (DialResult::Busy, 40));
        let other = planner.plan(&config, &request("+15550002"));
        assert_eq!((other.result, other.ring_ms), (DialResult::Answered, 3000));
        assert_eq!(other.answered_by, AnsweredBy::Human);
    }

    #[test]
    fn the_mix_is_followed_roughly() {
        let config = CarrierConfig::default();
        let mut planner = Planner::new(42);
        let busy = (0..2000)
            .filter(|_| planner.plan(&config, &request("+15551234")).result == DialResult::Busy)
            .count();
        assert!((120..280).contains(&busy), "{busy} busy of 2000 at 10 %");
    }
}
