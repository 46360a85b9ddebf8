//! A create that reached the carrier but whose answer was never stored (the process died
//! in between): the attempt has no call sid, yet its callee's phone may be ringing. Settling
//! it with the carrier finds the call in the account's list of calls to the number and
//! adopts it, so the attempt is followed, not closed and dialed again.

use chrono::Utc;
use std::time::Duration;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptStatus, CarrierUpdate};
use switchboard_loadtest::{Millis, SimCarrier};
use switchboard_media::twilio::client::TwilioConfig;
use switchboard_media::{CallStatus, TwilioClient};
use switchboard_tests::campaign_run::wait_until;
use switchboard_tests::{ACCOUNT_SID, AUTH_TOKEN, TestServer, answering_carrier, seed_calls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_create_answer_was_lost_adopts_the_call_the_carrier_placed() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let mut config = answering_carrier(60_000);
    config.api_latency_ms = Millis::Fixed(0);
    let carrier = SimCarrier::start(config).await.unwrap();
    let dialer = server.dialer(&carrier.base_url());
    let twilio = TwilioClient::new(
        TwilioConfig::new(ACCOUNT_SID, AUTH_TOKEN.to_owned().into())
            .with_api_base(carrier.base_url()),
    )
    .unwrap();

    let (_, attempts) = seed_calls(
        &store,
        "ws://127.0.0.1:9/agent",
        &[
            ("+14155550111", serde_json::json!({})),
            ("+14155550122", serde_json::json!({})),
        ],
    )
    .await;
    let (lost, never_sent) = (&attempts[0], &attempts[1]);

    // Another tenant's call to the same number, placed just before and held by that
    // tenant's attempt: never adopted.
    let (_, theirs) = seed_calls(
        &store,
        "ws://127.0.0.1:9/agent",
        &[("+14155550111", serde_json::json!({}))],
    )
    .await;
    let earlier = twilio
        .create_call(&dialer.request(&theirs[0]))
        .await
        .unwrap();
    store
        .apply_carrier_update(
            theirs[0].id,
            &CarrierUpdate {
                carrier_call_id: Some(earlier.sid.clone()),
                status: Some(AttemptStatus::Dialing),
                result: None,
                answered_by: None,
                sequence: None,
                carrier_status: "queued".into(),
                at: Utc::now(),
                carrier_at: None,
                error_code: None,
                sip_response_code: None,
            },
        )
        .await
        .unwrap();
    // The lost create: the carrier placed it, nobody stored its answer. It was placed by
    // another process, from its own caller id.
    let mut request = dialer.request(lost);
    request.from = "+14155550999".into();
    let placed = twilio.create_call(&request).await.unwrap();
    assert_ne!(placed.sid, earlier.sid);

    let live = dialer
        .settle_with_carrier(&store, lost, Utc::now())
        .await
        .unwrap();
    assert!(live, "the carrier's call is ringing: the attempt is live");
    let adopted = store.attempt(lost.id).await.unwrap();
    assert_eq!(
        adopted.carrier_call_id.as_deref(),
        Some(placed.sid.as_str())
    );

    // An attempt whose create never reached the carrier has nothing to adopt.
    let live = dialer
        .settle_with_carrier(&store, never_sent, Utc::now())
        .await
        .unwrap();
    assert!(!live);
    assert_eq!(
        store.attempt(never_sent.id).await.unwrap().carrier_call_id,
        None
    );

    // The adopted call is the carrier's: hanging it up ends it there.
    dialer.hangup(&placed.sid).await.unwrap();
    wait_until(
        "the carrier ended the call",
        Duration::from_secs(10),
        async || {
            matches!(
                twilio.fetch_call(&placed.sid).await.map(|c| c.status),
                Ok(Some(CallStatus::Canceled | CallStatus::Completed))
            )
        },
    )
    .await;
    assert_eq!(
        carrier
            .calls()
            .iter()
            .filter(|c| c.to == "+14155550111")
            .count(),
        2,
        "ours and theirs: nothing was dialed again"
    );
    carrier.shutdown().await;
    server.stop().await;
}
