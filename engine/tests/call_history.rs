//! Conformance of what operators read and change on campaigns, on SQLite and PostgreSQL:
//! call history pages and filters, call figures (answered, connected, abandoned, billed
//! minutes), the active-campaign count, edits of running campaigns, and what the call path
//! records while a call is live (the agent's first audio, asynchronous machine detection).

use chrono::Duration;
use serde_json::json;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CallFilter, NewAttempt, Store,
};
use switchboard_engine::time::now;
use switchboard_engine::{CampaignId, E164, Error, TenantId, conformance};

conformance!(
    calls_are_paged_newest_first_and_filtered,
    call_figures_count_answers_connections_abandonment_and_billed_minutes,
    a_running_campaign_changes_only_its_pacing_and_caps,
    active_campaigns_are_counted_per_tenant,
    live_call_signals_are_recorded_with_their_events_and_machines_leave_the_ledger,
);

fn config(name: &str) -> CampaignConfig {
    CampaignConfig::from_json(json!({
        "name": name,
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello {name|there}"}
    }))
    .unwrap()
}

/// A tenant, a campaign and one reserved attempt per phone number.
async fn attempts(store: &Store, phones: &[&str]) -> (TenantId, CampaignId, Vec<AttemptRecord>) {
    let t = store.create_tenant("t").await.unwrap().id;
    let campaign = store.create_campaign(t, &config("Calls")).await.unwrap();
    let mut out = Vec::new();
    for p in phones {
        let c = store
            .upsert_contact(t, &NewContact::new(E164::parse(p, None).unwrap()))
            .await
            .unwrap();
        store
            .enqueue_contacts(campaign.id, &[c.id], 0)
            .await
            .unwrap();
        let a = store
            .reserve_attempt(&NewAttempt {
                tenant_id: t,
                campaign_id: campaign.id,
                contact_id: c.id,
                phone: c.phone,
                attempts_seen: 0,
            })
            .await
            .unwrap();
        out.push(a);
    }
    (t, campaign.id, out)
}

fn ended(result: &str, outcome: Option<&str>) -> AttemptUpdate {
    AttemptUpdate {
        status: Some(AttemptStatus::Ended),
        ended_at: Some(now()),
        result: Some(result.into()),
        outcome: outcome.map(str::to_owned),
        ..Default::default()
    }
}

