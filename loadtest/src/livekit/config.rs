//! Configuration of the simulated LiveKit: credentials, the webhook target, the simulated
//! agent, and what each called number does with a SIP call.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::agent::SipAgentScript;

/// What a called number does with a SIP call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipOutcome {
    /// The callee picks up.
    Answer,
    /// The far end answers with a final SIP failure (486 Busy Here, 603 Decline, …).
    Reject {
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The phone rings until the ringing timeout.
    NoAnswer,
}

/// A called number's script: the outcome, when it happens, and how long an answered call
/// lasts before the callee hangs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipScript {
    /// What happens.
    pub outcome: SipOutcome,
    /// After how long (an answer or rejection later than the ringing timeout is no answer).
    pub after: Duration,
    /// For an answered call: the callee hangs up after this long (else the call lasts until
    /// the room is deleted or `max_call_duration` passes).
    pub hang_up_after: Option<Duration>,
}

impl SipScript {
    /// Answered after `after_ms`.
    pub fn answered(after_ms: u64) -> SipScript {
        SipScript {
            outcome: SipOutcome::Answer,
            after: Duration::from_millis(after_ms),
            hang_up_after: None,
        }
    }

    /// A final SIP failure after `after_ms`.
    pub fn rejected(code: u16, reason: &str, after_ms: u64) -> SipScript {
        SipScript {
            outcome: SipOutcome::Reject {
                code,
                reason: reason.to_owned(),
            },
            after: Duration::from_millis(after_ms),
            hang_up_after: None,
        }
    }

    /// 486 Busy Here.
    pub fn busy(after_ms: u64) -> SipScript {
        Self::rejected(486, "Busy Here", after_ms)
    }

    /// 603 Decline.
    pub fn declined(after_ms: u64) -> SipScript {
        Self::rejected(603, "Decline", after_ms)
    }

    /// 480 Temporarily Unavailable (carrier capacity).
    pub fn unavailable(after_ms: u64) -> SipScript {
        Self::rejected(480, "Temporarily Unavailable", after_ms)
    }

    /// 503 Service Unavailable (carrier capacity).
    pub fn service_unavailable(after_ms: u64) -> SipScript {
        Self::rejected(503, "Service Unavailable", after_ms)
    }

    /// Rings until the ringing timeout.
    pub fn no_answer() -> SipScript {
        SipScript {
            outcome: SipOutcome::NoAnswer,
            after: Duration::ZERO,
            hang_up_after: None,
        }
    }

    /// For an answered call, the callee hangs up `ms` after answering.
    pub fn hang_up_after(mut self, ms: u64) -> SipScript {
        self.hang_up_after = Some(Duration::from_millis(ms));
        self
    }
}

/// How the simulated LiveKit behaves. `Debug` never shows the secret.
#[derive(Clone)]
pub struct SimLiveKitConfig {
    /// Listen address (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// The API key requests and webhooks are signed with.
    pub api_key: String,
    /// The API secret.
    pub api_secret: String,
    /// Where signed webhooks are posted (none: they are only recorded).
    pub webhook_url: Option<String>,
    /// A simulated agent joins a room this long after it was dispatched (`None`: no agent
    /// ever joins).
    pub agent_join_delay: Option<Duration>,
    /// The URL `Connector/ConnectTwilioCall` returns (`None`: the method is unimplemented,
    /// as on a self-hosted LiveKit).
    pub twilio_connector_url: Option<String>,
    /// The script of numbers not listed in `sip_scripts` (default: answered after 20 ms).
    pub sip_default: SipScript,
    /// Per called number (`sip_call_to` as sent).
    pub sip_scripts: HashMap<String, SipScript>,
    /// Per called number, one script per call in order (the last one repeats); wins over
    /// `sip_scripts`.
    pub sip_sequences: HashMap<String, Vec<SipScript>>,
    /// Ringing timeout when a request sets none (LiveKit's default, 30 s).
    pub default_ringing_timeout: Duration,
    /// What a joined agent does with a SIP callee (`None`: it only sits in the room).
    pub sip_agent: Option<SipAgentScript>,
}

