//! The request that places a call and the call resource Twilio returns.

use serde::{Deserialize, Deserializer, Serialize};

use super::error::TwilioError;
use super::status::{AnsweredBy, CallStatus};

/// Longest inline TwiML Twilio accepts, in characters.
pub const MAX_TWIML_CHARS: usize = 4000;
/// Shortest ring timeout we allow: regulation asks for at least 15 seconds.
pub const MIN_TIMEOUT_SECS: u32 = 15;
/// Longest ring timeout Twilio accepts.
pub const MAX_TIMEOUT_SECS: u32 = 600;

/// HTTP method Twilio uses to call one of our URLs back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `POST` (the default).
    #[default]
    Post,
}

impl HttpMethod {
    /// The wire spelling, `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A call progress event Twilio can report to `StatusCallback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackEvent {
    /// Twilio started dialling.
    Initiated,
    /// The callee's phone rings.
    Ringing,
    /// The call was answered.
    Answered,
    /// The call ended, whatever the reason.
    Completed,
}

impl CallbackEvent {
    /// All four events, in the order they happen.
    pub const ALL: [CallbackEvent; 4] = [
        Self::Initiated,
        Self::Ringing,
        Self::Answered,
        Self::Completed,
    ];

    /// The wire spelling, e.g. `answered`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
        }
    }
}

/// Answering machine detection mode (`MachineDetection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineDetection {
    /// Decide as soon as possible whether a person or a machine answered.
    Enable,
    /// For machines, wait until the greeting ends (to leave a message after the beep).
    DetectMessageEnd,
}

impl MachineDetection {
    /// The wire spelling, `Enable` or `DetectMessageEnd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enable => "Enable",
            Self::DetectMessageEnd => "DetectMessageEnd",
        }
    }
}

/// Parameters of `POST /Calls.json`; exactly one of `twiml` and `url` must be set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateCall {
    /// Callee, E.164.
    pub to: String,
    /// Caller id, E.164, owned by the account.
    pub from: String,
    /// Inline TwiML run when the call is answered (at most 4000 characters).
    pub twiml: Option<String>,
    /// URL Twilio fetches TwiML from when the call is answered.
    pub url: Option<String>,
    /// Method used to fetch `url`.
    pub method: Option<HttpMethod>,
    /// URL that receives call progress events.
    pub status_callback: Option<String>,
    /// Events sent to `status_callback` (Twilio's default is only `completed`).
    pub status_callback_events: Vec<CallbackEvent>,
    /// Method used for `status_callback`.
    pub status_callback_method: HttpMethod,
    /// Seconds to let the phone ring (15..=600).
    pub timeout_secs: Option<u32>,
    /// Longest the call may last once answered, in seconds.
    pub time_limit_secs: Option<u32>,
    /// Answering machine detection mode; off when `None`.
    pub machine_detection: Option<MachineDetection>,
    /// Seconds Twilio may spend on machine detection.
    pub machine_detection_timeout_secs: Option<u32>,
    /// Run machine detection in the background and report it to a callback.
    pub async_amd: bool,
    /// URL that receives the asynchronous machine detection result.
    pub async_amd_status_callback: Option<String>,
    /// Method used for `async_amd_status_callback` (Twilio accepts only `POST`).
    pub async_amd_status_callback_method: HttpMethod,
}

