//! The scripted agent's configuration, and the per-call behaviour read from the contact's
//! attributes (`agent_outcome`, `agent_talk_ms`, …) so tests are deterministic.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde_json::Value;

/// The outcome an agent reports for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The callee wants what was offered.
    Interested,
    /// The callee declined.
    NotInterested,
    /// The callee asked to be called back later (`callback_at`).
    Callback,
    /// The callee asked never to be called again.
    DoNotCall,
    /// An answering machine took the call.
    Voicemail,
    /// The person reached is not the contact.
    WrongNumber,
}

impl Outcome {
    /// The wire spelling, e.g. `do_not_call`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interested => "interested",
            Self::NotInterested => "not_interested",
            Self::Callback => "callback",
            Self::DoNotCall => "do_not_call",
            Self::Voicemail => "voicemail",
            Self::WrongNumber => "wrong_number",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outcome name that is not one of the six.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value.trim() {
            "interested" => Self::Interested,
            "not_interested" => Self::NotInterested,
            "callback" => Self::Callback,
            "do_not_call" => Self::DoNotCall,
            "voicemail" => Self::Voicemail,
            "wrong_number" => Self::WrongNumber,
            other => return Err(UnknownOutcome(other.to_owned())),
        })
    }
}

/// What the agent does once its script has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Finish {
    /// Report the outcome, then close the socket (the agent hangs up).
    #[default]
    Close,
    /// Report the outcome, then keep the socket open until `stop` (the callee hangs up).
    WaitForStop,
}

/// Defaults of the scripted agent; each call may override them through its contact.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Address to listen on; port 0 picks a free one.
    pub bind: SocketAddr,
    /// Milliseconds from `start` to the first greeting frame.
    pub greeting_delay_ms: u64,
    /// Milliseconds of greeting audio (sent as 20 ms frames).
    pub talk_ms: u64,
    /// Milliseconds to listen after the greeting before finishing.
    pub listen_ms: u64,
    /// Outcome reported when the contact does not name one.
    pub outcome: Outcome,
    /// Minutes ahead for `callback_at` on a `callback` outcome.
    pub callback_in_minutes: i64,
    /// Digit that makes the callee opt out (`do_not_call` at once).
    pub opt_out_digit: String,
    /// What happens after the outcome is reported.
    pub finish: Finish,
    /// Greeting tone frequency in hertz.
    pub tone_hz: f32,
    /// Greeting tone amplitude, 0.0..=1.0.
    pub tone_amplitude: f32,
    /// Level at or below which an inbound frame counts as silent (dBFS).
    pub silence_dbfs: f32,
    /// Attempts at the outcome report (5xx and transport errors are retried).
    pub report_attempts: u32,
    /// Backoff before the first retry, doubled after each.
    pub report_backoff_ms: u64,
    /// Milliseconds to wait for `start` after the socket opens.
    pub start_timeout_ms: u64,
    /// When set, the upgrade's `X-Twilio-Signature` is checked with this token (recorded,
    /// not enforced, so a test can assert on it).
    pub signature_token: Option<String>,
    /// When set, media frames are stamped and the far side's stamps recorded (one-way
    /// latency, lost and late frames); incoming audio is then counted, not decoded, and
    /// outgoing frames are built without a serializer.
    pub probe: Option<crate::probe::FrameProbe>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            greeting_delay_ms: 200,
            talk_ms: 2_000,
            listen_ms: 3_000,
            outcome: Outcome::Interested,
            callback_in_minutes: 60,
            opt_out_digit: "9".to_owned(),
            finish: Finish::Close,
            tone_hz: 440.0,
            tone_amplitude: 0.3,
            silence_dbfs: -50.0,
            report_attempts: 4,
            report_backoff_ms: 100,
            start_timeout_ms: 10_000,
            signature_token: None,
            probe: None,
        }
    }
}

/// How the agent behaves on one call: the config's defaults, overridden by the contact.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Behaviour {
    pub outcome: Outcome,
    pub greeting_delay_ms: u64,
    pub talk_ms: u64,
    pub listen_ms: u64,
    pub callback_in_minutes: i64,
    pub drop_after_ms: Option<u64>,
    pub no_report: bool,
}

