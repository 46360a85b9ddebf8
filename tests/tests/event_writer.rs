//! The event writer over a real database (SQLite and PostgreSQL): concurrent writes share
//! transactions and are all stored, a failing write gets its own error while the rest of
//! its batch is stored, writes of one caller keep their order, and a shutdown stores
//! everything queued before it returns.

use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use switchboard_actors::{EventWriter, WriterSettings};
use switchboard_engine::campaign::Outcome;
use switchboard_engine::store::{
    AttemptRecord, AttemptStatus, AttemptUpdate, CallEvent, CarrierUpdate, OutcomeReport, Store,
};
use switchboard_engine::{AttemptId, Error, conformance};
use switchboard_tests::seed_calls;

conformance!(
    concurrent_writes_share_few_transactions_and_are_all_stored,
    a_failing_write_gets_its_own_error_while_its_batch_is_stored,
    writes_queued_together_are_applied_in_their_order,
    a_shutdown_stores_every_queued_write_before_it_returns,
    two_writers_on_the_same_calls_never_fail_each_other,
);

const MISSING: AttemptId = AttemptId(999_999);

/// A write's answer, waited for later.
type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

async fn attempts(store: &Store, n: usize) -> Vec<AttemptRecord> {
    let numbers: Vec<String> = (0..n).map(|i| format!("+1415555{:04}", 7000 + i)).collect();
    let contacts: Vec<(&str, serde_json::Value)> =
        numbers.iter().map(|p| (p.as_str(), json!({}))).collect();
    seed_calls(store, "ws://127.0.0.1:9/agent", &contacts)
        .await
        .1
}

fn event(attempt: AttemptId, kind: &str) -> CallEvent {
    CallEvent {
        attempt_id: attempt,
        at: switchboard_engine::time::now(),
        kind: kind.into(),
        data: json!({}),
    }
}

/// A carrier update without a `SequenceNumber`, so that every one is applied and stored
/// as an event of its own: these tests are about batching, not about callback order
/// (a callback at or below the highest sequence applied adds nothing; the store
/// conformance suite checks that).
fn ringing() -> CarrierUpdate {
    CarrierUpdate {
        carrier_call_id: None,
        status: Some(AttemptStatus::Ringing),
        result: None,
        answered_by: None,
        sequence: None,
        carrier_status: "ringing".into(),
        at: switchboard_engine::time::now(),
        carrier_at: None,
        error_code: None,
        sip_response_code: None,
    }
}

async fn kinds(store: &Store, attempt: AttemptId) -> Vec<String> {
    let events = store.attempt_events(attempt).await.unwrap();
    events.into_iter().map(|e| e.kind).collect()
}

/// Writes handed over to the writer, with the answers that came at once.
struct HandedOver<F: Future + ?Sized> {
    futures: Vec<Pin<Box<F>>>,
    early: Vec<Option<F::Output>>,
}

/// Polls each future once, which hands its write to the writer (the queue has room), so
/// that they are queued in this order before anything else happens.
fn hand_over<F: Future + ?Sized>(mut futures: Vec<Pin<Box<F>>>) -> HandedOver<F> {
    let mut cx = Context::from_waker(Waker::noop());
    let early = futures
        .iter_mut()
        .map(|f| match f.as_mut().poll(&mut cx) {
            Poll::Ready(answer) => Some(answer),
            Poll::Pending => None,
        })
        .collect();
    HandedOver { futures, early }
}

impl<F: Future + ?Sized> HandedOver<F> {
    /// Every answer, in the order the writes were handed over.
    async fn answers(self) -> Vec<F::Output> {
        let mut answers = Vec::new();
        for (future, early) in self.futures.into_iter().zip(self.early) {
            answers.push(match early {
                Some(answer) => answer,
                None => future.await,
            });
        }
        answers
    }
}

