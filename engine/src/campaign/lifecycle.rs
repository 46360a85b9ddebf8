//! The campaign lifecycle: statuses, who may move a campaign between them, and the one
//! pure function, [`transition`], that decides every change.
//!
//! ```text
//! draft ⇄ scheduled → active ⇄ paused → completed
//!   any non-terminal → stopped (user, final)   any non-terminal → failed (system)
//! ```

use super::either;
use serde::{Deserialize, Serialize};

str_enum! {
    /// Where a campaign is in its life.
    pub enum CampaignStatus ("campaign status") {
        /// Being configured; not yet checked for readiness.
        Draft = "draft",
        /// Configured and waiting for its start time or a manual start.
        Scheduled = "scheduled",
        /// Dialing.
        Active = "active",
        /// Not dialing new calls (by the user, a quality auto-pause or repeated failures).
        Paused = "paused",
        /// Every contact done or the end time passed. Final.
        Completed = "completed",
        /// Ended by a critical error. Final.
        Failed = "failed",
        /// Stopped by the user. Final.
        Stopped = "stopped",
    }
}

impl CampaignStatus {
    /// Completed, failed or stopped: nothing leaves these.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Stopped)
    }

    /// Active or paused: the campaign owns a supervisor (and its in-flight calls).
    pub fn is_running(self) -> bool {
        matches!(self, Self::Active | Self::Paused)
    }
}

str_enum! {
    /// Who or what asked for a status change; stored with it.
    pub enum Cause ("cause") {
        /// A person, through the API.
        User = "user",
        /// The scheduler: start and end times, all contacts done.
        Scheduler = "scheduler",
        /// The pacer: a quality auto-pause.
        Pacing = "pacing",
        /// The engine: repeated failures or a critical error.
        System = "system",
    }
}

impl Cause {
    /// How messages name the cause: `the user`, `the pacer`.
    fn who(self) -> &'static str {
        match self {
            Cause::User => "the user",
            Cause::Scheduler => "the scheduler",
            Cause::Pacing => "the pacer",
            Cause::System => "the system",
        }
    }
}

/// An accepted status change, to be stored with its cause and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Status before.
    pub from: CampaignStatus,
    /// Status after.
    pub to: CampaignStatus,
    /// Who asked.
    pub cause: Cause,
    /// Why, in words (for a quality pause: the figures that triggered it).
    pub reason: String,
}

/// A refused status change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    /// No cause may make this change.
    #[error("cannot move a campaign from {from} to {to}: {}", illegal_hint(*.from, *.to))]
    Illegal {
        /// Current status.
        from: CampaignStatus,
        /// Requested status.
        to: CampaignStatus,
    },
    /// The change exists, but not for this cause.
    #[error(
        "{} cannot move a campaign from {from} to {to}: only {} can",
        .cause.who(),
        who_may(*.from, *.to)
    )]
    NotAllowedFor {
        /// Current status.
        from: CampaignStatus,
        /// Requested status.
        to: CampaignStatus,
        /// Who asked.
        cause: Cause,
    },
}

/// Which causes may move a campaign from `from` to `to`; `None` when no cause may.
pub fn allowed_causes(from: CampaignStatus, to: CampaignStatus) -> Option<&'static [Cause]> {
    use CampaignStatus::*;
    use Cause::*;
    if from.is_terminal() || from == to {
        return None;
    }
    match (from, to) {
        (_, Stopped) => Some(&[User]),
        (_, Failed) => Some(&[System]),
        (Draft, Scheduled) | (Scheduled, Draft) | (Paused, Active) => Some(&[User]),
        (Scheduled, Active) => Some(&[Scheduler, User]),
        (Active, Paused) => Some(&[User, Pacing, System]),
        (Active | Paused, Completed) => Some(&[Scheduler, System]),
        _ => None,
    }
}

/// Decides a status change: the [`Transition`] to store, or why it is refused.
pub fn transition(
    from: CampaignStatus,
    to: CampaignStatus,
    cause: Cause,
    reason: impl Into<String>,
) -> Result<Transition, TransitionError> {
    match allowed_causes(from, to) {
        None => Err(TransitionError::Illegal { from, to }),
        Some(causes) if !causes.contains(&cause) => {
            Err(TransitionError::NotAllowedFor { from, to, cause })
        }
        Some(_) => Ok(Transition {
            from,
            to,
            cause,
            reason: reason.into(),
        }),
    }
}

/// Why no cause may make a change, for the error message.
fn illegal_hint(from: CampaignStatus, to: CampaignStatus) -> String {
    use CampaignStatus::*;
    if from == to {
        return format!("it is already {from}");
    }
    if from.is_terminal() {
        return format!("{from} is final");
    }
    match (from, to) {
        (Draft, Active) => "schedule it first".into(),
        (_, Paused) => "only an active campaign can be paused".into(),
        (_, Completed) => "it has not started".into(),
        (_, Draft | Scheduled) => "it has already started".into(),
        _ => "no such change".into(),
    }
}

