//! The purge job runs inside the server: started with it over a database holding a call
//! that ended 200 days ago and one that ended today, it strips the old call's transcript and
//! notes (keeping the record), leaves the recent one alone, and counts what it removed in
//! `switchboard_retention_purged_rows_total` on `/metrics`. On both backends.

use chrono::TimeDelta;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, AttemptStatus, AttemptUpdate, Store};
use switchboard_engine::time::now;
use switchboard_tests::{TestServer, seed_calls};

async fn end(store: &Store, attempt: &AttemptRecord, days_ago: i64) {
    let at = now() - TimeDelta::days(days_ago);
    store
        .update_attempt(
            attempt.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Ended),
                answered_at: Some(at - TimeDelta::minutes(3)),
                ended_at: Some(at),
                result: Some("completed".into()),
                detail: json!({"notes": "call back in spring", "transcript": "hello"})
                    .as_object()
                    .cloned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .requeue_contact(attempt.campaign_id, attempt.contact_id, None, "completed")
        .await
        .unwrap();
}

/// The value of the purge counter for `kind` in a scrape.
fn purged(scrape: &str, kind: &str) -> f64 {
    let prefix = format!("switchboard_retention_purged_rows_total{{kind=\"{kind}\"}} ");
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

async fn the_server_purges_old_transcripts_and_counts_them(db: TestDb) {
    let store = db.store().clone();
    let (_, attempts) = seed_calls(
        &store,
        "ws://127.0.0.1:9/agent",
        &[("+14155550301", json!({})), ("+14155550302", json!({}))],
    )
    .await;
    end(&store, &attempts[0], 200).await;
    end(&store, &attempts[1], 0).await;

    let mut settings = Settings::for_tests(db.url());
    settings.retention_purge_interval_secs = 3600;
    let server = TestServer::start_with(settings).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while store
        .attempt(attempts[0].id)
        .await
        .unwrap()
        .detail
        .contains_key("transcript")
    {
        assert!(Instant::now() < deadline, "the purge job never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old = store.attempt(attempts[0].id).await.unwrap();
    assert!(!old.detail.contains_key("notes"), "{:?}", old.detail);
    assert_eq!(old.result.as_deref(), Some("completed"), "the record stays");
    let recent = store.attempt(attempts[1].id).await.unwrap();
    assert!(
        recent.detail.contains_key("transcript"),
        "{:?}",
        recent.detail
    );

    // The counter is recorded once the purge run is over.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if purged(&scrape, "transcripts") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no purge counted:\n{scrape}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_purges_old_transcripts_and_counts_them_on_sqlite() {
    the_server_purges_old_transcripts_and_counts_them(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_purges_old_transcripts_and_counts_them_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    the_server_purges_old_transcripts_and_counts_them(db).await;
}
