//! The runtime's root: the engine supervisor, which owns one campaign supervisor per
//! running campaign and restarts a failed one from the database with backoff, and the
//! [`Runtime`] handle the API uses to start, pause, resume and stop campaigns.
//!
//! Every status change goes through the lifecycle in the store (checked and recorded with
//! its cause) before the supervisors are told.

use crate::campaign::{
    CampaignArgs, CampaignMsg, CampaignSnapshot, CampaignSupervisor, actor_name_for,
};
use crate::clock::Clock;
use crate::dial::Dialer;
use crate::limiter::{CarrierLimiter, LimiterArgs, LimiterMsg, limiter_name};
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, call_t,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::store::{CampaignRecord, Store};
use switchboard_engine::{CampaignId, TenantId};

/// How the runtime paces itself.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// How often a campaign supervisor opens new lines.
    pub tick: Duration,
    /// How often a call actor re-reads its attempt (webhooks also nudge it at once).
    pub call_poll: Duration,
    /// How long an answered call's agent may take to report after the hang-up.
    pub outcome_grace: Duration,
    /// Longest call before the call actor hangs it up.
    pub max_call: Duration,
    /// Restarts of one campaign supervisor within `restart_window` before the campaign
    /// is marked failed.
    pub max_restarts: u32,
    /// See `max_restarts`.
    pub restart_window: Duration,
    /// The carrier account's calls-per-second limit, shared by every campaign (`None`:
    /// unlimited). Twilio accounts start at 1.
    pub carrier_cps: Option<f64>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            tick: Duration::from_millis(500),
            call_poll: Duration::from_secs(2),
            outcome_grace: Duration::from_secs(5),
            max_call: Duration::from_secs(3600),
            max_restarts: 3,
            restart_window: Duration::from_secs(300),
            carrier_cps: Some(1.0),
        }
    }
}

/// What every actor of the runtime shares.
pub struct Services {
    /// The database (reads, reservations, campaign changes).
    pub store: Store,
    /// The calls' writes, batched (share it with the HTTP handlers).
    pub writer: crate::writer::EventWriter,
    /// Places calls.
    pub dialer: Dialer,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Timings and limits.
    pub settings: RuntimeSettings,
}

/// Messages to the engine supervisor.
pub enum EngineMsg {
    /// Run (or keep running) this campaign's supervisor.
    Run(Box<CampaignRecord>, RpcReplyPort<Result<(), String>>),
    /// Pass a message to a campaign's supervisor, if it runs.
    Tell(CampaignId, CampaignMsg),
    /// Snapshots of every campaign supervisor.
    Snapshots(RpcReplyPort<Vec<CampaignSnapshot>>),
    /// Activate the scheduled campaigns whose start time has come.
    Schedule,
    /// Answers with how many campaign supervisors run (liveness).
    Ping(RpcReplyPort<usize>),
}

/// The engine supervisor.
pub struct EngineSupervisor;

/// The engine supervisor's state.
pub struct EngineState {
    services: Arc<Services>,
    campaigns: HashMap<CampaignId, ActorRef<CampaignMsg>>,
    by_actor: HashMap<ActorId, (TenantId, CampaignId)>,
    restarts: HashMap<CampaignId, Vec<Instant>>,
    limiter: Option<ActorRef<LimiterMsg>>,
}

/// Starts the carrier account's rate limiter (restarted by the engine supervisor if it
/// ever fails; campaigns dial nothing while it is down).
async fn spawn_limiter(
    myself: &ActorRef<EngineMsg>,
    state: &mut EngineState,
) -> Result<(), ActorProcessingErr> {
    let account = state.services.dialer.account().to_owned();
    let args = LimiterArgs {
        cps: state.services.settings.carrier_cps,
        account: account.clone(),
    };
    let (limiter, _) = Actor::spawn_linked(
        Some(limiter_name(&account)),
        CarrierLimiter,
        args,
        myself.get_cell(),
    )
    .await?;
    state.limiter = Some(limiter);
    Ok(())
}

async fn spawn_campaign(
    myself: &ActorRef<EngineMsg>,
    state: &mut EngineState,
    record: CampaignRecord,
) -> Result<(), ActorProcessingErr> {
    if state.campaigns.contains_key(&record.id) {
        return Ok(());
    }
    let (tenant, id) = (record.tenant_id, record.id);
    let args = CampaignArgs {
        services: state.services.clone(),
        campaign: record,
    };
    let (actor, _) = Actor::spawn_linked(
        Some(actor_name_for(id)),
        CampaignSupervisor,
        args,
        myself.get_cell(),
    )
    .await?;
    state.by_actor.insert(actor.get_id(), (tenant, id));
    state.campaigns.insert(id, actor);
    Ok(())
}

