//! Several processes on one database: campaign leases (one owner at a time, taken over
//! only once expired) and a carrier account's shared dial slots (never more dials in one
//! window than the limit, however many take at once).

use super::*;
use std::time::Duration;
use switchboard_engine::CampaignId;
use switchboard_engine::store::MAX_DIAL_SLOTS;

conformance!(
    a_campaign_lease_has_one_owner_until_it_expires,
    simultaneous_acquisitions_let_exactly_one_owner_through,
    a_renewal_reports_the_stored_status_until_the_lease_is_taken_over,
    running_campaigns_nobody_holds_are_claimable,
    concurrent_takers_never_exceed_the_dial_limit,
    dial_slots_of_one_account_are_not_another_accounts,
    a_dial_limit_out_of_range_is_refused,
    a_reservation_nobody_dialed_is_withdrawn,
);

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

async fn running_campaign(store: &Store, name: &str) -> (TenantId, CampaignId) {
    let t = tenant(store, name).await;
    let c = store.create_campaign(t, &ready_config(name)).await.unwrap();
    store
        .start_campaign(t, c.id, Cause::User, "start")
        .await
        .unwrap();
    (t, c.id)
}

async fn a_campaign_lease_has_one_owner_until_it_expires(store: &Store) {
    let (_, c) = running_campaign(store, "leased").await;
    assert!(store.acquire_campaign_lease(c, "a", SHORT).await.unwrap());
    assert!(
        !store.acquire_campaign_lease(c, "b", LONG).await.unwrap(),
        "held by a"
    );
    assert!(
        store.acquire_campaign_lease(c, "a", SHORT).await.unwrap(),
        "its owner acquires it again"
    );
    let lease = store.campaign_lease(c).await.unwrap().unwrap();
    assert_eq!(lease.owner, "a");
    assert!(lease.expires_at > lease.acquired_at);

    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(
        store.acquire_campaign_lease(c, "b", LONG).await.unwrap(),
        "expired: taken over"
    );
    assert!(!store.acquire_campaign_lease(c, "a", LONG).await.unwrap());
    assert!(
        !store.release_campaign_lease(c, "a").await.unwrap(),
        "a releases nothing it does not hold"
    );
    assert_eq!(store.campaign_lease(c).await.unwrap().unwrap().owner, "b");
    assert!(store.release_campaign_lease(c, "b").await.unwrap());
    assert!(store.campaign_lease(c).await.unwrap().is_none());
    assert!(
        store.acquire_campaign_lease(c, "a", LONG).await.unwrap(),
        "released: free"
    );
    assert_eq!(store.release_campaign_leases("a").await.unwrap(), 1);
    assert!(matches!(
        store.acquire_campaign_lease(c, "a", Duration::ZERO).await,
        Err(Error::Invalid { .. })
    ));
}

async fn simultaneous_acquisitions_let_exactly_one_owner_through(store: &Store) {
    let (_, c) = running_campaign(store, "raced").await;
    // Expired leases are raced for too, not only free ones.
    for round in 0..2 {
        let tries = (0..8).map(|i| {
            let store = store.clone();
            async move {
                let owner = format!("p{round}-{i}");
                let won = store
                    .acquire_campaign_lease(c, &owner, SHORT)
                    .await
                    .unwrap();
                won.then_some(owner)
            }
        });
        let winners: Vec<String> = futures_join(tries).await.into_iter().flatten().collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let lease = store.campaign_lease(c).await.unwrap().unwrap();
        assert_eq!(lease.owner, winners[0]);
        tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    }
}

