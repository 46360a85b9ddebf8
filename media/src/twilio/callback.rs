//! Twilio's call status callback (`StatusCallback` form POST), parsed and re-encoded.

use std::str::FromStr;

use super::status::{AnsweredBy, CallStatus};

/// Longest part of an offending value quoted back in an error.
const MAX_QUOTED: usize = 64;

/// Why a status callback form could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// A required parameter is absent or empty.
    #[error("missing {field}")]
    Missing {
        /// Twilio's parameter name, e.g. `CallSid`.
        field: &'static str,
    },
    /// A parameter that must be a number is not one.
    #[error("invalid {field}: {value:?} is not a number")]
    Invalid {
        /// Twilio's parameter name, e.g. `SequenceNumber`.
        field: &'static str,
        /// The value received (cut to 64 characters).
        value: String,
    },
}

/// One call progress event as Twilio posts it to our `StatusCallback` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `CallSid`: the call this event belongs to.
    pub call_sid: String,
    /// `AccountSid`: the account that owns the call.
    pub account_sid: Option<String>,
    /// `CallStatus`: the call's status after this event.
    pub call_status: CallStatus,
    /// `SequenceNumber`: order of this event within the call (0 first).
    pub sequence_number: Option<u64>,
    /// `AnsweredBy`: machine detection result, when detection ran.
    pub answered_by: Option<AnsweredBy>,
    /// `CallDuration`: seconds the answered call lasted, on `completed`.
    pub call_duration_secs: Option<u64>,
    /// `Timestamp`: when the event happened (RFC 2822).
    pub timestamp: Option<String>,
    /// `From`: caller id.
    pub from: Option<String>,
    /// `To`: callee.
    pub to: Option<String>,
    /// `Direction`: `outbound-api` for calls we place.
    pub direction: Option<String>,
    /// `CallbackSource`: `call-progress-events` for these callbacks.
    pub callback_source: Option<String>,
    /// `MachineDetectionDuration`: milliseconds detection took (asynchronous AMD).
    pub machine_detection_duration_ms: Option<u64>,
    /// `SipResponseCode`: final SIP status of the call leg, e.g. 486 busy.
    pub sip_response_code: Option<u16>,
    /// `ErrorCode`: Twilio error code of a failed call.
    pub error_code: Option<i64>,
}

impl StatusCallback {
    /// Reads a callback from its form parameters; the first value of a repeated name wins
    /// and an empty optional value counts as absent.
    pub fn from_form(params: &[(String, String)]) -> Result<StatusCallback, CallbackError> {
        let form = Form(params);
        Ok(Self {
            call_sid: form.required("CallSid")?,
            account_sid: form.text("AccountSid"),
            call_status: CallStatus::from(form.required("CallStatus")?.as_str()),
            sequence_number: form.number("SequenceNumber")?,
            answered_by: form.get("AnsweredBy").map(AnsweredBy::from),
            call_duration_secs: form.number("CallDuration")?,
            timestamp: form.text("Timestamp"),
            from: form.text("From"),
            to: form.text("To"),
            direction: form.text("Direction"),
            callback_source: form.text("CallbackSource"),
            machine_detection_duration_ms: form.number("MachineDetectionDuration")?,
            sip_response_code: form.number("SipResponseCode")?,
            error_code: form.number("ErrorCode")?,
        })
    }

    /// The form parameters Twilio would send for this event, absent fields left out.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = vec![("CallSid".to_owned(), self.call_sid.clone())];
        let mut push = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                form.push((name.to_owned(), value));
            }
        };
        push("AccountSid", self.account_sid.clone());
        push("CallStatus", Some(self.call_status.to_string()));
        push(
            "SequenceNumber",
            self.sequence_number.map(|n| n.to_string()),
        );
        push(
            "AnsweredBy",
            self.answered_by.as_ref().map(|a| a.to_string()),
        );
        push(
            "CallDuration",
            self.call_duration_secs.map(|n| n.to_string()),
        );
        push("Timestamp", self.timestamp.clone());
        push("From", self.from.clone());
        push("To", self.to.clone());
        push("Direction", self.direction.clone());
        push("CallbackSource", self.callback_source.clone());
        push(
            "MachineDetectionDuration",
            self.machine_detection_duration_ms.map(|n| n.to_string()),
        );
        push(
            "SipResponseCode",
            self.sip_response_code.map(|n| n.to_string()),
        );
        push("ErrorCode", self.error_code.map(|n| n.to_string()));
        form
    }
}

