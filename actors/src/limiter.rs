//! The carrier rate limiter: one per carrier account, shared by every campaign dialing
//! through it, so the account's calls-per-second limit is never exceeded however many
//! campaigns run.
//!
//! It keeps the instants of the dials it allowed in the last second (a sliding-window
//! log): a dial is allowed only while fewer than `cps` were allowed in the second before
//! it, so no one-second window ever holds more than `cps` dials. A bucket refilled at
//! `cps` would allow a burst of `cps` on top of the refill within one second. Fractional
//! limits (`0.5` = one dial every two seconds) widen the window to `1 / cps` seconds per
//! dial. Each window is [`MARGIN`] longer than that, so requests that reach the carrier a
//! little later or earlier than they were allowed (scheduling, connection reuse) still
//! never land more than `cps` in one of the carrier's seconds. Time is the real monotonic
//! clock: the limit is about requests reaching the carrier, not the campaign's simulated
//! time.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The registry name of the limiter of a carrier account.
pub fn limiter_name(account: &str) -> String {
    format!("carrier:{account}")
}

/// Messages to the limiter.
#[derive(Debug)]
pub enum LimiterMsg {
    /// Allow up to `n` dials now; replies with how many were allowed.
    Take(u32, RpcReplyPort<u32>),
    /// How many dials would be allowed now, without taking them.
    Available(RpcReplyPort<u32>),
    /// The limiter's figures.
    Snapshot(RpcReplyPort<LimiterSnapshot>),
}

/// What a limiter shows.
#[derive(Debug, Clone, Serialize)]
pub struct LimiterSnapshot {
    /// Carrier account.
    pub account: String,
    /// Calls per second allowed (`None`: unlimited).
    pub cps: Option<f64>,
    /// Dials allowed in the current window.
    pub in_window: usize,
    /// Dials allowed since start.
    pub allowed: u64,
    /// Dials asked for and refused since start (they wait for a later tick).
    pub refused: u64,
}

/// Added to each window: how far apart allowing a dial and its request reaching the
/// carrier may drift without two windows' dials meeting in one second at the carrier.
pub const MARGIN: Duration = Duration::from_millis(25);

/// A sliding-window log of allowed dials: pure, so it is tested without actors.
#[derive(Debug, Clone)]
pub struct DialWindow {
    /// Dials per window.
    per_window: usize,
    /// The window's span.
    span: Duration,
    /// When the dials of the current window were allowed, oldest first.
    log: VecDeque<Instant>,
}

impl DialWindow {
    /// A window for `cps` calls per second (`cps` > 0).
    pub fn new(cps: f64) -> DialWindow {
        let cps = if cps.is_finite() && cps > 0.0 {
            cps
        } else {
            1.0
        };
        // Whole dials per window: `cps` ≥ 1 → ⌊cps⌋ per second; below 1 → one per 1/cps s.
        let (per_window, span) = if cps >= 1.0 {
            (cps.floor() as usize, Duration::from_secs(1) + MARGIN)
        } else {
            (1, Duration::from_secs_f64(1.0 / cps) + MARGIN)
        };
        DialWindow {
            per_window,
            span,
            log: VecDeque::with_capacity(per_window),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(first) = self.log.front() {
            if now.duration_since(*first) >= self.span {
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// Dials allowed at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.expire(now);
        (self.per_window - self.log.len().min(self.per_window)) as u32
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

/// The limiter actor.
pub struct CarrierLimiter;

/// Its state.
pub struct LimiterState {
    account: String,
    window: Option<DialWindow>,
    cps: Option<f64>,
    allowed: u64,
    refused: u64,
}

/// What a limiter starts with: the account and its calls per second (`None`: unlimited).
pub struct LimiterArgs {
    /// Carrier account.
    pub account: String,
    /// Calls per second.
    pub cps: Option<f64>,
}

impl Actor for CarrierLimiter {
    type Msg = LimiterMsg;
    type State = LimiterState;
    type Arguments = LimiterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LimiterMsg>,
        args: LimiterArgs,
    ) -> Result<LimiterState, ActorProcessingErr> {
        Ok(LimiterState {
            window: args.cps.map(DialWindow::new),
            cps: args.cps,
            account: args.account,
            allowed: 0,
            refused: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LimiterMsg>,
        msg: LimiterMsg,
        state: &mut LimiterState,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match msg {
            LimiterMsg::Take(n, reply) => {
                let granted = match &mut state.window {
                    Some(window) => window.take(n, now),
                    None => n,
                };
                state.allowed += u64::from(granted);
                state.refused += u64::from(n - granted);
                let _ = reply.send(granted);
            }
            LimiterMsg::Available(reply) => {
                let available = match &mut state.window {
                    Some(window) => window.available(now),
                    None => u32::MAX,
                };
                let _ = reply.send(available);
            }
            LimiterMsg::Snapshot(reply) => {
                let _ = reply.send(LimiterSnapshot {
                    account: state.account.clone(),
                    cps: state.cps,
                    in_window: state.window.as_ref().map_or(0, DialWindow::in_window),
                    allowed: state.allowed,
                    refused: state.refused,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (i, start) in allowed.iter().enumerate() {
            let within = allowed[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(within <= 5, "{within} dials in the second from dial {i}");
        }
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
        arrivals.sort();
        for (i, start) in arrivals.iter().enumerate() {
            let within = arrivals[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            assert!(
                within <= 2,
                "{within} requests in the carrier's second from {i}"
            );
        }
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
}
