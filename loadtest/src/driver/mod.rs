//! The load driver behind the `loadtest` binary: starts the simulated carrier and the
//! scripted agent (with a [`FrameProbe`](crate::probe::FrameProbe) timing every frame),
//! starts Switchboard as its own process (or uses one already running), runs a campaign
//! through the HTTP API, prints one progress line a second and ends with a report.

pub mod measure;
pub mod procstat;
pub mod report;
pub mod run;
pub mod scenario;
pub mod server;

pub use report::Report;
pub use run::{RunOptions, run};
pub use scenario::Scenario;

/// The driver's errors are the crate's.
pub use crate::Error as DriverError;
