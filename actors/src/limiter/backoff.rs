//! Slowing down when the carrier says it is full: additive-free AIMD on the dial rate.
//!
//! A create refused for capacity (Twilio 429 / 20429, or a 5xx) halves the rate this
//! process dials at: the current backoff rate, or else the account's calls-per-second, or
//! else (no configured limit) the dials of the last second. Refusals that come together
//! (one burst, many 429s) halve it once: a second cut waits [`COOLDOWN`]. Without refusals
//! the rate doubles every [`RECOVERY_DOUBLING`], so a halving is made good in ten seconds
//! and a deep cut in a few tens; once it is back at the configured limit (or at
//! [`UNLIMITED_AGAIN`] dials a second without one) the backoff ends. While it lasts, dials
//! are allowed by the same sliding-window rule as the limiter's ([`WindowShape`]), at the
//! backoff rate: at most ⌊rate⌋ in any window, so bursts shrink with the rate too.

use super::window::WindowShape;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Shortest time between two halvings.
pub const COOLDOWN: Duration = Duration::from_secs(1);
/// Without refusals the backoff rate doubles this often.
pub const RECOVERY_DOUBLING: Duration = Duration::from_secs(10);
/// The lowest backoff rate, in dials per second.
pub const FLOOR: f64 = 0.5;
/// With no configured limit, the backoff ends once its rate is back at this.
pub const UNLIMITED_AGAIN: f64 = 1000.0;
/// How far back the log of dials reaches (the widest window, at [`FLOOR`]).
const HISTORY: Duration = Duration::from_secs(3);

/// The limiter's backoff after capacity refusals.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The account's configured calls per second, if any: where recovery stops.
    ceiling: Option<f64>,
    /// The rate now, while backing off, and when it was last set.
    rate: Option<(f64, Instant)>,
    last_cut: Option<Instant>,
    /// When the dials of the last [`HISTORY`] were allowed, oldest first.
    log: VecDeque<Instant>,
    /// Halvings since start.
    cuts: u64,
}

impl Backoff {
    /// No backoff yet, for an account with this calls-per-second limit (`None`: none).
    pub fn new(ceiling: Option<f64>) -> Backoff {
        Backoff {
            ceiling: ceiling.filter(|c| c.is_finite() && *c > 0.0),
            rate: None,
            last_cut: None,
            log: VecDeque::new(),
            cuts: 0,
        }
    }

    /// The carrier refused a create for capacity at `now`.
    pub fn refused(&mut self, now: Instant) {
        if self
            .last_cut
            .is_some_and(|at| now.saturating_duration_since(at) < COOLDOWN)
        {
            return;
        }
        self.expire(now);
        let recent = self
            .log
            .iter()
            .filter(|at| now.saturating_duration_since(**at) <= Duration::from_secs(1))
            .count() as f64;
        let base = self.rate(now).or(self.ceiling).unwrap_or(recent).max(FLOOR);
        self.rate = Some(((base / 2.0).max(FLOOR), now));
        self.last_cut = Some(now);
        self.cuts += 1;
    }

    /// The backoff rate at `now` (recovering since it was set), `None` when not backing off.
    pub fn rate(&mut self, now: Instant) -> Option<f64> {
        let (rate, since) = self.rate?;
        let elapsed = now.saturating_duration_since(since).as_secs_f64();
        let grown = rate * 2f64.powf(elapsed / RECOVERY_DOUBLING.as_secs_f64());
        let ceiling = self.ceiling.unwrap_or(UNLIMITED_AGAIN);
        if grown >= ceiling {
            self.rate = None;
            return None;
        }
        Some(grown)
    }

    /// How many dials the backoff allows now (`u32::MAX` when not backing off).
    pub fn available(&mut self, now: Instant) -> u32 {
        let Some(rate) = self.rate(now) else {
            return u32::MAX;
        };
        let shape = WindowShape::for_cps(rate);
        let in_window = self
            .log
            .iter()
            .filter(|at| now.saturating_duration_since(**at) < shape.span)
            .count() as u32;
        shape.per_window.saturating_sub(in_window)
    }

    /// Records `n` dials allowed at `now`.
    pub fn take(&mut self, n: u32, now: Instant) {
        self.expire(now);
        self.log.extend(std::iter::repeat_n(now, n as usize));
    }

    /// Halvings since start.
    pub fn cuts(&self) -> u64 {
        self.cuts
    }

    fn expire(&mut self, now: Instant) {
        while self
            .log
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > HISTORY)
        {
            self.log.pop_front();
        }
        // A burst of allowed dials far beyond any window is not worth keeping one by one.
        while self.log.len() > 100_000 {
            self.log.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_halves_the_configured_rate_and_recovers_within_tens_of_seconds() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Some(10.0));
        assert_eq!(backoff.available(start), u32::MAX);
        backoff.refused(start);
        assert_eq!(backoff.rate(start), Some(5.0));
        assert_eq!(backoff.available(start), 5);
        // Refusals of the same burst cut once.
        backoff.refused(start + Duration::from_millis(300));
        assert_eq!(backoff.cuts(), 1);
        let later = start + Duration::from_secs(5);
        let rate = backoff.rate(later).unwrap();
        assert!(rate > 5.0 && rate < 10.0, "{rate}");
        assert_eq!(backoff.rate(start + Duration::from_secs(11)), None);
        assert_eq!(backoff.available(start + Duration::from_secs(11)), u32::MAX);
    }

    #[test]
    fn without_a_limit_the_rate_halves_from_what_was_dialed() {
        let start = Instant::now();
        let mut backoff = Backoff::new(None);
        backoff.take(40, start);
        backoff.refused(start + Duration::from_millis(100));
        assert_eq!(backoff.rate(start + Duration::from_millis(100)), Some(20.0));
        // The dials just made fill the window at the new rate.
        assert_eq!(backoff.available(start + Duration::from_millis(200)), 0);
        assert!(backoff.available(start + Duration::from_millis(1300)) > 0);
    }

    #[test]
    fn repeated_refusals_go_down_to_the_floor_and_dials_are_spaced() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Some(4.0));
        let mut now = start;
        for _ in 0..10 {
            backoff.refused(now);
            now += COOLDOWN;
        }
        let rate = backoff.rate(now).unwrap();
        assert!(rate < 1.0, "{rate}");
        assert_eq!(backoff.available(now), 1);
        backoff.take(1, now);
        assert_eq!(backoff.available(now + Duration::from_millis(500)), 0);
    }
}