impl fmt::Debug for SimLiveKitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLiveKitConfig")
            .field("bind", &self.bind)
            .field("api_key", &self.api_key)
            .field("webhook_url", &self.webhook_url)
            .field("agent_join_delay", &self.agent_join_delay)
            .field("twilio_connector_url", &self.twilio_connector_url)
            .field("sip_default", &self.sip_default)
            .field("sip_scripts", &self.sip_scripts)
            .field("sip_sequences", &self.sip_sequences)
            .field("sip_agent", &self.sip_agent)
            .finish_non_exhaustive()
    }
}

impl SimLiveKitConfig {
    /// A LiveKit on `127.0.0.1:0` accepting tokens signed with this key and secret.
    pub fn new(api_key: &str, api_secret: &str) -> SimLiveKitConfig {
        SimLiveKitConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
            webhook_url: None,
            agent_join_delay: Some(Duration::from_millis(10)),
            twilio_connector_url: None,
            sip_default: SipScript::answered(20),
            sip_scripts: HashMap::new(),
            sip_sequences: HashMap::new(),
            default_ringing_timeout: Duration::from_secs(30),
            sip_agent: None,
        }
    }

    /// Joined agents play `script` with SIP callees: talk, report the outcome to
    /// Switchboard, hang up.
    pub fn sip_agent(mut self, script: SipAgentScript) -> Self {
        self.sip_agent = Some(script);
        self
    }

    /// Posts signed webhooks to `url`.
    pub fn webhook_url(mut self, url: impl Into<String>) -> Self {
        self.webhook_url = Some(url.into());
        self
    }

    /// When (or whether) a simulated agent joins a dispatched room.
    pub fn agent_join_delay(mut self, delay: Option<Duration>) -> Self {
        self.agent_join_delay = delay;
        self
    }

    /// Serves `Connector/ConnectTwilioCall`, answering with `url`.
    pub fn twilio_connector(mut self, url: impl Into<String>) -> Self {
        self.twilio_connector_url = Some(url.into());
        self
    }

    /// What calls to `number` do.
    pub fn sip(mut self, number: &str, script: SipScript) -> Self {
        self.sip_scripts.insert(number.to_owned(), script);
        self
    }

    /// What successive calls to `number` do: the first call plays the first script, and
    /// so on; the last one repeats.
    pub fn sip_sequence(mut self, number: &str, scripts: Vec<SipScript>) -> Self {
        self.sip_sequences.insert(number.to_owned(), scripts);
        self
    }

    /// What calls to unlisted numbers do.
    pub fn sip_default(mut self, script: SipScript) -> Self {
        self.sip_default = script;
        self
    }

    /// The script for the call to `number` that follows `earlier` calls to it.
    pub(crate) fn script_for(&self, number: &str, earlier: usize) -> &SipScript {
        if let Some(sequence) = self.sip_sequences.get(number)
            && let Some(last) = sequence.last()
        {
            return sequence.get(earlier).unwrap_or(last);
        }
        self.sip_scripts.get(number).unwrap_or(&self.sip_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_without_a_script_use_the_default_and_debug_hides_the_secret() {
        let config = SimLiveKitConfig::new("key", "very-secret")
            .sip("+15550001", SipScript::busy(5))
            .sip_default(SipScript::no_answer())
            .sip_sequence(
                "+15550002",
                vec![SipScript::busy(5), SipScript::answered(5)],
            );
        assert_eq!(
            config.script_for("+15550001", 0).outcome,
            SipOutcome::Reject {
                code: 486,
                reason: "Busy Here".into()
            }
        );
        assert_eq!(
            config.script_for("+15559999", 0).outcome,
            SipOutcome::NoAnswer
        );
        let second = &config.script_for("+15550002", 1).outcome;
        assert_eq!(second, &SipOutcome::Answer);
        assert_eq!(
            config.script_for("+15550002", 7).outcome,
            SipOutcome::Answer
        );
        assert!(matches!(
            config.script_for("+15550002", 0).outcome,
            SipOutcome::Reject { code: 486, .. }
        ));
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