/// The scheduler: a scheduled campaign whose start time has come becomes active (cause
/// scheduler) and its supervisor starts. One without a start time waits for the user.
async fn activate_due(
    myself: &ActorRef<EngineMsg>,
    state: &mut EngineState,
) -> Result<(), ActorProcessingErr> {
    let now = state.services.clock.now();
    let store = state.services.store.clone();
    let scheduled = store
        .campaigns_in_status(&[CampaignStatus::Scheduled])
        .await?;
    for record in scheduled {
        if record.config.starts_at.is_none_or(|at| at > now) {
            continue;
        }
        let activated = store
            .transition_campaign(
                record.tenant_id,
                record.id,
                CampaignStatus::Active,
                Cause::Scheduler,
                "the start time came",
                None,
            )
            .await;
        match activated {
            Ok(record) => spawn_campaign(myself, state, record).await?,
            // Changed meanwhile (started by hand, stopped): nothing to do.
            Err(
                switchboard_engine::Error::Conflict(_) | switchboard_engine::Error::Transition(_),
            ) => {}
            // The tenant runs as many campaigns as it may: this one waits for a free slot.
            Err(e @ switchboard_engine::Error::LimitReached { .. }) => {
                tracing::debug!(campaign_id = %record.id, error = %e, "a scheduled campaign waits for the tenant's limit")
            }
            Err(e) => {
                tracing::warn!(campaign_id = %record.id, error = %e, "could not activate a scheduled campaign")
            }
        }
    }
    Ok(())
}

impl Actor for EngineSupervisor {
    type Msg = EngineMsg;
    type State = EngineState;
    type Arguments = Arc<Services>;

