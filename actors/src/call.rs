//! The call actor: owns one call attempt from dial to outcome. It places the call, then
//! follows the attempt as carrier callbacks, the media relay and the agent's report write
//! to it, and ends once the attempt is over and the agent had a moment to report. Its
//! supervisor then applies the retry policy.
//!
//! The actor is named `call:<attempt id>`; webhooks nudge it through [`notify`], and the
//! relay reports the agent's first audio through [`agent_audio`], so it reacts at once; it
//! also re-reads its attempt on a slow timer (callbacks and the media stream may reach
//! another process, which records what it learnt with the attempt).
//!
//! A call it follows rather than dialed (placed before a restart, or by another process
//! whose campaign lease this one took over) may have its callbacks sent to a process that
//! is gone: every [`FOLLOW_CARRIER_POLLS`] polls it also asks the carrier, and records the
//! end the carrier reports.
//!
//! It tells its supervisor when the ring phase ends, for pacing: unanswered (with the ring
//! time), answered by a machine, or answered by a person — then only once it is known
//! whether the person was abandoned: the agent's first audio did not come within
//! [`ABANDON_AFTER`] of the answer (see [`verdict`]). An abandoned call hears the
//! campaign's identification message and is hung up (the agent may still arrive: kept
//! when the campaign's `abandonment.keep_agent_if_late` says so); the verdict is stored
//! with the attempt (`detail.abandoned`) for the campaign's ledger.
//!
//! Machine detection runs asynchronously: the call connects at once and who answered
//! arrives later. Until then an answer is a person's, judged from the answer like any
//! other; a machine found before the verdict is told as a machine (and not judged), one
//! found after it is told again as a reclassification, which takes the call out of the
//! abandonment figures.
//!
//! A campaign whose agent is `sip` is called through LiveKit SIP instead of the carrier:
//! the dial, how the call is followed, abandonment judged by the agent's presence,
//! hang-up and recovery are in [`sip`].

pub mod sip;
pub mod verdict;

use crate::campaign::CampaignMsg;
use crate::dial::DialError;
use crate::runtime::Services;
use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::AttemptId;
use switchboard_engine::campaign::CampaignConfig;
use switchboard_engine::pacing::{AnsweredBy, RingEnd};
use switchboard_engine::store::{AttemptRecord, AttemptStatus, AttemptUpdate, CallEvent};
use switchboard_media::livekit::LiveKitSession;

/// A person answered and the agent was not heard within this: the call is abandoned.
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);

/// How long past [`ABANDON_AFTER`] a call without agent audio waits for its verdict: the
/// first audio may be reported by another process through the database.
pub const ABANDON_SETTLE: Duration = Duration::from_millis(200);

/// A following call actor asks the carrier about its call once every this many polls.
pub const FOLLOW_CARRIER_POLLS: u32 = 5;

/// Messages to a call actor.
#[derive(Debug)]
pub enum CallMsg {
    /// Re-read the attempt: something may have happened.
    Check,
    /// [`ABANDON_AFTER`] (and [`ABANDON_SETTLE`]) passed since a person answered: judge
    /// abandonment.
    AbandonCheck,
    /// The relay in this process heard the agent's first audio at this moment.
    AgentAudio(DateTime<Utc>),
    /// SIP mode: LiveKit answered the dial (the callee answered, or the refusal, already
    /// recorded on the attempt).
    SipDialed(Box<Result<LiveKitSession, DialError>>),
}

/// The call actor.
pub struct CallActor;

/// What a call actor starts with.
pub struct CallArgs {
    /// Shared runtime services.
    pub services: Arc<Services>,
    /// The reserved attempt to dial.
    pub attempt: AttemptRecord,
    /// The call was placed before (by a process that died): follow it, never dial again.
    pub follow: bool,
    /// The campaign's configuration (abandonment settings, identification message).
    pub config: Arc<CampaignConfig>,
}

