//! Outbound calls through LiveKit SIP: the room and the agent first, then
//! `CreateSIPParticipant` dials the callee through an outbound trunk into that room.
//! SIP answers become typed results that say whether the callee said no or the carrier
//! was full.

use std::time::Duration;

use livekit_api::services::ServiceError;
use livekit_api::services::sip::CreateSIPParticipantOptions;

use super::agents::{LiveKitAgents, LiveKitSession};
use super::context::CallContext;
use super::error::LiveKitError;

/// How a SIP call is placed. `Default`: ring 30 s, at most 1 h, wait for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipDialOptions {
    /// How long the callee's phone rings before the call counts as not answered (keep it
    /// at 15 s or more: regulators expect four rings).
    pub ringing_timeout: Duration,
    /// LiveKit hangs up an answered call after this long.
    pub max_call_duration: Duration,
    /// Return only once the callee answered (or the call failed); `false` returns as soon
    /// as LiveKit started dialing, and the answer shows up as `participant_joined`.
    pub wait_until_answered: bool,
    /// Identity of the callee in the room; default `callee-<call_id>`.
    pub participant_identity: Option<String>,
    /// Caller id number, when not the trunk's own.
    pub from_number: Option<String>,
    /// Caller name shown to the callee, if the provider supports it.
    pub display_name: Option<String>,
}

impl Default for SipDialOptions {
    fn default() -> Self {
        SipDialOptions {
            ringing_timeout: Duration::from_secs(30),
            max_call_duration: Duration::from_secs(3600),
            wait_until_answered: true,
            participant_identity: None,
            from_number: None,
            display_name: None,
        }
    }
}

/// A SIP call LiveKit placed: the session to close at hang-up and the callee's participant.
#[derive(Debug)]
pub struct SipAnswer {
    /// The call's room and agent; closing it hangs up the callee.
    pub session: LiveKitSession,
    /// The callee in the room.
    pub participant: SipParticipant,
    /// True when the callee answered (`wait_until_answered`); false when LiveKit is still
    /// dialing and the outcome will come through webhooks.
    pub answered: bool,
}

/// The callee's participant, as `CreateSIPParticipant` returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipParticipant {
    /// LiveKit's participant id (`PA_…`).
    pub participant_id: String,
    /// Identity in the room.
    pub participant_identity: String,
    /// The room.
    pub room_name: String,
    /// LiveKit's SIP call id (`SCL_…`).
    pub sip_call_id: String,
}

/// Why a SIP call did not connect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SipCallError {
    /// The callee was busy (486 Busy Here, 600 Busy Everywhere).
    #[error("callee busy (sip {code})")]
    Busy {
        /// SIP status code.
        code: u16,
    },
    /// The callee rejected the call (603 Decline, 607 Unwanted, 608 Rejected).
    #[error("callee declined (sip {code})")]
    Declined {
        /// SIP status code.
        code: u16,
    },
    /// The carrier or the callee's network could not take the call now (480 Temporarily
    /// Unavailable, 503 Service Unavailable): not the callee's no; retry later.
    #[error("carrier at capacity (sip {code}); retry later")]
    CarrierCapacity {
        /// SIP status code.
        code: u16,
    },
    /// The number does not exist or is incomplete (404, 484, 604).
    #[error("invalid number (sip {code})")]
    InvalidNumber {
        /// SIP status code.
        code: u16,
    },
    /// Nobody answered within the ringing timeout (also 408 Request Timeout, 487 Request
    /// Terminated, and a dial request that timed out).
    #[error("no answer{}", .code.map(|c| format!(" (sip {c})")).unwrap_or_default())]
    NoAnswer {
        /// SIP status code, when the carrier sent one.
        code: Option<u16>,
    },
    /// Any other SIP failure.
    #[error("sip call failed ({code}): {message}")]
    Failed {
        /// SIP status code.
        code: u16,
        /// SIP reason phrase or LiveKit's message.
        message: String,
    },
    /// LiveKit itself failed (room, dispatch, credentials, transport) before or instead of
    /// a SIP answer.
    #[error(transparent)]
    LiveKit(#[from] LiveKitError),
}

