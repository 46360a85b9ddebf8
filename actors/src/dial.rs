//! Placing one call attempt through the carrier: inline TwiML that connects the answered
//! call to Switchboard's media stream, status callbacks for every event, and asynchronous
//! answering machine detection (the call connects at once; who answered arrives later in
//! its own callback). The attempt is already reserved in the database when this runs.
//! [`SipDialer`] places the calls of SIP campaigns through LiveKit instead.

use crate::context::call_context;
use crate::urls::PublicUrls;
use crate::writer::EventWriter;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use switchboard_engine::AttemptId;
use switchboard_engine::campaign::AgentConfig;
use switchboard_engine::contact::Contact;
use switchboard_engine::store::CampaignRecord;
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CarrierUpdate, Store,
};
use switchboard_media::livekit::{LiveKitAgents, LiveKitSession, SipCallError, SipDialOptions};
use switchboard_media::twilio::call::{HttpMethod, MachineDetection};
use switchboard_media::twilio::twiml;
use switchboard_media::{CreateCall, TwilioClient, TwilioError};

/// Maps a carrier call status to where the attempt is and, if over, its result.
pub fn attempt_status(
    status: &switchboard_media::CallStatus,
) -> (Option<AttemptStatus>, Option<&'static str>) {
    use switchboard_media::CallStatus;
    match status {
        CallStatus::Queued | CallStatus::Initiated => (Some(AttemptStatus::Dialing), None),
        CallStatus::Ringing => (Some(AttemptStatus::Ringing), None),
        CallStatus::InProgress => (Some(AttemptStatus::Answered), None),
        CallStatus::Completed => (Some(AttemptStatus::Ended), Some("completed")),
        CallStatus::Busy => (Some(AttemptStatus::Ended), Some("busy")),
        CallStatus::NoAnswer => (Some(AttemptStatus::Ended), Some("no_answer")),
        CallStatus::Failed => (Some(AttemptStatus::Ended), Some("failed")),
        CallStatus::Canceled => (Some(AttemptStatus::Ended), Some("canceled")),
        CallStatus::Unknown(_) => (None, None),
    }
}

/// How calls are placed.
#[derive(Debug, Clone)]
pub struct DialSettings {
    /// Caller id (E.164).
    pub from: String,
    /// How long to let the phone ring (at least 15 s, regulation and Twilio's minimum).
    pub ring_timeout_secs: u32,
    /// Ask the carrier to tell humans from answering machines, asynchronously (the answer
    /// connects at once, so detection never delays the agent).
    pub machine_detection: bool,
}

impl Default for DialSettings {
    fn default() -> Self {
        DialSettings {
            from: String::new(),
            ring_timeout_secs: 30,
            machine_detection: true,
        }
    }
}

/// Why a call could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The carrier refused or could not be reached.
    #[error("the carrier refused the call: {0}")]
    Carrier(#[from] TwilioError),
    /// The carrier refused the create for capacity (429 / 20429, 5xx): nothing was placed
    /// and nothing was recorded; the reservation is to be withdrawn, not spent.
    #[error("the carrier is full: {0}")]
    CarrierCapacity(TwilioError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] switchboard_engine::Error),
    /// LiveKit SIP did not connect the callee.
    #[error("the sip call did not connect: {0}")]
    Sip(SipCallError),
    /// The campaign's agent is not a SIP agent.
    #[error("the campaign's agent is not in sip mode")]
    NotSip,
    /// The campaign's agent is in SIP mode and LiveKit is not configured.
    #[error("the campaign's agent is in sip mode and livekit is not configured")]
    SipUnavailable,
    /// The call has not been placed yet: there is nothing to hang up.
    #[error("the call has no carrier call yet (status {0})")]
    NotPlaced(&'static str),
}

/// Places calls for reserved attempts.
#[derive(Debug, Clone)]
pub struct Dialer {
    twilio: TwilioClient,
    urls: PublicUrls,
    settings: DialSettings,
    /// Derives each call's stream key (the server's call token secret).
    stream_secret: std::sync::Arc<SecretString>,
}

/// The `<Parameter>` of a call's media stream that names its attempt.
pub const STREAM_ATTEMPT_PARAMETER: &str = "attempt";
/// The `<Parameter>` of a call's media stream that carries its stream key
/// ([`switchboard_engine::call_token::stream_key`]).
pub const STREAM_KEY_PARAMETER: &str = "stream_key";

/// The TwiML that connects an answered call to Switchboard's media stream, naming its
/// attempt and carrying its stream key (`stream_secret` is the server's call token secret).
pub fn stream_twiml(urls: &PublicUrls, stream_secret: &[u8], attempt: AttemptId) -> String {
    let id = attempt.to_string();
    let key = switchboard_engine::call_token::stream_key(stream_secret, attempt);
    twiml::connect_stream(
        &urls.media_stream(),
        &[
            (STREAM_ATTEMPT_PARAMETER, id.as_str()),
            (STREAM_KEY_PARAMETER, key.as_str()),
        ],
    )
}