/// A call actor's state.
pub struct CallState {
    follow: bool,
    services: Arc<Services>,
    attempt: AttemptRecord,
    config: Arc<CampaignConfig>,
    started: Instant,
    ended_seen: Option<Instant>,
    /// The ring end was told to the supervisor (or an abandonment verdict is pending).
    ring_told: bool,
    /// A person answered and abandonment is not judged yet.
    abandon_pending: bool,
    /// When the agent was first heard, as the relay of this process reported it.
    first_audio_at: Option<DateTime<Utc>>,
    /// The ring end told as a person's answer, while a machine may still be found.
    told_person: Option<RingEnd>,
    /// SIP mode: the LiveKit side of the call (`None` for carrier calls).
    sip: Option<sip::SipCall>,
    /// When a following actor last asked the carrier about its call.
    carrier_asked: Instant,
}

/// The registry name of an attempt's call actor.
pub fn actor_name(attempt: AttemptId) -> String {
    format!("call:{attempt}")
}

fn local_actor(attempt: AttemptId) -> Option<ActorRef<CallMsg>> {
    ractor::registry::where_is(actor_name(attempt)).map(Into::into)
}

/// Tells an attempt's call actor, if it runs in this process, that its attempt changed.
pub fn notify(attempt: AttemptId) {
    if let Some(actor) = local_actor(attempt) {
        let _ = actor.cast(CallMsg::Check);
    }
}

/// Tells an attempt's call actor, if it runs in this process, that the agent was first
/// heard at `at` (the relay also records it with the attempt, for other processes).
pub fn agent_audio(attempt: AttemptId, at: DateTime<Utc>) {
    if let Some(actor) = local_actor(attempt) {
        let _ = actor.cast(CallMsg::AgentAudio(at));
    }
}

impl Actor for CallActor {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = CallArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CallMsg>,
        args: CallArgs,
    ) -> Result<CallState, ActorProcessingErr> {
        // A follower does not tell a ring end that happened before it, but judges an
        // abandonment its predecessor left unjudged.
        let answered = args.follow && args.attempt.answered_at.is_some();
        let abandon_pending = answered
            && !by_machine(&args.attempt)
            && !args.attempt.detail.contains_key("abandoned");
        Ok(CallState {
            sip: sip::is_sip(&args.config).then(sip::SipCall::default),
            follow: args.follow,
            services: args.services,
            attempt: args.attempt,
            config: args.config,
            started: Instant::now(),
            ended_seen: None,
            ring_told: answered,
            abandon_pending,
            first_audio_at: None,
            told_person: None,
            carrier_asked: Instant::now(),
        })
    }

    #[tracing::instrument(name = "call", skip_all, fields(call_id = %state.attempt.id, campaign_id = %state.attempt.campaign_id))]
    async fn post_start(
        &self,
        myself: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        #[cfg(feature = "failpoints")]
        fail::fail_point!("call-actor-dial");
        if state.abandon_pending
            && let Some(answered_at) = state.attempt.answered_at
        {
            schedule_abandon_check(&myself, answered_at);
        }
        if state.follow {
            // Placed before (by a process that died, or by this call's previous actor):
            // follow it, never dial it again.
            myself.send_interval(state.services.settings.call_poll, || CallMsg::Check);
            return Ok(());
        }
        let tenant = state.attempt.tenant_id;
        if let Some(refusal) =
            livekit_refusal(&state.services.store, tenant, state.config.agent.as_ref()).await?
        {
            refuse(&myself, state, refusal).await?;
            return Ok(());
        }
        if state.sip.is_some() {
            sip::dial(&myself, state).await?;
            myself.send_interval(state.services.settings.call_poll, || CallMsg::Check);
            return Ok(());
        }
        match state
            .services
            .dialer
            .dial(&state.services.writer, &state.attempt)
            .await
        {
            Ok(_) => {}
            Err(DialError::CarrierCapacity(e)) => {
                crate::metrics::dial_refused(state.attempt.campaign_id, true);
                carrier_full(state, &e).await?;
                myself.stop(Some(WITHDRAWN.into()));
                return Ok(());
            }
            Err(e) => {
                crate::metrics::dial_refused(state.attempt.campaign_id, false);
                tracing::warn!(call_id = %state.attempt.id, error = %e, "dial failed");
                myself.stop(Some(format!("dial failed: {e}")));
                return Ok(());
            }
        }
        myself.send_interval(state.services.settings.call_poll, || CallMsg::Check);
        Ok(())
    }

    #[tracing::instrument(name = "call", skip_all, fields(call_id = %state.attempt.id, campaign_id = %state.attempt.campaign_id))]
    async fn handle(
        &self,
        myself: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Check => check(&myself, state).await?,
            CallMsg::AbandonCheck if state.abandon_pending => {
                if state.sip.is_some() {
                    sip::agent_check(state).await?;
                }
                let attempt = state.services.store.attempt(state.attempt.id).await?;
                judge(&myself, state, &attempt, true).await?;
                state.attempt = attempt;
            }
            CallMsg::AbandonCheck => {}
            CallMsg::AgentAudio(at) => {
                state.first_audio_at = verdict::earliest(state.first_audio_at, Some(at));
                if state.abandon_pending {
                    let attempt = state.attempt.clone();
                    judge(&myself, state, &attempt, false).await?;
                }
            }
            CallMsg::SipDialed(result) => {
                if sip::dialed(&myself, state, *result).await? {
                    check(&myself, state).await?;
                }
            }
        }
        Ok(())
    }
}

