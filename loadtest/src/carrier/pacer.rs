//! Twilio's account calls-per-second limit: calls over it are accepted at once and queued,
//! and dialling starts when a token bucket allows (`queue_time` records the wait).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::lifecycle;
use super::record::CallEntry;
use super::server::Shared;

/// A token bucket: `capacity` dial starts back to back, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket; `None` for `rate` (or a non-positive or non-finite one) never waits.
    pub(crate) fn new(rate: Option<f64>, capacity: u32, now: Instant) -> Option<Self> {
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
        let capacity = f64::from(capacity.max(1));
        Some(Self {
            rate,
            capacity,
            tokens: capacity,
            updated: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
    }

    /// How long until a token is available (zero when one is).
    pub(crate) fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// Takes a token; call only after [`TokenBucket::wait`] returned zero.
    pub(crate) fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

/// Starts queued calls one by one as the bucket allows, each in its own task.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Arc<CallEntry>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut bucket = TokenBucket::new(shared.config.cps, shared.config.burst, Instant::now());
    loop {
        let entry = tokio::select! {
            entry = queue.recv() => entry,
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        let Some(entry) = entry else { return };
        if let Some(bucket) = bucket.as_mut() {
            loop {
                let wait = bucket.wait(Instant::now());
                if wait.is_zero() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        }
        // A call canceled while queued is skipped without using a token.
        if lifecycle::begin_dial(&entry) {
            super::tally::Tally::bump(&shared.tally.dialed);
            if let Some(bucket) = bucket.as_mut() {
                bucket.take(Instant::now());
            }
            tokio::spawn(lifecycle::run(shared.clone(), entry, shutdown.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_of_one_spaces_starts_by_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Some(2.0), 1, start).unwrap();
        assert_eq!(bucket.wait(start), Duration::ZERO);
        bucket.take(start);
        let wait = bucket.wait(start);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.wait(later), Duration::ZERO);
    }

    #[test]
    fn a_burst_allows_back_to_back_starts_then_paces() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Some(1.0), 3, start).unwrap();
        for _ in 0..3 {
            assert_eq!(bucket.wait(start), Duration::ZERO);
            bucket.take(start);
        }
        assert!(bucket.wait(start) > Duration::from_millis(999));
    }

    #[test]
    fn no_or_nonsense_rates_mean_no_limit() {
        let now = Instant::now();
        for rate in [
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ] {
            assert!(TokenBucket::new(rate, 1, now).is_none(), "{rate:?}");
        }
    }
}