impl Dialer {
    /// A dialer through this carrier account; `stream_secret` (the server's call token
    /// secret) derives the key that binds each call's media stream to it.
    pub fn new(
        twilio: TwilioClient,
        urls: PublicUrls,
        settings: DialSettings,
        stream_secret: SecretString,
    ) -> Self {
        Dialer {
            twilio,
            urls,
            settings,
            stream_secret: std::sync::Arc::new(stream_secret),
        }
    }

    /// The request that places this attempt's call.
    pub fn request(&self, attempt: &AttemptRecord) -> CreateCall {
        let xml = stream_twiml(
            &self.urls,
            self.stream_secret.expose_secret().as_bytes(),
            attempt.id,
        );
        let mut call = CreateCall::new(attempt.phone.clone(), self.settings.from.clone())
            .twiml(xml)
            .status_callback(self.urls.status_callback(attempt.id))
            .timeout_secs(self.settings.ring_timeout_secs.max(15));
        if self.settings.machine_detection {
            call = call
                .machine_detection(MachineDetection::Enable)
                .async_amd(true)
                .async_amd_status_callback(self.urls.amd_callback(attempt.id));
            call.async_amd_status_callback_method = HttpMethod::Post;
        }
        call
    }

    /// Whether calls are placed with machine detection (its result arrives after the
    /// answer).
    pub fn machine_detection(&self) -> bool {
        self.settings.machine_detection
    }

    /// The caller id calls are placed from.
    pub fn caller_id(&self) -> &str {
        &self.settings.from
    }

    /// What the carrier says about a call now.
    pub async fn fetch(
        &self,
        call_sid: &str,
    ) -> Result<switchboard_media::CallResource, DialError> {
        Ok(self.twilio.fetch_call(call_sid).await?)
    }

