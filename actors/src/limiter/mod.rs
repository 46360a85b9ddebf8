//! The carrier rate limiter: one per carrier account in each process, in front of the
//! account's dial slots in the database, so the account's calls-per-second limit holds
//! across every campaign of every process sharing the database.
//!
//! Campaigns ask it for dials (`Take(n)`) on their ticks. It gathers the requests that
//! arrive while it works and takes them from the database together, in one statement
//! (`Store::take_dial_slots`), then shares what it got among them first come, first
//! served. A request the account has no room for at all waits up to [`PATIENCE`], asked
//! again every [`RETRY`], and is answered as soon as it gets any: dials go out as soon as
//! the window has room rather than on the next tick of whichever campaign ticks first
//! after that (which would leave a campaign whose ticks fall just behind another process's
//! without any dial). Dials got are never held back. The database keeps the sliding-window rule of [`window`] across processes: a
//! dial takes a slot last used at least a window (a second plus [`MARGIN`]) ago, stamped
//! by the database's clock, so the dials of all processes together never put more than
//! the limit into one of the carrier's seconds. Its own [`DialWindow`] of the dials this
//! process got answers `Available` (what pacing plans with) without a round trip: an upper
//! bound, since other processes may have taken the rest. A database error grants nothing
//! (fail closed: nobody knows the carrier's room).
//!
//! When the carrier refuses a create for capacity (429 / 20429, 5xx), the call actor tells
//! the limiter ([`LimiterMsg::Refused`]) and this process dials slower for a while: see
//! [`backoff`] (the rate halves, then climbs back over tens of seconds).

pub mod backoff;
pub mod window;

pub use backoff::Backoff;
pub use window::{DialWindow, MARGIN, WindowShape};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use std::time::{Duration, Instant};
use switchboard_engine::store::Store;

/// Longest a request for dials waits while there is no room at all, before it is
/// answered with none.
pub const PATIENCE: Duration = Duration::from_millis(400);

/// How often a waiting request asks again.
pub const RETRY: Duration = Duration::from_millis(40);

/// The registry name of the limiter of a carrier account.
pub fn limiter_name(account: &str) -> String {
    format!("carrier:{account}")
}

/// Messages to the limiter.
#[derive(Debug)]
pub enum LimiterMsg {
    /// Allow up to `n` dials, waiting up to [`PATIENCE`] while there is no room at all;
    /// replies with how many were allowed.
    Take(u32, RpcReplyPort<u32>),
    /// How many dials this process could be allowed now, without taking them.
    Available(RpcReplyPort<u32>),
    /// Take the requests gathered so far from the database, together.
    Flush,
    /// Ask again for the requests still waiting.
    Retry,
    /// The limiter's figures.
    Snapshot(RpcReplyPort<LimiterSnapshot>),
    /// The carrier refused a create for capacity (429 / 20429, 5xx): slow down.
    Refused,
}

/// What a limiter shows.
#[derive(Debug, Clone, Serialize)]
pub struct LimiterSnapshot {
    /// Carrier account.
    pub account: String,
    /// Calls per second allowed (`None`: unlimited).
    pub cps: Option<f64>,
    /// Dials this process was allowed in the current window.
    pub in_window: usize,
    /// Dials allowed since start.
    pub allowed: u64,
    /// Dials asked for and refused since start (they wait for a later tick).
    pub refused: u64,
    /// Round trips to the shared dial slots since start.
    pub round_trips: u64,
    /// Creates the carrier refused for capacity since start.
    pub carrier_refusals: u64,
    /// The dial rate this process backs off to after them, while it does.
    pub backoff_cps: Option<f64>,
}

/// The limiter actor.
pub struct CarrierLimiter;

/// A request for dials: how many, how many it got so far, how long it may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Need {
    asked: u32,
    got: u32,
    until: Instant,
}

/// A waiting request and where its answer goes.
struct Pending {
    need: Need,
    reply: RpcReplyPort<u32>,
}

/// Shares `granted` dials among the requests, oldest first, each taking what it asked
/// for; returns, for each, whether it is answered now: it got some (a grant held back
/// would reach the carrier late, beyond what the window's margin covers), or it may wait
/// no longer.
fn share(needs: &mut [Need], mut granted: u32, now: Instant) -> Vec<bool> {
    needs
        .iter_mut()
        .map(|need| {
            let mine = (need.asked - need.got).min(granted);
            granted -= mine;
            need.got += mine;
            need.got > 0 || now >= need.until
        })
        .collect()
}

/// Its state.
pub struct LimiterState {
    account: String,
    cps: Option<f64>,
    shape: Option<WindowShape>,
    window: Option<DialWindow>,
    store: Store,
    /// The account's slots exist in the database.
    prepared: bool,
    /// Requests waiting for dials, oldest first.
    pending: Vec<Pending>,
    flush_queued: bool,
    retry_queued: bool,
    allowed: u64,
    refused: u64,
    round_trips: u64,
    /// Slowing down after the carrier refused creates for capacity.
    backoff: Backoff,
    carrier_refusals: u64,
}

