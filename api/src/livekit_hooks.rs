//! `POST /livekit/webhook`: LiveKit's room and participant events. Every request must
//! carry LiveKit's webhook JWT (signed with the project's API key and secret, its `sha256`
//! claim the body's hash), checked by livekit-api's `WebhookReceiver` through media's
//! [`WebhookVerifier`]; anything else is refused with 403 and reaches nothing. Events of
//! Switchboard's rooms (`call-<id>`) go to the [`LiveKitEventSink`] as events of call `id`;
//! events of other rooms are acknowledged and ignored. The default sink stores them and
//! then nudges the call's actor (through the runtime's registry, when it runs in this
//! process): a SIP-mode call learns at once that its callee left or its room finished.
//!
//! The handler's state is `Arc<LiveKitHooks>`: serve it from any router state `S` with
//! `Arc<LiveKitHooks>: FromRef<S>`.

use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use switchboard_actors::EventWriter;
use switchboard_engine::AttemptId;
use switchboard_engine::store::CallEvent;
use switchboard_media::livekit::{LiveKitConfig, WebhookVerifier};

pub use switchboard_media::livekit::{LiveKitCallEvent, LiveKitEventSink};

use crate::problem::Problem;

/// What the webhook endpoint needs: the verifier (none when LiveKit is not configured)
/// and where events go.
pub struct LiveKitHooks {
    verifier: Option<WebhookVerifier>,
    sink: Arc<dyn LiveKitEventSink>,
}

