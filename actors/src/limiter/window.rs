//! The window logic of the carrier rate limiter, pure so it is tested without actors or a
//! database.
//!
//! A sliding-window log: a dial is allowed only while fewer than `cps` were allowed in the
//! window before it, so no one-second window ever holds more than `cps` dials. A bucket
//! refilled at `cps` would allow a burst of `cps` on top of the refill within one second.
//! Fractional limits (`0.5` = one dial every two seconds) widen the window to `1 / cps`
//! seconds per dial. Each window is [`MARGIN`] longer than that, so requests that reach the
//! carrier a little later or earlier than they were allowed (scheduling, connection reuse)
//! still never land more than `cps` in one of the carrier's seconds. Time is the real
//! clock: the limit is about requests reaching the carrier, not the campaign's simulated
//! time.
//!
//! The same [`WindowShape`] (dials per window, window span) drives the log this process
//! keeps ([`DialWindow`]) and the slots shared through the database
//! (`Store::take_dial_slots`), which keep the same rule across processes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Added to each window: how far apart allowing a dial and its request reaching the
/// carrier may drift without two windows' dials meeting in one second at the carrier.
pub const MARGIN: Duration = Duration::from_millis(25);

/// How many dials one window allows, and how long a window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowShape {
    /// Dials per window.
    pub per_window: u32,
    /// The window's span, [`MARGIN`] included.
    pub span: Duration,
}

impl WindowShape {
    /// The window for `cps` calls per second (a limit that is not a positive number is
    /// taken as 1): `cps` ≥ 1 → ⌊cps⌋ dials per second; below 1 → one per `1 / cps` s.
    pub fn for_cps(cps: f64) -> WindowShape {
        let cps = if cps.is_finite() && cps > 0.0 {
            cps
        } else {
            1.0
        };
        if cps >= 1.0 {
            WindowShape {
                per_window: cps.floor().min(f64::from(u32::MAX)) as u32,
                span: Duration::from_secs(1) + MARGIN,
            }
        } else {
            WindowShape {
                per_window: 1,
                span: Duration::from_secs_f64(1.0 / cps) + MARGIN,
            }
        }
    }
}

/// A sliding-window log of allowed dials.
#[derive(Debug, Clone)]
pub struct DialWindow {
    shape: WindowShape,
    /// When the dials of the current window were allowed, oldest first.
    log: VecDeque<Instant>,
}

impl DialWindow {
    /// A window for `cps` calls per second (`cps` > 0).
    pub fn new(cps: f64) -> DialWindow {
        Self::with_shape(WindowShape::for_cps(cps))
    }