/// Runs the futures concurrently, each on a task of its own.
async fn futures_join<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn a_renewal_reports_the_stored_status_until_the_lease_is_taken_over(store: &Store) {
    let (t, c) = running_campaign(store, "renewed").await;
    assert!(store.acquire_campaign_lease(c, "a", SHORT).await.unwrap());
    let first = store
        .renew_campaign_lease(c, "a", SHORT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, CampaignStatus::Active);
    // Another process pauses it: the owner learns at its next renewal.
    store
        .transition_campaign(t, c, CampaignStatus::Paused, Cause::User, "hold", None)
        .await
        .unwrap();
    let second = store
        .renew_campaign_lease(c, "a", SHORT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, CampaignStatus::Paused);
    assert!(second.updated_at >= first.updated_at);
    assert!(second.expires_at >= first.expires_at, "renewed");
    assert!(
        store
            .renew_campaign_lease(c, "b", SHORT)
            .await
            .unwrap()
            .is_none(),
        "b never held it"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(store.acquire_campaign_lease(c, "b", LONG).await.unwrap());
    assert!(
        store
            .renew_campaign_lease(c, "a", SHORT)
            .await
            .unwrap()
            .is_none(),
        "taken over: a's renewal fails"
    );
}

async fn running_campaigns_nobody_holds_are_claimable(store: &Store) {
    let (t, free) = running_campaign(store, "free").await;
    let (_, theirs) = running_campaign(store, "theirs").await;
    let (_, mine) = running_campaign(store, "mine").await;
    let (_, lapsed) = running_campaign(store, "lapsed").await;
    let draft = store
        .create_campaign(t, &ready_config("draft"))
        .await
        .unwrap();
    assert!(
        store
            .acquire_campaign_lease(theirs, "b", LONG)
            .await
            .unwrap()
    );
    assert!(store.acquire_campaign_lease(mine, "a", LONG).await.unwrap());
    assert!(
        store
            .acquire_campaign_lease(lapsed, "b", SHORT)
            .await
            .unwrap()
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let ids: Vec<CampaignId> = store
        .claimable_campaigns("a")
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec![free, mine, lapsed]);
    assert!(!ids.contains(&draft.id), "only running campaigns");

    // A stopped campaign's lapsed lease is tidied away; a running one's is kept.
    store
        .transition_campaign(t, free, CampaignStatus::Stopped, Cause::User, "x", None)
        .await
        .unwrap();
    assert!(
        store
            .acquire_campaign_lease(free, "b", SHORT)
            .await
            .unwrap()
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert_eq!(store.prune_campaign_leases().await.unwrap(), 1);
    assert!(store.campaign_lease(free).await.unwrap().is_none());
    assert!(store.campaign_lease(lapsed).await.unwrap().is_some());
}

/// The most stamps in any window of `span`, sliding.
fn most_in_window(at: &[chrono::DateTime<chrono::Utc>], span: chrono::Duration) -> usize {
    let mut at = at.to_vec();
    at.sort();
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t - at[i] < span).count())
        .max()
        .unwrap_or(0)
}

/// Four takers (as many processes) ask at once, again and again, for three seconds.
async fn concurrent_takers_never_exceed_the_dial_limit(store: &Store) {
    const LIMIT: u32 = 5;
    let window = Duration::from_millis(1025);
    store.prepare_dial_slots("AC1", LIMIT).await.unwrap();
    store.prepare_dial_slots("AC1", LIMIT).await.unwrap();
    let takers = (0..4u32).map(|taker| {
        let store = store.clone();
        async move {
            let mut taken = Vec::new();
            let start = std::time::Instant::now();
            let mut round = 0u32;
            while start.elapsed() < Duration::from_secs(3) {
                round += 1;
                let n = 1 + (round + taker) % 3;
                taken.extend(
                    store
                        .take_dial_slots("AC1", LIMIT, window, n)
                        .await
                        .unwrap(),
                );
                tokio::time::sleep(Duration::from_millis(1 + u64::from(taker))).await;
            }
            taken
        }
    });
    let per_taker = futures_join(takers).await;
    assert!(
        per_taker.iter().filter(|t| !t.is_empty()).count() >= 2,
        "takers took side by side: {per_taker:?}"
    );
    let all: Vec<_> = per_taker.concat();
    let span = chrono::Duration::from_std(window).unwrap();
    assert!(
        most_in_window(&all, span) <= LIMIT as usize,
        "{} dials in one window: {all:?}",
        most_in_window(&all, span)
    );
    // The limit is used: 5 per window over about 3 seconds.
    assert!(all.len() >= 3 * LIMIT as usize, "{} dials", all.len());
}

