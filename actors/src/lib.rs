//! Switchboard's runtime: the actor tree that runs campaigns (engine supervisor, campaign
//! supervisors, call actors, pacing actors, carrier limiter, scheduler, event writer).
#![warn(missing_docs)]

pub mod context;
pub mod dial;
pub mod urls;
