//! Per-call tokens: the bearer credential an agent uses to report the outcome of the one
//! call it handled, and nothing else.
//!
//! A token is `<attempt id>.<base64url HMAC-SHA256(secret, "switchboard-call:" + id)>`: it
//! names its call and proves it was issued by a server that holds the secret. The secret is
//! a server setting kept in the database, so tokens stay valid across restarts and
//! processes.
//!
//! A token is good for its call only while the call can still need it: until
//! [`REPORT_GRACE`] after the call ended, and never past [`MAX_CALL`] + [`REPORT_GRACE`]
//! after it was reserved ([`expires_at`]), so a token found in an agent's log later opens
//! nothing.
//!
//! The same secret derives each call's stream key ([`stream_key`]), a `<Parameter>` of the
//! TwiML that connects the answered call to Switchboard's media endpoint: the carrier
//! signs the upgrade with a signature that is the same for every call, so the key is what
//! binds a media stream to the one call it was placed for.

use crate::AttemptId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The longest call a token outlives: Twilio's default `TimeLimit` (four hours).
pub const MAX_CALL: chrono::TimeDelta = chrono::TimeDelta::hours(4);
/// How long after its call an agent may still report with the call's token.
pub const REPORT_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// When the token of a call reserved at `reserved_at` (and ended at `ended_at`, if over)
/// stops being accepted.
pub fn expires_at(
    reserved_at: chrono::DateTime<chrono::Utc>,
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
) -> chrono::DateTime<chrono::Utc> {
    let longest = reserved_at + MAX_CALL + REPORT_GRACE;
    ended_at.map_or(longest, |ended| (ended + REPORT_GRACE).min(longest))
}

/// The server setting that holds the signing secret.
pub const SECRET_SETTING: &str = "call_token_secret";

fn mac(secret: &[u8], attempt: AttemptId) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"switchboard-call:");
    mac.update(attempt.0.to_string().as_bytes());
    mac.finalize().into_bytes().into()
}

/// Issues the token for one call attempt.
pub fn issue(secret: &[u8], attempt: AttemptId) -> String {
    format!(
        "{}.{}",
        attempt.0,
        URL_SAFE_NO_PAD.encode(mac(secret, attempt))
    )
}

/// The attempt a token was issued for, if the token is genuine (constant-time check).
pub fn verify(secret: &[u8], token: &str) -> Option<AttemptId> {
    let (id, signature) = token.trim().split_once('.')?;
    let attempt = AttemptId(id.parse().ok()?);
    let given = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let expected = mac(secret, attempt);
    bool::from(given.ct_eq(&expected)).then_some(attempt)
}

fn stream_mac(secret: &[u8], attempt: AttemptId) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"switchboard-stream:");
    mac.update(attempt.0.to_string().as_bytes());
    mac.finalize().into_bytes().into()
}

/// The key that binds a media stream to its call: sent to the carrier in the call's TwiML,
/// given back in the stream's `start.customParameters`, never shown to the agent.
pub fn stream_key(secret: &[u8], attempt: AttemptId) -> String {
    URL_SAFE_NO_PAD.encode(stream_mac(secret, attempt))
}

/// Whether `given` is the stream key of `attempt` (constant-time check).
pub fn verify_stream_key(secret: &[u8], attempt: AttemptId, given: &str) -> bool {
    let Ok(given) = URL_SAFE_NO_PAD.decode(given.trim()) else {
        return false;
    };
    bool::from(given.ct_eq(&stream_mac(secret, attempt)))
}

/// A new random secret, base64url-encoded (used once, when the setting is first created).
pub fn new_secret(random: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_for_its_own_call_only() {
        let token = issue(b"secret", AttemptId(42));
        assert_eq!(verify(b"secret", &token), Some(AttemptId(42)));
        assert_eq!(verify(b"other", &token), None, "another server's secret");
        let forged = token.replacen("42.", "43.", 1);
        assert_eq!(
            verify(b"secret", &forged),
            None,
            "a token cannot be moved to another call"
        );
    }

    #[test]
    fn a_stream_key_binds_one_call_and_is_not_its_agent_token() {
        let key = stream_key(b"secret", AttemptId(42));
        assert!(verify_stream_key(b"secret", AttemptId(42), &key));
        assert!(
            !verify_stream_key(b"secret", AttemptId(43), &key),
            "another call"
        );
        assert!(
            !verify_stream_key(b"other", AttemptId(42), &key),
            "another server"
        );
        let token = issue(b"secret", AttemptId(42));
        let (_, token_mac) = token.split_once('.').unwrap();
        assert_ne!(
            token_mac, key,
            "an agent cannot derive the stream key from its token"
        );
        for bad in ["", "!!", "AAAA", &key[1..]] {
            assert!(!verify_stream_key(b"secret", AttemptId(42), bad), "{bad:?}");
        }
    }

    #[test]
    fn a_token_lasts_the_call_and_a_short_grace_after_it() {
        let reserved = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            expires_at(reserved, None),
            reserved + MAX_CALL + REPORT_GRACE
        );
        let ended = reserved + chrono::TimeDelta::minutes(3);
        assert_eq!(expires_at(reserved, Some(ended)), ended + REPORT_GRACE);
        let late = reserved + chrono::TimeDelta::hours(9);
        assert_eq!(
            expires_at(reserved, Some(late)),
            reserved + MAX_CALL + REPORT_GRACE,
            "never past the longest call"
        );
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for bad in [
            "",
            ".",
            "42",
            "42.",
            "x.y",
            "42.!!!",
            "99999999999999999999.abc",
        ] {
            assert_eq!(verify(b"secret", bad), None, "{bad:?}");
        }
    }
}