    /// Asks the carrier about an attempt's call, placed earlier (before a restart, or by
    /// another process whose callbacks no longer arrive), and records its end with the
    /// attempt if it is over, as its final callback would have. Returns whether the call may
    /// still be live: the carrier says so, or could not be asked.
    ///
    /// An attempt without a carrier call may still have one: the process may have died
    /// after the create reached the carrier and before its answer was stored. The
    /// account's calls to the number are listed (from any caller id: the process that
    /// placed it may have used another), and a call created
    /// since the attempt was reserved that no other attempt holds is this attempt's: its
    /// id is stored and it is settled or followed like any other. Only when the carrier
    /// lists none was the call never placed. When the carrier cannot be asked, the error
    /// is returned: nobody may guess, or a callee could be dialed twice.
    pub async fn settle_with_carrier(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DialError> {
        let sid = match &attempt.carrier_call_id {
            Some(sid) => sid.clone(),
            None => match self.find_placed(store, attempt, at).await? {
                Some(sid) => sid,
                None => return Ok(false),
            },
        };
        let Ok(call) = self.fetch(&sid).await else {
            return Ok(true);
        };
        let status = call
            .status
            .clone()
            .unwrap_or(switchboard_media::CallStatus::Unknown(String::new()));
        let (next, result) = attempt_status(&status);
        if next != Some(AttemptStatus::Ended) {
            return Ok(true);
        }
        let update = CarrierUpdate {
            carrier_call_id: Some(call.sid.clone()),
            status: next,
            result: result.map(str::to_owned),
            answered_by: call.answered_by.as_ref().map(|a| a.as_str().to_owned()),
            sequence: None,
            carrier_status: format!("reconciled.{}", status.as_str()),
            at,
            carrier_at: None,
            error_code: None,
            sip_response_code: None,
        };
        store.apply_carrier_update(attempt.id, &update).await?;
        Ok(false)
    }

    /// The call the carrier placed for an attempt whose create answer was never stored,
    /// stored with it; `None` when the carrier has no such call.
    async fn find_placed(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<String>, DialError> {
        // Any caller id: the process that placed it may have dialed from another number.
        let calls = self.twilio.calls_to(&attempt.phone).await?;
        // Twilio's times are whole seconds.
        let since = attempt.reserved_at - chrono::Duration::seconds(1);
        let mut candidates: Vec<(chrono::DateTime<chrono::Utc>, String)> = calls
            .into_iter()
            .filter_map(|call| {
                let created = chrono::DateTime::parse_from_rfc2822(call.date_created.as_deref()?)
                    .ok()?
                    .with_timezone(&chrono::Utc);
                (created >= since).then_some((created, call.sid))
            })
            .collect();
        candidates.sort();
        for (_, sid) in candidates {
            if store.attempt_holding_call(&sid).await?.is_some() {
                continue;
            }
            tracing::warn!(call_id = %attempt.id, call_sid = %sid, "found the call placed for an attempt whose process died before storing it");
            let update = CarrierUpdate {
                carrier_call_id: Some(sid.clone()),
                status: Some(AttemptStatus::Dialing),
                result: None,
                answered_by: None,
                sequence: None,
                carrier_status: "reconciled.found".to_owned(),
                at,
                carrier_at: None,
                error_code: None,
                sip_response_code: None,
            };
            store.apply_carrier_update(attempt.id, &update).await?;
            return Ok(Some(sid));
        }
        Ok(None)
    }

    /// The carrier account calls are placed through.
    pub fn account(&self) -> &str {
        self.twilio.account_sid()
    }

    /// Hangs up a live call.
    pub async fn hangup(&self, call_sid: &str) -> Result<(), DialError> {
        self.twilio.hangup(call_sid).await?;
        Ok(())
    }

    /// Ends a live call after the carrier reads `text` to the callee: the call is given
    /// `<Say>text</Say><Hangup/>` (its media stream stops first).
    pub async fn say_and_hangup(&self, call_sid: &str, text: &str) -> Result<(), DialError> {
        self.twilio
            .update_twiml(call_sid, &twiml::say_and_hangup(text))
            .await?;
        Ok(())
    }

    /// Asks the carrier to place the call and records its id. A refusal for capacity
    /// (429 / 20429, 5xx) records nothing and is [`DialError::CarrierCapacity`]: the
    /// caller withdraws the reservation. Any other refusal ends the attempt as `failed`
    /// with the carrier's reason. (A transport error is recorded the same way;
    /// the carrier may still have placed the call, and its callbacks, which name the
    /// attempt, will then arrive and be recorded.)
    pub async fn dial(
        &self,
        writer: &EventWriter,
        attempt: &AttemptRecord,
    ) -> Result<String, DialError> {
        match self.twilio.create_call(&self.request(attempt)).await {
            Ok(call) => {
                let update = CarrierUpdate {
                    carrier_call_id: Some(call.sid.clone()),
                    status: Some(AttemptStatus::Dialing),
                    result: None,
                    answered_by: None,
                    sequence: None,
                    carrier_status: call
                        .status
                        .as_ref()
                        .map_or("queued", |s| s.as_str())
                        .to_owned(),
                    at: switchboard_engine::time::now(),
                    carrier_at: None,
                    error_code: None,
                    sip_response_code: None,
                };
                writer.apply_carrier_update(attempt.id, update).await?;
                Ok(call.sid)
            }
            Err(e) if e.is_capacity() => Err(DialError::CarrierCapacity(e)),
            Err(e) => {
                let mut detail = serde_json::Map::new();
                detail.insert("dial_error".into(), serde_json::json!(e.to_string()));
                detail.insert(
                    "dial_error_retryable".into(),
                    serde_json::json!(e.is_retryable()),
                );
                let update = AttemptUpdate {
                    status: Some(AttemptStatus::Ended),
                    result: Some("failed".into()),
                    ended_at: Some(switchboard_engine::time::now()),
                    detail: Some(detail),
                    ..Default::default()
                };
                writer.update_attempt(attempt.id, update).await?;
                Err(e.into())
            }
        }
    }
}

/// Places SIP-mode calls: LiveKit dials the callee through an outbound trunk into the
/// call's room, where the campaign's agent is dispatched. Media never passes through
/// Switchboard in this mode. `Debug` never shows the call token secret.
#[derive(Clone)]
pub struct SipDialer {
    livekit: LiveKitAgents,
    urls: PublicUrls,
    options: SipDialOptions,
    token_secret: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for SipDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipDialer")
            .field("livekit", &self.livekit)
            .field("urls", &self.urls)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SipDialer {
    /// A dialer through this LiveKit deployment.
    pub fn new(livekit: LiveKitAgents, urls: PublicUrls, options: SipDialOptions) -> Self {
        SipDialer {
            livekit,
            urls,
            options,
            token_secret: std::sync::Arc::from(Vec::new()),
        }
    }

    /// Signs the per-call agent tokens of [`SipDialer::dial_attempt`] with this secret (the
    /// server's call token secret, which the agent API verifies).
    pub fn with_token_secret(mut self, secret: &[u8]) -> Self {
        self.token_secret = std::sync::Arc::from(secret);
        self
    }

    /// The LiveKit deployment calls go through (rooms, participants).
    pub fn livekit(&self) -> &LiveKitAgents {
        &self.livekit
    }

    /// How calls are placed (ringing timeout, maximum duration).
    pub fn options(&self) -> &SipDialOptions {
        &self.options
    }

    /// Dials one attempt and records what the callee's side answered: an answer moves the
    /// attempt to `bridged` (the agent is in the room) and returns the session to hold
    /// until the call ends; a SIP refusal ends the attempt with its result (`busy`,
    /// `declined`, `carrier_capacity` (retryable: the carrier's limit, not the callee's
    /// no), `invalid_number`, `no_answer`, `failed`) and the SIP status code.
    pub async fn dial(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
        campaign: &CampaignRecord,
        contact: &Contact,
        token_secret: &[u8],
    ) -> Result<LiveKitSession, DialError> {
        self.record_dialing(store, attempt).await?;
        self.place(store, attempt, campaign, contact, token_secret)
            .await
    }

    /// [`SipDialer::dial`] with the configured token secret, reading the campaign and the
    /// contact from the store; `record_dialing` must have run first.
    pub async fn dial_attempt(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
    ) -> Result<LiveKitSession, DialError> {
        let campaign = store
            .campaign(attempt.tenant_id, attempt.campaign_id)
            .await?;
        let contact = store.contact(attempt.tenant_id, attempt.contact_id).await?;
        self.place(store, attempt, &campaign, &contact, &self.token_secret)
            .await
    }

    /// Records, durably and before LiveKit is asked anything, that the attempt is being
    /// dialed (its ring time counts from here, and recovery knows a room may exist).
    pub async fn record_dialing(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
    ) -> Result<(), DialError> {
        let update = CarrierUpdate {
            carrier_call_id: None,
            status: Some(AttemptStatus::Dialing),
            result: None,
            answered_by: None,
            sequence: None,
            carrier_status: "sip.dialing".to_owned(),
            at: switchboard_engine::time::now(),
            carrier_at: None,
            error_code: None,
            sip_response_code: None,
        };
        store.apply_carrier_update(attempt.id, &update).await?;
        Ok(())
    }

    /// Asks LiveKit to dial (room, dispatch, `CreateSIPParticipant`, waiting for the
    /// answer) and records the answer or the refusal.
    async fn place(
        &self,
        store: &Store,
        attempt: &AttemptRecord,
        campaign: &CampaignRecord,
        contact: &Contact,
        token_secret: &[u8],
    ) -> Result<LiveKitSession, DialError> {
        let Some(AgentConfig::Sip { trunk_id, .. }) = &campaign.config.agent else {
            return Err(DialError::NotSip);
        };
        let context = call_context(attempt, campaign, contact, &self.urls, token_secret);
        let answered = self
            .livekit
            .dial_sip(&context, trunk_id, &attempt.phone, self.options.clone())
            .await;
        let now = switchboard_engine::time::now();
        match answered {
            Ok(answer) => {
                let update = CarrierUpdate {
                    carrier_call_id: Some(answer.participant.sip_call_id.clone()),
                    status: Some(if answer.answered {
                        AttemptStatus::Answered
                    } else {
                        AttemptStatus::Ringing
                    }),
                    result: None,
                    answered_by: None,
                    sequence: None,
                    carrier_status: if answer.answered {
                        "sip.answered"
                    } else {
                        "sip.ringing"
                    }
                    .to_owned(),
                    at: now,
                    carrier_at: None,
                    error_code: None,
                    sip_response_code: None,
                };
                store.apply_carrier_update(attempt.id, &update).await?;
                if answer.answered {
                    let room =
                        json!({ "room": answer.session.room(), "agent": context.agent_name });
                    store.mark_bridged(attempt.id, room).await?;
                }
                Ok(answer.session)
            }
            Err(refusal) => {
                let mut detail = serde_json::Map::new();
                detail.insert("sip_status_code".into(), json!(refusal.sip_status_code()));
                detail.insert("sip_error".into(), json!(refusal.to_string()));
                detail.insert("retryable".into(), json!(refusal.is_retryable()));
                let update = CarrierUpdate {
                    carrier_call_id: None,
                    status: Some(AttemptStatus::Ended),
                    result: Some(refusal.result_name().to_owned()),
                    answered_by: None,
                    sequence: None,
                    carrier_status: format!("sip.{}", refusal.result_name()),
                    at: now,
                    carrier_at: None,
                    error_code: None,
                    sip_response_code: refusal.sip_status_code(),
                };
                store.apply_carrier_update(attempt.id, &update).await?;
                store
                    .update_attempt(
                        attempt.id,
                        &AttemptUpdate {
                            detail: Some(detail),
                            ..Default::default()
                        },
                    )
                    .await?;
                Err(DialError::Sip(refusal))
            }
        }
    }
}
