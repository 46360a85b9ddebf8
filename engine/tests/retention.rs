//! Retention and erasure on SQLite and PostgreSQL: the purge removes each kind of record
//! (transcripts, events, call records, webhook delivery logs) once it is older than its age
//! as of an injected "now", in small batches, and never touches a live call, a pending
//! delivery or a suppression; erasing a contact leaves no trace of its number, name or
//! email in any table, keeps its calls' figures, and keeps its number suppressed under a
//! hash, also when the number is imported again.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};
use switchboard_engine::campaign::{CampaignConfig, Outcome};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CallEvent, CarrierUpdate, NewAttempt,
    OutcomeReport, RetentionPolicy, SendReport, Store,
};
use switchboard_engine::time::now;
use switchboard_engine::webhook::{NewWebhook, RetrySchedule};
use switchboard_engine::{CampaignId, E164, Error, TenantId, conformance};

conformance!(
    each_kind_is_purged_after_its_age_in_batches_and_live_calls_are_never_touched,
    an_erased_contact_leaves_no_trace_but_its_counts_and_its_suppression,
);

fn e164(phone: &str) -> E164 {
    E164::parse(phone, None).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

async fn campaign(store: &Store, tenant: TenantId) -> CampaignId {
    let config = CampaignConfig::from_json(json!({
        "name": "Calls",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello {name|there}"}
    }))
    .unwrap();
    store.create_campaign(tenant, &config).await.unwrap().id
}

/// Queues the contact with this phone and reserves its next attempt.
async fn reserve(
    store: &Store,
    tenant: TenantId,
    campaign: CampaignId,
    phone: &str,
) -> AttemptRecord {
    let contact = store
        .contact_by_phone(tenant, &e164(phone))
        .await
        .unwrap()
        .unwrap();
    store
        .enqueue_contacts(campaign, &[contact.id], 0)
        .await
        .unwrap();
    let seen = store
        .queue_entry(campaign, contact.id)
        .await
        .unwrap()
        .attempts;
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: tenant,
            campaign_id: campaign,
            contact_id: contact.id,
            phone: contact.phone,
            attempts_seen: seen,
        })
        .await
        .unwrap()
}

