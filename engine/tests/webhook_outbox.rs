//! The webhook outbox, on SQLite and on PostgreSQL: events are written with the change that
//! causes them and only for tenants that subscribe; deliveries are claimed under a lease,
//! retried with backoff and logged.

use chrono::{TimeDelta, Utc};
use serde_json::json;
use std::time::Duration;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause, Outcome};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CarrierUpdate, DeliveryStatus, DueDelivery,
    NewAttempt, OutcomeReport, SendReport, Store,
};
use switchboard_engine::webhook::{NewWebhook, RetrySchedule};
use switchboard_engine::{E164, Error, TenantId, WebhookId, conformance};

conformance!(
    a_campaign_transition_is_an_event_only_for_a_subscribed_tenant,
    a_pause_by_the_pacer_is_also_an_auto_pause,
    an_answered_call_completes_once_and_waits_for_its_agents_outcome,
    an_unanswered_call_completes_at_once,
    opting_out_is_an_event_once,
    a_failed_send_is_retried_with_growing_backoff_then_given_up,
    a_send_to_a_refused_destination_fails_the_delivery_at_once,
    a_claimed_delivery_is_not_claimed_again_while_its_lease_runs,
    a_webhook_is_validated_and_deleting_it_drops_its_deliveries,
);

async fn tenant(store: &Store, name: &str) -> TenantId {
    store.create_tenant(name).await.unwrap().id
}

async fn subscribe(store: &Store, t: TenantId, events: &[&str]) -> WebhookId {
    let hook = NewWebhook {
        url: "https://hooks.example.com/switchboard".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        description: "crm".into(),
    };
    store
        .create_webhook(t, &hook, "whsec_test")
        .await
        .unwrap()
        .id
}

fn config(name: &str) -> CampaignConfig {
    CampaignConfig::from_json(json!({
        "name": name,
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello {name|there}."}
    }))
    .unwrap()
}

/// Everything due now (a far lease, so a second claim in the same test sees nothing).
async fn due(store: &Store) -> Vec<DueDelivery> {
    due_at(store, Utc::now()).await
}

async fn due_at(store: &Store, at: chrono::DateTime<Utc>) -> Vec<DueDelivery> {
    store
        .claim_due_deliveries(at, Duration::from_secs(60), 100)
        .await
        .unwrap()
}

async fn a_campaign_transition_is_an_event_only_for_a_subscribed_tenant(store: &Store) {
    let listening = tenant(store, "listening").await;
    let silent = tenant(store, "silent").await;
    let hook = subscribe(store, listening, &["campaign.status_changed"]).await;
    let mine = store
        .create_campaign(listening, &config("Mine"))
        .await
        .unwrap();
    let theirs = store
        .create_campaign(silent, &config("Theirs"))
        .await
        .unwrap();
    for (t, c) in [(listening, mine.id), (silent, theirs.id)] {
        store
            .transition_campaign(t, c, CampaignStatus::Scheduled, Cause::User, "ready", None)
            .await
            .unwrap();
    }
    // A refused transition changes nothing and says nothing.
    assert!(
        store
            .transition_campaign(
                listening,
                mine.id,
                CampaignStatus::Completed,
                Cause::User,
                "no",
                None
            )
            .await
            .is_err()
    );
    let sent = due(store).await;
    assert_eq!(
        sent.len(),
        1,
        "one event, for the subscribed tenant: {sent:?}"
    );
    assert_eq!(sent[0].webhook_id, hook);
    assert_eq!(sent[0].event, "campaign.status_changed");
    assert_eq!(sent[0].url, "https://hooks.example.com/switchboard");
    assert_eq!(sent[0].secret, "whsec_test");
    let data = &sent[0].payload;
    assert_eq!(data["campaign_id"], json!(mine.id));
    assert_eq!(
        (data["from"].as_str(), data["to"].as_str()),
        (Some("draft"), Some("scheduled"))
    );
    assert_eq!(
        (data["cause"].as_str(), data["reason"].as_str()),
        (Some("user"), Some("ready"))
    );
}