/// Why `agent` names a LiveKit trunk or agent name the operator does not allow `tenant`
/// now (the allowlist is read at every dial and every probe of the agent), or `None`.
pub(crate) async fn livekit_refusal(
    store: &switchboard_engine::store::Store,
    tenant: switchboard_engine::TenantId,
    agent: Option<&switchboard_engine::campaign::AgentConfig>,
) -> Result<Option<String>, switchboard_engine::Error> {
    match store.check_livekit_agent(tenant, agent).await {
        Ok(()) => Ok(None),
        Err(switchboard_engine::Error::Invalid { errors, .. }) => Ok(Some(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(e) => Err(e),
    }
}

/// The campaign's LiveKit trunk or agent is no longer allowed (the allowlist changed
/// after the gate opened): nothing is dialed. The reservation is withdrawn (the contact
/// keeps its place and its attempt budget) and the supervisor's agent gate closes with the
/// reason, so that no line opens until the operator allows it again. A reservation that
/// moved on meanwhile ends as failed with the reason.
async fn refuse(
    myself: &ActorRef<CallMsg>,
    state: &CallState,
    refusal: String,
) -> Result<(), ActorProcessingErr> {
    tracing::warn!(call_id = %state.attempt.id, %refusal, "dial refused");
    crate::agent_reach::agent_unreachable(state.attempt.campaign_id, refusal.clone());
    let withdrawn = state
        .services
        .store
        .withdraw_reservations(&[state.attempt.id])
        .await?;
    if withdrawn == 0 {
        myself.stop(Some(format!("dial failed: {refusal}")));
    } else {
        myself.stop(Some(format!("withdrawn: {refusal}")));
    }
    Ok(())
}

/// The exit reason of a call actor whose reservation was withdrawn (the carrier was full).
pub const WITHDRAWN: &str = "withdrawn: the carrier was full";

/// The carrier refused the create for capacity: the account's limiter slows down, and the
/// reservation is withdrawn (the contact is queued again as before it, its attempt budget
/// untouched). A reservation that moved on meanwhile is closed as `carrier_capacity`,
/// which counts against no budget either.
async fn carrier_full(
    state: &mut CallState,
    error: &switchboard_media::TwilioError,
) -> Result<(), ActorProcessingErr> {
    let services = state.services.clone();
    tracing::info!(call_id = %state.attempt.id, %error, "the carrier is full; withdrawing the reservation");
    let limiter = crate::limiter::limiter_name(services.dialer.account());
    if let Some(limiter) = ractor::registry::where_is(limiter) {
        let limiter: ActorRef<crate::limiter::LimiterMsg> = limiter.into();
        let _ = limiter.cast(crate::limiter::LimiterMsg::Refused);
    }
    if services
        .store
        .withdraw_reservations(&[state.attempt.id])
        .await?
        == 0
    {
        let mut detail = serde_json::Map::new();
        detail.insert("dial_error".into(), json!(error.to_string()));
        let update = AttemptUpdate {
            status: Some(AttemptStatus::Ended),
            result: Some("carrier_capacity".into()),
            ended_at: Some(services.clock.now()),
            detail: Some(detail),
            ..Default::default()
        };
        services
            .writer
            .update_attempt(state.attempt.id, update)
            .await?;
    }
    Ok(())
}

/// Re-reads the attempt and acts on what changed.
async fn check(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
) -> Result<(), ActorProcessingErr> {
    let mut attempt = state.services.store.attempt(state.attempt.id).await?;
    if state.sip.is_some() {
        attempt = sip::follow(state, attempt).await?;
    } else if state.follow
        && attempt.status != AttemptStatus::Ended
        && state.carrier_asked.elapsed() >= state.services.settings.call_poll * FOLLOW_CARRIER_POLLS
    {
        state.carrier_asked = Instant::now();
        let store = &state.services.store;
        let at = state.services.clock.now();
        if !state
            .services
            .dialer
            .settle_with_carrier(store, &attempt, at)
            .await?
        {
            attempt = store.attempt(attempt.id).await?;
        }
    }
    #[cfg(feature = "failpoints")]
    fail::fail_point!(
        "call-actor-check",
        matches!(
            attempt.status,
            AttemptStatus::Answered | AttemptStatus::Bridged
        ),
        |_| { Ok(()) }
    );
    if !state.ring_told {
        ring_phase(myself, state, &attempt).await?;
    } else if state.abandon_pending {
        judge(myself, state, &attempt, false).await?;
    }
    reclassify(myself, state, &attempt).await?;
    let services = state.services.clone();
    let settings = &services.settings;
    if attempt.status == AttemptStatus::Ended {
        let seen = *state.ended_seen.get_or_insert_with(Instant::now);
        // An answered call's agent may report just after the hang-up, and machine
        // detection may report after it too.
        let detection_pending = state.sip.is_none()
            && services.dialer.machine_detection()
            && attempt.answered_at.is_some()
            && !attempt.detail.contains_key("answered_by");
        let settled = attempt.answered_at.is_none()
            || (attempt.outcome.is_some() && !detection_pending)
            || seen.elapsed() >= settings.outcome_grace;
        if settled {
            if state.abandon_pending {
                // Ended before the check was due: judge it now.
                judge(myself, state, &attempt, true).await?;
            }
            if state.sip.is_some() {
                state.attempt = attempt.clone();
                sip::tear_down(state).await;
            }
            myself.stop(Some("ended".into()));
        }
    } else if state.started.elapsed() > settings.max_call {
        tracing::warn!(call_id = %attempt.id, "call exceeded its maximum duration; hanging up");
        if state.sip.is_some() {
            sip::hang_up(&services, attempt.id).await;
        } else if let Some(sid) = &attempt.carrier_call_id {
            let _ = services.dialer.hangup(sid).await;
        }
        if state.started.elapsed() > settings.max_call + Duration::from_secs(60) {
            return Err("the carrier never reported the end of the call".into());
        }
    }
    state.attempt = attempt;
    Ok(())
}

/// Whether the attempt was answered by a machine (or a fax), per machine detection.
pub fn by_machine(attempt: &AttemptRecord) -> bool {
    attempt
        .detail
        .get("answered_by")
        .and_then(|v| v.as_str())
        .is_some_and(|by| by.starts_with("machine") || by == "fax")
}

/// Seconds between two recorded instants, 0 when either is missing.
fn secs_between(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) => ((b - a).num_milliseconds().max(0) as f64) / 1000.0,
        _ => 0.0,
    }
}