async fn dial_slots_of_one_account_are_not_another_accounts(store: &Store) {
    let window = Duration::from_secs(60);
    store.prepare_dial_slots("AC1", 2).await.unwrap();
    store.prepare_dial_slots("AC2", 1).await.unwrap();
    assert_eq!(
        store
            .take_dial_slots("AC1", 2, window, 5)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .take_dial_slots("AC1", 2, window, 1)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store
            .take_dial_slots("AC2", 1, window, 5)
            .await
            .unwrap()
            .len(),
        1
    );
    // A process configured for a lower limit keeps to it within the same slots.
    store.prepare_dial_slots("AC3", 4).await.unwrap();
    assert_eq!(
        store
            .take_dial_slots("AC3", 1, window, 5)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .take_dial_slots("AC3", 4, window, 5)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .take_dial_slots("AC3", 1, window, 0)
            .await
            .unwrap()
            .len(),
        0
    );
}

async fn a_dial_limit_out_of_range_is_refused(store: &Store) {
    for slots in [0, MAX_DIAL_SLOTS + 1] {
        let err = store.prepare_dial_slots("AC1", slots).await.unwrap_err();
        assert!(err.to_string().contains("slots"), "{err}");
        assert!(matches!(
            store
                .take_dial_slots("AC1", slots, Duration::from_secs(1), 1)
                .await,
            Err(Error::Invalid { .. })
        ));
    }
}

async fn a_reservation_nobody_dialed_is_withdrawn(store: &Store) {
    let t = tenant(store, "t").await;
    let campaign = store.create_campaign(t, &ready_config("W")).await.unwrap();
    let mut contacts = Vec::new();
    for i in 0..3 {
        let phone = format!("+1415555020{i}");
        contacts.push(
            store
                .upsert_contact(t, &contact(&phone, None, json!({})))
                .await
                .unwrap(),
        );
    }
    let ids: Vec<ContactId> = contacts.iter().map(|c| c.id).collect();
    store.enqueue_contacts(campaign.id, &ids, 1).await.unwrap();
    let new = |c: &switchboard_engine::contact::Contact, seen: i32| NewAttempt {
        tenant_id: t,
        campaign_id: campaign.id,
        contact_id: c.id,
        phone: c.phone.clone(),
        attempts_seen: seen,
    };
    // The first contact had an attempt already; all three are reserved again.
    let first = store.reserve_attempt(&new(&contacts[0], 0)).await.unwrap();
    store
        .update_attempt(
            first.id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Ended),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store
        .requeue_contact(
            campaign.id,
            contacts[0].id,
            Some(switchboard_engine::time::now()),
            "no_answer",
        )
        .await
        .unwrap();
    let before = store
        .queue_entry(campaign.id, contacts[0].id)
        .await
        .unwrap();
    let batch = [
        new(&contacts[0], 1),
        new(&contacts[1], 0),
        new(&contacts[2], 0),
    ];
    let reserved: Vec<_> = store
        .reserve_attempts(&batch)
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(reserved.len(), 3);
    // The third was dialed meanwhile: it stays.
    store
        .update_attempt(
            reserved[2].id,
            &AttemptUpdate {
                status: Some(AttemptStatus::Dialing),
                carrier_call_id: Some("CA1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = reserved.iter().map(|a| a.id).collect();
    assert_eq!(store.withdraw_reservations(&ids).await.unwrap(), 2);
    assert_eq!(store.withdraw_reservations(&ids).await.unwrap(), 0, "once");
    let left = store.campaign_attempts(campaign.id, 100).await.unwrap();
    let mut left_ids: Vec<_> = left.iter().map(|a| a.id).collect();
    left_ids.sort();
    assert_eq!(left_ids, vec![first.id, reserved[2].id]);
    let requeued = store
        .queue_entry(campaign.id, contacts[0].id)
        .await
        .unwrap();
    assert_eq!(
        (requeued.attempts, requeued.last_attempt_at),
        (before.attempts, before.last_attempt_at),
        "the contact is queued as it was before"
    );
    assert_eq!(
        store
            .queue_entry(campaign.id, contacts[1].id)
            .await
            .unwrap()
            .attempts,
        0
    );
    let counts = store.queue_counts(campaign.id).await.unwrap();
    assert_eq!((counts.queued, counts.in_progress), (2, 1));
    // A withdrawn contact is reserved again as if nothing happened.
    let again = store.reserve_attempt(&new(&contacts[1], 0)).await.unwrap();
    assert_eq!(again.attempt_no, 1);
}
