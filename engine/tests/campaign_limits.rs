//! The tenant's `max_running_campaigns` is checked in the transaction that activates a
//! campaign, on SQLite and PostgreSQL: simultaneous starts let exactly as many through as
//! the limit allows, a refused start leaves its campaign as it was, and resuming, the
//! scheduler's activation and a freed slot obey the same count.

use serde_json::json;
use switchboard_engine::campaign::{CampaignConfig, CampaignStatus, Cause};
use switchboard_engine::store::Store;
use switchboard_engine::{CampaignId, Error, TenantId, conformance};

conformance!(
    simultaneous_starts_let_exactly_the_limit_through,
    resuming_and_scheduled_starts_count_against_the_same_limit,
);

fn ready_config(name: &str) -> CampaignConfig {
    CampaignConfig::from_json(json!({
        "name": name,
        "audience": {"query": {}},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/stream"},
        "script": {"template": "Hello {name|there}."}
    }))
    .unwrap()
}

async fn limited_tenant(store: &Store, name: &str, limit: i64) -> TenantId {
    let tenant = store.create_tenant(name).await.unwrap().id;
    store
        .set_tenant_limits(tenant, Some(limit), None)
        .await
        .unwrap();
    tenant
}

async fn drafts(store: &Store, tenant: TenantId, n: usize) -> Vec<CampaignId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let config = ready_config(&format!("campaign {i}"));
        ids.push(store.create_campaign(tenant, &config).await.unwrap().id);
    }
    ids
}

fn is_limit(result: &Result<impl std::fmt::Debug, Error>, active: u64) -> bool {
    matches!(result, Err(Error::LimitReached { limit: "max_running_campaigns", max: _, current }) if *current == active)
}

async fn simultaneous_starts_let_exactly_the_limit_through(store: &Store) {
    let tenant = limited_tenant(store, "acme", 2).await;
    let ids = drafts(store, tenant, 6).await;
    let mut starts = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let store = store.clone();
        starts.spawn(async move {
            let started = store.start_campaign(tenant, id, Cause::User, "go").await;
            (id, started)
        });
    }
    let results = starts.join_all().await;
    let started: Vec<_> = results.iter().filter(|(_, r)| r.is_ok()).collect();
    assert_eq!(started.len(), 2, "{results:#?}");
    for (id, result) in &results {
        let stored = store.campaign(tenant, *id).await.unwrap().status;
        match result {
            Ok(record) => {
                assert_eq!(
                    (record.status, stored),
                    (CampaignStatus::Active, CampaignStatus::Active)
                );
                let history = store.campaign_history(tenant, *id).await.unwrap();
                let path: Vec<_> = history.iter().map(|t| (t.from, t.to)).collect();
                assert_eq!(
                    path,
                    [
                        (CampaignStatus::Draft, CampaignStatus::Scheduled),
                        (CampaignStatus::Scheduled, CampaignStatus::Active)
                    ]
                );
            }
            refused => {
                assert!(is_limit(refused, 2), "{refused:?}");
                assert_eq!(
                    stored,
                    CampaignStatus::Draft,
                    "a refused start changes nothing"
                );
                assert!(
                    store
                        .campaign_history(tenant, *id)
                        .await
                        .unwrap()
                        .is_empty()
                );
            }
        }
    }
    let message = results
        .iter()
        .find_map(|(_, r)| r.as_ref().err())
        .unwrap()
        .to_string();
    assert!(message.contains("max_running_campaigns = 2"), "{message}");
}

async fn resuming_and_scheduled_starts_count_against_the_same_limit(store: &Store) {
    let tenant = limited_tenant(store, "acme", 1).await;
    let ids = drafts(store, tenant, 3).await;
    store
        .start_campaign(tenant, ids[0], Cause::User, "go")
        .await
        .unwrap();
    store
        .transition_campaign(
            tenant,
            ids[0],
            CampaignStatus::Paused,
            Cause::User,
            "wait",
            None,
        )
        .await
        .unwrap();
    store
        .start_campaign(tenant, ids[1], Cause::User, "go")
        .await
        .unwrap();

    // The slot is taken: resuming the paused one and the scheduler's start both wait.
    let resumed = store
        .transition_campaign(
            tenant,
            ids[0],
            CampaignStatus::Active,
            Cause::User,
            "resume",
            None,
        )
        .await;
    assert!(is_limit(&resumed, 1), "{resumed:?}");
    store
        .transition_campaign(
            tenant,
            ids[2],
            CampaignStatus::Scheduled,
            Cause::User,
            "ready",
            None,
        )
        .await
        .unwrap();
    let scheduled = store
        .transition_campaign(
            tenant,
            ids[2],
            CampaignStatus::Active,
            Cause::Scheduler,
            "time",
            None,
        )
        .await;
    assert!(is_limit(&scheduled, 1), "{scheduled:?}");
    assert_eq!(
        store.campaign(tenant, ids[2]).await.unwrap().status,
        CampaignStatus::Scheduled
    );

    // Another tenant's campaigns do not count; a freed slot does.
    let other = limited_tenant(store, "globex", 1).await;
    let theirs = drafts(store, other, 1).await;
    store
        .start_campaign(other, theirs[0], Cause::User, "go")
        .await
        .unwrap();
    store
        .transition_campaign(
            tenant,
            ids[1],
            CampaignStatus::Stopped,
            Cause::User,
            "done",
            None,
        )
        .await
        .unwrap();
    let resumed = store
        .transition_campaign(
            tenant,
            ids[0],
            CampaignStatus::Active,
            Cause::User,
            "resume",
            None,
        )
        .await
        .unwrap();
    assert_eq!(resumed.status, CampaignStatus::Active);
}