/// Asks for the abandonment check once [`ABANDON_AFTER`] and [`ABANDON_SETTLE`] have
/// passed since the answer.
fn schedule_abandon_check(myself: &ActorRef<CallMsg>, answered_at: DateTime<Utc>) {
    let since = (switchboard_engine::time::now() - answered_at)
        .to_std()
        .unwrap_or_default();
    let due = (ABANDON_AFTER + ABANDON_SETTLE).saturating_sub(since);
    myself.send_after(due, || CallMsg::AbandonCheck);
}

/// Tells the supervisor how the ring phase ended, when that is known.
async fn ring_phase(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
    attempt: &AttemptRecord,
) -> Result<(), ActorProcessingErr> {
    let ring_secs = secs_between(attempt.dialed_at, attempt.answered_at.or(attempt.ended_at));
    let answered = match (attempt.answered_at, attempt.status) {
        (Some(_), _) if by_machine(attempt) => Some(AnsweredBy::Machine),
        (Some(answered_at), _) => {
            // A person, as far as anyone knows yet: judged from the answer.
            state.ring_told = true;
            state.abandon_pending = true;
            schedule_abandon_check(myself, answered_at);
            return judge(myself, state, attempt, false).await;
        }
        (None, AttemptStatus::Ended) => None,
        (None, _) => return Ok(()),
    };
    state.ring_told = true;
    tell_supervisor(myself, state, answered, ring_secs, false).map(|_| ())
}