    async fn pre_start(
        &self,
        _myself: ActorRef<EngineMsg>,
        services: Arc<Services>,
    ) -> Result<EngineState, ActorProcessingErr> {
        Ok(EngineState {
            services,
            campaigns: HashMap::new(),
            by_actor: HashMap::new(),
            restarts: HashMap::new(),
            limiter: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<EngineMsg>,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        spawn_limiter(&myself, state).await?;
        // After a restart of the process, running campaigns resume where they were.
        let running = state
            .services
            .store
            .campaigns_in_status(&[CampaignStatus::Active, CampaignStatus::Paused])
            .await?;
        for record in running {
            spawn_campaign(&myself, state, record).await?;
        }
        myself.send_interval(state.services.settings.tick, || EngineMsg::Schedule);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<EngineMsg>,
        msg: EngineMsg,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EngineMsg::Run(record, reply) => {
                let result = spawn_campaign(&myself, state, *record)
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            EngineMsg::Tell(id, msg) => {
                if let Some(actor) = state.campaigns.get(&id) {
                    let _ = actor.cast(msg);
                }
            }
            EngineMsg::Schedule => activate_due(&myself, state).await?,
            EngineMsg::Snapshots(reply) => {
                let mut out = Vec::new();
                for actor in state.campaigns.values() {
                    if let Ok(snapshot) = call_t!(actor, CampaignMsg::Snapshot, 2000) {
                        out.push(snapshot);
                    }
                }
                let _ = reply.send(out);
            }
            EngineMsg::Ping(reply) => {
                let _ = reply.send(state.campaigns.len());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<EngineMsg>,
        event: SupervisionEvent,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some((_, id)) = state.by_actor.remove(&cell.get_id()) {
                    state.campaigns.remove(&id);
                }
            }
            SupervisionEvent::ActorFailed(cell, error)
                if state.limiter.as_ref().map(|l| l.get_id()) == Some(cell.get_id()) =>
            {
                tracing::error!(%error, "the carrier rate limiter failed; restarting it");
                spawn_limiter(&myself, state).await?;
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some((tenant, id)) = state.by_actor.remove(&cell.get_id()) else {
                    return Ok(());
                };
                state.campaigns.remove(&id);
                let settings = &state.services.settings;
                let recent = state.restarts.entry(id).or_default();
                recent.retain(|at| at.elapsed() < settings.restart_window);
                recent.push(Instant::now());
                let store = state.services.store.clone();
                if recent.len() as u32 > settings.max_restarts {
                    tracing::error!(campaign_id = %id, %error, "campaign supervisor keeps failing; marking the campaign failed");
                    let detail =
                        serde_json::json!({ "error": error.to_string(), "restarts": recent.len() });
                    let _ = store
                        .transition_campaign(
                            tenant,
                            id,
                            CampaignStatus::Failed,
                            Cause::System,
                            "supervisor_failures",
                            Some(detail),
                        )
                        .await;
                    return Ok(());
                }
                let backoff = Duration::from_millis(250 * (1 << recent.len().min(6)));
                tracing::warn!(campaign_id = %id, %error, ?backoff, "campaign supervisor failed; restarting from the database");
                tokio::time::sleep(backoff).await;
                let record = store.campaign(tenant, id).await?;
                if record.status.is_running() {
                    spawn_campaign(&myself, state, record).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Why a runtime command was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store refused (illegal transition, not found, incomplete configuration).
    #[error(transparent)]
    Store(#[from] switchboard_engine::Error),
    /// The engine supervisor did not answer.
    #[error("the runtime did not answer: {0}")]
    Unavailable(String),
}

/// The handle to the runtime.
#[derive(Clone)]
pub struct Runtime {
    engine: ActorRef<EngineMsg>,
    services: Arc<Services>,
}

impl Runtime {
    /// Starts the engine supervisor, which resumes every running campaign.
    pub async fn start(services: Services) -> Result<Runtime, RuntimeError> {
        let services = Arc::new(services);
        let (engine, _) = Actor::spawn(None, EngineSupervisor, services.clone())
            .await
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        Ok(Runtime { engine, services })
    }

    async fn run(&self, record: CampaignRecord) -> Result<CampaignRecord, RuntimeError> {
        let reply = call_t!(
            self.engine,
            EngineMsg::Run,
            10_000,
            Box::new(record.clone())
        )
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        reply.map_err(RuntimeError::Unavailable)?;
        Ok(record)
    }

    /// Starts a campaign now: a draft is scheduled (if complete) and activated in one step,
    /// within the tenant's limit on active campaigns.
    pub async fn start_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
    ) -> Result<CampaignRecord, RuntimeError> {
        let record = self
            .services
            .store
            .start_campaign(tenant, id, Cause::User, "started")
            .await?;
        self.run(record).await
    }

    /// Pauses a campaign: no new dials at once, live calls finish.
    pub async fn pause_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
        reason: &str,
    ) -> Result<CampaignRecord, RuntimeError> {
        let record = self
            .services
            .store
            .transition_campaign(
                tenant,
                id,
                CampaignStatus::Paused,
                Cause::User,
                reason,
                None,
            )
            .await?;
        let _ = self.engine.cast(EngineMsg::Tell(id, CampaignMsg::Paused));
        Ok(record)
    }

    /// Resumes a paused campaign where it left off.
    pub async fn resume_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
    ) -> Result<CampaignRecord, RuntimeError> {
        let record = self
            .services
            .store
            .transition_campaign(
                tenant,
                id,
                CampaignStatus::Active,
                Cause::User,
                "resumed",
                None,
            )
            .await?;
        let _ = self.engine.cast(EngineMsg::Tell(id, CampaignMsg::Resumed));
        self.run(record).await
    }

    /// Stops a campaign for good: no new dials, live calls finish.
    pub async fn stop_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
        reason: &str,
    ) -> Result<CampaignRecord, RuntimeError> {
        let record = self
            .services
            .store
            .transition_campaign(
                tenant,
                id,
                CampaignStatus::Stopped,
                Cause::User,
                reason,
                None,
            )
            .await?;
        let _ = self.engine.cast(EngineMsg::Tell(id, CampaignMsg::Stopped));
        Ok(record)
    }

    /// Tells a running campaign's supervisor that its configuration was edited (it reads
    /// it again); nothing happens if the campaign has no supervisor in this process.
    pub fn campaign_edited(&self, id: CampaignId) {
        let _ = self
            .engine
            .cast(EngineMsg::Tell(id, CampaignMsg::Reconfigure));
    }

    /// Snapshots of every running campaign supervisor.
    pub async fn snapshots(&self) -> Result<Vec<CampaignSnapshot>, RuntimeError> {
        call_t!(self.engine, EngineMsg::Snapshots, 5000)
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))
    }

    /// Hangs up a call at the carrier (an operator's hang-up); its call actor then sees
    /// the call end as it would any other.
    pub async fn hangup(&self, call_sid: &str) -> Result<(), crate::dial::DialError> {
        self.services.dialer.hangup(call_sid).await
    }

    /// Asks the engine supervisor whether it is alive; answers how many campaign
    /// supervisors it runs, or `Unavailable` when it does not reply within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<usize, RuntimeError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        call_t!(self.engine, EngineMsg::Ping, ms)
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))
    }

    /// Stops every actor (live calls are left to the carrier).
    pub fn shutdown(&self) {
        self.engine.stop(Some("shutdown".into()));
    }
}