/// What a limiter starts with: the account, its calls per second (`None`: unlimited) and
/// the database its dial slots are shared through.
pub struct LimiterArgs {
    /// Carrier account.
    pub account: String,
    /// Calls per second.
    pub cps: Option<f64>,
    /// The shared dial slots.
    pub store: Store,
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
        let shape = args.cps.map(WindowShape::for_cps);
        Ok(LimiterState {
            window: shape.map(DialWindow::with_shape),
            shape,
            cps: args.cps,
            account: args.account,
            store: args.store,
            prepared: false,
            pending: Vec::new(),
            flush_queued: false,
            retry_queued: false,
            allowed: 0,
            refused: 0,
            round_trips: 0,
            backoff: Backoff::new(args.cps),
            carrier_refusals: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LimiterMsg>,
        msg: LimiterMsg,
        state: &mut LimiterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LimiterMsg::Take(n, reply) if state.shape.is_none() => {
                let now = Instant::now();
                let granted = n.min(state.backoff.available(now));
                state.backoff.take(granted, now);
                state.allowed += u64::from(granted);
                state.refused += u64::from(n - granted);
                let _ = reply.send(granted);
            }
            LimiterMsg::Take(n, reply) => {
                let need = Need {
                    asked: n,
                    got: 0,
                    until: Instant::now() + PATIENCE,
                };
                state.pending.push(Pending { need, reply });
                if !state.flush_queued {
                    // Behind the requests already queued: they are taken together.
                    state.flush_queued = true;
                    myself.cast(LimiterMsg::Flush)?;
                }
            }
            LimiterMsg::Flush => {
                state.flush_queued = false;
                flush(&myself, state).await;
            }
            LimiterMsg::Retry => {
                state.retry_queued = false;
                flush(&myself, state).await;
            }
            LimiterMsg::Available(reply) => {
                let now = Instant::now();
                let available = match &mut state.window {
                    Some(window) => window.available(now),
                    None => u32::MAX,
                };
                let _ = reply.send(available.min(state.backoff.available(now)));
            }
            LimiterMsg::Refused => {
                state.carrier_refusals += 1;
                state.backoff.refused(Instant::now());
                tracing::info!(account = %state.account, backoff_cps = ?state.backoff.rate(Instant::now()), "the carrier is full; dialing slower");
            }
            LimiterMsg::Snapshot(reply) => {
                let _ = reply.send(LimiterSnapshot {
                    account: state.account.clone(),
                    cps: state.cps,
                    in_window: state.window.as_ref().map_or(0, DialWindow::in_window),
                    allowed: state.allowed,
                    refused: state.refused,
                    round_trips: state.round_trips,
                    carrier_refusals: state.carrier_refusals,
                    backoff_cps: state.backoff.rate(Instant::now()),
                });
            }
        }
        Ok(())
    }
}

/// Takes what the waiting requests need from the shared slots in one round trip and
/// shares it among them in order; answers those that got any (or are out of patience),
/// and asks again soon for the rest.
async fn flush(myself: &ActorRef<LimiterMsg>, state: &mut LimiterState) {
    let want: u32 = state
        .pending
        .iter()
        .fold(0, |sum, p| sum.saturating_add(p.need.asked - p.need.got));
    let (Some(shape), Some(window)) = (state.shape, state.window.as_mut()) else {
        return;
    };
    // Never more than this process's own window (and its backoff) could allow.
    let ask = window
        .available(Instant::now())
        .min(want)
        .min(state.backoff.available(Instant::now()));
    let mut granted = 0;
    if ask > 0 {
        granted = take_shared(state, shape, ask).await;
    }
    if let Some(window) = state.window.as_mut() {
        window.take(granted, Instant::now());
    }
    state.backoff.take(granted, Instant::now());
    state.allowed += u64::from(granted);
    let mut needs: Vec<Need> = state.pending.iter().map(|p| p.need).collect();
    let answered = share(&mut needs, granted, Instant::now());
    let mut waiting = Vec::new();
    for ((mut p, need), answer) in std::mem::take(&mut state.pending)
        .into_iter()
        .zip(needs)
        .zip(answered)
    {
        p.need = need;
        if answer {
            state.refused += u64::from(need.asked - need.got);
            let _ = p.reply.send(need.got);
        } else {
            waiting.push(p);
        }
    }
    state.pending = waiting;
    if !state.pending.is_empty() && !state.retry_queued {
        state.retry_queued = true;
        myself.send_after(RETRY, || LimiterMsg::Retry);
    }
}

/// Takes up to `n` dials from the account's shared slots; none when the database fails.
async fn take_shared(state: &mut LimiterState, shape: WindowShape, n: u32) -> u32 {
    state.round_trips += 1;
    if !state.prepared {
        match state
            .store
            .prepare_dial_slots(&state.account, shape.per_window)
            .await
        {
            Ok(()) => state.prepared = true,
            Err(e) => {
                tracing::warn!(error = %e, "could not prepare the carrier's dial slots; not dialing");
                return 0;
            }
        }
    }
    match state
        .store
        .take_dial_slots(&state.account, shape.per_window, shape.span, n)
        .await
    {
        Ok(taken) => u32::try_from(taken.len()).unwrap_or(n).min(n),
        Err(e) => {
            tracing::warn!(error = %e, "could not take dial slots from the database; not dialing");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dials_got_are_answered_at_once_and_requests_with_none_wait_their_patience() {
        let now = Instant::now();
        let need = |asked| Need {
            asked,
            got: 0,
            until: now + PATIENCE,
        };
        let mut needs = [need(2), need(3), need(1)];
        // Oldest first: the first gets all it asked, the second part of it, the third none.
        assert_eq!(share(&mut needs, 4, now), [true, true, false]);
        assert_eq!(needs.map(|n| n.got), [2, 2, 0]);
        // The third waits until room comes or its patience runs out.
        let mut third = [needs[2]];
        assert_eq!(share(&mut third, 0, now + RETRY), [false]);
        assert_eq!(share(&mut third, 1, now + RETRY * 2), [true]);
        let mut late = [need(1)];
        assert_eq!(
            share(&mut late, 0, now + PATIENCE),
            [true],
            "answered with none"
        );
        assert_eq!(late[0].got, 0);
    }
}
