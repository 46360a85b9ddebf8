//! End-to-end tests on loopback: the simulated carrier, the scripted agent and small
//! receivers written here, all over real sockets.

mod callbacks;
mod calls_api;
mod cps;
mod streaming;
mod support;
mod updates;
