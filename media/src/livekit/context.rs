//! What a dispatched agent is told about its call, and how rooms are named after calls.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every call room's name starts with this, followed by the call id: `call-42`.
pub const ROOM_PREFIX: &str = "call-";

/// The room of a call: `call-<call_id>`.
pub fn room_name(call_id: i64) -> String {
    format!("{ROOM_PREFIX}{call_id}")
}

/// The call a room belongs to: `call-42` → 42. Anything else (another prefix, a sign,
/// leading zeros, trailing text) is not one of Switchboard's rooms.
pub fn call_id_from_room(room: &str) -> Option<i64> {
    let digits = room.strip_prefix(ROOM_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = digits.parse::<i64>().ok()?;
    (room_name(id) == room).then_some(id)
}

/// The call context: the agent's job metadata (`CreateDispatch.metadata`, JSON), with the
/// same names as the `customParameters` a Media Streams agent receives. `Debug` hides the
/// token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    /// The call (attempt) id; the room is `call-<call_id>`.
    pub call_id: i64,
    /// The campaign the call belongs to.
    pub campaign_id: i64,
    /// The LiveKit agent to dispatch (registered with this `agent_name`).
    pub agent_name: String,
    /// The per-call bearer token for Switchboard's agent API.
    pub token: String,
    /// Where the agent reports the outcome (`POST`, with the token).
    pub outcome_url: String,
    /// Who is called.
    pub contact: CallContact,
    /// The script rendered for this contact.
    pub script: String,
    /// The campaign's variables.
    #[serde(rename = "vars", default)]
    pub variables: Map<String, Value>,
}

impl CallContext {
    /// The room this call's session uses.
    pub fn room(&self) -> String {
        room_name(self.call_id)
    }

    /// The JSON metadata given to the agent.
    pub fn to_metadata(&self) -> String {
        // A struct of strings, numbers and JSON maps always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("call_id", &self.call_id)
            .field("campaign_id", &self.campaign_id)
            .field("agent_name", &self.agent_name)
            .field("token", &"[REDACTED]")
            .field("outcome_url", &self.outcome_url)
            .field("contact", &self.contact)
            .field("script", &self.script)
            .field("variables", &self.variables)
            .finish()
    }
}

/// The contact fields an agent gets.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CallContact {
    /// E.164 phone number.
    pub phone: String,
    /// Name, if known.
    #[serde(default)]
    pub name: Option<String>,
    /// Email, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// Company, if known.
    #[serde(default)]
    pub company: Option<String>,
    /// IANA time zone, if known.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rooms_are_named_after_calls_and_back() {
        assert_eq!(room_name(42), "call-42");
        assert_eq!(call_id_from_room("call-42"), Some(42));
        assert_eq!(call_id_from_room("call-0"), Some(0));
        for other in [
            "call-", "call-+4", "call-042", "call-4x", "room-4", "call--4", "4",
        ] {
            assert_eq!(call_id_from_room(other), None, "{other}");
        }
        assert_eq!(call_id_from_room("call-99999999999999999999"), None);
    }

    #[test]
    fn metadata_uses_the_media_stream_parameter_names_and_debug_hides_the_token() {
        let call = CallContext {
            call_id: 7,
            campaign_id: 3,
            agent_name: "sales".into(),
            token: "secret-call-token".into(),
            outcome_url: "https://sb.example.com/api/v1/agent/outcome".into(),
            contact: CallContact {
                phone: "+14155550001".into(),
                name: Some("Ada".into()),
                ..CallContact::default()
            },
            script: "Hello Ada".into(),
            variables: json!({"offer": "10%"}).as_object().cloned().unwrap(),
        };
        let metadata: Value = serde_json::from_str(&call.to_metadata()).unwrap();
        assert_eq!(metadata["call_id"], 7);
        assert_eq!(metadata["token"], "secret-call-token");
        assert_eq!(metadata["contact"]["name"], "Ada");
        assert_eq!(metadata["vars"]["offer"], "10%");
        let back: CallContext = serde_json::from_value(metadata).unwrap();
        assert_eq!(back, call);
        assert!(!format!("{call:?}").contains("secret-call-token"));
        assert_eq!(call.room(), "call-7");
    }
}
