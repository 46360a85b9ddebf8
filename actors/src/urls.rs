//! The URLs Switchboard gives the carrier and agents to reach it, built from the public
//! base URL (what the world sees, e.g. behind a proxy), in one place.

use switchboard_engine::AttemptId;

/// Switchboard's public endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    base: String,
}

impl PublicUrls {
    /// From the public base URL (`https://switchboard.example.com`); a trailing `/` is dropped.
    pub fn new(base: &str) -> Self {
        PublicUrls {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL a request with this path and query was sent to, as the sender sees it.
    pub fn for_path(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// The media stream WebSocket (`wss://` for an `https://` base).
    pub fn media_stream(&self) -> String {
        let ws = if let Some(rest) = self.base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.base.clone()
        };
        format!("{ws}/twilio/media")
    }

    /// Status callbacks for one attempt.
    pub fn status_callback(&self, attempt: AttemptId) -> String {
        format!("{}/twilio/status?attempt={attempt}", self.base)
    }

    /// Asynchronous answering machine detection results for one attempt.
    pub fn amd_callback(&self, attempt: AttemptId) -> String {
        format!("{}/twilio/amd?attempt={attempt}", self.base)
    }

    /// The TwiML of one attempt.
    pub fn twiml(&self, attempt: AttemptId) -> String {
        format!("{}/twilio/twiml?attempt={attempt}", self.base)
    }

    /// Where agents report outcomes.
    pub fn outcome(&self) -> String {
        format!("{}/api/v1/agent/outcome", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_public_base() {
        let urls = PublicUrls::new("https://sb.example.com/");
        assert_eq!(urls.media_stream(), "wss://sb.example.com/twilio/media");
        assert_eq!(
            urls.status_callback(AttemptId(7)),
            "https://sb.example.com/twilio/status?attempt=7"
        );
        assert_eq!(
            urls.amd_callback(AttemptId(7)),
            "https://sb.example.com/twilio/amd?attempt=7"
        );
        assert_eq!(
            urls.for_path("/twilio/status?attempt=7"),
            urls.status_callback(AttemptId(7))
        );
        assert_eq!(
            PublicUrls::new("http://127.0.0.1:8080").media_stream(),
            "ws://127.0.0.1:8080/twilio/media"
        );
    }
}