async fn calls_are_paged_newest_first_and_filtered(store: &Store) {
    let (t, c, a) = attempts(store, &["+14155550001", "+14155550002", "+14155550003"]).await;
    store
        .update_attempt(a[0].id, &ended("completed", Some("interested")))
        .await
        .unwrap();
    store
        .update_attempt(a[1].id, &ended("no_answer", None))
        .await
        .unwrap();

    let all = store
        .campaign_calls(t, c, &CallFilter::default())
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![a[2].id, a[1].id, a[0].id], "newest first");

    let page = CallFilter {
        limit: Some(2),
        ..Default::default()
    };
    let first = store.campaign_calls(t, c, &page).await.unwrap();
    let rest = CallFilter {
        before: Some(first[1].id),
        ..page
    };
    let second = store.campaign_calls(t, c, &rest).await.unwrap();
    assert_eq!((first.len(), second.len(), second[0].id), (2, 1, a[0].id));

    let by = |f: CallFilter| async move { store.campaign_calls(t, c, &f).await.unwrap().len() };
    assert_eq!(
        by(CallFilter {
            status: Some(AttemptStatus::Ended),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        by(CallFilter {
            outcome: Some("interested".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(CallFilter {
            result: Some("no_answer".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        by(CallFilter {
            since: Some(now() + Duration::hours(1)),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        by(CallFilter {
            until: Some(now() + Duration::hours(1)),
            ..Default::default()
        })
        .await,
        3
    );

    let other = store.create_tenant("other").await.unwrap().id;
    assert!(
        store
            .campaign_calls(other, c, &CallFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.call_stats(other, c).await.unwrap().attempts, 0);
}

async fn call_figures_count_answers_connections_abandonment_and_billed_minutes(store: &Store) {
    let (t, c, a) = attempts(
        store,
        &[
            "+14155550001",
            "+14155550002",
            "+14155550003",
            "+14155550004",
            "+14155550005",
            "+14155550006",
        ],
    )
    .await;
    let start = now() - Duration::seconds(100);
    // Connected at once, 70 s of talk: 2 billed minutes.
    store
        .update_attempt(
            a[0].id,
            &AttemptUpdate {
                answered_at: Some(now() - Duration::seconds(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.mark_bridged(a[0].id, json!({})).await.unwrap();
    let talk = AttemptUpdate {
        ended_at: Some(now() + Duration::seconds(69)),
        ..ended("completed", Some("interested"))
    };
    store.update_attempt(a[0].id, &talk).await.unwrap();
    // A person answered and nobody came: abandoned, 10 s billed as 1 minute.
    let abandoned = AttemptUpdate {
        answered_at: Some(start),
        ended_at: Some(start + Duration::seconds(10)),
        ..ended("completed", None)
    };
    store.update_attempt(a[1].id, &abandoned).await.unwrap();
    // A machine answered and nobody came: not an abandoned person.
    let mut machine = abandoned.clone();
    machine.detail = Some(
        json!({"answered_by": "machine_start"})
            .as_object()
            .unwrap()
            .clone(),
    );
    store.update_attempt(a[2].id, &machine).await.unwrap();
    // Nobody answered.
    store
        .update_attempt(a[3].id, &ended("no_answer", None))
        .await
        .unwrap();
    // Bridged, but the runtime judged the agent's first audio too late: abandoned.
    let judged_late = AttemptUpdate {
        answered_at: Some(start),
        detail: Some(json!({"abandoned": true}).as_object().unwrap().clone()),
        ..Default::default()
    };
    store.update_attempt(a[4].id, &judged_late).await.unwrap();
    store.mark_bridged(a[4].id, json!({})).await.unwrap();
    // Not judged yet, but the agent was heard a second after the answer: not abandoned.
    let answered = AttemptUpdate {
        answered_at: Some(start),
        ..Default::default()
    };
    store.update_attempt(a[5].id, &answered).await.unwrap();
    store
        .record_first_agent_audio(a[5].id, start + Duration::seconds(1), 1000)
        .await
        .unwrap();

    let stats = store.call_stats(t, c).await.unwrap();
    assert_eq!(
        (
            stats.attempts,
            stats.ended,
            stats.answered,
            stats.connected,
            stats.abandoned,
            stats.answered_by_person
        ),
        (6, 4, 5, 2, 2, 4),
        "{stats:?}"
    );
    assert_eq!(stats.billed_minutes, 2 + 1 + 1, "{stats:?}");
    assert_eq!(stats.outcomes.get("interested"), Some(&1));
    assert_eq!(stats.results.get("no_answer"), Some(&1));
    assert_eq!(stats.results.get("completed"), Some(&3));
}

async fn a_running_campaign_changes_only_its_pacing_and_caps(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let c = store.create_campaign(t, &config("Edits")).await.unwrap();
    let mut draft = c.config.clone();
    draft.audience.query = Some(json!({"city": "Doha"}));
    assert_eq!(
        store.edit_campaign(t, c.id, &draft).await.unwrap().config,
        draft
    );
    for to in [CampaignStatus::Scheduled, CampaignStatus::Active] {
        store
            .transition_campaign(t, c.id, to, Cause::User, "go", None)
            .await
            .unwrap();
    }
    let mut pacing = draft.clone();
    pacing.max_concurrent_calls = 7;
    pacing.daily_cap = Some(100);
    let edited = store.edit_campaign(t, c.id, &pacing).await.unwrap();
    assert_eq!(
        (edited.config.max_concurrent_calls, edited.status),
        (7, CampaignStatus::Active)
    );

    let mut audience = pacing.clone();
    audience.audience.query = Some(json!({"city": "Dubai"}));
    audience.script.template = "Bye".into();
    match store.edit_campaign(t, c.id, &audience).await {
        Err(Error::Invalid { errors, .. }) => {
            let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(fields, ["audience", "script"]);
            assert!(errors[0].reason.contains("active"), "{}", errors[0].reason);
        }
        other => panic!("expected the audience change refused, got {other:?}"),
    }
    assert_eq!(
        store.campaign(t, c.id).await.unwrap().config,
        pacing,
        "nothing half-applied"
    );

    store
        .transition_campaign(t, c.id, CampaignStatus::Stopped, Cause::User, "done", None)
        .await
        .unwrap();
    assert!(matches!(
        store.edit_campaign(t, c.id, &pacing).await,
        Err(Error::Conflict(_))
    ));
    let other = store.create_tenant("other").await.unwrap().id;
    assert!(matches!(
        store.edit_campaign(other, c.id, &pacing).await,
        Err(Error::NotFound { .. })
    ));
}

async fn active_campaigns_are_counted_per_tenant(store: &Store) {
    let t = store.create_tenant("t").await.unwrap().id;
    let other = store.create_tenant("other").await.unwrap().id;
    for name in ["a", "b", "c"] {
        let c = store.create_campaign(t, &config(name)).await.unwrap();
        if name != "c" {
            for to in [CampaignStatus::Scheduled, CampaignStatus::Active] {
                store
                    .transition_campaign(t, c.id, to, Cause::User, "go", None)
                    .await
                    .unwrap();
            }
        }
    }
    assert_eq!(
        store
            .count_campaigns(t, CampaignStatus::Active)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count_campaigns(t, CampaignStatus::Draft)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .count_campaigns(other, CampaignStatus::Active)
            .await
            .unwrap(),
        0
    );
}

async fn live_call_signals_are_recorded_with_their_events_and_machines_leave_the_ledger(
    store: &Store,
) {
    let (_, c, a) = attempts(store, &["+14155550001", "+14155550002"]).await;
    let answered = now() - Duration::seconds(30);
    for attempt in &a {
        let judged = AttemptUpdate {
            answered_at: Some(answered),
            detail: Some(json!({"abandoned": true}).as_object().unwrap().clone()),
            ..Default::default()
        };
        store.update_attempt(attempt.id, &judged).await.unwrap();
    }

    // The first audio is recorded once, with its moment; a repeat changes nothing.
    let heard = answered + Duration::milliseconds(2500);
    store
        .record_first_agent_audio(a[0].id, heard, 2480)
        .await
        .unwrap();
    store
        .record_first_agent_audio(a[0].id, heard + Duration::seconds(1), 9999)
        .await
        .unwrap();
    let first = store.attempt(a[0].id).await.unwrap();
    assert_eq!(first.detail["first_agent_audio_ms"], json!(2480));
    let at: chrono::DateTime<chrono::Utc> = first.detail["first_agent_audio_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, heard);
    let events = store.attempt_events(a[0].id).await.unwrap();
    let audio: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "agent.first_audio")
        .collect();
    assert_eq!(audio.len(), 1, "{events:?}");
    assert_eq!((audio[0].at, &audio[0].data), (heard, &json!({"ms": 2480})));

    // Machine detection has the last word on who answered, and says how long it took.
    let before = store
        .record_machine_detection(a[1].id, "machine_end_beep", Some(3100), now())
        .await
        .unwrap();
    assert_eq!(before, None);
    let machine = store.attempt(a[1].id).await.unwrap();
    assert_eq!(machine.detail["answered_by"], json!("machine_end_beep"));
    assert_eq!(machine.detail["machine_detection_ms"], json!(3100));
    let events = store.attempt_events(a[1].id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "carrier.amd" && e.data["answered_by"] == json!("machine_end_beep")),
        "{events:?}"
    );
    let again = store
        .record_machine_detection(a[1].id, "human", None, now())
        .await
        .unwrap();
    assert_eq!(again.as_deref(), Some("machine_end_beep"));

    // The abandonment ledger holds the person's verdict, not the machine's.
    store
        .record_machine_detection(a[1].id, "machine_start", None, now())
        .await
        .unwrap();
    let ledger = store
        .abandonment_history(c, answered - Duration::days(1))
        .await
        .unwrap();
    assert_eq!(ledger, vec![(answered, true)]);
}
