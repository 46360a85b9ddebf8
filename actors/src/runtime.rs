//! The runtime's root: the engine supervisor, which owns one campaign supervisor per
//! running campaign and restarts a failed one from the database with backoff, and the
//! [`Runtime`] handle the API uses to start, pause, resume and stop campaigns.
//!
//! Every status change goes through the lifecycle in the store (checked and recorded with
//! its cause) before the supervisors are told. A campaign supervisor runs only in the
//! process that holds the campaign's lease ([`crate::lease`]): a control request made
//! through another process is stored, and the owner sees it at its next lease renewal.

use crate::campaign::{
    CampaignArgs, CampaignMsg, CampaignSnapshot, CampaignSupervisor, actor_name_for,
};
use crate::dial::DialError;
use crate::lease::LeaseHold;
use crate::limiter::{CarrierLimiter, LimiterArgs, LimiterMsg, limiter_name};
pub use crate::settings::{RuntimeSettings, Services};
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, call_t,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::store::{AttemptRecord, CampaignRecord};
use switchboard_engine::{CampaignId, TenantId};

/// Messages to the engine supervisor.
pub enum EngineMsg {
    /// Run this campaign's supervisor here if this process gets (or holds) its lease;
    /// answers whether it runs here.
    Run(Box<CampaignRecord>, RpcReplyPort<Result<bool, String>>),
    /// Pass a message to a campaign's supervisor, if it runs.
    Tell(CampaignId, CampaignMsg),
    /// Snapshots of every campaign supervisor.
    Snapshots(RpcReplyPort<Vec<CampaignSnapshot>>),
    /// Activate the scheduled campaigns whose start time has come.
    Schedule,
    /// Run here the running campaigns whose lease is free or expired.
    Claim,
    /// Answers with how many campaign supervisors run (liveness).
    Ping(RpcReplyPort<usize>),
}

/// The engine supervisor.
pub struct EngineSupervisor;