async fn a_pause_by_the_pacer_is_also_an_auto_pause(store: &Store) {
    let t = tenant(store, "t").await;
    subscribe(store, t, &["campaign.auto_paused"]).await;
    let c = store.create_campaign(t, &config("Spring")).await.unwrap();
    let steps = [
        (CampaignStatus::Scheduled, Cause::User, "ready", None),
        (CampaignStatus::Active, Cause::User, "go", None),
        (CampaignStatus::Paused, Cause::User, "lunch", None),
        (CampaignStatus::Active, Cause::User, "back", None),
        (
            CampaignStatus::Paused,
            Cause::Pacing,
            "quality",
            Some(json!({"success_rate": 0.01})),
        ),
    ];
    for (to, cause, reason, detail) in steps {
        store
            .transition_campaign(t, c.id, to, cause, reason, detail)
            .await
            .unwrap();
    }
    let sent = due(store).await;
    let events: Vec<_> = sent
        .iter()
        .map(|d| (d.event.as_str(), d.payload["reason"].clone()))
        .collect();
    assert_eq!(
        events,
        [("campaign.auto_paused", json!("quality"))],
        "the user's pause is not an auto-pause"
    );
    assert_eq!(sent[0].payload["detail"], json!({"success_rate": 0.01}));
}

async fn attempt(store: &Store, t: TenantId) -> AttemptRecord {
    let campaign = store.create_campaign(t, &config("Calls")).await.unwrap();
    let ada = store
        .upsert_contact(
            t,
            &NewContact::new(E164::parse("+14155550001", None).unwrap()),
        )
        .await
        .unwrap();
    store
        .enqueue_contacts(campaign.id, &[ada.id], 0)
        .await
        .unwrap();
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: t,
            campaign_id: campaign.id,
            contact_id: ada.id,
            phone: ada.phone,
            attempts_seen: 0,
        })
        .await
        .unwrap()
}

fn callback(status: AttemptStatus, carrier: &str) -> CarrierUpdate {
    CarrierUpdate {
        carrier_call_id: Some("CA1".into()),
        status: Some(status),
        result: (status == AttemptStatus::Ended).then(|| "completed".to_owned()),
        answered_by: (status == AttemptStatus::Answered).then(|| "human".to_owned()),
        sequence: None,
        carrier_status: carrier.into(),
        at: switchboard_engine::time::now(),
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    }
}

async fn an_answered_call_completes_once_and_waits_for_its_agents_outcome(store: &Store) {
    let t = tenant(store, "t").await;
    subscribe(store, t, &["call.completed"]).await;
    let a = attempt(store, t).await;
    for (status, name) in [
        (AttemptStatus::Ringing, "ringing"),
        (AttemptStatus::Answered, "in-progress"),
        (AttemptStatus::Ended, "completed"),
        (AttemptStatus::Ended, "completed"),
    ] {
        store
            .apply_carrier_update(a.id, &callback(status, name))
            .await
            .unwrap();
    }
    assert!(due(store).await.is_empty(), "held for the agent's outcome");
    let report = OutcomeReport {
        call_id: None,
        outcome: Outcome::Interested,
        notes: None,
        callback_at: None,
        transcript: None,
    };
    store.record_outcome(a.id, &report).await.unwrap();
    let sent = due(store).await;
    assert_eq!(
        sent.len(),
        1,
        "one event although the end was reported twice"
    );
    let data = &sent[0].payload;
    assert_eq!(sent[0].event, "call.completed");
    assert_eq!(data["call_id"], json!(a.id));
    assert_eq!(data["result"], json!("completed"));
    assert_eq!(
        data["outcome"],
        json!("interested"),
        "filled in by the outcome"
    );
    assert_eq!(data["answered_by"], json!("human"));
}

