//! Deadlines from durations that may come from untrusted input.

use std::time::Duration;

use tokio::time::Instant;

/// Longest delay honoured; anything longer is treated as "about a year from now".
const MAX_DELAY: Duration = Duration::from_secs(365 * 86_400);

/// `base` plus `ms` milliseconds, capped so that no input can overflow an `Instant`.
pub(crate) fn after_ms(base: Instant, ms: u64) -> Instant {
    after(base, Duration::from_millis(ms))
}

/// `base` plus `delay`, capped at [`MAX_DELAY`].
pub(crate) fn after(base: Instant, delay: Duration) -> Instant {
    base.checked_add(delay.min(MAX_DELAY)).unwrap_or(base)
}

/// A deadline that never comes in practice, for disabled `select!` branches.
pub(crate) fn far_future(base: Instant) -> Instant {
    after(base, MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_are_capped_instead_of_overflowing() {
        let now = Instant::now();
        assert_eq!(after_ms(now, u64::MAX), far_future(now));
        assert_eq!(after_ms(now, 20), now + Duration::from_millis(20));
    }
}
