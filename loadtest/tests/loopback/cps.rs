//! The account calls-per-second limit queues calls, as Twilio does, instead of refusing them.

use std::time::Duration;

use futures_util::future::join_all;
use switchboard_loadtest::{AnswerMix, CarrierConfig, Millis};
use switchboard_media::twilio::call::CreateCall;

use crate::support::*;

#[tokio::test]
async fn calls_over_the_limit_are_accepted_at_once_and_dialled_half_a_second_apart() {
    let config = CarrierConfig {
        mix: AnswerMix::all_human(),
        ring_ms: Millis::Fixed(20),
        talk_ms: Millis::Fixed(50),
        ..carrier_config().cps(Some(2.0))
    };
    let carrier = start_carrier(config).await;
    let twilio = twilio(&carrier);
    let requests: Vec<_> = (0..6)
        .map(|n| {
            CreateCall::new(format!("+1555333000{n}"), FROM).twiml("<Response><Hangup/></Response>")
        })
        .collect();
    let created = join_all(requests.iter().map(|r| twilio.create_call(r))).await;
    assert!(
        created
            .iter()
            .all(|c| c.as_ref().is_ok_and(|c| c.queue_time_ms() == Some(0)))
    );

    let calls = carrier
        .wait_until(
            |calls| calls.len() == 6 && calls.iter().all(|c| c.dial_started_at.is_some()),
            PATIENCE,
        )
        .await
        .expect("every call starts dialling");
    let mut starts: Vec<_> = calls.iter().filter_map(|c| c.dial_started_at).collect();
    starts.sort();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(450),
            "dial starts {gap:?} apart at 2 cps"
        );
    }
    let mut queued: Vec<_> = calls.iter().filter_map(|c| c.queue_time_ms).collect();
    queued.sort();
    assert!(queued[0] < 200, "the first call dials at once: {queued:?}");
    assert!(
        queued[5] >= 2_300,
        "the sixth waits about 2.5 s: {queued:?}"
    );

    let last = calls.iter().max_by_key(|c| c.queue_time_ms).unwrap();
    let fetched = twilio.fetch_call(&last.sid).await.unwrap();
    assert_eq!(fetched.queue_time_ms(), last.queue_time_ms);
    carrier.shutdown().await;
}