async fn an_unanswered_call_completes_at_once(store: &Store) {
    let t = tenant(store, "t").await;
    subscribe(store, t, &["call.completed", "contact.opted_out"]).await;
    let a = attempt(store, t).await;
    let failed = AttemptUpdate {
        status: Some(AttemptStatus::Ended),
        result: Some("failed".into()),
        ended_at: Some(Utc::now()),
        ..Default::default()
    };
    store.update_attempt(a.id, &failed).await.unwrap();
    store.update_attempt(a.id, &failed).await.unwrap();
    let sent = due(store).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].payload["result"], json!("failed"));
    assert_eq!(sent[0].payload["outcome"], json!(null));
}

async fn opting_out_is_an_event_once(store: &Store) {
    let t = tenant(store, "t").await;
    subscribe(store, t, &["contact.opted_out"]).await;
    let a = attempt(store, t).await;
    let now = Some(Utc::now());
    store.set_opted_out(t, a.contact_id, now).await.unwrap();
    store.set_opted_out(t, a.contact_id, now).await.unwrap();
    let sent = due(store).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].payload["source"], json!("api"));
    assert_eq!(sent[0].payload["phone"], json!("+14155550001"));
    // Opted back in (a suppression is lifted only with a reason), then out by the
    // agent's do_not_call outcome.
    let phone = switchboard_engine::E164::parse("+14155550001", None).unwrap();
    store
        .remove_suppression(t, &phone, "test", "asked to be called again")
        .await
        .unwrap();
    let report = OutcomeReport {
        call_id: None,
        outcome: Outcome::DoNotCall,
        notes: None,
        callback_at: None,
        transcript: None,
    };
    store.record_outcome(a.id, &report).await.unwrap();
    let sent = due(store).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].payload["source"], json!("agent"));
    assert_eq!(sent[0].payload["call_id"], json!(a.id));
}

fn report(status: u16, at: chrono::DateTime<Utc>) -> SendReport {
    SendReport {
        at,
        status_code: Some(status),
        error: None,
        duration: Duration::from_millis(12),
        give_up: false,
    }
}

async fn a_failed_send_is_retried_with_growing_backoff_then_given_up(store: &Store) {
    let t = tenant(store, "t").await;
    let hook = subscribe(store, t, &["campaign.status_changed"]).await;
    let c = store.create_campaign(t, &config("Spring")).await.unwrap();
    store
        .transition_campaign(
            t,
            c.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    let schedule = RetrySchedule {
        max_attempts: 3,
        first_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(3600),
    };
    let mut at = Utc::now();
    let id = due(store).await[0].id;
    let first = store
        .record_delivery_attempt(id, &report(500, at), &schedule)
        .await
        .unwrap();
    assert_eq!(first, DeliveryStatus::Pending);
    assert!(
        due_at(store, at + TimeDelta::seconds(9)).await.is_empty(),
        "not before its backoff"
    );
    at += TimeDelta::seconds(10);
    assert_eq!(due_at(store, at).await.len(), 1, "due after 10 s");
    let second = SendReport {
        status_code: None,
        error: Some("connection refused".into()),
        ..report(0, at)
    };
    store
        .record_delivery_attempt(id, &second, &schedule)
        .await
        .unwrap();
    assert!(
        due_at(store, at + TimeDelta::seconds(19)).await.is_empty(),
        "the backoff doubled"
    );
    at += TimeDelta::seconds(20);
    assert_eq!(due_at(store, at).await.len(), 1);
    let last = store
        .record_delivery_attempt(id, &report(503, at), &schedule)
        .await
        .unwrap();
    assert_eq!(last, DeliveryStatus::Failed, "three sends, then no more");
    assert!(due_at(store, at + TimeDelta::days(1)).await.is_empty());
    let log = store.webhook_deliveries(t, hook, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].status, log[0].attempts),
        (DeliveryStatus::Failed, 3)
    );
    let sends: Vec<_> = log[0]
        .log
        .iter()
        .map(|a| (a.attempt_no, a.status_code, a.error.clone()))
        .collect();
    assert_eq!(
        sends,
        [
            (1, Some(500), Some("the receiver answered 500".into())),
            (2, None, Some("connection refused".into())),
            (3, Some(503), Some("the receiver answered 503".into())),
        ]
    );
    assert!(log[0].log.iter().all(|a| a.duration_ms == 12));
    assert!(
        matches!(
            store
                .record_delivery_attempt(id, &report(200, at), &schedule)
                .await,
            Err(Error::NotFound { .. })
        ),
        "a finished delivery takes no more sends"
    );
}

