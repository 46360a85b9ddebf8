//! The `POST /Calls.json` form, validated into a [`CallRequest`], and Twilio-shaped errors.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_media::twilio::call::MAX_TWIML_CHARS;

/// Twilio's default ring timeout in seconds.
const DEFAULT_TIMEOUT_SECS: u32 = 60;
/// Twilio's longest ring timeout; larger values are lowered to it.
const MAX_TIMEOUT_SECS: u32 = 600;

/// An HTTP method Twilio uses to call one of the customer's URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Method {
    Get,
    #[default]
    Post,
}

impl Method {
    fn parse(name: &'static str, value: Option<&str>) -> Result<Self, ApiError> {
        match value.map(str::to_ascii_uppercase).as_deref() {
            None | Some("") | Some("POST") => Ok(Self::Post),
            Some("GET") => Ok(Self::Get),
            Some(other) => Err(ApiError::bad_request(
                21205,
                format!("{name} must be GET or POST, not {other:?}"),
            )),
        }
    }
}

/// Which progress events the customer asked for (`StatusCallbackEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Events {
    pub initiated: bool,
    pub ringing: bool,
    pub answered: bool,
    pub completed: bool,
}

/// A validated create-call request.
#[derive(Debug, Clone)]
pub(crate) struct CallRequest {
    pub to: String,
    pub from: String,
    pub twiml: Option<String>,
    pub url: Option<String>,
    pub method: Method,
    pub status_callback: Option<String>,
    pub status_callback_method: Method,
    pub events: Events,
    pub timeout_secs: u32,
    pub time_limit_secs: Option<u32>,
    pub machine_detection: bool,
    pub async_amd_callback: Option<(String, Method)>,
}

impl CallRequest {
    /// Reads and validates the form; the error is what Twilio would answer.
    pub(crate) fn from_form(form: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.trim())
                .filter(|value| !value.is_empty())
        };
        let to =
            get("To").ok_or_else(|| ApiError::bad_request(21201, "No 'To' number is specified"))?;
        if !is_address(to) {
            return Err(ApiError::bad_request(
                21211,
                format!("Invalid 'To' Phone Number: {to}"),
            ));
        }
        let from = get("From")
            .ok_or_else(|| ApiError::bad_request(21213, "No 'From' number is specified"))?;
        if !is_address(from) {
            return Err(ApiError::bad_request(
                21212,
                format!("Invalid 'From' Phone Number: {from}"),
            ));
        }
        if get("ApplicationSid").is_some() {
            return Err(ApiError::bad_request(
                21218,
                "ApplicationSid is not supported by the simulated carrier",
            ));
        }
        let twiml = get("Twiml").map(str::to_owned);
        let url = get("Url").map(str::to_owned);
        match (&twiml, &url) {
            (None, None) => {
                return Err(ApiError::bad_request(
                    21205,
                    "Either a 'Url', 'Twiml' or 'ApplicationSid' parameter is required",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    21205,
                    "Specify only one of 'Url' and 'Twiml'",
                ));
            }
            (Some(twiml), None) if twiml.chars().count() > MAX_TWIML_CHARS => {
                return Err(ApiError::bad_request(
                    21205,
                    format!("Twiml exceeds {MAX_TWIML_CHARS} characters"),
                ));
            }
            (None, Some(url)) if !is_http_url(url) => {
                return Err(ApiError::bad_request(
                    21205,
                    format!("Url is not a valid URL: {url}"),
                ));
            }
            _ => {}
        }
        let status_callback = get("StatusCallback").map(str::to_owned);
        if let Some(callback) = &status_callback
            && !is_http_url(callback)
        {
            return Err(ApiError::bad_request(
                11100,
                format!("StatusCallback is not a valid URL: {callback}"),
            ));
        }
        let async_amd = get("AsyncAmd").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let async_amd_callback = match get("AsyncAmdStatusCallback") {
            Some(url) if async_amd => {
                if !is_http_url(url) {
                    return Err(ApiError::bad_request(
                        11100,
                        format!("AsyncAmdStatusCallback is not a valid URL: {url}"),
                    ));
                }
                let method = Method::parse(
                    "AsyncAmdStatusCallbackMethod",
                    get("AsyncAmdStatusCallbackMethod"),
                )?;
                Some((url.to_owned(), method))
            }
            _ => None,
        };
        Ok(Self {
            to: to.to_owned(),
            from: from.to_owned(),
            twiml,
            url,
            method: Method::parse("Method", get("Method"))?,
            status_callback,
            status_callback_method: Method::parse(
                "StatusCallbackMethod",
                get("StatusCallbackMethod"),
            )?,
            events: events(form),
            timeout_secs: number(get("Timeout"), "Timeout")?
                .map_or(DEFAULT_TIMEOUT_SECS, |secs| secs.clamp(1, MAX_TIMEOUT_SECS)),
            time_limit_secs: number(get("TimeLimit"), "TimeLimit")?,
            machine_detection: get("MachineDetection").is_some(),
            async_amd_callback,
        })
    }
}