impl SipCallError {
    /// Maps a final SIP status code (and its reason phrase) to a result.
    pub fn from_sip_status(code: u16, reason: &str) -> SipCallError {
        match code {
            486 | 600 => Self::Busy { code },
            603 | 607 | 608 => Self::Declined { code },
            480 | 503 => Self::CarrierCapacity { code },
            404 | 484 | 604 => Self::InvalidNumber { code },
            408 | 487 => Self::NoAnswer { code: Some(code) },
            _ => Self::Failed {
                code,
                message: reason.to_owned(),
            },
        }
    }

    /// Reads a failed `CreateSIPParticipant`: the SIP status LiveKit puts in the Twirp
    /// error's `meta` (`sip_status_code`, `sip_status`) first; without one, a `canceled` or
    /// `deadline_exceeded` error (LiveKit's "sip request timed out") or a request timeout
    /// is no answer, and anything else is LiveKit's own failure.
    pub fn from_service_error(error: ServiceError) -> SipCallError {
        if let Some(sip) = livekit_api::services::SipCallError::from_error(&error)
            && let Some(code) = sip.sip_status_code().and_then(|c| u16::try_from(c).ok())
        {
            return Self::from_sip_status(code, sip.sip_status().unwrap_or_default());
        }
        match LiveKitError::from(error) {
            LiveKitError::Api { code, .. } if code == "canceled" || code == "deadline_exceeded" => {
                Self::NoAnswer { code: None }
            }
            LiveKitError::Timeout(_) => Self::NoAnswer { code: None },
            other => Self::LiveKit(other),
        }
    }

    /// True when the callee said no (busy or declined): count the attempt, do not retry
    /// soon.
    pub fn is_callee_refusal(&self) -> bool {
        matches!(self, Self::Busy { .. } | Self::Declined { .. })
    }

    /// True when the carrier or LiveKit was at fault and the same call may connect if
    /// placed again soon (carrier capacity, other 5xx, LiveKit overloaded or unreachable).
    /// Busy, declined, no answer and invalid numbers are not: they follow the campaign's
    /// attempt policy.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::CarrierCapacity { .. } => true,
            Self::Failed { code, .. } => (500..600).contains(code),
            Self::LiveKit(error) => error.is_retryable(),
            Self::Busy { .. }
            | Self::Declined { .. }
            | Self::InvalidNumber { .. }
            | Self::NoAnswer { .. } => false,
        }
    }

    /// The SIP status code, when there was one.
    pub fn sip_status_code(&self) -> Option<u16> {
        match self {
            Self::Busy { code }
            | Self::Declined { code }
            | Self::CarrierCapacity { code }
            | Self::InvalidNumber { code }
            | Self::Failed { code, .. } => Some(*code),
            Self::NoAnswer { code } => *code,
            Self::LiveKit(_) => None,
        }
    }

    /// A short result name for the attempt: `busy`, `declined`, `carrier_capacity`,
    /// `invalid_number`, `no_answer`, `failed` or `livekit_error`.
    pub fn result_name(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "busy",
            Self::Declined { .. } => "declined",
            Self::CarrierCapacity { .. } => "carrier_capacity",
            Self::InvalidNumber { .. } => "invalid_number",
            Self::NoAnswer { .. } => "no_answer",
            Self::Failed { .. } => "failed",
            Self::LiveKit(_) => "livekit_error",
        }
    }
}