    /// A window of this shape.
    pub fn with_shape(shape: WindowShape) -> DialWindow {
        DialWindow {
            shape,
            log: VecDeque::with_capacity(shape.per_window.min(1024) as usize),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.log.front() {
            if now.duration_since(*first) >= self.shape.span {
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// Dials allowed at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.expire(now);
        let used = u32::try_from(self.log.len()).unwrap_or(u32::MAX);
        self.shape.per_window.saturating_sub(used)
    }

    /// Takes up to `n` dials at `now`; returns how many.
    pub fn take(&mut self, n: u32, now: Instant) -> u32 {
        let granted = self.available(now).min(n);
        for _ in 0..granted {
            self.log.push_back(now);
        }
        granted
    }

    /// Dials allowed in the current window.
    pub fn in_window(&self) -> usize {
        self.log.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most instants in any window of `span` (sliding).
    fn most_in(mut at: Vec<Instant>, span: Duration) -> usize {
        at.sort();
        (0..at.len())
            .map(|i| {
                at[i..]
                    .iter()
                    .take_while(|t| t.duration_since(at[i]) < span)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_second_ever_holds_more_dials_than_the_limit() {
        let mut window = DialWindow::new(5.0);
        let t0 = Instant::now();
        let mut allowed = Vec::new();
        // Ask for 3 dials every 100 ms for 5 seconds.
        for step in 0..50 {
            let now = t0 + Duration::from_millis(step * 100);
            for _ in 0..window.take(3, now) {
                allowed.push(now);
            }
        }
        assert!(most_in(allowed.clone(), Duration::from_secs(1)) <= 5);
        // And the limit is used: 5 per window over 5 seconds.
        assert_eq!(allowed.len(), 25);
    }

    #[test]
    fn requests_arriving_a_little_late_still_keep_to_the_limit_at_the_carrier() {
        let mut window = DialWindow::new(2.0);
        let t0 = Instant::now();
        let mut arrivals = Vec::new();
        for step in 0..60u64 {
            let now = t0 + Duration::from_millis(step * 50);
            for _ in 0..window.take(2, now) {
                // The first request of each burst is delayed on its way, the rest are not.
                let delay = if arrivals.len() % 2 == 0 { 20 } else { 0 };
                arrivals.push(now + Duration::from_millis(delay));
            }
        }
        assert!(most_in(arrivals, Duration::from_secs(1)) <= 2);
    }

    #[test]
    fn a_fractional_limit_spaces_dials_out() {
        let mut window = DialWindow::new(0.5);
        let t0 = Instant::now();
        assert_eq!(window.take(4, t0), 1);
        assert_eq!(window.take(1, t0 + Duration::from_millis(1999)), 0);
        assert_eq!(window.take(1, t0 + Duration::from_secs(2) + MARGIN), 1);
    }

    #[test]
    fn available_does_not_take() {
        let mut window = DialWindow::new(2.0);
        let t0 = Instant::now();
        assert_eq!(window.available(t0), 2);
        assert_eq!(window.available(t0), 2);
        assert_eq!(window.take(5, t0), 2);
        assert_eq!(window.available(t0), 0);
    }

    #[test]
    fn the_shape_follows_the_limit_with_the_margin() {
        let one_second = Duration::from_secs(1) + MARGIN;
        assert_eq!(
            WindowShape::for_cps(5.7),
            WindowShape {
                per_window: 5,
                span: one_second
            }
        );
        assert_eq!(
            WindowShape::for_cps(0.25),
            WindowShape {
                per_window: 1,
                span: Duration::from_secs(4) + MARGIN
            }
        );
        for nonsense in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(WindowShape::for_cps(nonsense).per_window, 1, "{nonsense}");
        }
    }

    /// The rule `Store::take_dial_slots` applies in the database: a dial takes a slot
    /// last used at least a window ago.
    struct SharedSlots(Vec<Option<Instant>>);

    impl SharedSlots {
        fn take(&mut self, n: u32, now: Instant, span: Duration) -> u32 {
            let mut taken = 0;
            for slot in &mut self.0 {
                if taken == n {
                    break;
                }
                if slot.is_none_or(|used| now.duration_since(used) >= span) {
                    *slot = Some(now);
                    taken += 1;
                }
            }
            taken
        }
    }

    /// Two processes, each with its own window in front of the shared slots, asking on
    /// ticks of their own: together they keep to the one limit; each alone would not.
    #[test]
    fn two_processes_in_front_of_shared_slots_keep_to_one_limit_together() {
        let shape = WindowShape::for_cps(5.0);
        let mut shared = SharedSlots(vec![None; shape.per_window as usize]);
        let mut fronts = [DialWindow::with_shape(shape), DialWindow::with_shape(shape)];
        let t0 = Instant::now();
        let mut together = Vec::new();
        // Process 0 ticks every 100 ms, process 1 every 70 ms, each asking for 4 dials.
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            for (p, every) in [(0, 100), (1, 70)] {
                if ms % every != 0 {
                    continue;
                }
                let ask = fronts[p].available(now).min(4);
                let granted = shared.take(ask, now, shape.span);
                fronts[p].take(granted, now);
                together.extend(std::iter::repeat_n(now, granted as usize));
            }
        }
        assert!(most_in(together.clone(), Duration::from_secs(1)) <= 5);
        assert!(
            together.len() >= 45,
            "the limit is used: {} dials in 10 s",
            together.len()
        );
        // Two windows that do not share would let both fill the same second.
        let mut a = DialWindow::with_shape(shape);
        let mut b = DialWindow::with_shape(shape);
        let separate = a.take(5, t0) + b.take(5, t0);
        assert_eq!(separate, 10, "unshared, two processes double the limit");
    }
}