/// The asynchronous machine detection result Twilio posts to `AsyncAmdStatusCallback`
/// (`AsyncAmd=true`): the call is already connected, and this says who answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdCallback {
    /// `CallSid`: the call detection ran on.
    pub call_sid: String,
    /// `AccountSid`: the account that owns the call.
    pub account_sid: Option<String>,
    /// `AnsweredBy`: who answered (`human`, `machine_*`, `fax`, `unknown`).
    pub answered_by: AnsweredBy,
    /// `MachineDetectionDuration`: milliseconds detection took.
    pub machine_detection_duration_ms: Option<u64>,
}

impl AmdCallback {
    /// Reads the result from its form parameters; `CallSid` and `AnsweredBy` are required.
    pub fn from_form(params: &[(String, String)]) -> Result<AmdCallback, CallbackError> {
        let form = Form(params);
        Ok(Self {
            call_sid: form.required("CallSid")?,
            account_sid: form.text("AccountSid"),
            answered_by: AnsweredBy::from(form.required("AnsweredBy")?.as_str()),
            machine_detection_duration_ms: form.number("MachineDetectionDuration")?,
        })
    }

    /// The form parameters Twilio sends for this result.
    pub fn to_form(&self) -> Vec<(String, String)> {
        let mut form = vec![("CallSid".to_owned(), self.call_sid.clone())];
        if let Some(account) = &self.account_sid {
            form.push(("AccountSid".to_owned(), account.clone()));
        }
        form.push(("AnsweredBy".to_owned(), self.answered_by.to_string()));
        if let Some(ms) = self.machine_detection_duration_ms {
            form.push(("MachineDetectionDuration".to_owned(), ms.to_string()));
        }
        form
    }
}

/// Lookup helpers over a decoded form.
struct Form<'a>(&'a [(String, String)]);