impl LiveKitAgents {
    /// Places a call through LiveKit SIP: opens the session (room `call-<id>` and the
    /// agent dispatch), then dials `to` through outbound trunk `trunk_id` into the room.
    /// On any failure the room is deleted before the error is returned.
    #[tracing::instrument(skip_all, fields(call_id = call.call_id, trunk_id = %trunk_id))]
    pub async fn dial_sip(
        &self,
        call: &CallContext,
        trunk_id: &str,
        to: &str,
        options: SipDialOptions,
    ) -> Result<SipAnswer, SipCallError> {
        for (field, value) in [("trunk_id", trunk_id), ("to", to)] {
            if value.trim().is_empty() {
                return Err(SipCallError::LiveKit(LiveKitError::Invalid {
                    field,
                    reason: "must not be empty".into(),
                }));
            }
        }
        let session = self.open(call, false).await?;
        let sip_options = CreateSIPParticipantOptions {
            participant_identity: options
                .participant_identity
                .clone()
                .unwrap_or_else(|| format!("callee-{}", call.call_id)),
            participant_name: call.contact.name.clone(),
            display_name: options.display_name.clone(),
            sip_number: options.from_number.clone(),
            wait_until_answered: Some(options.wait_until_answered),
            ringing_timeout: Some(options.ringing_timeout),
            max_call_duration: Some(options.max_call_duration),
            ..CreateSIPParticipantOptions::default()
        };
        let dialed = self
            .sip()
            .create_sip_participant(
                trunk_id.to_owned(),
                to.to_owned(),
                session.room().to_owned(),
                sip_options,
                None,
            )
            .await;
        match dialed {
            Ok(info) => Ok(SipAnswer {
                participant: SipParticipant {
                    participant_id: info.participant_id,
                    participant_identity: info.participant_identity,
                    room_name: if info.room_name.is_empty() {
                        session.room().to_owned()
                    } else {
                        info.room_name
                    },
                    sip_call_id: info.sip_call_id,
                },
                session,
                answered: options.wait_until_answered,
            }),
            Err(error) => {
                let failure = SipCallError::from_service_error(error);
                tracing::debug!(result = failure.result_name(), %failure, "sip call failed");
                session.discard().await;
                Err(failure)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_api::services::{ServerError, ServerErrorCode};

    fn twirp(code: &str, msg: &str, meta: &[(&str, &str)]) -> ServiceError {
        ServiceError::Twirp(ServerError::Twirp(ServerErrorCode {
            code: code.into(),
            msg: msg.into(),
            meta: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }))
    }

    fn sip(code: &str, status: &str, twirp_code: &str) -> SipCallError {
        SipCallError::from_service_error(twirp(
            twirp_code,
            &format!("sip status {code}: {status}"),
            &[("sip_status_code", code), ("sip_status", status)],
        ))
    }

    #[test]
    fn sip_statuses_in_the_error_meta_become_results() {
        let busy = sip("486", "Busy Here", "resource_exhausted");
        assert_eq!(busy, SipCallError::Busy { code: 486 });
        assert!(busy.is_callee_refusal() && !busy.is_retryable());
        let declined = sip("603", "Decline", "permission_denied");
        assert_eq!(declined, SipCallError::Declined { code: 603 });
        assert!(declined.is_callee_refusal() && !declined.is_retryable());
        for code in ["480", "503"] {
            let full = sip(code, "Temporarily Unavailable", "resource_exhausted");
            assert!(
                matches!(full, SipCallError::CarrierCapacity { .. }),
                "{code}"
            );
            assert!(full.is_retryable() && !full.is_callee_refusal(), "{code}");
        }
        for code in ["404", "484"] {
            assert!(matches!(
                sip(code, "x", "not_found"),
                SipCallError::InvalidNumber { .. }
            ));
        }
        for code in ["408", "487"] {
            assert!(matches!(
                sip(code, "x", "aborted"),
                SipCallError::NoAnswer { .. }
            ));
        }
        let other = sip("502", "Bad Gateway", "failed_precondition");
        assert_eq!(
            other,
            SipCallError::Failed {
                code: 502,
                message: "Bad Gateway".into()
            }
        );
        assert!(other.is_retryable());
        assert!(!sip("403", "Forbidden", "permission_denied").is_retryable());
    }

    #[test]
    fn a_ringing_timeout_without_a_sip_status_is_no_answer() {
        let timed_out =
            SipCallError::from_service_error(twirp("canceled", "sip request timed out", &[]));
        assert_eq!(timed_out, SipCallError::NoAnswer { code: None });
        assert!(!timed_out.is_retryable() && !timed_out.is_callee_refusal());
        assert_eq!(timed_out.result_name(), "no_answer");
    }

    #[test]
    fn livekit_failures_without_a_sip_status_stay_livekit_errors() {
        let trunk = SipCallError::from_service_error(twirp("not_found", "trunk not found", &[]));
        assert!(matches!(trunk, SipCallError::LiveKit(ref e) if e.is_not_found()));
        assert!(!trunk.is_retryable());
        let down = SipCallError::from_service_error(twirp("unavailable", "no sip service", &[]));
        assert!(down.is_retryable());
        assert_eq!(down.sip_status_code(), None);
    }
}