impl CreateCall {
    /// A call from `from` to `to` that reports all four progress events.
    pub fn new(to: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            from: from.into(),
            status_callback_events: CallbackEvent::ALL.to_vec(),
            ..Self::default()
        }
    }

    /// Runs this inline TwiML when answered.
    pub fn twiml(mut self, twiml: impl Into<String>) -> Self {
        self.twiml = Some(twiml.into());
        self
    }

    /// Fetches TwiML from this URL when answered.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Method used to fetch `url`.
    pub fn method(mut self, method: HttpMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Sends call progress events to this URL.
    pub fn status_callback(mut self, url: impl Into<String>) -> Self {
        self.status_callback = Some(url.into());
        self
    }

    /// Chooses which progress events are sent.
    pub fn status_callback_events(mut self, events: impl Into<Vec<CallbackEvent>>) -> Self {
        self.status_callback_events = events.into();
        self
    }

    /// Method used for the status callback.
    pub fn status_callback_method(mut self, method: HttpMethod) -> Self {
        self.status_callback_method = method;
        self
    }

    /// Seconds to let the phone ring.
    pub fn timeout_secs(mut self, secs: u32) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Longest the answered call may last, in seconds.
    pub fn time_limit_secs(mut self, secs: u32) -> Self {
        self.time_limit_secs = Some(secs);
        self
    }

    /// Turns answering machine detection on.
    pub fn machine_detection(mut self, mode: MachineDetection) -> Self {
        self.machine_detection = Some(mode);
        self
    }

    /// Seconds Twilio may spend on machine detection.
    pub fn machine_detection_timeout_secs(mut self, secs: u32) -> Self {
        self.machine_detection_timeout_secs = Some(secs);
        self
    }

    /// Runs machine detection asynchronously (the call connects at once).
    pub fn async_amd(mut self, enabled: bool) -> Self {
        self.async_amd = enabled;
        self
    }

    /// Receives the asynchronous machine detection result.
    pub fn async_amd_status_callback(mut self, url: impl Into<String>) -> Self {
        self.async_amd_status_callback = Some(url.into());
        self
    }

    /// Checks the request before it is sent; the error names the offending field.
    pub fn validate(&self) -> Result<(), TwilioError> {
        if self.to.trim().is_empty() {
            return Err(invalid("to", "must not be empty"));
        }
        if self.from.trim().is_empty() {
            return Err(invalid("from", "must not be empty"));
        }
        match (&self.twiml, &self.url) {
            (Some(_), Some(_)) => return Err(invalid("twiml", "set both twiml and url")),
            (None, None) => return Err(invalid("twiml", "one of twiml or url is required")),
            (Some(twiml), None) => {
                let chars = twiml.chars().count();
                if chars > MAX_TWIML_CHARS {
                    return Err(invalid(
                        "twiml",
                        format!("{chars} characters exceed the limit of {MAX_TWIML_CHARS}"),
                    ));
                }
            }
            (None, Some(url)) if url.trim().is_empty() => {
                return Err(invalid("url", "must not be empty"));
            }
            (None, Some(_)) => {}
        }
        if let Some(secs) = self.timeout_secs
            && !(MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs)
        {
            return Err(invalid(
                "timeout_secs",
                format!("{secs} is outside {MIN_TIMEOUT_SECS}..={MAX_TIMEOUT_SECS}"),
            ));
        }
        if self.time_limit_secs == Some(0) {
            return Err(invalid("time_limit_secs", "0 must be at least 1"));
        }
        Ok(())
    }

    /// The form parameters sent to Twilio, in a stable order; events repeat the name.
    pub fn form_params(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("To", self.to.clone()), ("From", self.from.clone())];
        if let Some(twiml) = &self.twiml {
            form.push(("Twiml", twiml.clone()));
        }
        if let Some(url) = &self.url {
            form.push(("Url", url.clone()));
        }
        if let Some(method) = self.method {
            form.push(("Method", method.as_str().to_owned()));
        }
        if let Some(callback) = &self.status_callback {
            form.push(("StatusCallback", callback.clone()));
            form.push((
                "StatusCallbackMethod",
                self.status_callback_method.as_str().to_owned(),
            ));
            for event in &self.status_callback_events {
                form.push(("StatusCallbackEvent", event.as_str().to_owned()));
            }
        }
        let numbers = [
            ("Timeout", self.timeout_secs),
            ("TimeLimit", self.time_limit_secs),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                form.push((name, value.to_string()));
            }
        }
        if let Some(mode) = self.machine_detection {
            form.push(("MachineDetection", mode.as_str().to_owned()));
        }
        if let Some(secs) = self.machine_detection_timeout_secs {
            form.push(("MachineDetectionTimeout", secs.to_string()));
        }
        if self.async_amd {
            form.push(("AsyncAmd", "true".to_owned()));
        }
        if let Some(callback) = &self.async_amd_status_callback {
            form.push(("AsyncAmdStatusCallback", callback.clone()));
            form.push((
                "AsyncAmdStatusCallbackMethod",
                self.async_amd_status_callback_method.as_str().to_owned(),
            ));
        }
        form
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TwilioError {
    TwilioError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A call as Twilio describes it; unknown fields are ignored and all but `sid` may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallResource {
    /// Call SID (`CA…`).
    pub sid: String,
    /// Current status.
    #[serde(default, deserialize_with = "lenient")]
    pub status: Option<CallStatus>,
    /// Callee.
    #[serde(default, deserialize_with = "lenient")]
    pub to: Option<String>,
    /// Caller id.
    #[serde(default, deserialize_with = "lenient")]
    pub from: Option<String>,
    /// When the call resource was created (RFC 2822).
    #[serde(default, deserialize_with = "lenient")]
    pub date_created: Option<String>,
    /// When the call was answered (RFC 2822).
    #[serde(default, deserialize_with = "lenient")]
    pub start_time: Option<String>,
    /// When the call ended (RFC 2822).
    #[serde(default, deserialize_with = "lenient")]
    pub end_time: Option<String>,
    /// Length of the answered call in seconds, as Twilio's string.
    #[serde(default, deserialize_with = "lenient")]
    pub duration: Option<String>,
    /// Charge for the call, e.g. `-0.01500`; set some time after the call ends.
    #[serde(default, deserialize_with = "lenient")]
    pub price: Option<String>,
    /// Machine detection result.
    #[serde(default, deserialize_with = "lenient")]
    pub answered_by: Option<AnsweredBy>,
    /// Milliseconds the call waited in Twilio's queue, as Twilio's string.
    #[serde(default, deserialize_with = "lenient")]
    pub queue_time: Option<String>,
}

impl CallResource {
    /// `duration` as whole seconds, when present and numeric.
    pub fn duration_secs(&self) -> Option<u64> {
        self.duration.as_deref()?.trim().parse().ok()
    }

    /// `queue_time` as milliseconds, when present and numeric.
    pub fn queue_time_ms(&self) -> Option<u64> {
        self.queue_time.as_deref()?.trim().parse().ok()
    }
}

/// Reads a string or a number into `T`; any other JSON value (null, object…) gives `None`.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: for<'a> From<&'a str>,
{
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(T::from(&text)),
        serde_json::Value::Number(number) => Some(T::from(&number.to_string())),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> CreateCall {
        CreateCall::new("+14155550100", "+14155550199").twiml("<Response/>")
    }

    fn field_of(result: Result<(), TwilioError>) -> &'static str {
        match result {
            Err(TwilioError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_request_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(valid().timeout_secs(15).validate(), Ok(()));
        assert_eq!(valid().timeout_secs(600).validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_offending_field() {
        let mut no_to = valid();
        no_to.to = " ".into();
        assert_eq!(field_of(no_to.validate()), "to");
        let mut no_from = valid();
        no_from.from.clear();
        assert_eq!(field_of(no_from.validate()), "from");
        assert_eq!(field_of(valid().url("https://x").validate()), "twiml");
        let neither = CreateCall::new("+1", "+2");
        assert_eq!(field_of(neither.validate()), "twiml");
        assert_eq!(
            field_of(valid().timeout_secs(14).validate()),
            "timeout_secs"
        );
        assert_eq!(
            field_of(valid().timeout_secs(601).validate()),
            "timeout_secs"
        );
        assert_eq!(
            field_of(valid().time_limit_secs(0).validate()),
            "time_limit_secs"
        );
    }

    #[test]
    fn twiml_is_limited_to_4000_characters_not_bytes() {
        let at_limit = "é".repeat(MAX_TWIML_CHARS);
        assert_eq!(valid().twiml(at_limit.clone()).validate(), Ok(()));
        let over = format!("{at_limit}x");
        let error = valid().twiml(over).validate().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid twiml: 4001 characters exceed the limit of 4000"
        );
    }

    #[test]
    fn status_events_are_sent_only_with_a_callback() {
        let names: Vec<_> = valid().form_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["To", "From", "Twiml"]);
    }

    #[test]
    fn a_sparse_or_odd_call_resource_still_parses() {
        let json = r#"{"sid":"CA1","status":"in-progress","duration":null,"price":-0.015,
            "answered_by":"machine_end_beep","queue_time":"12","subresource_uris":{}}"#;
        let call: CallResource = serde_json::from_str(json).unwrap();
        assert_eq!(call.status, Some(CallStatus::InProgress));
        assert_eq!(call.duration, None);
        assert_eq!(call.price.as_deref(), Some("-0.015"));
        assert_eq!(call.answered_by, Some(AnsweredBy::MachineEndBeep));
        assert_eq!(call.queue_time_ms(), Some(12));
        let bare: CallResource = serde_json::from_str(r#"{"sid":"CA2"}"#).unwrap();
        assert_eq!(bare.status, None);
        assert!(serde_json::from_str::<CallResource>(r#"{"status":"queued"}"#).is_err());
    }
}
