//! Errors of the Twilio REST client, and which of them are worth retrying.

use std::time::Duration;

use serde::Deserialize;

/// Twilio's error code for "too many concurrent requests".
pub const CODE_TOO_MANY_REQUESTS: i64 = 20429;

/// Longest error text kept from a response body that is not Twilio JSON.
const MAX_RAW_MESSAGE: usize = 256;

/// Everything that can go wrong talking to Twilio's REST API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TwilioError {
    /// Twilio answered with a non-success HTTP status.
    #[error("twilio api error {status} (code {code:?}): {message}")]
    Api {
        /// HTTP status of the response.
        status: u16,
        /// Twilio error code (e.g. 21211 invalid `To`), when the body carried one.
        code: Option<i64>,
        /// Human-readable message from the body, or the HTTP reason.
        message: String,
        /// Link to Twilio's page about the error code.
        more_info: Option<String>,
        /// Delay asked for by a `Retry-After` header (in seconds).
        retry_after: Option<Duration>,
    },
    /// The request did not complete: connection, TLS or timeout failure.
    #[error("twilio transport error: {0}")]
    Transport(String),
    /// A success response whose body was not a call resource; the call may exist.
    #[error("twilio response with status {status} could not be decoded: {reason}")]
    Decode {
        /// HTTP status of the response.
        status: u16,
        /// What the decoder said.
        reason: String,
    },
    /// A request refused before sending because a field is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as named in this crate.
        field: &'static str,
        /// Why it is invalid, naming the value when useful.
        reason: String,
    },
}

impl TwilioError {
    /// True when sending the same request again later may succeed (429, 20429, 5xx, transport).
    ///
    /// A transport error after `create_call` was sent may hide a call that was placed:
    /// retry creation only if a duplicate call is acceptable or has been ruled out.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, code, .. } => {
                *status == 429 || *code == Some(CODE_TOO_MANY_REQUESTS) || *status >= 500
            }
            Self::Transport(_) => true,
            Self::Decode { .. } | Self::Invalid { .. } => false,
        }
    }

    /// True when the carrier refused for lack of capacity (429, 20429, 5xx): the request
    /// was not processed and the callee never heard of it, so it is no failed attempt.
    /// Unlike [`TwilioError::is_retryable`], a transport error is not one: the call may
    /// have been placed.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::Api { status, code, .. }
            if *status == 429 || *code == Some(CODE_TOO_MANY_REQUESTS) || *status >= 500)
    }

    /// The delay Twilio asked for in a `Retry-After` header, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The Twilio error code, if Twilio sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Builds the error for a failed response from its status, body and `Retry-After` header.
    pub fn from_response(status: u16, body: &[u8], retry_after: Option<&str>) -> Self {
        let retry_after = retry_after.and_then(parse_retry_after);
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let Some(parsed) = parsed else {
            return Self::Api {
                status,
                code: None,
                message: raw_message(status, body),
                more_info: None,
                retry_after,
            };
        };
        let message = match (parsed.message, parsed.title, parsed.detail) {
            (Some(message), _, _) if !message.is_empty() => message,
            (_, Some(title), Some(detail)) if !detail.is_empty() => format!("{title}: {detail}"),
            (_, Some(title), _) => title,
            (_, None, Some(detail)) => detail,
            _ => raw_message(status, body),
        };
        Self::Api {
            status,
            code: parsed.code.as_ref().and_then(number_like),
            message,
            more_info: parsed.more_info.or(parsed.type_uri),
            retry_after,
        }
    }
}

impl From<reqwest::Error> for TwilioError {
    fn from(error: reqwest::Error) -> Self {
        // The Display of a reqwest error names the URL but never the credentials.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport(text)
    }
}

/// Union of Twilio's classic `{code,message,more_info,status}` and newer
/// `{type,title,status,code,detail,instance}` error bodies.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
    #[serde(default, rename = "type")]
    type_uri: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

fn number_like(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads `Retry-After` in its delay-seconds form; an HTTP date is ignored.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn raw_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("http status {status}");
    }
    text.chars().take(MAX_RAW_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_classic_error_body() {
        let body = br#"{"code":21211,"message":"The 'To' number 123 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
        let error = TwilioError::from_response(400, body, None);
        assert_eq!(
            error,
            TwilioError::Api {
                status: 400,
                code: Some(21211),
                message: "The 'To' number 123 is not a valid phone number.".into(),
                more_info: Some("https://www.twilio.com/docs/errors/21211".into()),
                retry_after: None,
            }
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn parses_the_newer_problem_body() {
        let body = br#"{"type":"https://www.twilio.com/docs/errors/20404","title":"Not Found","status":404,"code":20404,"detail":"The requested resource was not found","instance":"/Calls/CA1"}"#;
        let error = TwilioError::from_response(404, body, None);
        assert_eq!(
            error,
            TwilioError::Api {
                status: 404,
                code: Some(20404),
                message: "Not Found: The requested resource was not found".into(),
                more_info: Some("https://www.twilio.com/docs/errors/20404".into()),
                retry_after: None,
            }
        );
    }

    #[test]
    fn a_non_json_body_becomes_the_message() {
        let error = TwilioError::from_response(502, b"<html>bad gateway</html>", None);
        assert_eq!(error.code(), None);
        assert!(error.to_string().contains("bad gateway"));
        assert!(error.is_retryable());
        let empty = TwilioError::from_response(503, b"", Some("7"));
        assert!(empty.to_string().contains("http status 503"));
        assert_eq!(empty.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable_but_validation_is_not() {
        assert!(TwilioError::from_response(429, b"{}", Some("2")).is_retryable());
        let concurrent = br#"{"code":20429,"message":"Too Many Requests","status":400}"#;
        assert!(TwilioError::from_response(400, concurrent, None).is_retryable());
        assert!(TwilioError::from_response(500, b"{}", None).is_retryable());
        assert!(TwilioError::Transport("reset".into()).is_retryable());
        assert!(!TwilioError::from_response(401, b"{}", None).is_retryable());
        let invalid = TwilioError::Invalid {
            field: "to",
            reason: "must not be empty".into(),
        };
        assert!(!invalid.is_retryable());
        assert_eq!(invalid.to_string(), "invalid to: must not be empty");
    }

    #[test]
    fn retry_after_ignores_dates_and_garbage() {
        let date = TwilioError::from_response(429, b"", Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(date.retry_after(), None);
        assert_eq!(
            TwilioError::from_response(429, b"", Some(" 3 ")).retry_after(),
            Some(Duration::from_secs(3))
        );
    }
}
