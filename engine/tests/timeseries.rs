//! Conformance of a campaign's attempts over time, on SQLite and PostgreSQL: buckets by
//! reservation time with dialed, answered, connected and abandoned counts, scoped to the
//! tenant, and a bucket size out of range refused by name.

use chrono::{Duration, Timelike};
use serde_json::json;
use switchboard_engine::campaign::CampaignConfig;
use switchboard_engine::contact::NewContact;
use switchboard_engine::store::{AttemptRecord, AttemptUpdate, NewAttempt, Store};
use switchboard_engine::time::now;
use switchboard_engine::{CampaignId, E164, Error, TenantId, conformance};

conformance!(
    attempts_are_counted_per_bucket_of_reservation_time,
    a_bucket_size_out_of_range_is_refused_by_name,
);

async fn campaign(store: &Store) -> (TenantId, CampaignId) {
    let t = store.create_tenant("t").await.unwrap().id;
    let config = CampaignConfig::from_json(json!({
        "name": "Series",
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello"}
    }))
    .unwrap();
    (t, store.create_campaign(t, &config).await.unwrap().id)
}

async fn reserve(store: &Store, t: TenantId, c: CampaignId, phone: &str) -> AttemptRecord {
    let contact = store
        .upsert_contact(t, &NewContact::new(E164::parse(phone, None).unwrap()))
        .await
        .unwrap();
    store.enqueue_contacts(c, &[contact.id], 0).await.unwrap();
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: t,
            campaign_id: c,
            contact_id: contact.id,
            phone: contact.phone,
            attempts_seen: 0,
        })
        .await
        .unwrap()
}

fn answered_secs_ago(secs: i64) -> AttemptUpdate {
    AttemptUpdate {
        answered_at: Some(now() - Duration::seconds(secs)),
        ..Default::default()
    }
}

async fn attempts_are_counted_per_bucket_of_reservation_time(store: &Store) {
    let (t, c) = campaign(store).await;
    // One attempt in one second, three in a later one: two one-second buckets.
    let first = reserve(store, t, c, "+14155550001").await;
    let second = first.reserved_at.with_nanosecond(0).unwrap() + Duration::seconds(1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while now() < second {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let connected = reserve(store, t, c, "+14155550002").await;
    let abandoned = reserve(store, t, c, "+14155550003").await;
    reserve(store, t, c, "+14155550004").await;
    store
        .update_attempt(connected.id, &answered_secs_ago(0))
        .await
        .unwrap();
    store.mark_bridged(connected.id, json!({})).await.unwrap();
    store
        .update_attempt(abandoned.id, &answered_secs_ago(10))
        .await
        .unwrap();

    let buckets = store.campaign_timeseries(t, c, 1).await.unwrap();
    assert_eq!(buckets.len(), 2, "{buckets:#?}");
    assert_eq!(
        buckets[0].start,
        first.reserved_at.with_nanosecond(0).unwrap()
    );
    assert_eq!(
        (buckets[0].dialed, buckets[0].answered, buckets[0].connected),
        (1, 0, 0)
    );
    let later = &buckets[1];
    assert!(later.start > buckets[0].start);
    assert_eq!(
        (
            later.dialed,
            later.answered,
            later.connected,
            later.abandoned
        ),
        (3, 2, 1, 1)
    );

    // A day's bucket holds them all, starting at midnight UTC.
    let day = store.campaign_timeseries(t, c, 86_400).await.unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].dialed, 4);
    assert_eq!(day[0].start.timestamp() % 86_400, 0);

    // Another tenant sees nothing of it.
    let other = store.create_tenant("other").await.unwrap().id;
    assert!(
        store
            .campaign_timeseries(other, c, 60)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_bucket_size_out_of_range_is_refused_by_name(store: &Store) {
    let (t, c) = campaign(store).await;
    for bad in [0, 86_401] {
        let refused = store.campaign_timeseries(t, c, bad).await.unwrap_err();
        assert!(matches!(refused, Error::Invalid { .. }), "{refused}");
        assert!(refused.to_string().contains("bucket_secs"), "{refused}");
        assert!(refused.to_string().contains(&bad.to_string()), "{refused}");
    }
}
