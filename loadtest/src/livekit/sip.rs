//! `SIP/CreateSIPParticipant`: dials the called number's script, honours
//! `wait_until_answered`, the ringing timeout and the maximum call duration, and fails the
//! way LiveKit does (the SIP status in the Twirp error's `meta`; "sip request timed out"
//! as `canceled` when nobody answers).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use livekit_protocol as proto;
use livekit_protocol::participant_info::Kind;
use tokio::time::Instant;

use super::config::{SipOutcome, SipScript};
use super::record::{SimSipCall, SipCallState, duration};
use super::server::{Call, non_empty};
use super::state::Shared;
use super::twirp::{TwirpError, grants};
use crate::time::after;

pub(crate) async fn create_sip_participant(call: &Call<'_>) -> Result<Response, TwirpError> {
    let request: proto::CreateSipParticipantRequest = call.format.decode(call.body)?;
    grants::sip_call(call.claims)?;
    non_empty("sip_trunk_id", &request.sip_trunk_id)?;
    non_empty("sip_call_to", &request.sip_call_to)?;
    non_empty("room_name", &request.room_name)?;
    let shared = call.shared.clone();
    shared.ensure_room(&request.room_name, None);
    let ringing = duration(
        request
            .ringing_timeout
            .as_ref()
            .map(|d| (d.seconds, d.nanos)),
    )
    .filter(|d| !d.is_zero())
    .unwrap_or(shared.config.default_ringing_timeout);
    let max_call_duration = duration(
        request
            .max_call_duration
            .as_ref()
            .map(|d| (d.seconds, d.nanos)),
    )
    .filter(|d| !d.is_zero());
    let identity = if request.participant_identity.is_empty() {
        format!("sip_{}", request.sip_call_to)
    } else {
        request.participant_identity.clone()
    };
    let info = proto::SipParticipantInfo {
        participant_id: shared.new_id("PA_"),
        participant_identity: identity,
        room_name: request.room_name.clone(),
        sip_call_id: shared.new_id("SCL_"),
    };
    let earlier = shared
        .lock()
        .sip_calls
        .iter()
        .filter(|c| c.request.sip_call_to == request.sip_call_to)
        .count();
    let index = shared.record_sip_call(SimSipCall {
        request: request.clone(),
        info: info.clone(),
        ringing_timeout: ringing,
        max_call_duration,
        state: SipCallState::Ringing,
    });
    let dial = Dial {
        script: shared
            .config
            .script_for(&request.sip_call_to, earlier)
            .clone(),
        shared,
        index,
        request,
        info: info.clone(),
        ringing,
        max_call_duration,
    };
    if dial.request.wait_until_answered {
        dial.run().await?;
    } else {
        tokio::spawn(async move {
            let _ = dial.run().await;
        });
    }
    Ok(call.format.encode(&info))
}

/// One SIP call playing its script.
struct Dial {
    shared: Arc<Shared>,
    index: usize,
    request: proto::CreateSipParticipantRequest,
    info: proto::SipParticipantInfo,
    script: SipScript,
    ringing: Duration,
    max_call_duration: Option<Duration>,
}

impl Dial {
    async fn run(self) -> Result<(), TwirpError> {
        let in_time = self.script.after <= self.ringing;
        let (delay, outcome) = match &self.script.outcome {
            SipOutcome::NoAnswer => (self.ringing, None),
            _ if !in_time => (self.ringing, None),
            outcome => (self.script.after, Some(outcome.clone())),
        };
        tokio::time::sleep_until(after(Instant::now(), delay)).await;
        if !self.shared.room_is_live(&self.info.room_name) {
            self.set_state(SipCallState::Canceled);
            return Err(TwirpError::new(
                "canceled",
                "the room was deleted while dialing",
            ));
        }
        match outcome {
            None => {
                self.set_state(SipCallState::NoAnswer);
                Err(TwirpError::new("canceled", "sip request timed out"))
            }
            Some(SipOutcome::Reject { code, reason }) => {
                self.set_state(SipCallState::Rejected { code });
                Err(TwirpError::sip(code, &reason))
            }
            Some(SipOutcome::Answer | SipOutcome::NoAnswer) => self.answer(),
        }
    }

    fn answer(self) -> Result<(), TwirpError> {
        let attributes = HashMap::from([
            ("sip.callStatus".to_owned(), "active".to_owned()),
            ("sip.callID".to_owned(), self.info.sip_call_id.clone()),
            (
                "sip.phoneNumber".to_owned(),
                self.request.sip_call_to.clone(),
            ),
            ("sip.trunkID".to_owned(), self.request.sip_trunk_id.clone()),
        ]);
        let identity = self.info.participant_identity.clone();
        let mut callee = self.shared.participant(
            &identity,
            &self.request.participant_name,
            Kind::Sip,
            attributes,
        );
        callee.sid = self.info.participant_id.clone();
        callee.metadata = self.request.participant_metadata.clone();
        if !self.shared.join(&self.info.room_name, callee) {
            self.set_state(SipCallState::Canceled);
            return Err(TwirpError::new(
                "canceled",
                "the room was deleted while dialing",
            ));
        }
        self.set_state(SipCallState::Answered);
        let hang_up = match (self.script.hang_up_after, self.max_call_duration) {
            (Some(callee), Some(max)) if max < callee => {
                Some((max, proto::DisconnectReason::ParticipantRemoved))
            }
            (Some(callee), _) => Some((callee, proto::DisconnectReason::ClientInitiated)),
            (None, Some(max)) => Some((max, proto::DisconnectReason::ParticipantRemoved)),
            (None, None) => None,
        };
        if let Some((delay, reason)) = hang_up {
            tokio::spawn(async move {
                tokio::time::sleep_until(after(Instant::now(), delay)).await;
                if self.shared.leave(&self.info.room_name, &identity, reason) {
                    self.set_state(SipCallState::Ended);
                }
            });
        }
        Ok(())
    }

    fn set_state(&self, state: SipCallState) {
        self.shared
            .update_sip_call(self.index, |call| call.state = state);
    }
}