async fn a_send_to_a_refused_destination_fails_the_delivery_at_once(store: &Store) {
    let t = tenant(store, "t").await;
    let hook = subscribe(store, t, &["campaign.status_changed"]).await;
    let c = store.create_campaign(t, &config("Spring")).await.unwrap();
    store
        .transition_campaign(t, c.id, CampaignStatus::Scheduled, Cause::User, "go", None)
        .await
        .unwrap();
    let at = Utc::now();
    let id = due(store).await[0].id;
    let refused = SendReport {
        status_code: None,
        error: Some("refused destination: 127.0.0.1 is a loopback address".into()),
        give_up: true,
        ..report(0, at)
    };
    let status = store
        .record_delivery_attempt(id, &refused, &RetrySchedule::default())
        .await
        .unwrap();
    assert_eq!(status, DeliveryStatus::Failed, "no retry can help");
    assert!(due_at(store, at + TimeDelta::days(1)).await.is_empty());
    let log = store.webhook_deliveries(t, hook, 10).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts),
        (DeliveryStatus::Failed, 1)
    );
    assert_eq!(log[0].last_error, refused.error);
}

async fn a_claimed_delivery_is_not_claimed_again_while_its_lease_runs(store: &Store) {
    let t = tenant(store, "t").await;
    subscribe(store, t, &["campaign.status_changed"]).await;
    let c = store.create_campaign(t, &config("Spring")).await.unwrap();
    store
        .transition_campaign(
            t,
            c.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    let now = Utc::now();
    let lease = Duration::from_secs(30);
    let first = store.claim_due_deliveries(now, lease, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        store
            .claim_due_deliveries(now, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let later = now + TimeDelta::seconds(31);
    let retaken = store.claim_due_deliveries(later, lease, 10).await.unwrap();
    assert_eq!(retaken.len(), 1, "a worker that died loses its claim");
    let delivered = store
        .record_delivery_attempt(
            retaken[0].id,
            &report(204, later),
            &RetrySchedule::default(),
        )
        .await
        .unwrap();
    assert_eq!(delivered, DeliveryStatus::Delivered);
    assert!(due_at(store, later + TimeDelta::days(1)).await.is_empty());
    // Finished deliveries are pruned after their retention, pending ones never.
    store
        .transition_campaign(t, c.id, CampaignStatus::Active, Cause::User, "go", None)
        .await
        .unwrap();
    assert_eq!(
        store.prune_deliveries(later).await.unwrap(),
        0,
        "kept until then"
    );
    let pruned = store
        .prune_deliveries(later + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the delivered one goes, the pending one stays");
    assert_eq!(store.pending_deliveries().await.unwrap(), 1);
}

async fn a_webhook_is_validated_and_deleting_it_drops_its_deliveries(store: &Store) {
    let t = tenant(store, "t").await;
    let other = tenant(store, "other").await;
    let bad = NewWebhook {
        url: "hooks.example.com".into(),
        events: vec!["call.finished".into()],
        description: String::new(),
    };
    let Err(Error::Invalid { errors, .. }) = store.create_webhook(t, &bad, "s").await else {
        panic!("accepted a bad webhook");
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["url", "events[0]"]);
    let hook = subscribe(store, t, &["campaign.status_changed", "call.completed"]).await;
    let listed = store.webhooks(t).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].events.len(), 2);
    assert!(store.webhooks(other).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_webhook(other, hook).await,
        Err(Error::NotFound { .. })
    ));
    let c = store.create_campaign(t, &config("Spring")).await.unwrap();
    store
        .transition_campaign(
            t,
            c.id,
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    store.delete_webhook(t, hook).await.unwrap();
    assert!(due(store).await.is_empty());
    assert!(matches!(
        store.webhook_deliveries(t, hook, 10).await,
        Err(Error::NotFound { .. })
    ));
}
