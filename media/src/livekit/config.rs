//! Where Switchboard's LiveKit deployment is and how call rooms are shaped.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::error::LiveKitError;

/// The LiveKit project Switchboard talks to; `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct LiveKitConfig {
    /// Server URL (`wss://project.livekit.cloud`, `https://…` or `http://127.0.0.1:7880`);
    /// `ws(s)://` is rewritten to `http(s)://` for the server API.
    pub url: String,
    /// API key: the `iss` of every token and the key webhooks are signed with.
    pub api_key: String,
    /// API secret: signs request tokens and verifies webhook tokens.
    pub api_secret: SecretString,
}

impl LiveKitConfig {
    /// A configuration from the URL, key and secret.
    pub fn new(
        url: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: SecretString,
    ) -> Self {
        LiveKitConfig {
            url: url.into(),
            api_key: api_key.into(),
            api_secret,
        }
    }

    /// Refuses an empty key or secret and a URL that is not `http(s)://` or `ws(s)://`.
    pub fn validate(&self) -> Result<(), LiveKitError> {
        let url = self.url.trim();
        let known = ["http://", "https://", "ws://", "wss://"];
        if !known.iter().any(|scheme| url.starts_with(scheme)) || url.len() < 8 {
            return Err(LiveKitError::Config(format!(
                "url {url:?} must start with http://, https://, ws:// or wss://"
            )));
        }
        if self.api_key.trim().is_empty() {
            return Err(LiveKitError::Config("api key must not be empty".into()));
        }
        if self.api_secret.expose_secret().is_empty() {
            return Err(LiveKitError::Config("api secret must not be empty".into()));
        }
        Ok(())
    }

    /// The secret, for the `livekit-api` clients and verifiers only.
    pub(crate) fn secret(&self) -> &str {
        self.api_secret.expose_secret()
    }
}

/// How a call's room is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    /// How long LiveKit keeps the room open when nobody has joined yet (it closes it after).
    /// Long enough for a dispatched agent to start and a callee to be rung.
    pub empty_timeout: Duration,
    /// How long LiveKit keeps the room after the last participant left.
    pub departure_timeout: Duration,
    /// Participants allowed: the agent, the callee (SIP or connector) and some room to spare.
    pub max_participants: u32,
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            empty_timeout: Duration::from_secs(120),
            departure_timeout: Duration::from_secs(20),
            max_participants: 4,
        }
    }
}

/// Behaviour of [`LiveKitAgents`](super::LiveKitAgents) beyond the credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveKitOptions {
    /// Shape of call rooms.
    pub room: RoomSettings,
    /// In media-stream mode, ask LiveKit's Twilio connector (`Connector/ConnectTwilioCall`,
    /// LiveKit Cloud) for a Media Streams URL for each session; the session then yields it
    /// as [`LiveKitSession::connector_url`](super::LiveKitSession::connector_url).
    pub twilio_connector: bool,
    /// Replay a request that failed with a transport error or a 5xx in another LiveKit
    /// Cloud region (livekit-api's failover). Off by default: the caller decides about
    /// retries ([`LiveKitError::is_retryable`](super::LiveKitError::is_retryable)), and a
    /// replayed dispatch could start a second agent. SIP dialing is never replayed.
    pub region_failover: bool,
    /// Per-request timeout of the server API (livekit-api's default, 10 s, when `None`).
    /// SIP dialing that waits for an answer always gets at least the ringing timeout + 2 s.
    pub request_timeout: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let config = LiveKitConfig::new("wss://x.livekit.cloud", "APIkey", "hunter2-secret".into());
        let shown = format!("{config:?}");
        assert!(shown.contains("APIkey"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn validation_names_the_bad_field() {
        let ok = LiveKitConfig::new("http://127.0.0.1:7880", "key", "secret".into());
        assert!(ok.validate().is_ok());
        let url = LiveKitConfig::new("livekit.example.com", "key", "secret".into());
        assert!(url.validate().unwrap_err().to_string().contains("url"));
        let key = LiveKitConfig::new("wss://x.y", "", "secret".into());
        assert!(key.validate().unwrap_err().to_string().contains("api key"));
        let secret = LiveKitConfig::new("wss://x.y", "key", "".into());
        assert!(
            secret
                .validate()
                .unwrap_err()
                .to_string()
                .contains("api secret")
        );
    }
}
