//! Waiting for a condition over recorded calls, with a deadline instead of a fixed sleep.

use std::time::Duration;

use tokio::time::Instant;

/// How often a waiting condition is checked again.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// A condition was still false at its deadline; carries the last records seen.
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition still false after {waited:?} ({} records seen)", last.len())]
pub struct WaitTimedOut<T> {
    /// How long it waited.
    pub waited: Duration,
    /// The records as they were at the deadline.
    pub last: Vec<T>,
}

/// Polls `snapshot` until `condition` holds or `timeout` passes.
pub(crate) async fn poll_until<T>(
    snapshot: impl Fn() -> Vec<T>,
    condition: impl Fn(&[T]) -> bool,
    timeout: Duration,
) -> Result<Vec<T>, WaitTimedOut<T>> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let records = snapshot();
        if condition(&records) {
            return Ok(records);
        }
        if Instant::now() >= deadline {
            return Err(WaitTimedOut {
                waited: started.elapsed(),
                last: records,
            });
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
