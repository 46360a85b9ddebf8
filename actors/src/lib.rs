//! Switchboard's runtime: the actor tree that runs campaigns (engine supervisor, campaign
//! supervisors, call actors), the dialers, the event writer that batches the calls' writes,
//! and the clock it reads time through. Several processes may share one database: each
//! running campaign is run by the holder of its lease ([`lease`]) and the carrier's
//! calls-per-second limit is shared ([`limiter`]).
#![warn(missing_docs)]

pub mod agent_reach;
pub mod call;
pub mod campaign;
pub mod clock;
pub mod context;
pub mod dial;
pub mod lease;
pub mod limiter;
pub mod metrics;
pub mod outcome;
pub mod pacing;
pub mod runtime;
mod scheduler;
pub mod settings;
pub mod urls;
pub mod writer;

pub use runtime::{Runtime, RuntimeError, RuntimeSettings, Services};
pub use writer::{EventWriter, WriterSettings, WriterSnapshot};
