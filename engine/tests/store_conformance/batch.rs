//! Group commit: a batch of writes in one transaction answers each write as its
//! single-write method would, and a write that fails leaves the others stored.

use super::*;
use switchboard_engine::campaign::Outcome;
use switchboard_engine::store::{
    Applied, AttemptRecord, CarrierUpdate, MAX_BATCH, OutcomeReport, Recorded, Write,
};
use switchboard_engine::{AttemptId, CampaignId};

conformance!(
    a_failing_write_in_a_batch_leaves_the_others_stored,
    a_batch_answers_each_write_as_its_single_write_method,
    a_batch_larger_than_the_bound_is_refused_whole,
);

const MISSING: AttemptId = AttemptId(999_999);

/// A reserved attempt for a new contact at `phone` in `campaign`.
async fn reserved(store: &Store, t: TenantId, campaign: CampaignId, phone: &str) -> AttemptRecord {
    let c = store
        .upsert_contact(t, &contact(phone, None, json!({})))
        .await
        .unwrap();
    store.enqueue_contacts(campaign, &[c.id], 0).await.unwrap();
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: t,
            campaign_id: campaign,
            contact_id: c.id,
            phone: c.phone,
            attempts_seen: 0,
        })
        .await
        .unwrap()
}

fn event(attempt: AttemptId, kind: &str) -> CallEvent {
    CallEvent {
        attempt_id: attempt,
        at: switchboard_engine::time::now(),
        kind: kind.into(),
        data: json!({}),
    }
}