impl Behaviour {
    /// Reads `agent_*` attributes of the contact (strings or JSON numbers/booleans);
    /// anything missing or unreadable keeps the config's value.
    pub(crate) fn resolve(config: &AgentConfig, contact: Option<&Value>) -> Self {
        let attributes = contact
            .and_then(|c| c.get("attributes"))
            .and_then(Value::as_object);
        let text = |key: &str| -> Option<String> {
            match attributes?.get(key)? {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let number = |key: &str| text(key).and_then(|t| t.parse::<u64>().ok());
        Self {
            outcome: text("agent_outcome")
                .and_then(|t| t.parse().ok())
                .unwrap_or(config.outcome),
            greeting_delay_ms: number("agent_greeting_delay_ms")
                .unwrap_or(config.greeting_delay_ms),
            talk_ms: number("agent_talk_ms").unwrap_or(config.talk_ms),
            listen_ms: number("agent_listen_ms").unwrap_or(config.listen_ms),
            callback_in_minutes: text("agent_callback_in_minutes")
                .and_then(|t| t.parse().ok())
                .unwrap_or(config.callback_in_minutes),
            drop_after_ms: number("agent_drop_after_ms"),
            no_report: text("agent_no_report").is_some_and(|t| t == "true" || t == "1"),
        }
    }
}

/// The call context Switchboard passes in `start.customParameters`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CallContext {
    pub call_id: Option<String>,
    pub token: Option<String>,
    pub outcome_url: Option<String>,
    pub contact: Option<Value>,
    pub script: Option<String>,
}

impl CallContext {
    pub(crate) fn from_parameters(params: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| params.get(key).cloned().filter(|v| !v.is_empty());
        Self {
            call_id: get("call_id"),
            token: get("token"),
            outcome_url: get("outcome_url"),
            contact: get("contact").and_then(|c| serde_json::from_str(&c).ok()),
            script: get("script"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_attributes_override_defaults_in_any_json_shape() {
        let contact = serde_json::json!({
            "name": "Ada",
            "attributes": {
                "agent_outcome": "callback",
                "agent_talk_ms": 500,
                "agent_listen_ms": "750",
                "agent_callback_in_minutes": "15",
                "agent_drop_after_ms": 300,
                "agent_no_report": true
            }
        });
        let behaviour = Behaviour::resolve(&AgentConfig::default(), Some(&contact));
        assert_eq!(behaviour.outcome, Outcome::Callback);
        assert_eq!((behaviour.talk_ms, behaviour.listen_ms), (500, 750));
        assert_eq!(behaviour.callback_in_minutes, 15);
        assert_eq!(behaviour.drop_after_ms, Some(300));
        assert!(behaviour.no_report);
        assert_eq!(
            behaviour.greeting_delay_ms,
            AgentConfig::default().greeting_delay_ms
        );
    }

    #[test]
    fn bad_or_missing_values_keep_the_defaults() {
        let contact =
            serde_json::json!({"attributes": {"agent_outcome": "maybe", "agent_talk_ms": -4}});
        let config = AgentConfig::default();
        let behaviour = Behaviour::resolve(&config, Some(&contact));
        assert_eq!(behaviour.outcome, config.outcome);
        assert_eq!(behaviour.talk_ms, config.talk_ms);
        assert_eq!(Behaviour::resolve(&config, None).drop_after_ms, None);
    }

    #[test]
    fn the_context_reads_the_agent_contract_parameters() {
        let params: BTreeMap<String, String> = [
            ("call_id", "c-1"),
            ("token", "t"),
            ("outcome_url", "http://h/o"),
            ("contact", r#"{"name":"Ada","attributes":{}}"#),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let context = CallContext::from_parameters(&params);
        assert_eq!(context.call_id.as_deref(), Some("c-1"));
        assert_eq!(context.contact.unwrap()["name"], "Ada");
        let broken = BTreeMap::from([("contact".to_owned(), "{not json".to_owned())]);
        assert_eq!(CallContext::from_parameters(&broken).contact, None);
    }

    #[test]
    fn outcomes_round_trip() {
        for name in [
            "interested",
            "not_interested",
            "callback",
            "do_not_call",
            "voicemail",
            "wrong_number",
        ] {
            assert_eq!(name.parse::<Outcome>().unwrap().as_str(), name);
        }
        assert!("yes".parse::<Outcome>().is_err());
    }
}