impl Form<'_> {
    /// The first non-empty value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn required(&self, name: &'static str) -> Result<String, CallbackError> {
        self.text(name)
            .ok_or(CallbackError::Missing { field: name })
    }

    fn number<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, CallbackError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        value.parse().map(Some).map_err(|_| CallbackError::Invalid {
            field: name,
            value: value.chars().take(MAX_QUOTED).collect(),
        })
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

    fn completed() -> Vec<(String, String)> {
        form(&[
            ("AccountSid", "AC123"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", "CA456"),
            ("CallStatus", "completed"),
            ("CallDuration", "37"),
            ("CallbackSource", "call-progress-events"),
            ("Direction", "outbound-api"),
            ("From", "+14155550199"),
            ("To", "+14155550100"),
            ("SequenceNumber", "3"),
            ("Timestamp", "Tue, 05 Mar 2024 18:03:11 +0000"),
            ("AnsweredBy", "human"),
            ("SipResponseCode", "200"),
        ])
    }

    #[test]
    fn a_completed_callback_is_read_field_by_field() {
        let callback = StatusCallback::from_form(&completed()).unwrap();
        assert_eq!(callback.call_sid, "CA456");
        assert_eq!(callback.account_sid.as_deref(), Some("AC123"));
        assert_eq!(callback.call_status, CallStatus::Completed);
        assert_eq!(callback.sequence_number, Some(3));
        assert_eq!(callback.call_duration_secs, Some(37));
        assert_eq!(callback.answered_by, Some(AnsweredBy::Human));
        assert_eq!(callback.sip_response_code, Some(200));
        assert_eq!(callback.direction.as_deref(), Some("outbound-api"));
        assert_eq!(
            callback.timestamp.as_deref(),
            Some("Tue, 05 Mar 2024 18:03:11 +0000")
        );
        assert_eq!(callback.error_code, None);
    }

    #[test]
    fn missing_call_sid_or_status_names_the_field() {
        let without = |name: &str| {
            let params: Vec<_> = completed().into_iter().filter(|(k, _)| k != name).collect();
            StatusCallback::from_form(&params).unwrap_err()
        };
        assert_eq!(
            without("CallSid"),
            CallbackError::Missing { field: "CallSid" }
        );
        assert_eq!(without("CallStatus").to_string(), "missing CallStatus");
        let empty = form(&[("CallSid", ""), ("CallStatus", "ringing")]);
        assert_eq!(
            StatusCallback::from_form(&empty).unwrap_err(),
            CallbackError::Missing { field: "CallSid" }
        );
    }

    #[test]
    fn a_bad_number_names_the_field_and_the_value() {
        let mut params = completed();
        params.retain(|(k, _)| k != "SequenceNumber");
        params.extend(form(&[("ErrorCode", "3x"), ("SequenceNumber", "-1")]));
        let error = StatusCallback::from_form(&params).unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"invalid SequenceNumber: "-1" is not a number"#
        );
        let long = form(&[
            ("CallSid", "CA1"),
            ("CallStatus", "failed"),
            ("ErrorCode", &"9".repeat(500)),
        ]);
        match StatusCallback::from_form(&long).unwrap_err() {
            CallbackError::Invalid { field, value } => {
                assert_eq!(field, "ErrorCode");
                assert_eq!(value.len(), MAX_QUOTED);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_values_and_empty_optionals_never_fail() {
        let params = form(&[
            ("CallSid", "CA1"),
            ("CallStatus", "something-new"),
            ("AnsweredBy", "unknown"),
            ("CallDuration", ""),
            ("Surprise", "x"),
        ]);
        let callback = StatusCallback::from_form(&params).unwrap();
        assert_eq!(
            callback.call_status,
            CallStatus::Unknown("something-new".into())
        );
        assert_eq!(
            callback.answered_by,
            Some(AnsweredBy::Unknown("unknown".into()))
        );
        assert_eq!(callback.call_duration_secs, None);
    }

    #[test]
    fn an_async_amd_callback_carries_its_detection_time() {
        let params = form(&[
            ("CallSid", "CA1"),
            ("CallStatus", "in-progress"),
            ("AnsweredBy", "machine_end_beep"),
            ("MachineDetectionDuration", "4210"),
        ]);
        let callback = StatusCallback::from_form(&params).unwrap();
        assert!(callback.answered_by.unwrap().is_machine());
        assert_eq!(callback.machine_detection_duration_ms, Some(4210));
    }

    #[test]
    fn an_async_amd_result_needs_the_call_and_who_answered() {
        let params = form(&[
            ("CallSid", "CA1"),
            ("AccountSid", "AC1"),
            ("AnsweredBy", "machine_start"),
            ("MachineDetectionDuration", "2400"),
        ]);
        let result = AmdCallback::from_form(&params).unwrap();
        assert_eq!(result.answered_by, AnsweredBy::MachineStart);
        assert_eq!(result.machine_detection_duration_ms, Some(2400));
        assert_eq!(AmdCallback::from_form(&result.to_form()).unwrap(), result);
        let without: Vec<_> = params
            .iter()
            .filter(|(k, _)| k != "AnsweredBy")
            .cloned()
            .collect();
        assert_eq!(
            AmdCallback::from_form(&without).unwrap_err(),
            CallbackError::Missing {
                field: "AnsweredBy"
            }
        );
    }

    #[test]
    fn to_form_round_trips_every_field() {
        let full = StatusCallback {
            call_sid: "CA1".into(),
            account_sid: Some("AC1".into()),
            call_status: CallStatus::Failed,
            sequence_number: Some(0),
            answered_by: Some(AnsweredBy::Fax),
            call_duration_secs: Some(0),
            timestamp: Some("Tue, 05 Mar 2024 18:03:11 +0000".into()),
            from: Some("+1".into()),
            to: Some("+2".into()),
            direction: Some("outbound-api".into()),
            callback_source: Some("call-progress-events".into()),
            machine_detection_duration_ms: Some(1500),
            sip_response_code: Some(486),
            error_code: Some(31486),
        };
        assert_eq!(full.to_form().len(), 14);
        assert_eq!(StatusCallback::from_form(&full.to_form()).unwrap(), full);
        let sparse =
            StatusCallback::from_form(&form(&[("CallSid", "CA2"), ("CallStatus", "ringing")]))
                .unwrap();
        assert_eq!(
            sparse.to_form(),
            form(&[("CallSid", "CA2"), ("CallStatus", "ringing")])
        );
        let read_back = StatusCallback::from_form(&completed()).unwrap();
        assert_eq!(
            StatusCallback::from_form(&read_back.to_form()).unwrap(),
            read_back
        );
    }
}