/// 200 tasks each hand over one write at once (events and carrier callbacks over ten
/// calls); returns the writer's (batches, writes).
async fn two_hundred_writes(
    store: &Store,
    calls: &[AttemptRecord],
    max_batch: usize,
) -> (u64, u64) {
    let settings = WriterSettings {
        max_batch,
        ..WriterSettings::default()
    };
    let writer = EventWriter::start(store.clone(), settings);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let writer = writer.clone();
            let attempt = calls[i as usize % calls.len()].id;
            tokio::spawn(async move {
                if i % 2 == 0 {
                    writer
                        .append_events(vec![event(attempt, &format!("test.{i}"))])
                        .await
                } else {
                    writer
                        .apply_carrier_update(attempt, ringing())
                        .await
                        .map(|_| ())
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let snapshot = writer.snapshot();
    eprintln!(
        "{:?} with max_batch {max_batch}: {snapshot:?}",
        store.backend()
    );
    assert_eq!((snapshot.failed_writes, snapshot.queued), (0, 0));
    writer.shutdown().await;
    (snapshot.batches, snapshot.writes)
}

async fn concurrent_writes_share_few_transactions_and_are_all_stored(store: &Store) {
    let calls = attempts(store, 10).await;
    let (batches, writes) = two_hundred_writes(store, &calls, 256).await;
    assert_eq!(writes, 200);
    assert!(
        batches * 2 < writes,
        "200 concurrent writes went through {batches} transactions"
    );
    for call in &calls {
        assert_eq!(
            kinds(store, call.id).await.len(),
            20,
            "every write is stored"
        );
    }
    // Without batching the same load takes one transaction per write.
    let (batches, writes) = two_hundred_writes(store, &calls, 1).await;
    assert_eq!((batches, writes), (200, 200));
}

async fn a_failing_write_gets_its_own_error_while_its_batch_is_stored(store: &Store) {
    let a = attempts(store, 1).await[0].id;
    // One lane: the writes about the missing call would have a lane of their own otherwise.
    let one_lane = WriterSettings {
        lanes: Some(1),
        ..WriterSettings::default()
    };
    let writer = EventWriter::start(store.clone(), one_lane);
    // A long first transaction keeps the writer busy while the next writes queue up.
    let bulk: Vec<CallEvent> = (0..3000).map(|_| event(a, "bulk")).collect();
    let first = hand_over(vec![Box::pin(writer.append_events(bulk))]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.snapshot().queued > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let callback = OutcomeReport {
        call_id: None,
        outcome: Outcome::Callback,
        notes: None,
        callback_at: None,
        transcript: None,
    };
    let w = &writer;
    let batch: Vec<Answer<'_, ()>> = vec![
        Box::pin(w.append_events(vec![event(a, "before")])),
        Box::pin(w.append_events(vec![event(MISSING, "lost")])),
        Box::pin(async move {
            w.update_attempt(MISSING, AttemptUpdate::default())
                .await
                .map(|_| ())
        }),
        Box::pin(async move { w.record_outcome(a, callback).await.map(|_| ()) }),
        Box::pin(async move { w.apply_carrier_update(a, ringing()).await.map(|_| ()) }),
        Box::pin(w.append_events(vec![event(a, "after")])),
    ];
    let batch = hand_over(batch);
    for answer in first.answers().await {
        answer.unwrap();
    }
    let results = batch.answers().await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(Error::Database(_))), "{results:?}");
    assert!(
        matches!(results[2], Err(Error::NotFound { .. })),
        "{results:?}"
    );
    assert!(
        matches!(results[3], Err(Error::Invalid { .. })),
        "{results:?}"
    );
    assert!(results[4].is_ok() && results[5].is_ok(), "{results:?}");
    let snapshot = writer.snapshot();
    assert_eq!(
        (snapshot.batches, snapshot.writes, snapshot.failed_writes),
        (2, 7, 3),
        "the failing writes shared their transaction with the others: {snapshot:?}"
    );
    assert!(snapshot.last_error.is_some());
    let stored = kinds(store, a).await;
    assert_eq!(stored.len(), 3003);
    assert_eq!(&stored[3000..], ["before", "carrier.ringing", "after"]);
    assert!(kinds(store, MISSING).await.is_empty());
    assert_eq!(store.attempt(a).await.unwrap().outcome, None);
    writer.shutdown().await;
}

async fn writes_queued_together_are_applied_in_their_order(store: &Store) {
    let calls = attempts(store, 3).await;
    let writer = EventWriter::start(store.clone(), WriterSettings::default());
    let queued: Vec<_> = (0..60)
        .map(|i| {
            let call = calls[i % 3].id;
            Box::pin(writer.append_events(vec![event(call, &format!("e{i:02}"))]))
        })
        .collect();
    for result in hand_over(queued).answers().await {
        result.unwrap();
    }
    for (n, call) in calls.iter().enumerate() {
        let expected: Vec<String> = (0..60)
            .filter(|i| i % 3 == n)
            .map(|i| format!("e{i:02}"))
            .collect();
        assert_eq!(kinds(store, call.id).await, expected);
    }
    writer.shutdown().await;
}

async fn a_shutdown_stores_every_queued_write_before_it_returns(store: &Store) {
    let a = attempts(store, 1).await[0].id;
    let writer = EventWriter::start(store.clone(), WriterSettings::default());
    let queued: Vec<_> = (0..100)
        .map(|i| Box::pin(writer.append_events(vec![event(a, &format!("e{i}"))])))
        .collect();
    let queued = hand_over(queued);
    writer.shutdown().await;
    assert_eq!(
        kinds(store, a).await.len(),
        100,
        "everything queued before the shutdown is stored when it returns"
    );
    for result in queued.answers().await {
        result.unwrap();
    }
    let snapshot = writer.snapshot();
    assert!(!snapshot.running);
    assert_eq!(snapshot.writes, 100);
    // Afterwards a write is still stored, alone.
    writer.append_events(vec![event(a, "late")]).await.unwrap();
    assert_eq!(kinds(store, a).await.len(), 101);
    assert_eq!(writer.snapshot().writes, 100);
    writer.shutdown().await;
}

/// Two writers (two processes sharing PostgreSQL) batch updates of the same calls in
/// opposite orders at the same time: neither batch deadlocks the other into failing.
async fn two_writers_on_the_same_calls_never_fail_each_other(store: &Store) {
    let calls = attempts(store, 40).await;
    let ids: Vec<AttemptId> = calls.iter().map(|c| c.id).collect();
    for round in 0..3u64 {
        let (a, b) = (
            EventWriter::start(store.clone(), WriterSettings::default()),
            EventWriter::start(store.clone(), WriterSettings::default()),
        );
        let mut queued: Vec<Answer<'_, bool>> = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let reversed = ids[ids.len() - 1 - n];
            queued.push(Box::pin(a.apply_carrier_update(*id, ringing())));
            queued.push(Box::pin(b.apply_carrier_update(reversed, ringing())));
        }
        let failed: Vec<String> = hand_over(queued)
            .answers()
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        assert!(failed.is_empty(), "round {round}: {failed:?}");
        a.shutdown().await;
        b.shutdown().await;
    }
    for id in ids {
        assert_eq!(kinds(store, id).await.len(), 6);
    }
}