/// `StatusCallbackEvent` may repeat, or hold several names separated by spaces or commas.
fn events(form: &[(String, String)]) -> Events {
    let mut events = Events {
        initiated: false,
        ringing: false,
        answered: false,
        completed: false,
    };
    let mut any = false;
    let names = form
        .iter()
        .filter(|(key, _)| key == "StatusCallbackEvent")
        .flat_map(|(_, value)| value.split([' ', ',']));
    for name in names {
        any = true;
        match name.trim() {
            "initiated" => events.initiated = true,
            "ringing" => events.ringing = true,
            "answered" => events.answered = true,
            "completed" => events.completed = true,
            _ => {}
        }
    }
    // Twilio's default is only `completed`.
    events.completed |= !any;
    events
}

fn number(value: Option<&str>, name: &str) -> Result<Option<u32>, ApiError> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                ApiError::bad_request(
                    21205,
                    format!("{name} must be a whole number, not {text:?}"),
                )
            })
        })
        .transpose()
}

/// E.164 (`+` and 2 to 15 digits), or a `client:`/`sip:` address.
fn is_address(value: &str) -> bool {
    if value.starts_with("client:") || value.starts_with("sip:") {
        return value.len() > 5;
    }
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// A Twilio-shaped error: `{"code","message","more_info","status"}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad_request(code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: 20003,
            message: "Authenticate".to_owned(),
        }
    }

    /// Twilio's answer when the account's API concurrency is used up: 429, error 20429.
    pub(crate) fn too_many_requests() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: 20429,
            message: "Too Many Requests".to_owned(),
        }
    }

    /// Twilio's answer when it fails itself: 500, error 20500.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: 20500,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: 20404,
            message: format!("The requested resource {path} was not found"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status.as_u16(),
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn code(pairs: &[(&str, &str)]) -> u32 {
        CallRequest::from_form(&form(pairs)).map_or_else(|e| e.code, |_| 0)
    }

    #[tokio::test]
    async fn too_many_requests_has_twilios_exact_body() {
        let response = ApiError::too_many_requests().into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}"#
        );
    }

    #[test]
    fn missing_or_bad_numbers_get_twilio_codes() {
        assert_eq!(
            code(&[("From", "+15550001"), ("Twiml", "<Response/>")]),
            21201
        );
        assert_eq!(
            code(&[("To", "555"), ("From", "+15550001"), ("Twiml", "<R/>")]),
            21211
        );
        assert_eq!(code(&[("To", "+15550001"), ("Twiml", "<R/>")]), 21213);
        assert_eq!(
            code(&[("To", "+15550001"), ("From", "x"), ("Twiml", "<R/>")]),
            21212
        );
        assert_eq!(code(&[("To", "+15550001"), ("From", "+15550002")]), 21205);
        assert_eq!(
            code(&[
                ("To", "+15550001"),
                ("From", "+15550002"),
                ("Url", "ftp://x")
            ]),
            21205
        );
    }

    #[test]
    fn events_default_to_completed_and_accept_repeats_and_lists() {
        let plain = CallRequest::from_form(&form(&[
            ("To", "+15550001"),
            ("From", "+15550002"),
            ("Url", "http://h/t"),
        ]))
        .unwrap();
        assert!(plain.events.completed && !plain.events.initiated);
        let listed = CallRequest::from_form(&form(&[
            ("To", "+15550001"),
            ("From", "+15550002"),
            ("Twiml", "<Response/>"),
            ("StatusCallbackEvent", "initiated ringing"),
            ("StatusCallbackEvent", "answered"),
        ]))
        .unwrap();
        assert!(listed.events.initiated && listed.events.ringing && listed.events.answered);
        assert!(!listed.events.completed);
    }

    #[test]
    fn a_huge_timeout_is_lowered_and_a_bad_one_rejected() {
        let base = [
            ("To", "+15550001"),
            ("From", "+15550002"),
            ("Twiml", "<R/>"),
        ];
        let mut pairs = base.to_vec();
        pairs.push(("Timeout", "9000"));
        assert_eq!(
            CallRequest::from_form(&form(&pairs)).unwrap().timeout_secs,
            600
        );
        let mut pairs = base.to_vec();
        pairs.push(("Timeout", "soon"));
        assert_eq!(code(&pairs), 21205);
    }
}
