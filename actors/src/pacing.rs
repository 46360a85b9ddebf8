//! The pacing actor: one per running campaign, a child of its supervisor. It keeps the
//! campaign's dial-rate controller ([`switchboard_engine::pacing::Pacer`]), its quality
//! monitor and its abandonment ledger, fed by the supervisor with every ring end, call end
//! and finished attempt; each tick the supervisor asks it how many lines to open. When the
//! quality monitor judges the campaign below its thresholds (or a failure streak), the
//! actor asks its supervisor to pause the campaign, with the figures.
//!
//! The ledger is rebuilt from the database when the actor starts, so a restart forgets
//! nothing of the rolling 30-day abandonment rate.

use crate::campaign::CampaignMsg;
use chrono::{DateTime, TimeDelta, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use switchboard_engine::campaign::{CampaignConfig, PacingMode};
use switchboard_engine::pacing::{
    AnsweredBy, CallEnd, Pacer, PacingConfig, PacingDecision, PacingInput, RingEnd,
};
use switchboard_engine::quality::{
    AbandonmentFigures, AbandonmentLedger, QualityMonitor, QualitySample, QualityVerdict,
    ROLLING_DAYS,
};

/// Messages to a pacing actor.
#[derive(Debug)]
pub enum PacingMsg {
    /// An attempt's ring phase ended.
    Ring(RingEnd),
    /// A ring end told as a person's answer was a machine's (asynchronous detection).
    Reclassified(RingEnd),
    /// An attempt finished: its call end (when it was answered) and what quality sees
    /// (`None`: its agent could not be reached, which the agent gate handles).
    Finished(Option<CallEnd>, Option<QualitySample>),
    /// How many lines to open now.
    Decide(PacingInput, RpcReplyPort<PacingDecision>),
    /// The pacing figures.
    Snapshot(DateTime<Utc>, RpcReplyPort<PacingSnapshot>),
    /// The campaign's configuration was edited while running: pace and judge by it now.
    Configure(Box<CampaignConfig>),
}

/// What a pacing actor shows.
#[derive(Debug, Clone, Serialize)]
pub struct PacingSnapshot {
    /// Predictive or progressive.
    pub mode: PacingMode,
    /// The latest decision and the figures behind it.
    pub decision: Option<PacingDecision>,
    /// The quality monitor's latest figures.
    pub quality: serde_json::Value,
    /// Abandonment today and over the rolling 30 days.
    pub abandonment: AbandonmentFigures,
    /// Who answered, as pacing was told since it started.
    pub answers: AnswerTally,
}

/// Answered ring ends as pacing learnt them since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AnswerTally {
    /// Answered by a person (or not known to be a machine).
    pub human: u64,
    /// Answered by a machine, reclassified ones included.
    pub machine: u64,
    /// Of the machines, calls first told as a person's answer (detection came later).
    pub reclassified: u64,
}

/// The pacing actor.
pub struct PacingActor;

/// What a pacing actor starts with.
pub struct PacingArgs {
    /// The campaign's configuration.
    pub config: CampaignConfig,
    /// Its abandonment history (answered at, abandoned), from the database.
    pub history: Vec<(DateTime<Utc>, bool)>,
}

/// A pacing actor's state.
pub struct PacingState {
    config: CampaignConfig,
    pacer: Pacer,
    quality: QualityMonitor,
    quality_figures: serde_json::Value,
    ledger: AbandonmentLedger,
    decision: Option<PacingDecision>,
    answers: AnswerTally,
}

/// The pacer's settings for a campaign: progressive dialing never leaves warm-up (one
/// line per free agent session).
pub fn pacing_config(config: &CampaignConfig) -> PacingConfig {
    let mut pacing = PacingConfig::for_campaign(config);
    if config.pacing.mode == PacingMode::Progressive {
        pacing.min_observations = usize::MAX;
    }
    pacing
}

/// How far back the ledger is read at start.
pub fn ledger_since(now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::days(ROLLING_DAYS + 1)
}

impl Actor for PacingActor {
    type Msg = PacingMsg;
    type State = PacingState;
    type Arguments = PacingArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<PacingMsg>,
        args: PacingArgs,
    ) -> Result<PacingState, ActorProcessingErr> {
        let mut ledger = AbandonmentLedger::default();
        for (at, abandoned) in args.history {
            ledger.record(at, abandoned);
        }
        Ok(PacingState {
            pacer: Pacer::new(pacing_config(&args.config)),
            quality: QualityMonitor::for_thresholds(&args.config.quality),
            quality_figures: serde_json::Value::Null,
            config: args.config,
            ledger,
            decision: None,
            answers: AnswerTally::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PacingMsg>,
        msg: PacingMsg,
        state: &mut PacingState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PacingMsg::Ring(ring) => {
                match ring.answered {
                    Some(AnsweredBy::Human) => {
                        state.answers.human += 1;
                        state.ledger.record(ring.at, ring.abandoned);
                    }
                    Some(AnsweredBy::Machine) => state.answers.machine += 1,
                    None => {}
                }
                state.pacer.record_ring(ring);
            }
            PacingMsg::Reclassified(ring) => {
                if ring.answered == Some(AnsweredBy::Human)
                    && state.pacer.reclassify_as_machine(&ring)
                {
                    state.answers.human = state.answers.human.saturating_sub(1);
                    state.answers.machine += 1;
                    state.answers.reclassified += 1;
                    state.ledger.forget(ring.at, ring.abandoned);
                }
            }
            PacingMsg::Finished(call, sample) => {
                if let Some(call) = call {
                    state.pacer.record_call(call);
                }
                // A call whose agent could not be reached is the agent gate's business (it
                // stops dialing and resumes by itself), not a quality judgement.
                let Some(sample) = sample else {
                    return Ok(());
                };
                state.quality.record(sample);
                let verdict = state
                    .quality
                    .verdict(&state.config.quality, &state.config.success);
                match verdict {
                    QualityVerdict::Healthy(figures) => state.quality_figures = figures,
                    QualityVerdict::Pause { reason, figures } => {
                        // The supervisor pauses a campaign that is dialing, and ignores
                        // the request otherwise.
                        state.quality_figures = figures.clone();
                        if let Some(parent) = myself.try_get_supervisor() {
                            let parent: ActorRef<CampaignMsg> = parent.into();
                            parent.cast(CampaignMsg::AutoPause(reason, figures))?;
                        }
                    }
                }
            }
            PacingMsg::Decide(mut input, reply) => {
                input.rolling_abandonment = state.ledger.rolling_rate(input.now);
                let decision = state.pacer.decide(&input);
                state.decision = Some(decision);
                let _ = reply.send(decision);
            }
            PacingMsg::Configure(config) => {
                state.pacer.reconfigure(pacing_config(&config));
                state.quality.resize(config.quality.window);
                state.config = *config;
            }
            PacingMsg::Snapshot(now, reply) => {
                let _ = reply.send(PacingSnapshot {
                    mode: state.config.pacing.mode,
                    decision: state.decision,
                    quality: state.quality_figures.clone(),
                    abandonment: state.ledger.figures(now),
                    answers: state.answers,
                });
            }
        }
        Ok(())
    }
}
