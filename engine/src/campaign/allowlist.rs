//! What a tenant may use of the shared LiveKit project. Every tenant dials through the
//! operator's one LiveKit project, so a trunk id or an agent name is not the tenant's to
//! choose freely: the operator lists, per tenant, the outbound SIP trunk ids and agent
//! names it may name, and a campaign naming anything else is refused when it is stored
//! and again when it dials. An empty list allows nothing: a tenant the operator did not
//! set up has no LiveKit agent at all.

use super::AgentConfig;
use crate::error::FieldError;
use serde::Serialize;
use std::collections::BTreeSet;

/// The LiveKit SIP trunk ids and agent names one tenant may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LivekitAllowlist {
    /// Outbound SIP trunk ids (`agent.trunk_id` of a `sip` agent).
    pub trunks: BTreeSet<String>,
    /// Agent names (`agent.agent_name` of a `livekit` or `sip` agent).
    pub agent_names: BTreeSet<String>,
}

impl LivekitAllowlist {
    /// Every field of `agent` this list does not allow, naming the value and what is
    /// allowed. An agent that is not LiveKit's (a media-stream URL, or none) needs nothing.
    pub fn refusals(&self, agent: Option<&AgentConfig>) -> Vec<FieldError> {
        let mut out = Vec::new();
        let (agent_name, trunk_id) = match agent {
            Some(AgentConfig::Livekit { agent_name }) => (agent_name, None),
            Some(AgentConfig::Sip {
                agent_name,
                trunk_id,
            }) => (agent_name, Some(trunk_id)),
            Some(AgentConfig::MediaStream { .. }) | None => return out,
        };
        if !self.agent_names.contains(agent_name) {
            out.push(FieldError::new(
                "agent.agent_name",
                refusal("agent name", agent_name, &self.agent_names),
            ));
        }
        if let Some(trunk_id) = trunk_id
            && !self.trunks.contains(trunk_id)
        {
            out.push(FieldError::new(
                "agent.trunk_id",
                refusal("livekit sip trunk", trunk_id, &self.trunks),
            ));
        }
        out
    }
}

fn refusal(what: &str, value: &str, allowed: &BTreeSet<String>) -> String {
    if allowed.is_empty() {
        format!(
            "{what} `{value}` is not allowed: the operator has allowed this tenant no {what} \
             (`switchboard tenants livekit`)"
        )
    } else {
        let list: Vec<&str> = allowed.iter().map(String::as_str).collect();
        format!(
            "{what} `{value}` is not allowed for this tenant (allowed: {})",
            list.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(agent: &str, trunk: &str) -> AgentConfig {
        AgentConfig::Sip {
            agent_name: agent.into(),
            trunk_id: trunk.into(),
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn an_empty_list_refuses_every_livekit_agent_and_no_media_stream_agent() {
        let none = LivekitAllowlist::default();
        let livekit = AgentConfig::Livekit {
            agent_name: "sarah".into(),
        };
        let refused = none.refusals(Some(&livekit));
        assert_eq!(fields(refused.clone()), ["agent.agent_name"]);
        assert!(
            refused[0].reason.contains("`sarah`"),
            "{}",
            refused[0].reason
        );
        assert!(refused[0].reason.contains("switchboard tenants livekit"));
        assert_eq!(
            fields(none.refusals(Some(&sip("sarah", "ST_1")))),
            ["agent.agent_name", "agent.trunk_id"]
        );
        let url = AgentConfig::MediaStream {
            url: "wss://agent.example".into(),
        };
        assert!(none.refusals(Some(&url)).is_empty());
        assert!(none.refusals(None).is_empty());
    }

    #[test]
    fn only_the_listed_trunks_and_agent_names_pass() {
        let list = LivekitAllowlist {
            trunks: ["ST_1".to_owned()].into(),
            agent_names: ["sarah".to_owned(), "tom".to_owned()].into(),
        };
        assert!(list.refusals(Some(&sip("tom", "ST_1"))).is_empty());
        let refused = list.refusals(Some(&sip("tom", "ST_2")));
        assert_eq!(fields(refused.clone()), ["agent.trunk_id"]);
        assert!(refused[0].reason.contains("`ST_2`") && refused[0].reason.contains("ST_1"));
        assert_eq!(
            fields(list.refusals(Some(&sip("eve", "ST_1")))),
            ["agent.agent_name"]
        );
    }
}
