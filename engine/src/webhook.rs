//! Outbound webhooks: the events a tenant can subscribe to, what a subscription must look
//! like, the retry schedule, and the signature every delivery carries.
//!
//! A delivery is signed like Stripe's: the header
//! `Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A receiver recomputes the HMAC over the timestamp, a dot and the raw body with the
//! subscription's secret, compares in constant time, and refuses timestamps too far from
//! its clock (replays).

use crate::error::{Error, FieldError, Result};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "Switchboard-Signature";

/// Something that happened, that a tenant can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// A call attempt is over (with its result, and the agent's outcome when reported).
    #[serde(rename = "call.completed")]
    CallCompleted,
    /// A campaign changed status (any cause).
    #[serde(rename = "campaign.status_changed")]
    CampaignStatusChanged,
    /// A campaign paused itself (quality below threshold, or a failure streak).
    #[serde(rename = "campaign.auto_paused")]
    CampaignAutoPaused,
    /// A contact opted out (through the API or a `do_not_call` outcome).
    #[serde(rename = "contact.opted_out")]
    ContactOptedOut,
}

impl WebhookEvent {
    /// Every event.
    pub const ALL: [WebhookEvent; 4] = [
        WebhookEvent::CallCompleted,
        WebhookEvent::CampaignStatusChanged,
        WebhookEvent::CampaignAutoPaused,
        WebhookEvent::ContactOptedOut,
    ];

    /// The event's name (`call.completed`).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::CallCompleted => "call.completed",
            WebhookEvent::CampaignStatusChanged => "campaign.status_changed",
            WebhookEvent::CampaignAutoPaused => "campaign.auto_paused",
            WebhookEvent::ContactOptedOut => "contact.opted_out",
        }
    }
}

impl std::str::FromStr for WebhookEvent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        WebhookEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown event {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed (`http://` or `https://`).
    pub url: String,
    /// The events to deliver (at least one, no repeats).
    pub events: Vec<String>,
    /// A label for people.
    #[serde(default)]
    pub description: String,
}

impl NewWebhook {
    /// Checks every field at once; returns the parsed events.
    pub fn validate(&self) -> Result<Vec<WebhookEvent>> {
        let mut errors = Vec::new();
        let url = self.url.as_str();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            None => errors.push(FieldError::new(
                "url",
                format!("{url:?} must start with http:// or https://"),
            )),
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                errors.push(FieldError::new("url", format!("{url:?} has no host")))
            }
            Some(_) if url.len() > 2048 => errors.push(FieldError::new(
                "url",
                format!("is {} characters long; at most 2048", url.len()),
            )),
            Some(_) if url.chars().any(char::is_whitespace) => {
                errors.push(FieldError::new("url", format!("{url:?} contains spaces")))
            }
            Some(_) => {}
        }
        if self.events.is_empty() {
            errors.push(FieldError::new("events", "must name at least one event"));
        }
        let mut events = Vec::new();
        for (i, name) in self.events.iter().enumerate() {
            match name.parse::<WebhookEvent>() {
                Ok(e) if events.contains(&e) => errors.push(FieldError::new(
                    format!("events[{i}]"),
                    format!("{name:?} is listed twice"),
                )),
                Ok(e) => events.push(e),
                Err(reason) => errors.push(FieldError::new(format!("events[{i}]"), reason)),
            }
        }
        if self.description.len() > 500 {
            errors.push(FieldError::new(
                "description",
                format!("is {} characters long; at most 500", self.description.len()),
            ));
        }
        if errors.is_empty() {
            Ok(events)
        } else {
            Err(Error::Invalid {
                what: "webhook",
                errors,
            })
        }
    }
}

/// How failed deliveries are retried: the first retry after `first_backoff`, each next one
/// after twice the previous delay (at most `max_backoff`), and after `max_attempts` sends
/// the delivery is marked failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Sends before giving up (the first send included).
    pub max_attempts: u32,
    /// The delay before the first retry.
    pub first_backoff: Duration,
    /// The longest delay between two sends.
    pub max_backoff: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            max_attempts: 8,
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

impl RetrySchedule {
    /// The delay after failed send number `attempt` (1-based), or `None` when that was the
    /// last one.
    pub fn delay_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        Some(
            self.first_backoff
                .saturating_mul(factor)
                .min(self.max_backoff),
        )
    }
}

fn hmac_hex(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Switchboard-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex(&hmac_hex(secret.as_bytes(), timestamp, body))
    )
}

/// Checks a `Switchboard-Signature` value the way a receiver should: a `v1` signature over
/// `"<t>.<body>"` with `secret`, and `t` within `tolerance` of `now` (unix seconds).
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(s.to_owned()),
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if now.abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    let expected = hex(&hmac_hex(secret.as_bytes(), t, body));
    signatures
        .iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

/// A new signing secret (`whsec_` + 32 random bytes, base64url) from `random`.
pub fn new_secret(random: [u8; 32]) -> String {
    use base64::Engine as _;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_and_a_fresh_timestamp_only() {
        let header = signature("whsec_a", 1_700_000_000, b"{\"x\":1}");
        let ok = |secret, body: &[u8], now| {
            verify_signature(secret, &header, body, now, Duration::from_secs(300))
        };
        assert!(ok("whsec_a", b"{\"x\":1}", 1_700_000_010));
        assert!(
            !ok("whsec_b", b"{\"x\":1}", 1_700_000_010),
            "another secret"
        );
        assert!(!ok("whsec_a", b"{\"x\":2}", 1_700_000_010), "another body");
        assert!(
            !ok("whsec_a", b"{\"x\":1}", 1_700_000_400),
            "a stale timestamp"
        );
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap_then_stop() {
        let s = RetrySchedule {
            max_attempts: 5,
            first_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(50),
        };
        let delays: Vec<_> = (1..=5).map(|n| s.delay_after(n)).collect();
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(delays, [secs(10), secs(20), secs(40), secs(50), None]);
    }

    #[test]
    fn a_subscription_names_a_url_and_known_events_once() {
        let hook = NewWebhook {
            url: "ftp://x".into(),
            events: vec![
                "call.completed".into(),
                "call.done".into(),
                "call.completed".into(),
            ],
            description: String::new(),
        };
        let Err(Error::Invalid { errors, .. }) = hook.validate() else {
            panic!("accepted a bad subscription")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "events[1]", "events[2]"]);
        let good = NewWebhook {
            url: "https://example.com/hooks".into(),
            events: vec!["contact.opted_out".into()],
            description: String::new(),
        };
        assert_eq!(good.validate().unwrap(), [WebhookEvent::ContactOptedOut]);
    }
}
