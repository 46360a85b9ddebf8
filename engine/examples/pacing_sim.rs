//! Runs the pacing simulation and prints agent occupancy and abandonment per window.
//!
//! `cargo run --release -p switchboard-engine --example pacing_sim -- [seed] [agents] [hours] [answer_z] [window_attempts] [abandonment_window_secs]`

use switchboard_engine::pacing_sim::{SimConfig, simulate};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut config = SimConfig::default();
    if let Some(seed) = args.next().and_then(|s| s.parse().ok()) {
        config.seed = seed;
    }
    if let Some(agents) = args.next().and_then(|s| s.parse().ok()) {
        config.agents = agents;
    }
    if let Some(hours) = args.next().and_then(|s| s.parse::<u64>().ok()) {
        config.duration_secs = hours * 3600;
    }
    if let Some(z) = args.next().and_then(|s| s.parse().ok()) {
        config.pacing.answer_z = z;
    }
    if let Some(window) = args.next().and_then(|s| s.parse().ok()) {
        config.pacing.window_attempts = window;
    }
    if let Some(secs) = args.next().and_then(|s| s.parse().ok()) {
        config.pacing.abandonment_window_secs = secs;
    }
    println!(
        "{} agents, answer probability {:.0}%..{:.0}% over {} min, ring {}-{} s, handle {} s mean, seed {}, z {}, window {}",
        config.agents,
        100.0 * config.answer_low,
        100.0 * config.answer_high,
        config.answer_period_secs / 60.0,
        config.ring_min_secs,
        config.ring_max_secs,
        config.handle_mean_secs,
        config.seed,
        config.pacing.answer_z,
        config.pacing.window_attempts
    );
    let report = simulate(&config);
    print!("{}", report.table());
    println!(
        "worst window abandonment {:.2}%, occupancy {:.1}%",
        100.0 * report.worst_abandonment(),
        100.0 * report.total.occupancy()
    );
}
