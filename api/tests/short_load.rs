//! The load tool in the suite, so it cannot rot unseen: a short run (50 calls held for 10
//! seconds, every callee a person) against the real `switchboard` binary started by the
//! tool, and its report checked figure by figure.

use std::time::Duration;
use switchboard_loadtest::driver::{RunOptions, Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_holds_its_calls_and_reports_them() {
    let dir = std::env::temp_dir().join(format!("switchboard-short-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = Scenario {
        contacts: 50,
        concurrency: 50,
        ramp_secs: 2,
        duration_secs: 10,
        ring_ms: [200, 600],
        greeting_delay_ms: 100,
        ..Scenario::default()
    };
    scenario.check().unwrap();
    let options = RunOptions {
        url: None,
        api_key: None,
        pid: None,
        binary: Some(env!("CARGO_BIN_EXE_switchboard").into()),
        dir: Some(dir.clone()),
        progress: false,
    };
    let report = tokio::time::timeout(Duration::from_secs(120), run(&scenario, &options))
        .await
        .expect("the run ends")
        .expect("the run succeeds");
    eprintln!("{}", report.text());

    assert_eq!(report.originated, 50, "every contact was dialed once");
    assert_eq!(report.answered, 50);
    assert_eq!(report.bridged, 50, "every answer reached the agent");
    assert!(
        report.held_concurrent >= 45,
        "held only {} calls",
        report.held_concurrent
    );
    assert!(report.peak_concurrent <= 50, "{}", report.peak_concurrent);
    assert_eq!(report.carrier_throttled, 0);
    assert_eq!(
        report.frame_violations.total(),
        0,
        "frames Twilio would refuse: {:?}",
        report.frame_violations
    );
    for (way, figures) in [
        ("carrier to agent", &report.carrier_to_agent),
        ("agent to carrier", &report.agent_to_carrier),
    ] {
        assert!(figures.sent > 1000, "{way}: {figures:?}");
        assert_eq!(figures.lost, 0, "{way}: {figures:?}");
        assert_eq!(figures.unstamped, 0, "{way}: {figures:?}");
    }
    let first_audio = report
        .answer_to_agent_audio_ms
        .as_ref()
        .expect("answer to first audio is measured");
    assert!(first_audio.count >= 50, "{first_audio:?}");
    let relay = report
        .server_relay_latency_us
        .expect("the server's relay latency is read from /metrics");
    assert!(relay[0] > 0 && relay[0] <= relay[1], "{relay:?}");
    let cost = report.server.as_ref().expect("the server's cost is read");
    assert!(
        cost.cpu_pct_per_call.is_some() && cost.rss_kib_per_call.is_some(),
        "{cost:?}"
    );
    assert!(!report.timeline.is_empty());
    let status = report.final_status.as_ref().expect("the campaign's status");
    assert_eq!(status["campaign"]["status"], "active", "{status}");
    // 50 calls over a 2-second ramp is 1500 a minute: at most 26 in any second, not all
    // 50 at once (a create's own latency may move a few into the next window).
    assert!(
        report.max_originations_in_one_second <= 36,
        "{} creates in one second",
        report.max_originations_in_one_second
    );
    let _ = std::fs::remove_dir_all(&dir);
}
