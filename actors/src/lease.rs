//! Campaign leases, as the runtime holds them: several processes share one database, and
//! each running campaign is run by exactly one of them, the holder of its lease.
//!
//! - **Acquire.** The engine supervisor runs a campaign supervisor only after acquiring
//!   the campaign's lease (`Store::acquire_campaign_lease`: atomic; free, expired or ours
//!   already). It does so when a campaign is started through this process (before it is
//!   activated, so that it runs here) or resumed through it, when the scheduler activates
//!   one, at start, and on its scan every [`heartbeat`] for running campaigns whose lease
//!   is free or has expired: a process that died leaves its campaigns to the others one
//!   lease time to live after its last renewal.
//! - **Take over.** A campaign supervisor always starts by reconciling the campaign's
//!   unfinished attempts with the carrier (the same as after a restart) before it dials
//!   anything: what the previous owner had in flight is closed or followed, never dialed
//!   again.
//! - **Renew.** The supervisor renews its lease every [`heartbeat`] (a third of the time to
//!   live). It dials only while [`LeaseHold::may_dial`]: within two thirds of the time to
//!   live after its last successful renewal was sent. The database's expiry is at least a
//!   whole time to live after that moment, so a holder cut off from the database (or
//!   stalled) stops dialing a third of the time to live before anyone may take over, which
//!   is the room for a reserved attempt's request to reach the carrier.
//! - **Lose.** A renewal that finds the lease no longer ours (taken over after it expired)
//!   ends the supervisor at once: no new dials; its live calls go on at the carrier and
//!   through the media relay, and the new owner follows them after reconciling. A
//!   renewal that fails (database unreachable) keeps the supervisor but it stops dialing
//!   once its time is up, and dials again if a later renewal finds the lease still ours.
//! - **See the stored state.** A renewal also answers the campaign's stored status and
//!   last change: a pause, resume or stop made through another process (the lifecycle
//!   lives in the database) reaches the owner at its next heartbeat, and an edit makes it
//!   read the configuration again. Through the owning process they act at once.
//! - **Release.** A supervisor that ends (stopped, completed, shutdown) releases its
//!   lease. A paused campaign keeps its supervisor, and so its lease: its live calls
//!   finish under it and its end time is still watched.
//!
//! Leases are stamped by the database's clock, so hosts whose clocks disagree agree on
//! expiry; the holder's own deadline is measured on its monotonic clock from before it
//! sent the renewal, which is never later than the database's stamp.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How often leases are renewed and free campaigns looked for: a third of `ttl`.
pub fn heartbeat(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(10))
}

/// A campaign supervisor's hold on its campaign's lease.
#[derive(Debug, Clone)]
pub struct LeaseHold {
    /// The owner the lease names: this process's instance id.
    pub owner: String,
    ttl: Duration,
    /// Dialing stops at this instant unless a renewal moves it.
    dial_until: Instant,
    /// The expiry the database gave at the last renewal.
    expires_at: Option<DateTime<Utc>>,
}

impl LeaseHold {
    /// A lease acquired (or renewed) by a statement sent at `sent`.
    pub fn new(owner: String, ttl: Duration, sent: Instant) -> LeaseHold {
        LeaseHold {
            owner,
            ttl,
            dial_until: sent + dial_share(ttl),
            expires_at: None,
        }
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A renewal sent at `sent` succeeded: the lease now expires at `expires_at`.
    pub fn renewed(&mut self, sent: Instant, expires_at: DateTime<Utc>) {
        self.dial_until = self.dial_until.max(sent + dial_share(self.ttl));
        self.expires_at = Some(expires_at);
    }

    /// Whether the holder may still dial at `now`.
    pub fn may_dial(&self, now: Instant) -> bool {
        now < self.dial_until
    }

    /// The expiry the database gave at the last renewal, if any.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }
}

/// The part of the time to live a holder dials in after a renewal: two thirds.
fn dial_share(ttl: Duration) -> Duration {
    ttl * 2 / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_stops_dialing_a_third_of_the_ttl_before_anyone_may_take_over() {
        let ttl = Duration::from_secs(15);
        let t0 = Instant::now();
        let hold = LeaseHold::new("a".into(), ttl, t0);
        assert!(hold.may_dial(t0 + Duration::from_secs(9)));
        assert!(!hold.may_dial(t0 + Duration::from_secs(10)));
        assert_eq!(heartbeat(ttl), Duration::from_secs(5));
    }

    #[test]
    fn each_renewal_moves_the_deadline_and_never_back() {
        let ttl = Duration::from_secs(3);
        let t0 = Instant::now();
        let mut hold = LeaseHold::new("a".into(), ttl, t0);
        hold.renewed(t0 + Duration::from_secs(1), Utc::now());
        assert!(hold.may_dial(t0 + Duration::from_millis(2900)));
        assert!(!hold.may_dial(t0 + Duration::from_secs(3)));
        // A late answer to an older renewal does not shorten it.
        hold.renewed(t0, Utc::now());
        assert!(hold.may_dial(t0 + Duration::from_millis(2900)));
    }
}
