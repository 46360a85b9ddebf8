//! What LiveKit tells about one SIP call, read the same way from its webhooks (as stored
//! call events) and from its list of a room's participants.

use chrono::{DateTime, Utc};
use switchboard_engine::store::CallEvent;
use switchboard_media::livekit::{
    LiveKitCallEvent, LiveKitError, LiveKitEventKind, LiveKitParticipant,
};

/// What LiveKit told about one call, from its webhooks and its list of participants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The callee's SIP call became active (answered).
    pub answered_at: Option<DateTime<Utc>>,
    /// LiveKit's SIP call id (`SCL_…`), when seen.
    pub sip_call_id: Option<String>,
    /// An agent was in the room by then.
    pub agent_at: Option<DateTime<Utc>>,
    /// The callee left or the room finished, and how (`participant_left`, …).
    pub ended: Option<(DateTime<Utc>, String)>,
    /// The room no longer exists (LiveKit said so).
    pub room_gone: bool,
    /// The room exists and the callee is not in it.
    pub callee_absent: bool,
}

fn earliest(a: Option<DateTime<Utc>>, b: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(a.map_or(b, |a| a.min(b)))
}

fn is_callee(p: &LiveKitParticipant) -> bool {
    p.kind == "sip"
}

/// A SIP participant whose call is active: answered (LiveKit adds it while dialing, with
/// `sip.callStatus` moving to `active` at the answer).
fn answered(p: &LiveKitParticipant) -> bool {
    is_callee(p) && p.attributes.get("sip.callStatus").map(String::as_str) == Some("active")
}

impl Observed {
    /// Reads one webhook event received at `at`.
    pub fn event(&mut self, at: DateTime<Utc>, event: &LiveKitCallEvent) {
        let participant = event.participant.as_ref();
        match (&event.kind, participant) {
            (LiveKitEventKind::ParticipantJoined, Some(p)) if p.kind == "agent" => {
                self.agent_at = earliest(self.agent_at, at);
            }
            (LiveKitEventKind::ParticipantJoined, Some(p)) if answered(p) => {
                self.answered_at = earliest(self.answered_at, at);
                self.sip_call_id = p.attributes.get("sip.callID").cloned();
            }
            (
                LiveKitEventKind::ParticipantLeft | LiveKitEventKind::ParticipantConnectionAborted,
                Some(p),
            ) if is_callee(p) => self.end(at, event.kind.as_str()),
            (LiveKitEventKind::RoomFinished, _) => self.end(at, "room_finished"),
            _ => {}
        }
    }

    fn end(&mut self, at: DateTime<Utc>, how: &str) {
        if self.ended.as_ref().is_none_or(|(first, _)| at < *first) {
            self.ended = Some((at, how.to_owned()));
        }
    }

    /// Reads the stored `livekit.*` events of an attempt.
    pub fn from_events(events: &[CallEvent]) -> Observed {
        let mut observed = Observed::default();
        for stored in events.iter().filter(|e| e.kind.starts_with("livekit.")) {
            if let Ok(event) = serde_json::from_value::<LiveKitCallEvent>(stored.data.clone()) {
                observed.event(stored.at, &event);
            }
        }
        observed
    }