/// Sends the ring end to the campaign supervisor; returns it as sent.
fn tell_supervisor(
    myself: &ActorRef<CallMsg>,
    state: &CallState,
    answered: Option<AnsweredBy>,
    ring_secs: f64,
    abandoned: bool,
) -> Result<Option<RingEnd>, ActorProcessingErr> {
    let Some(parent) = myself.try_get_supervisor() else {
        return Ok(None);
    };
    let parent: ActorRef<CampaignMsg> = parent.into();
    let ring = RingEnd {
        at: state.services.clock.now(),
        answered,
        ring_secs,
        abandoned,
    };
    parent.cast(CampaignMsg::Rang(myself.get_id(), ring))?;
    Ok(Some(ring))
}

/// Judges a person's abandonment once it is known (see [`verdict::verdict`]; `over`: it
/// cannot wait any longer). A machine found meanwhile is told as a machine instead. An
/// abandoned call hears the identification message and is hung up, unless the campaign
/// keeps late agents.
async fn judge(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
    attempt: &AttemptRecord,
    over: bool,
) -> Result<(), ActorProcessingErr> {
    let Some(answered_at) = attempt.answered_at else {
        return Ok(());
    };
    let ring_secs = secs_between(attempt.dialed_at, attempt.answered_at);
    if by_machine(attempt) {
        state.abandon_pending = false;
        tell_supervisor(myself, state, Some(AnsweredBy::Machine), ring_secs, false)?;
        return Ok(());
    }
    let first_audio = verdict::earliest(state.first_audio_at, verdict::stored_first_audio(attempt));
    let over = over || attempt.status == AttemptStatus::Ended;
    let now = switchboard_engine::time::now();
    let Some(abandoned) = verdict::verdict(answered_at, first_audio, now, over) else {
        return Ok(());
    };
    state.abandon_pending = false;
    let mut detail = serde_json::Map::new();
    detail.insert("abandoned".into(), json!(abandoned));
    if state.sip.is_some() {
        // No audio passes through Switchboard: the agent's presence stands for it.
        detail.insert("abandonment_basis".into(), json!("agent_presence"));
    }
    state
        .services
        .writer
        .update_attempt(
            attempt.id,
            AttemptUpdate {
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?;
    if abandoned {
        tracing::warn!(call_id = %attempt.id, "a person answered and the agent was not heard within 2 seconds");
        let hang_up =
            !state.config.abandonment.keep_agent_if_late && attempt.status != AttemptStatus::Ended;
        if hang_up && state.sip.is_some() {
            sip::hang_up_abandoned(state, attempt).await;
        } else if hang_up && let Some(sid) = &attempt.carrier_call_id {
            verdict::identify_and_hang_up(state, attempt, sid).await;
        }
    }
    state.told_person =
        tell_supervisor(myself, state, Some(AnsweredBy::Human), ring_secs, abandoned)?;
    Ok(())
}

/// A call told as a person's answer turned out to be a machine's: pacing is told again,
/// and the verdict no longer counts (the ledger leaves machines out).
async fn reclassify(
    myself: &ActorRef<CallMsg>,
    state: &mut CallState,
    attempt: &AttemptRecord,
) -> Result<(), ActorProcessingErr> {
    if state.told_person.is_none() || !by_machine(attempt) {
        return Ok(());
    }
    let Some(ring) = state.told_person.take() else {
        return Ok(());
    };
    tracing::info!(call_id = %attempt.id, "machine detection found a machine after the answer was judged");
    if let Some(parent) = myself.try_get_supervisor() {
        let parent: ActorRef<CampaignMsg> = parent.into();
        parent.cast(CampaignMsg::Reclassified(ring))?;
    }
    let event = CallEvent {
        attempt_id: attempt.id,
        at: switchboard_engine::time::now(),
        kind: "pacing.reclassified".into(),
        data: json!({ "answered_by": attempt.detail.get("answered_by"), "was_abandoned": ring.abandoned }),
    };
    state.services.writer.append_events(vec![event]).await?;
    Ok(())
}