/// Ends an attempt at `at` with a transcript, notes and two events (one the statistics
/// count), and settles its queue entry.
async fn end_with_transcript(store: &Store, attempt: &AttemptRecord, at: DateTime<Utc>) {
    store
        .update_attempt(
            attempt.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Ended),
                answered_at: Some(at - TimeDelta::minutes(2)),
                ended_at: Some(at),
                result: Some("completed".into()),
                detail: Some(object(json!({
                    "answered_by": "human",
                    "notes": "wants a call in May",
                    "transcript": [{"speaker": "callee", "text": "call me in May"}]
                }))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let event = |kind: &str| CallEvent {
        attempt_id: attempt.id,
        at: at - TimeDelta::minutes(1),
        kind: kind.into(),
        data: json!({"figure": 1}),
    };
    store
        .append_events(&[event("carrier.ringing"), event("agent.bridged")])
        .await
        .unwrap();
    store
        .requeue_contact(attempt.campaign_id, attempt.contact_id, None, "completed")
        .await
        .unwrap();
}

fn has_transcript(a: &AttemptRecord) -> bool {
    a.detail.contains_key("transcript") || a.detail.contains_key("notes")
}

async fn each_kind_is_purged_after_its_age_in_batches_and_live_calls_are_never_touched(
    store: &Store,
) {
    let t = store.create_tenant("t").await.unwrap().id;
    store
        .create_webhook(
            t,
            &NewWebhook {
                url: "https://hooks.example.com/switchboard".into(),
                events: vec!["call.completed".into()],
                description: String::new(),
            },
            "whsec_test",
        )
        .await
        .unwrap();
    let phones: Vec<String> = (0..6).map(|i| format!("+1415555010{i}")).collect();
    let contacts: Vec<NewContact> = phones.iter().map(|p| NewContact::new(e164(p))).collect();
    store.upsert_contacts(t, &contacts).await.unwrap();
    let c = campaign(store, t).await;
    let today = now();
    // Five settled calls that ended 85 days ago, and one that ended yesterday.
    let mut settled = Vec::new();
    for (i, phone) in phones.iter().take(6).enumerate() {
        let a = reserve(store, t, c, phone).await;
        let days = if i == 5 { 1 } else { 85 };
        end_with_transcript(store, &a, today - TimeDelta::days(days)).await;
        settled.push(a);
    }
    // Each ended call's call.completed delivery: five delivered 25 days ago, one pending.
    let due = store
        .claim_due_deliveries(
            today + TimeDelta::days(1),
            std::time::Duration::from_secs(60),
            100,
        )
        .await
        .unwrap();
    assert_eq!(due.len(), 6);
    for delivery in &due[..5] {
        let sent = SendReport {
            at: today - TimeDelta::days(25),
            status_code: Some(200),
            error: None,
            duration: std::time::Duration::from_millis(20),
            give_up: false,
        };
        store
            .record_delivery_attempt(delivery.id, &sent, &RetrySchedule::default())
            .await
            .unwrap();
    }
    // A live call reserved long ago, still ringing, with an old event.
    let live_phone = "+14155550199";
    store
        .upsert_contact(t, &NewContact::new(e164(live_phone)))
        .await
        .unwrap();
    let live = reserve(store, t, c, live_phone).await;
    store
        .update_attempt(
            live.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Ringing),
                detail: Some(object(json!({"notes": "live"}))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .append_events(&[CallEvent {
            attempt_id: live.id,
            at: today - TimeDelta::days(500),
            kind: "carrier.ringing".into(),
            data: json!({}),
        }])
        .await
        .unwrap();
    // A suppression recorded long ago stays whatever the ages.
    store
        .suppress(
            t,
            &e164(&phones[0]),
            "api",
            Some("api key 1"),
            Some("asked"),
        )
        .await
        .unwrap();
    let stats_before = store.call_stats(t, c).await.unwrap();

    // Nothing is older than 90 days today: a purge today removes nothing.
    let policy = RetentionPolicy {
        batch: 2,
        ..RetentionPolicy::default()
    };
    let report = store.purge(&policy, today).await.unwrap();
    assert_eq!(report.total(), 0, "{report:?}");

    // Ten days on, transcripts and events of the five old calls are past 90 days; their
    // records (400 days) stay. Batches of 2 get through all five.
    let later = today + TimeDelta::days(10);
    let report = store.purge(&policy, later).await.unwrap();
    assert_eq!(
        (
            report.transcripts,
            report.events,
            report.call_records,
            report.webhook_deliveries
        ),
        (5, 5, 0, 5)
    );
    assert_eq!(
        store.pending_deliveries().await.unwrap(),
        1,
        "pending stays"
    );
    for a in &settled[..5] {
        let kept = store.attempt(a.id).await.unwrap();
        assert!(!has_transcript(&kept), "{:?}", kept.detail);
        assert_eq!(kept.detail.get("answered_by"), Some(&json!("human")));
        let kinds: Vec<String> = store
            .attempt_events(a.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["agent.bridged"], "what the figures count stays");
    }
    assert!(has_transcript(&store.attempt(settled[5].id).await.unwrap()));
    assert_eq!(store.attempt_events(settled[5].id).await.unwrap().len(), 2);
    assert_eq!(
        store.call_stats(t, c).await.unwrap(),
        stats_before,
        "figures hold while the records are kept"
    );
    // A second purge at the same time finds nothing more.
    assert_eq!(store.purge(&policy, later).await.unwrap().total(), 0);

    // 316 days on, the five old records are past 400 days and go with their events.
    let much_later = today + TimeDelta::days(316);
    let report = store.purge(&policy, much_later).await.unwrap();
    assert_eq!(report.call_records, 5, "{report:?}");
    for a in &settled[..5] {
        assert!(matches!(
            store.attempt(a.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(store.attempt_events(a.id).await.unwrap().is_empty());
    }
    let stats = store.call_stats(t, c).await.unwrap();
    assert_eq!(
        stats.attempts, 2,
        "the figures cover the calls kept: {stats:?}"
    );

    // The live call is untouched by every purge, whatever its age.
    let live_now = store.attempt(live.id).await.unwrap();
    assert_eq!(live_now.status, AttemptStatus::Ringing);
    assert_eq!(live_now.detail.get("notes"), Some(&json!("live")));
    assert_eq!(store.attempt_events(live.id).await.unwrap().len(), 1);
    // What the callee asked for is never purged.
    assert!(
        store
            .suppression(t, &e164(&phones[0]))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .suppression_history(t, &e164(&phones[0]))
            .await
            .unwrap()
            .len(),
        1
    );

    // A kind with no age (kept forever) is not purged.
    let forever = RetentionPolicy {
        call_records_days: None,
        transcripts_days: None,
        events_days: None,
        webhook_deliveries_days: None,
        batch: 100,
    };
    let far = today + TimeDelta::days(5000);
    assert_eq!(store.purge(&forever, far).await.unwrap().total(), 0);
    assert!(store.attempt(settled[5].id).await.is_ok());
    assert_eq!(store.attempt_events(settled[5].id).await.unwrap().len(), 1);
}

async fn an_erased_contact_leaves_no_trace_but_its_counts_and_its_suppression(store: &Store) {
    const PHONE: &str = "+14155550001";
    const DIGITS: &str = "4155550001";
    let t = store.create_tenant("t").await.unwrap().id;
    store
        .create_webhook(
            t,
            &NewWebhook {
                url: "https://hooks.example.com/switchboard".into(),
                events: vec!["call.completed".into(), "contact.opted_out".into()],
                description: String::new(),
            },
            "whsec_test",
        )
        .await
        .unwrap();
    let mut zara = NewContact::new(e164(PHONE));
    zara.name = Some("Zara Quillfeather".into());
    zara.email = Some("zara.q@example.com".into());
    zara.company = Some("Quillfeather Teas".into());
    zara.attributes = object(json!({"neighborhood": "Marlowe Heights"}));
    let zara = store.upsert_contact(t, &zara).await.unwrap();
    let other = store
        .upsert_contact(t, &NewContact::new(e164("+14155550002")))
        .await
        .unwrap();
    let c = campaign(store, t).await;

    // Zara's call: answered, her agent reports do_not_call with notes and a transcript.
    let call = reserve(store, t, c, PHONE).await;
    let carrier = |status: AttemptStatus, name: &str, seq: u64| CarrierUpdate {
        carrier_call_id: Some("CA00000000000000000000000000000001".into()),
        status: Some(status),
        result: (status == AttemptStatus::Ended).then(|| "completed".to_owned()),
        answered_by: None,
        sequence: Some(seq),
        carrier_status: name.into(),
        at: now(),
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    };
    store
        .apply_carrier_update(call.id, &carrier(AttemptStatus::Answered, "in-progress", 1))
        .await
        .unwrap();
    store
        .record_outcome(
            call.id,
            &OutcomeReport {
                call_id: None,
                outcome: Outcome::DoNotCall,
                notes: Some("Zara Quillfeather asked us to stop".into()),
                callback_at: None,
                transcript: Some(json!(
                    "Hi Zara, this is Acme. Please never call 415 555 0001"
                )),
            },
        )
        .await
        .unwrap();
    store
        .apply_carrier_update(call.id, &carrier(AttemptStatus::Ended, "completed", 2))
        .await
        .unwrap();
    store
        .requeue_contact(c, zara.id, None, "completed")
        .await
        .unwrap();
    assert!(
        !store
            .tables_containing_for_tests(DIGITS)
            .await
            .unwrap()
            .is_empty(),
        "the number is stored before the erasure"
    );

    // A contact with a live call is not erased, and nothing changes.
    reserve(store, t, c, "+14155550002").await;
    let refused = store.erase_contact(t, other.id, "api key 1", "asked").await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    assert_eq!(
        store.contact(t, other.id).await.unwrap().phone.as_str(),
        "+14155550002"
    );
    let stats_before = store.call_stats(t, c).await.unwrap();

    let report = store
        .erase_contact(t, zara.id, "api key 1", "the callee asked to be forgotten")
        .await
        .unwrap();
    assert_eq!(
        (report.calls_anonymized, report.suppression_kept),
        (1, true)
    );

    for needle in [
        DIGITS,
        "415 555 0001",
        "Zara",
        "Quillfeather",
        "zara.q@",
        "Marlowe",
    ] {
        let tables = store.tables_containing_for_tests(needle).await.unwrap();
        assert!(tables.is_empty(), "{needle:?} is still in {tables:?}");
    }
    assert_eq!(
        store.call_stats(t, c).await.unwrap(),
        stats_before,
        "the erased contact's call still counts"
    );
    assert!(matches!(
        store.contact(t, zara.id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.count_contacts(t).await.unwrap(), 1);
    let everyone = switchboard_engine::audience::Query::parse(&json!({})).unwrap();
    assert_eq!(store.audience_count(t, &everyone).await.unwrap(), 1);
    assert!(matches!(
        store.erase_contact(t, zara.id, "api key 1", "again").await,
        Err(Error::NotFound { .. })
    ));

    // The number stays suppressed under its hash; its history records the erasure.
    let kept = store.suppression(t, &e164(PHONE)).await.unwrap().unwrap();
    assert!(kept.phone.starts_with("hmac-sha256:"), "{}", kept.phone);
    let history = store.suppression_history(t, &e164(PHONE)).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (
            last.action.as_str(),
            last.reason.as_deref(),
            last.actor.as_deref()
        ),
        (
            "erased",
            Some("the callee asked to be forgotten"),
            Some("api key 1")
        )
    );

    // Imported again, the number is still suppressed, and erasing it again keeps that.
    let again = store
        .upsert_contact(t, &NewContact::new(e164(PHONE)))
        .await
        .unwrap();
    assert!(store.suppression(t, &e164(PHONE)).await.unwrap().is_some());
    let report = store
        .erase_contact(t, again.id, "api key 1", "asked again")
        .await
        .unwrap();
    assert!(report.suppression_kept);
    assert!(store.suppression(t, &e164(PHONE)).await.unwrap().is_some());
    assert!(
        store
            .tables_containing_for_tests(DIGITS)
            .await
            .unwrap()
            .is_empty()
    );
}