    /// Reads LiveKit's answer to "who is in the room" at `now`.
    pub fn room(
        &mut self,
        now: DateTime<Utc>,
        room: Result<Vec<LiveKitParticipant>, LiveKitError>,
    ) {
        match room {
            Ok(participants) => {
                if participants.iter().any(|p| p.kind == "agent") {
                    self.agent_at = earliest(self.agent_at, now);
                }
                match participants.iter().find(|p| answered(p)) {
                    Some(callee) => {
                        self.answered_at = earliest(self.answered_at, now);
                        if let Some(id) = callee.attributes.get("sip.callID") {
                            self.sip_call_id = Some(id.clone());
                        }
                    }
                    None => self.callee_absent = !participants.iter().any(is_callee),
                }
            }
            Err(e) if e.is_not_found() => self.room_gone = true,
            Err(e) => tracing::debug!(error = %e, "livekit did not say who is in the room"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use switchboard_engine::AttemptId;

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_750_000_000_000 + ms).unwrap_or_default()
    }

    fn participant(kind: &str, status: Option<&str>) -> LiveKitParticipant {
        let mut attributes = BTreeMap::new();
        if let Some(status) = status {
            attributes.insert("sip.callStatus".to_owned(), status.to_owned());
            attributes.insert("sip.callID".to_owned(), "SCL_1".to_owned());
        }
        LiveKitParticipant {
            identity: format!("{kind}-1"),
            kind: kind.to_owned(),
            state: "active".into(),
            attributes,
            ..LiveKitParticipant::default()
        }
    }

    fn event(kind: LiveKitEventKind, p: Option<LiveKitParticipant>) -> LiveKitCallEvent {
        LiveKitCallEvent {
            kind,
            id: "EV_1".into(),
            created_at: 0,
            room: "call-7".into(),
            room_sid: String::new(),
            participant: p,
        }
    }

    #[test]
    fn the_agent_joining_and_the_callee_answering_and_leaving_are_read_from_webhooks() {
        let mut seen = Observed::default();
        seen.event(
            t(10),
            &event(
                LiveKitEventKind::ParticipantJoined,
                Some(participant("agent", None)),
            ),
        );
        seen.event(
            t(500),
            &event(
                LiveKitEventKind::ParticipantJoined,
                Some(participant("sip", Some("active"))),
            ),
        );
        seen.event(
            t(9000),
            &event(
                LiveKitEventKind::ParticipantLeft,
                Some(participant("agent", None)),
            ),
        );
        assert_eq!(seen.agent_at, Some(t(10)));
        assert_eq!(seen.answered_at, Some(t(500)));
        assert_eq!(seen.sip_call_id.as_deref(), Some("SCL_1"));
        assert_eq!(seen.ended, None, "the agent leaving does not end the call");
        seen.event(
            t(9500),
            &event(
                LiveKitEventKind::ParticipantLeft,
                Some(participant("sip", Some("active"))),
            ),
        );
        seen.event(t(9600), &event(LiveKitEventKind::RoomFinished, None));
        assert_eq!(seen.ended, Some((t(9500), "participant_left".to_owned())));
    }

    #[test]
    fn a_sip_participant_still_dialing_is_not_an_answer() {
        let mut seen = Observed::default();
        seen.event(
            t(5),
            &event(
                LiveKitEventKind::ParticipantJoined,
                Some(participant("sip", Some("dialing"))),
            ),
        );
        assert_eq!(seen.answered_at, None);
        seen.room(t(50), Ok(vec![participant("sip", Some("ringing"))]));
        assert_eq!((seen.answered_at, seen.callee_absent), (None, false));
    }

    #[test]
    fn the_room_tells_presence_absence_and_its_own_end() {
        let mut seen = Observed::default();
        seen.room(t(100), Ok(vec![participant("agent", None)]));
        assert_eq!(seen.agent_at, Some(t(100)));
        assert!(seen.callee_absent && !seen.room_gone);
        let mut gone = Observed::default();
        let not_found = LiveKitError::Api {
            code: "not_found".into(),
            message: "requested room does not exist".into(),
            meta: BTreeMap::new(),
        };
        gone.room(t(100), Err(not_found));
        assert!(gone.room_gone);
        let mut unknown = Observed::default();
        unknown.room(t(100), Err(LiveKitError::Transport("refused".into())));
        assert_eq!(unknown, Observed::default(), "no answer tells nothing");
    }

    #[test]
    fn stored_events_are_read_back_as_webhooks() {
        let joined = event(
            LiveKitEventKind::ParticipantJoined,
            Some(participant("agent", None)),
        );
        let stored = vec![
            CallEvent {
                attempt_id: AttemptId(7),
                at: t(20),
                kind: "livekit.participant_joined".into(),
                data: serde_json::to_value(&joined).unwrap_or_default(),
            },
            CallEvent {
                attempt_id: AttemptId(7),
                at: t(30),
                kind: "carrier.sip.dialing".into(),
                data: json!({}),
            },
        ];
        assert_eq!(Observed::from_events(&stored).agent_at, Some(t(20)));
    }
}
