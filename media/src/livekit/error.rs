//! Errors of LiveKit's server API, and which of them are worth retrying.

use std::collections::BTreeMap;

use livekit_api::services::{ServerError, ServiceError};

/// Everything that can go wrong talking to LiveKit's server API (rooms, dispatch, connector).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveKitError {
    /// LiveKit answered with a Twirp error (`{"code","msg","meta"}`).
    #[error("livekit api error {code}: {message}")]
    Api {
        /// Twirp code: `not_found`, `unauthenticated`, `resource_exhausted`, `unavailable`, …
        code: String,
        /// LiveKit's message.
        message: String,
        /// Extra context (SIP failures carry `sip_status_code` and `sip_status`).
        meta: BTreeMap<String, String>,
    },
    /// The request got no answer in time; it may still have been carried out.
    #[error("livekit request timed out: {0}")]
    Timeout(String),
    /// The request did not complete: connection refused or reset, TLS, DNS.
    #[error("livekit transport error: {0}")]
    Transport(String),
    /// An answer that is neither the expected message nor a Twirp JSON error (LiveKit's
    /// auth middleware answers a bad token with a plain-text 401, which lands here).
    #[error("livekit response could not be decoded: {0}")]
    Decode(String),
    /// The configuration cannot work (empty key, bad URL, a token that cannot be signed).
    #[error("invalid livekit configuration: {0}")]
    Config(String),
    /// A request refused before sending because a value is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why, naming the value when useful.
        reason: String,
    },
}

/// Twirp codes after which sending the same request again later may succeed.
const RETRYABLE_CODES: &[&str] = &[
    "unavailable",
    "internal",
    "unknown",
    "resource_exhausted",
    "deadline_exceeded",
    "aborted",
];

impl LiveKitError {
    /// True when the same request may succeed later (LiveKit overloaded or unreachable, a
    /// timeout); false for what retrying cannot fix (credentials, grants, bad input, a
    /// missing resource). A timed-out create may have been carried out: creating a room or
    /// a dispatch again for the same call is harmless (rooms are named after the call).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { code, .. } => RETRYABLE_CODES.contains(&code.as_str()),
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::Decode(_) | Self::Config(_) | Self::Invalid { .. } => false,
        }
    }

    /// True for a Twirp `not_found` (a room that does not exist, e.g. already deleted).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some("not_found")
    }

    /// The Twirp code, when LiveKit sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A value of the error's `meta`, when LiveKit sent one.
    pub fn meta(&self, key: &str) -> Option<&str> {
        match self {
            Self::Api { meta, .. } => meta.get(key).map(String::as_str),
            _ => None,
        }
    }
}

impl From<ServiceError> for LiveKitError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Twirp(ServerError::Twirp(e)) => Self::Api {
                code: e.code,
                message: e.msg,
                meta: e.meta.into_iter().collect(),
            },
            ServiceError::Twirp(ServerError::Request(e)) => from_reqwest(&e),
            ServiceError::Twirp(ServerError::Prost(e)) => Self::Decode(e.to_string()),
            ServiceError::Twirp(ServerError::Url(e)) => Self::Config(format!("url: {e}")),
            ServiceError::AccessToken(e) => Self::Config(format!("access token: {e}")),
            ServiceError::Env(e) => Self::Config(e.to_string()),
        }
    }
}

/// Classifies a reqwest failure; the text names the URL but never the credentials.
fn from_reqwest(error: &reqwest::Error) -> LiveKitError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        LiveKitError::Timeout(text)
    } else if error.is_decode() {
        LiveKitError::Decode(text)
    } else {
        LiveKitError::Transport(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> LiveKitError {
        LiveKitError::Api {
            code: code.into(),
            message: "m".into(),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn overload_and_transport_are_retryable_but_auth_and_input_are_not() {
        for code in [
            "unavailable",
            "internal",
            "resource_exhausted",
            "deadline_exceeded",
        ] {
            assert!(api(code).is_retryable(), "{code}");
        }
        for code in [
            "unauthenticated",
            "permission_denied",
            "invalid_argument",
            "not_found",
        ] {
            assert!(!api(code).is_retryable(), "{code}");
        }
        assert!(LiveKitError::Transport("refused".into()).is_retryable());
        assert!(LiveKitError::Timeout("10s".into()).is_retryable());
        assert!(!LiveKitError::Decode("401 invalid token".into()).is_retryable());
        assert!(!LiveKitError::Config("empty key".into()).is_retryable());
    }

    #[test]
    fn twirp_errors_keep_code_message_and_meta() {
        let twirp = livekit_api::services::ServerErrorCode {
            code: "not_found".into(),
            msg: "requested room does not exist".into(),
            meta: [("k".to_owned(), "v".to_owned())].into_iter().collect(),
        };
        let error = LiveKitError::from(ServiceError::Twirp(ServerError::Twirp(twirp)));
        assert!(error.is_not_found());
        assert_eq!(error.meta("k"), Some("v"));
        assert_eq!(
            error.to_string(),
            "livekit api error not_found: requested room does not exist"
        );
    }
}