impl fmt::Debug for LiveKitHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveKitHooks")
            .field("enabled", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl LiveKitHooks {
    /// Webhooks signed with `config`'s key and secret, forwarded to `sink`.
    pub fn new(config: &LiveKitConfig, sink: Arc<dyn LiveKitEventSink>) -> LiveKitHooks {
        LiveKitHooks {
            verifier: Some(WebhookVerifier::new(config)),
            sink,
        }
    }

    /// LiveKit is not configured: every webhook is answered 503 and nothing is recorded.
    pub fn disabled() -> LiveKitHooks {
        LiveKitHooks {
            verifier: None,
            sink: Arc::new(IgnoreEvents),
        }
    }

    /// Whether webhooks are accepted.
    pub fn is_enabled(&self) -> bool {
        self.verifier.is_some()
    }
}

/// A sink that drops every event (for [`LiveKitHooks::disabled`]).
struct IgnoreEvents;

impl LiveKitEventSink for IgnoreEvents {
    fn on_event(&self, _call_id: i64, _event: LiveKitCallEvent) {}
}

/// The default sink: records each event as a call event of attempt `call_id`
/// (`livekit.participant_joined`, …, with the event as data), through the event writer in
/// a background task, then tells the attempt's call actor (if it runs in this process) to
/// read it.
#[derive(Clone)]
pub struct StoreEventSink {
    writer: EventWriter,
}

impl StoreEventSink {
    /// Records through this writer.
    pub fn new(writer: EventWriter) -> StoreEventSink {
        StoreEventSink { writer }
    }
}

impl LiveKitEventSink for StoreEventSink {
    fn on_event(&self, call_id: i64, event: LiveKitCallEvent) {
        let writer = self.writer.clone();
        let record = call_event(call_id, &event);
        tokio::spawn(async move {
            if let Err(error) = writer.append_events(vec![record]).await {
                tracing::warn!(call_id, %error, "could not record a livekit event");
            }
            switchboard_actors::call::notify(AttemptId(call_id));
        });
    }
}

/// The call event a LiveKit event is stored as: kind `livekit.<event>`, the time it was
/// received (LiveKit's own `created_at`, in seconds, stays in the data), the event as data.
pub fn call_event(call_id: i64, event: &LiveKitCallEvent) -> CallEvent {
    CallEvent {
        attempt_id: AttemptId(call_id),
        at: switchboard_engine::time::now(),
        kind: event.event_kind(),
        data: serde_json::to_value(event).unwrap_or_default(),
    }
}

/// `POST /livekit/webhook`: a LiveKit webhook (`Authorization: <jwt>`,
/// `Content-Type: application/webhook+json`).
pub async fn livekit_webhook(
    State(hooks): State<Arc<LiveKitHooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let Some(verifier) = &hooks.verifier else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not configured",
            "livekit is not configured",
        ));
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let event = verifier.verify(&body, authorization).map_err(|error| {
        if error.is_forged() {
            tracing::warn!(%error, "refused a livekit webhook");
            Problem::forbidden(error.to_string())
        } else {
            Problem::bad_request("body", error.to_string())
        }
    })?;
    match event.call_id() {
        Some(call_id) => {
            tracing::debug!(call_id, event = event.kind.as_str(), "livekit event");
            hooks.sink.on_event(call_id, event);
        }
        None => {
            tracing::debug!(room = %event.room, event = event.kind.as_str(), "livekit event of a room that is not a call");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use serde_json::json;
    use std::sync::Mutex;
    use std::time::Duration;
    use switchboard_engine::E164;
    use switchboard_engine::campaign::CampaignConfig;
    use switchboard_engine::contact::NewContact;
    use switchboard_engine::store::NewAttempt;
    use switchboard_engine::store::testing::TestDb;
    use switchboard_media::livekit::{LiveKitEventKind, WEBHOOK_CONTENT_TYPE, sign_webhook};

    const KEY: &str = "APIhooks";
    const SECRET: &str = "hooks-secret-0123456789abcdef";

    fn config(secret: &str) -> LiveKitConfig {
        LiveKitConfig::new("http://127.0.0.1:7880", KEY, secret.to_owned().into())
    }

    fn body(room: &str) -> String {
        json!({
            "event": "participant_joined",
            "room": {"sid": "RM_1", "name": room},
            "participant": {"sid": "PA_1", "identity": "callee-1", "kind": "SIP", "state": "ACTIVE"},
            "id": "EV_1",
            "createdAt": "1700000000"
        })
        .to_string()
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(i64, LiveKitCallEvent)>>);

    impl LiveKitEventSink for Recorder {
        fn on_event(&self, call_id: i64, event: LiveKitCallEvent) {
            self.0.lock().unwrap().push((call_id, event));
        }
    }

    /// The handler on a real socket; returns its URL.
    async fn serve(hooks: LiveKitHooks) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/livekit/webhook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/livekit/webhook", post(livekit_webhook))
            .with_state(Arc::new(hooks));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn send(url: &str, body: &str, authorization: Option<&str>) -> u16 {
        let mut request = reqwest::Client::new()
            .post(url)
            .header("content-type", WEBHOOK_CONTENT_TYPE)
            .body(body.to_owned());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn a_signed_webhook_reaches_the_sink_as_an_event_of_its_call() {
        let recorder = Arc::new(Recorder::default());
        let url = serve(LiveKitHooks::new(&config(SECRET), recorder.clone())).await;
        let body = body("call-42");
        let token = sign_webhook(&config(SECRET), body.as_bytes()).unwrap();
        assert_eq!(send(&url, &body, Some(&token)).await, 204);
        let events = recorder.0.lock().unwrap().clone();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, 42);
        assert_eq!(events[0].1.kind, LiveKitEventKind::ParticipantJoined);
    }

    #[tokio::test]
    async fn forged_webhooks_are_refused_with_403_and_reach_nothing() {
        let recorder = Arc::new(Recorder::default());
        let url = serve(LiveKitHooks::new(&config(SECRET), recorder.clone())).await;
        let body = body("call-42");
        let signed = sign_webhook(&config(SECRET), body.as_bytes()).unwrap();
        let forged = sign_webhook(&config("another-secret"), body.as_bytes()).unwrap();
        assert_eq!(send(&url, &body, None).await, 403, "no authorization");
        assert_eq!(
            send(&url, &body, Some(&forged)).await,
            403,
            "another secret"
        );
        let tampered = body.replace("call-42", "call-43");
        assert_eq!(
            send(&url, &tampered, Some(&signed)).await,
            403,
            "tampered body"
        );
        assert!(recorder.0.lock().unwrap().is_empty());
        let not_an_event = "[]";
        let signed_garbage = sign_webhook(&config(SECRET), not_an_event.as_bytes()).unwrap();
        assert_eq!(send(&url, not_an_event, Some(&signed_garbage)).await, 400);
    }

    #[tokio::test]
    async fn events_of_other_rooms_are_acknowledged_and_ignored() {
        let recorder = Arc::new(Recorder::default());
        let url = serve(LiveKitHooks::new(&config(SECRET), recorder.clone())).await;
        let body = body("lobby");
        let token = sign_webhook(&config(SECRET), body.as_bytes()).unwrap();
        assert_eq!(send(&url, &body, Some(&token)).await, 204);
        assert!(recorder.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_livekit_configured_webhooks_are_unavailable() {
        let url = serve(LiveKitHooks::disabled()).await;
        let body = body("call-42");
        let token = sign_webhook(&config(SECRET), body.as_bytes()).unwrap();
        assert_eq!(send(&url, &body, Some(&token)).await, 503);
    }

    /// One attempt in a fresh database.
    async fn seed_attempt(store: &switchboard_engine::store::Store) -> AttemptId {
        let tenant = store.create_tenant("livekit").await.unwrap().id;
        let config = CampaignConfig::from_json(json!({
            "name": "LiveKit calls",
            "audience": {"query": {}},
            "agent": {"mode": "livekit", "agent_name": "outbound-sales"},
            "script": {"template": "Hello"},
        }))
        .unwrap();
        let campaign = store.create_campaign(tenant, &config).await.unwrap();
        let contact = NewContact::new(E164::parse("+14155550001", None).unwrap());
        store
            .upsert_contacts(tenant, std::slice::from_ref(&contact))
            .await
            .unwrap();
        let contact = store
            .contact_by_phone(tenant, &contact.phone)
            .await
            .unwrap()
            .unwrap();
        store
            .enqueue_contacts(campaign.id, &[contact.id], 0)
            .await
            .unwrap();
        let attempt = store
            .reserve_attempt(&NewAttempt {
                tenant_id: tenant,
                campaign_id: campaign.id,
                contact_id: contact.id,
                phone: contact.phone.clone(),
                attempts_seen: 0,
            })
            .await
            .unwrap();
        attempt.id
    }

    #[tokio::test]
    async fn the_store_sink_records_livekit_events_as_call_events() {
        let db = TestDb::sqlite().await;
        let attempt = seed_attempt(db.store()).await;
        let url = serve(LiveKitHooks::new(
            &config(SECRET),
            Arc::new(StoreEventSink::new(EventWriter::start(
                db.store().clone(),
                switchboard_actors::WriterSettings::default(),
            ))),
        ))
        .await;
        let body = body(&format!("call-{}", attempt.0));
        let token = sign_webhook(&config(SECRET), body.as_bytes()).unwrap();
        assert_eq!(send(&url, &body, Some(&token)).await, 204);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let events = loop {
            let events = db.store().attempt_events(attempt).await.unwrap();
            if !events.is_empty() || tokio::time::Instant::now() > deadline {
                break events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "livekit.participant_joined");
        assert_eq!(events[0].data["participant"]["identity"], "callee-1");
        assert_eq!(events[0].data["created_at"], 1_700_000_000);
    }
}