/// The causes allowed for a change, as words: `the scheduler or the user`.
fn who_may(from: CampaignStatus, to: CampaignStatus) -> String {
    let causes = allowed_causes(from, to).unwrap_or(&[]);
    either(&causes.iter().map(|c| c.who()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use CampaignStatus::*;
    use Cause::*;

    /// Every allowed change, written out independently of `allowed_causes`.
    const ALLOWED: &[(CampaignStatus, CampaignStatus, Cause)] = &[
        (Draft, Scheduled, User),
        (Scheduled, Draft, User),
        (Scheduled, Active, Scheduler),
        (Scheduled, Active, User),
        (Active, Paused, User),
        (Active, Paused, Pacing),
        (Active, Paused, System),
        (Paused, Active, User),
        (Active, Completed, Scheduler),
        (Active, Completed, System),
        (Paused, Completed, Scheduler),
        (Paused, Completed, System),
        (Draft, Stopped, User),
        (Scheduled, Stopped, User),
        (Active, Stopped, User),
        (Paused, Stopped, User),
        (Draft, Failed, System),
        (Scheduled, Failed, System),
        (Active, Failed, System),
        (Paused, Failed, System),
    ];

    #[test]
    fn every_status_cause_combination_matches_the_table() {
        let mut accepted = 0;
        for &from in CampaignStatus::ALL {
            for &to in CampaignStatus::ALL {
                let pair_exists = ALLOWED.iter().any(|&(f, t, _)| (f, t) == (from, to));
                for &cause in Cause::ALL {
                    let result = transition(from, to, cause, "test");
                    if ALLOWED.contains(&(from, to, cause)) {
                        let expected = Transition {
                            from,
                            to,
                            cause,
                            reason: "test".into(),
                        };
                        assert_eq!(result, Ok(expected));
                        accepted += 1;
                    } else if pair_exists {
                        assert_eq!(
                            result,
                            Err(TransitionError::NotAllowedFor { from, to, cause })
                        );
                    } else {
                        assert_eq!(result, Err(TransitionError::Illegal { from, to }));
                    }
                }
            }
        }
        assert_eq!(accepted, ALLOWED.len());
        assert_eq!(
            CampaignStatus::ALL.len() * CampaignStatus::ALL.len() * Cause::ALL.len(),
            196
        );
    }

    #[test]
    fn a_stopped_campaign_cannot_be_resumed() {
        let e = transition(Stopped, Active, User, "resume").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot move a campaign from stopped to active: stopped is final"
        );
    }

    #[test]
    fn a_draft_must_be_scheduled_before_it_runs() {
        let e = transition(Draft, Active, User, "go").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot move a campaign from draft to active: schedule it first"
        );
    }

    #[test]
    fn a_quality_pause_is_lifted_only_by_the_user() {
        assert!(transition(Active, Paused, Pacing, "success rate 0.02 < 0.10").is_ok());
        let e = transition(Paused, Active, Pacing, "recovered").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the pacer cannot move a campaign from paused to active: only the user can"
        );
        let e = transition(Paused, Active, Scheduler, "window opened").unwrap_err();
        assert!(
            e.to_string().starts_with("the scheduler cannot move"),
            "{e}"
        );
    }

    #[test]
    fn only_the_user_stops_and_only_the_system_fails_a_campaign() {
        let e = transition(Active, Stopped, Scheduler, "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the scheduler cannot move a campaign from active to stopped: only the user can"
        );
        let e = transition(Active, Failed, User, "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the user cannot move a campaign from active to failed: only the system can"
        );
        let e = transition(Scheduled, Active, Pacing, "x").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("only the scheduler or the user can"),
            "{e}"
        );
    }

    #[test]
    fn same_status_and_backward_moves_are_refused_with_a_reason() {
        let e = transition(Active, Active, User, "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot move a campaign from active to active: it is already active"
        );
        let e = transition(Paused, Draft, User, "edit").unwrap_err();
        assert!(e.to_string().ends_with("it has already started"), "{e}");
        let e = transition(Scheduled, Paused, User, "x").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("only an active campaign can be paused"),
            "{e}"
        );
        let e = transition(Scheduled, Completed, Scheduler, "x").unwrap_err();
        assert!(e.to_string().ends_with("it has not started"), "{e}");
    }

    #[test]
    fn terminal_and_running_statuses_are_classified() {
        let terminal: Vec<_> = CampaignStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [&Completed, &Failed, &Stopped]);
        let running: Vec<_> = CampaignStatus::ALL
            .iter()
            .filter(|s| s.is_running())
            .collect();
        assert_eq!(running, [&Active, &Paused]);
    }

    #[test]
    fn statuses_and_causes_round_trip_through_text_and_json() {
        for s in CampaignStatus::ALL {
            assert_eq!(s.as_str().parse::<CampaignStatus>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for c in Cause::ALL {
            assert_eq!(c.as_str().parse::<Cause>(), Ok(*c));
            assert_eq!(
                serde_json::from_str::<Cause>(&format!("\"{c}\"")).unwrap(),
                *c
            );
        }
        assert!("Active".parse::<CampaignStatus>().is_err());
    }
}