async fn kinds(store: &Store, attempt: AttemptId) -> Vec<String> {
    let events = store.attempt_events(attempt).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

async fn a_failing_write_in_a_batch_leaves_the_others_stored(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Calls"))
        .await
        .unwrap();
    let a = reserved(store, t, campaign.id, "+14155550001").await;
    let results = store
        .apply_writes(&[
            Write::AppendEvents(vec![event(a.id, "one")]),
            // Fails inside the database (no such attempt for the foreign key): on
            // PostgreSQL this aborts a transaction, so only a savepoint keeps the batch.
            Write::AppendEvents(vec![event(MISSING, "lost")]),
            Write::UpdateAttempt(MISSING, AttemptUpdate::default()),
            // Fails after its first statement succeeded: it is rolled back whole.
            Write::AppendEvents(vec![event(a.id, "half"), event(MISSING, "lost")]),
            Write::AppendEvents(vec![event(a.id, "two")]),
        ])
        .await;
    assert_eq!(results.len(), 5);
    assert_eq!(results[0].as_ref().unwrap(), &Applied::Done);
    assert!(matches!(results[1], Err(Error::Database(_))));
    assert!(matches!(results[2], Err(Error::NotFound { .. })));
    assert!(matches!(results[3], Err(Error::Database(_))));
    assert_eq!(results[4].as_ref().unwrap(), &Applied::Done);
    assert_eq!(kinds(store, a.id).await, vec!["one", "two"]);
    assert!(kinds(store, MISSING).await.is_empty());
}

/// The writes of one call's life at `at`, in order, with three that fail.
fn life(a: &AttemptRecord, sid: &str, at: chrono::DateTime<chrono::Utc>) -> Vec<Write> {
    let carrier = |status: AttemptStatus, name: &str, seq: u64| CarrierUpdate {
        carrier_call_id: Some(sid.to_owned()),
        status: Some(status),
        result: (status == AttemptStatus::Ended).then(|| "completed".to_owned()),
        answered_by: (name == "in-progress").then(|| "human".to_owned()),
        sequence: Some(seq),
        carrier_status: name.into(),
        at,
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    };
    let report = |outcome: Outcome| OutcomeReport {
        call_id: None,
        outcome,
        notes: Some("wants a quote".into()),
        callback_at: None,
        transcript: None,
    };
    let mut relay = serde_json::Map::new();
    relay.insert("relay".into(), json!({"frames": 120}));
    vec![
        Write::CarrierUpdate(a.id, carrier(AttemptStatus::Ringing, "ringing", 1)),
        Write::CarrierUpdate(a.id, carrier(AttemptStatus::Answered, "in-progress", 2)),
        Write::MarkBridged(a.id, json!({"agent_url": "wss://agent.example.com"})),
        Write::FirstAgentAudio {
            attempt: a.id,
            at,
            ms: 640,
        },
        Write::MachineDetection {
            attempt: a.id,
            answered_by: "human".into(),
            detection_ms: Some(1200),
            at,
        },
        Write::AppendEvents(vec![event(a.id, "stream.ended")]),
        Write::UpdateAttempt(
            a.id,
            AttemptUpdate {
                detail: Some(relay),
                ..Default::default()
            },
        ),
        Write::RecordOutcome(a.id, report(Outcome::Interested)),
        Write::RecordOutcome(a.id, report(Outcome::Interested)),
        Write::RecordOutcome(a.id, report(Outcome::NotInterested)),
        Write::CarrierUpdate(a.id, carrier(AttemptStatus::Ended, "completed", 3)),
        Write::RequeueContact {
            campaign: a.campaign_id,
            contact: a.contact_id,
            next_attempt_at: None,
            last_result: "interested".into(),
        },
        Write::UpdateAttempt(MISSING, AttemptUpdate::default()),
        Write::AppendEvents(vec![event(MISSING, "lost")]),
    ]
}

/// The write through its single-write `Store` method.
async fn single(store: &Store, write: &Write) -> switchboard_engine::error::Result<Applied> {
    Ok(match write {
        Write::AppendEvents(events) => store.append_events(events).await.map(|()| Applied::Done)?,
        Write::CarrierUpdate(id, update) => {
            Applied::Moved(store.apply_carrier_update(*id, update).await?)
        }
        Write::MarkBridged(id, data) => {
            Applied::Moved(store.mark_bridged(*id, data.clone()).await?)
        }
        Write::UpdateAttempt(id, update) => {
            Applied::Attempt(Box::new(store.update_attempt(*id, update).await?))
        }
        Write::RecordOutcome(id, report) => {
            Applied::Recorded(store.record_outcome(*id, report).await?)
        }
        Write::FirstAgentAudio { attempt, at, ms } => {
            store.record_first_agent_audio(*attempt, *at, *ms).await?;
            Applied::Done
        }
        Write::MachineDetection {
            attempt,
            answered_by,
            detection_ms,
            at,
        } => Applied::PreviousAnsweredBy(
            store
                .record_machine_detection(*attempt, answered_by, *detection_ms, *at)
                .await?,
        ),
        Write::RequeueContact {
            campaign,
            contact,
            next_attempt_at,
            last_result,
        } => {
            store
                .requeue_contact(*campaign, *contact, *next_attempt_at, last_result)
                .await?;
            Applied::Done
        }
    })
}

/// What two attempts of the same life must share (not their ids, carrier ids or times).
fn shape(a: &AttemptRecord) -> serde_json::Value {
    json!({
        "status": a.status,
        "result": a.result,
        "outcome": a.outcome,
        "carrier_call_id": a.carrier_call_id.is_some(),
        "answered": a.answered_at.is_some(),
        "ended": a.ended_at.is_some(),
        "detail": a.detail,
    })
}

/// A result with what may differ between two attempts taken out.
fn answer(result: &switchboard_engine::error::Result<Applied>) -> serde_json::Value {
    match result {
        Ok(Applied::Attempt(a)) => json!({"attempt": shape(a)}),
        Ok(Applied::Done) => json!("done"),
        Ok(Applied::Moved(moved)) => json!({"moved": moved}),
        Ok(Applied::Recorded(Recorded::New)) => json!("new"),
        Ok(Applied::Recorded(Recorded::Repeat)) => json!("repeat"),
        Ok(Applied::PreviousAnsweredBy(by)) => json!({"previous": by}),
        Err(Error::NotFound { what, .. }) => json!({"not_found": what}),
        Err(Error::Conflict(_)) => json!("conflict"),
        Err(Error::Database(_)) => json!("database"),
        Err(e) => json!(format!("other error: {e}")),
    }
}

async fn a_batch_answers_each_write_as_its_single_write_method(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Calls"))
        .await
        .unwrap();
    let alone = reserved(store, t, campaign.id, "+14155550001").await;
    let batched = reserved(store, t, campaign.id, "+14155550002").await;
    let at = switchboard_engine::time::now();
    let mut singles = Vec::new();
    for write in life(&alone, "CA-alone", at) {
        singles.push(answer(&single(store, &write).await));
    }
    let results = store.apply_writes(&life(&batched, "CA-batched", at)).await;
    let batch: Vec<_> = results.iter().map(answer).collect();
    assert_eq!(batch, singles);
    assert_eq!(batch[9], json!("conflict"), "{batch:?}");
    assert_eq!(batch[12], json!({"not_found": "attempt"}));
    assert_eq!(batch[13], json!("database"));

    let (alone, batched) = (
        store.attempt(alone.id).await.unwrap(),
        store.attempt(batched.id).await.unwrap(),
    );
    assert_eq!(shape(&batched), shape(&alone));
    assert_eq!(batched.outcome.as_deref(), Some("interested"));
    assert_eq!(batched.status, AttemptStatus::Ended);
    assert_eq!(
        kinds(store, batched.id).await,
        kinds(store, alone.id).await,
        "the same events, in the same order"
    );
    let entry = |a: &AttemptRecord| store.queue_entry(a.campaign_id, a.contact_id);
    let (e1, e2) = (entry(&alone).await.unwrap(), entry(&batched).await.unwrap());
    assert_eq!(
        (e2.state.as_str(), e2.last_result),
        ("done", e1.last_result)
    );
}

async fn a_batch_larger_than_the_bound_is_refused_whole(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store
        .create_campaign(t, &ready_config("Calls"))
        .await
        .unwrap();
    let a = reserved(store, t, campaign.id, "+14155550001").await;
    let writes: Vec<Write> = (0..=MAX_BATCH)
        .map(|i| Write::AppendEvents(vec![event(a.id, &format!("e{i}"))]))
        .collect();
    let results = store.apply_writes(&writes).await;
    assert_eq!(results.len(), MAX_BATCH + 1);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(Error::Invalid { .. })))
    );
    assert!(kinds(store, a.id).await.is_empty());
    assert!(store.apply_writes(&[]).await.is_empty());
}
