//! `GET /admin/events`: the admin live view's changes as Server-Sent Events. Each connected
//! client compares the runtime's snapshots every half second with what it saw before and
//! sends what changed:
//!
//! - `campaign`: `{campaign_id, tenant_id, change: "running" | "dialing" | "not_dialing" | "gone"}`
//! - `call`: `{attempt_id, campaign_id, contact_id, change: "started" | "answered" | "ended"}`
//!
//! A client starts from nothing, so it first receives every running campaign and live call.
//! Browsers' `EventSource` cannot set headers: this route (only this one) also accepts the
//! admin key as the `key` query parameter.

use crate::app::AppState;
use crate::auth::{AdminAuth, Auth, hash_key};
use crate::problem::Problem;
use crate::rest::Params;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;
use switchboard_actors::campaign::CampaignSnapshot;
use switchboard_engine::store::ApiKeyScope;
use switchboard_engine::{AttemptId, CampaignId};

/// How often a client's view is compared with the runtime.
pub const POLL: Duration = Duration::from_millis(500);

/// What a client last saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Seen {
    campaigns: HashMap<CampaignId, bool>,
    calls: HashMap<AttemptId, (CampaignId, bool)>,
}

/// One change: the event's name (`campaign` or `call`) and its data.
pub type Change = (&'static str, serde_json::Value);

/// The changes that turn `before` into `now`, and the new view.
pub fn diff(before: &Seen, now: &[CampaignSnapshot]) -> (Vec<Change>, Seen) {
    let mut events = Vec::new();
    let mut seen = Seen::default();
    for s in now {
        let change = match before.campaigns.get(&s.campaign_id) {
            None => Some("running"),
            Some(&dialing) if dialing != s.dialing => {
                Some(if s.dialing { "dialing" } else { "not_dialing" })
            }
            Some(_) => None,
        };
        if let Some(change) = change {
            events.push(event(
                "campaign",
                json!({"campaign_id": s.campaign_id, "tenant_id": s.tenant_id, "change": change,
                       "dialing": s.dialing, "live_calls": s.live_calls}),
            ));
        }
        seen.campaigns.insert(s.campaign_id, s.dialing);
        for call in &s.calls {
            let answered = call.answered_at.is_some();
            let data = |change: &str| {
                json!({"attempt_id": call.attempt_id, "campaign_id": s.campaign_id,
                       "contact_id": call.contact_id, "change": change})
            };
            match before.calls.get(&call.attempt_id) {
                None => {
                    events.push(event("call", data("started")));
                    if answered {
                        events.push(event("call", data("answered")));
                    }
                }
                Some(&(_, was)) if !was && answered => events.push(event("call", data("answered"))),
                Some(_) => {}
            }
            seen.calls
                .insert(call.attempt_id, (s.campaign_id, answered));
        }
    }
    for (attempt, (campaign, _)) in &before.calls {
        if !seen.calls.contains_key(attempt) {
            events.push(event(
                "call",
                json!({"attempt_id": attempt, "campaign_id": campaign, "change": "ended"}),
            ));
        }
    }
    for campaign in before.campaigns.keys() {
        if !seen.campaigns.contains_key(campaign) {
            events.push(event(
                "campaign",
                json!({"campaign_id": campaign, "change": "gone"}),
            ));
        }
    }
    (events, seen)
}

fn event(name: &'static str, data: serde_json::Value) -> Change {
    (name, data)
}

/// The admin caller of the event stream: the usual bearer key, or `?key=`.
pub struct EventsAuth;

impl FromRequestParts<AppState> for EventsAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let params = Params::from_request_parts(parts, state).await?;
        let Some(key) = params.get("key") else {
            AdminAuth::from_request_parts(parts, state).await?;
            return Ok(EventsAuth);
        };
        let record = state
            .store
            .api_key_by_hash(&hash_key(key))
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown or revoked api key"))?;
        let auth = Auth {
            tenant: record.tenant_id,
            key: record.id,
            scope: record.scope,
        };
        if auth.scope != ApiKeyScope::Admin {
            return Err(Problem::forbidden(
                "this route needs an api key with the admin scope",
            ));
        }
        Ok(EventsAuth)
    }
}

/// GET /admin/events.
pub async fn events(
    State(state): State<AppState>,
    _auth: EventsAuth,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (state, Seen::default(), VecDeque::<Event>::new(), true);
    let stream = futures_util::stream::unfold(
        start,
        |(state, mut seen, mut pending, mut first)| async move {
            loop {
                if let Some(event) = pending.pop_front() {
                    return Some((Ok(event), (state, seen, pending, first)));
                }
                if !first {
                    tokio::time::sleep(POLL).await;
                }
                first = false;
                let Some(runtime) = &state.runtime else {
                    continue;
                };
                let Ok(now) = runtime.snapshots().await else {
                    continue;
                };
                let (events, next) = diff(&seen, &now);
                seen = next;
                pending.extend(
                    events
                        .into_iter()
                        .map(|(name, data)| Event::default().event(name).data(data.to_string())),
                );
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use switchboard_actors::campaign::LiveCall;
    use switchboard_engine::{ContactId, TenantId};

    fn snapshot(dialing: bool, calls: &[(i64, bool)]) -> CampaignSnapshot {
        CampaignSnapshot {
            campaign_id: CampaignId(7),
            tenant_id: TenantId(1),
            live_calls: calls.len(),
            bridged_calls: 0,
            dialing,
            dialed: 0,
            skipped: HashMap::new(),
            pacing: None,
            calls: calls
                .iter()
                .map(|&(id, answered)| LiveCall {
                    attempt_id: AttemptId(id),
                    contact_id: ContactId(id),
                    started_at: Utc::now(),
                    answered_at: answered.then(Utc::now),
                })
                .collect(),
        }
    }

    fn changes(events: &[Change]) -> Vec<String> {
        events
            .iter()
            .map(|(name, data)| {
                let id = data.get("attempt_id").unwrap_or(&data["campaign_id"]);
                format!("{name} {id} {}", data["change"].as_str().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_client_sees_campaigns_and_calls_start_answer_and_end() {
        let (events, seen) = diff(&Seen::default(), &[snapshot(true, &[(1, false)])]);
        assert_eq!(changes(&events), ["campaign 7 running", "call 1 started"]);

        let (events, seen) = diff(&seen, &[snapshot(true, &[(1, true), (2, true)])]);
        assert_eq!(
            changes(&events),
            ["call 1 answered", "call 2 started", "call 2 answered"]
        );

        let (events, seen) = diff(&seen, &[snapshot(true, &[(1, true), (2, true)])]);
        assert!(events.is_empty(), "nothing changed: {:?}", changes(&events));

        let (events, seen) = diff(&seen, &[snapshot(false, &[(2, true)])]);
        assert_eq!(changes(&events), ["campaign 7 not_dialing", "call 1 ended"]);

        let (events, _) = diff(&seen, &[]);
        assert_eq!(changes(&events), ["call 2 ended", "campaign 7 gone"]);
    }
}