/// The engine supervisor's state.
pub struct EngineState {
    pub(crate) services: Arc<Services>,
    pub(crate) campaigns: HashMap<CampaignId, ActorRef<CampaignMsg>>,
    by_actor: HashMap<ActorId, (TenantId, CampaignId)>,
    restarts: HashMap<CampaignId, Vec<Instant>>,
    limiter: Option<ActorRef<LimiterMsg>>,
    /// Scheduled SIP campaigns left waiting because LiveKit is not configured (logged once).
    pub(crate) sip_waiting: std::collections::HashSet<CampaignId>,
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
        store: state.services.store.clone(),
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

/// Runs the campaign's supervisor in this process, once this process holds the campaign's
/// lease. Returns whether it runs here: `false` when another process holds the lease (and
/// runs the campaign).
pub(crate) async fn spawn_campaign(
    myself: &ActorRef<EngineMsg>,
    state: &mut EngineState,
    record: CampaignRecord,
) -> Result<bool, ActorProcessingErr> {
    if state.campaigns.contains_key(&record.id) {
        return Ok(true);
    }
    let (tenant, id) = (record.tenant_id, record.id);
    let settings = &state.services.settings;
    let store = state.services.store.clone();
    let sent = Instant::now();
    if !store
        .acquire_campaign_lease(id, &settings.instance, settings.lease_ttl)
        .await?
    {
        tracing::debug!(campaign_id = %id, "another process holds the campaign's lease");
        return Ok(false);
    }
    let instance = settings.instance.clone();
    let args = CampaignArgs {
        services: state.services.clone(),
        campaign: record,
        lease: LeaseHold::new(instance.clone(), settings.lease_ttl, sent),
    };
    let spawned = Actor::spawn_linked(
        Some(actor_name_for(id)),
        CampaignSupervisor,
        args,
        myself.get_cell(),
    )
    .await;
    match spawned {
        Ok((actor, _)) => {
            crate::metrics::lease_acquired(id);
            state.by_actor.insert(actor.get_id(), (tenant, id));
            state.campaigns.insert(id, actor);
            Ok(true)
        }
        Err(e) => {
            // Left to the next scan, here or in another process.
            let _ = store.release_campaign_lease(id, &instance).await;
            Err(e.into())
        }
    }
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
            sip_waiting: Default::default(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<EngineMsg>,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        spawn_limiter(&myself, state).await?;
        // After a restart of the process, running campaigns resume where they were: those
        // whose lease is free, expired or still this process's.
        crate::scheduler::claim(&myself, state).await;
        let settings = &state.services.settings;
        myself.send_interval(settings.tick, || EngineMsg::Schedule);
        myself.send_interval(settings.heartbeat(), || EngineMsg::Claim);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<EngineMsg>,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        // Each campaign supervisor finishes what it is doing and releases its lease, so
        // that another process may take its campaign over at once.
        myself
            .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
            .await;
        let instance = &state.services.settings.instance;
        if let Err(e) = state.services.store.release_campaign_leases(instance).await {
            tracing::warn!(error = %e, "could not release the campaign leases at shutdown");
        }
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
            EngineMsg::Schedule => crate::scheduler::activate_due(&myself, state).await,
            EngineMsg::Claim => crate::scheduler::claim(&myself, state).await,
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
                restart_failed(&myself, state, tenant, id, &error.to_string()).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A campaign supervisor failed: restarted from the database after a backoff (if it still
/// runs and this process can still hold its lease); past `max_restarts` within the window
/// the campaign is marked failed and its lease released.
async fn restart_failed(
    myself: &ActorRef<EngineMsg>,
    state: &mut EngineState,
    tenant: TenantId,
    id: CampaignId,
    error: &str,
) {
    let settings = &state.services.settings;
    let recent = state.restarts.entry(id).or_default();
    recent.retain(|at| at.elapsed() < settings.restart_window);
    recent.push(Instant::now());
    let store = state.services.store.clone();
    if recent.len() as u32 > settings.max_restarts {
        tracing::error!(campaign_id = %id, %error, "campaign supervisor keeps failing; marking the campaign failed");
        let detail = serde_json::json!({ "error": error, "restarts": recent.len() });
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
        let _ = store.release_campaign_lease(id, &settings.instance).await;
        return;
    }
    let backoff = Duration::from_millis(250 * (1 << recent.len().min(6)));
    tracing::warn!(campaign_id = %id, %error, ?backoff, "campaign supervisor failed; restarting from the database");
    tokio::time::sleep(backoff).await;
    let restarted = match store.campaign(tenant, id).await {
        Ok(record) if record.status.is_running() => spawn_campaign(myself, state, record)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = restarted {
        // The scan tries again on its next round.
        tracing::warn!(campaign_id = %id, error = %e, "could not restart the campaign supervisor");
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
    /// The campaign's agent is in SIP mode and LiveKit is not configured.
    #[error("the campaign's agent is in sip mode and livekit is not configured")]
    SipUnavailable,
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

    /// Asks the engine supervisor to run the campaign here; when another process holds its
    /// lease, that process runs it (and sees the stored change at its next renewal).
    async fn run(&self, record: CampaignRecord) -> Result<CampaignRecord, RuntimeError> {
        let reply = call_t!(
            self.engine,
            EngineMsg::Run,
            10_000,
            Box::new(record.clone())
        )
        .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        let here = reply.map_err(RuntimeError::Unavailable)?;
        if !here {
            tracing::info!(campaign_id = %record.id, "another process runs the campaign");
        }
        Ok(record)
    }

    /// Starts a campaign now: a draft is scheduled (if complete) and activated in one step,
    /// within the tenant's limit on active campaigns. This process takes the campaign's
    /// lease first, so the campaign runs here rather than in whichever process looks for
    /// unheld campaigns first.
    pub async fn start_campaign(
        &self,
        tenant: TenantId,
        id: CampaignId,
    ) -> Result<CampaignRecord, RuntimeError> {
        self.can_dial(tenant, id).await?;
        let (store, settings) = (&self.services.store, &self.services.settings);
        let current = store.campaign(tenant, id).await?;
        // A running campaign already has its owner (refused below, lease untouched).
        let held = !current.status.is_running()
            && store
                .acquire_campaign_lease(id, &settings.instance, settings.lease_ttl)
                .await?;
        let record = match store
            .start_campaign(tenant, id, Cause::User, "started")
            .await
        {
            Ok(record) => record,
            Err(e) => {
                if held {
                    let _ = store.release_campaign_lease(id, &settings.instance).await;
                }
                return Err(e.into());
            }
        };
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
        self.can_dial(tenant, id).await?;
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

    /// Refuses to run a SIP campaign without LiveKit, before anything changes.
    async fn can_dial(&self, tenant: TenantId, id: CampaignId) -> Result<(), RuntimeError> {
        let record = self.services.store.campaign(tenant, id).await?;
        if crate::call::sip::is_sip(&record.config) && self.services.sip.is_none() {
            return Err(RuntimeError::SipUnavailable);
        }
        Ok(())
    }

    /// Hangs up a live call (an operator's hang-up): at the carrier, or for a SIP call by
    /// deleting its LiveKit room (a SIP call still ringing is canceled). Its call actor
    /// then sees the call end as it would any other. Answers the carrier's call id, or
    /// the room.
    pub async fn hangup_call(&self, attempt: &AttemptRecord) -> Result<String, DialError> {
        let campaign = self
            .services
            .store
            .campaign(attempt.tenant_id, attempt.campaign_id)
            .await?;
        if crate::call::sip::is_sip(&campaign.config) {
            if attempt.dialed_at.is_none() {
                return Err(DialError::NotPlaced(attempt.status.as_str()));
            }
            crate::call::sip::delete_room(&self.services, attempt.id).await?;
            return Ok(switchboard_media::livekit::room_name(attempt.id.0));
        }
        let sid = attempt
            .carrier_call_id
            .clone()
            .ok_or(DialError::NotPlaced(attempt.status.as_str()))?;
        self.services.dialer.hangup(&sid).await?;
        Ok(sid)
    }

    /// Asks the engine supervisor whether it is alive; answers how many campaign
    /// supervisors it runs, or `Unavailable` when it does not reply within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> Result<usize, RuntimeError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        call_t!(self.engine, EngineMsg::Ping, ms)
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))
    }

    /// This process's instance id: the owner its campaign leases name.
    pub fn instance(&self) -> &str {
        &self.services.settings.instance
    }

    /// Stops every actor (live calls are left to the carrier); the campaign leases are
    /// released as the supervisors stop.
    pub fn shutdown(&self) {
        self.engine.stop(Some("shutdown".into()));
    }

    /// [`Runtime::shutdown`], waiting (at most `timeout`) until every supervisor has
    /// stopped and the leases are released, so another process may take over at once.
    pub async fn shutdown_and_wait(&self, timeout: Duration) {
        if let Err(e) = self
            .engine
            .stop_and_wait(Some("shutdown".into()), Some(timeout))
            .await
        {
            tracing::warn!(error = %e, "the runtime did not stop in time");
        }
    }
}
