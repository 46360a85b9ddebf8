//! The relay against in-memory sockets: forwarding, protocol errors, silence and stalls,
//! and what it reports while it runs.

use super::*;
use tokio::io::DuplexStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

type Ws = WebSocketStream<DuplexStream>;

/// A relay between fresh pipes, started at once: (its task, the carrier's end, the agent's
/// end).
async fn relaying<P: RelayProbe + Send + 'static>(
    limits: RelayLimits,
    stop: CancellationToken,
    probe: P,
) -> (tokio::task::JoinHandle<RelayStats>, Ws, Ws) {
    let (carrier_end, carrier) = pipe().await;
    let (agent_end, agent) = pipe().await;
    let task = tokio::spawn(relay(
        carrier_end,
        agent_end,
        "MZ1",
        Instant::now(),
        limits,
        stop,
        probe,
    ));
    (task, carrier, agent)
}

/// A WebSocket over an in-memory pipe: (the relay's end, the peer's end).
async fn pipe() -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let relay_end = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
    let peer_end = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
    (relay_end, peer_end)
}

const MEDIA: &str = r#"{"event":"media","sequenceNumber":"3","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"20","payload":"//////8="}}"#;
const AGENT_MEDIA: &str = r#"{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}}"#;

async fn next_text(ws: &mut Ws) -> String {
    match ws.next().await {
        Some(Ok(Message::Text(t))) => t.to_string(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn close_reason(ws: &mut Ws) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(frame)))) => return frame.reason.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

fn limits() -> RelayLimits {
    RelayLimits {
        carrier_stall: Duration::from_millis(300),
        agent_first_audio: Duration::from_millis(300),
    }
}

#[tokio::test]
async fn frames_are_forwarded_unchanged_both_ways_until_the_carrier_stops() {
    let (relay, mut carrier, mut agent) =
        relaying(RelayLimits::default(), CancellationToken::new(), ()).await;
    carrier.send(Message::text(MEDIA)).await.unwrap();
    assert_eq!(next_text(&mut agent).await, MEDIA);
    agent.send(Message::text(AGENT_MEDIA)).await.unwrap();
    assert_eq!(next_text(&mut carrier).await, AGENT_MEDIA);
    let mark = r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"greeting-done"}}"#;
    agent.send(Message::text(mark)).await.unwrap();
    assert_eq!(next_text(&mut carrier).await, mark);
    let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"9"}}"#;
    carrier.send(Message::text(dtmf)).await.unwrap();
    assert_eq!(next_text(&mut agent).await, dtmf);
    let stop = r#"{"event":"stop","streamSid":"MZ1","sequenceNumber":"6","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
    carrier.send(Message::text(stop)).await.unwrap();
    assert_eq!(
        next_text(&mut agent).await,
        stop,
        "the agent hears the stop"
    );
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::CarrierStopped);
    assert_eq!(
        (
            stats.frames_from_carrier,
            stats.frames_from_agent,
            stats.dtmf,
            stats.marks
        ),
        (1, 1, 1, 1)
    );
    assert!(stats.first_agent_audio.is_some());
    assert_eq!(close_reason(&mut agent).await, "carrier_stopped");
}

#[tokio::test]
async fn bad_agent_frames_are_dropped_and_reported_and_the_call_goes_on() {
    let probe = Recorder::default();
    let (relay, mut carrier, mut agent) = relaying(
        RelayLimits::default(),
        CancellationToken::new(),
        probe.clone(),
    )
    .await;
    agent.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    agent.send(Message::text("hello")).await.unwrap();
    agent
        .send(Message::text(
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"!!"}}"#,
        ))
        .await
        .unwrap();
    agent.send(Message::binary(vec![4])).await.unwrap();
    // The next good frame is the first thing the carrier sees.
    agent.send(Message::text(AGENT_MEDIA)).await.unwrap();
    assert_eq!(next_text(&mut carrier).await, AGENT_MEDIA);
    carrier.close(None).await.unwrap();
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::CarrierClosed);
    assert_eq!(
        (stats.agent_frames_dropped, stats.frames_from_agent),
        (4, 1)
    );
    assert_eq!(
        probe.reports(),
        [
            "dropped binary 1",
            "dropped not_an_event 1",
            "dropped invalid_payload 1",
            "dropped binary 2",
            "first_audio"
        ]
    );
}

#[tokio::test]
async fn agent_frames_reach_the_carrier_in_its_own_shape_and_stream() {
    let (relay, mut carrier, mut agent) =
        relaying(RelayLimits::default(), CancellationToken::new(), ()).await;
    // As Python's json.dumps writes it, for another stream, with a field Twilio refuses.
    let spaced = r#"{"event": "media", "streamSid": "MZ9", "media": {"payload": "AAAA", "track": "outbound"}}"#;
    agent.send(Message::text(spaced)).await.unwrap();
    assert_eq!(next_text(&mut carrier).await, AGENT_MEDIA);
    agent
        .send(Message::text(r#"{"event":"clear"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut carrier).await,
        r#"{"event":"clear","streamSid":"MZ1"}"#
    );
    carrier.close(None).await.unwrap();
    let stats = relay.await.unwrap();
    assert_eq!(
        (
            stats.agent_frames_rewritten,
            stats.clears,
            stats.frames_from_agent
        ),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn text_that_is_not_an_event_from_the_carrier_ends_the_call() {
    let (relay, mut carrier, mut agent) =
        relaying(RelayLimits::default(), CancellationToken::new(), ()).await;
    carrier.send(Message::text("hello")).await.unwrap();
    let stats = relay.await.unwrap();
    assert!(
        matches!(stats.end, EndReason::CarrierError(_)),
        "{:?}",
        stats.end
    );
    assert_eq!(close_reason(&mut agent).await, "carrier_error");
}

#[tokio::test]
async fn an_agent_that_never_speaks_is_cut_off() {
    let (relay, mut carrier, _agent) = relaying(limits(), CancellationToken::new(), ()).await;
    // The carrier keeps streaming; the agent stays silent past its deadline.
    let feeding = tokio::spawn(async move {
        for _ in 0..40 {
            if carrier.send(Message::text(MEDIA)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        carrier
    });
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::AgentSilent);
    drop(feeding);
}

#[tokio::test]
async fn a_stalled_carrier_stream_is_ended() {
    let (relay, _carrier, mut agent) = relaying(
        RelayLimits {
            agent_first_audio: Duration::from_secs(10),
            ..limits()
        },
        CancellationToken::new(),
        (),
    )
    .await;
    agent.send(Message::text(AGENT_MEDIA)).await.unwrap();
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::CarrierStalled);
    assert_eq!(close_reason(&mut agent).await, "carrier_stalled");
}

#[tokio::test]
async fn late_carrier_frames_are_counted() {
    let (relay, mut carrier, mut agent) =
        relaying(RelayLimits::default(), CancellationToken::new(), ()).await;
    for pause in [0u64, 20, 100, 20] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        carrier.send(Message::text(MEDIA)).await.unwrap();
        next_text(&mut agent).await;
    }
    carrier.close(None).await.unwrap();
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::CarrierClosed);
    assert_eq!(stats.frames_from_carrier, 4);
    assert_eq!(stats.gaps, 1, "one frame arrived 100 ms after the previous");
    assert!(stats.max_gap >= Duration::from_millis(100));
}

/// Records what the relay reports while it runs.
#[derive(Clone, Default)]
struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Recorder {
    fn reports(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl RelayProbe for Recorder {
    fn first_agent_audio(&mut self, after: Duration) {
        assert!(after < Duration::from_secs(5));
        self.0.lock().unwrap().push("first_audio".into());
    }

    fn latency(&mut self, p50_us: u64, p99_us: u64) {
        assert!(p50_us >= 1 && p99_us >= p50_us);
        self.0.lock().unwrap().push("latency".into());
    }

    fn agent_frame_dropped(&mut self, violation: FrameViolation, count: u64) {
        let report = format!("dropped {} {count}", violation.code());
        self.0.lock().unwrap().push(report);
    }
}

#[tokio::test]
async fn the_probe_hears_the_first_agent_audio_at_once_and_latency_every_250_frames() {
    let probe = Recorder::default();
    let (relay, mut carrier, mut agent) = relaying(
        RelayLimits::default(),
        CancellationToken::new(),
        probe.clone(),
    )
    .await;
    for _ in 0..10 {
        carrier.send(Message::text(MEDIA)).await.unwrap();
        next_text(&mut agent).await;
    }
    assert!(probe.reports().is_empty(), "the agent has not spoken yet");
    for _ in 0..3 {
        agent.send(Message::text(AGENT_MEDIA)).await.unwrap();
        next_text(&mut carrier).await;
    }
    assert_eq!(
        probe.reports(),
        ["first_audio"],
        "reported while the call runs, once"
    );
    for _ in 0..(LATENCY_REPORT_FRAMES - 13) {
        carrier.send(Message::text(MEDIA)).await.unwrap();
        next_text(&mut agent).await;
    }
    // The last frame's latency is recorded just after it was written: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while probe.reports().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(probe.reports(), ["first_audio", "latency"]);
    carrier.close(None).await.unwrap();
    let stats = relay.await.unwrap();
    assert_eq!(stats.latency_us.len(), LATENCY_REPORT_FRAMES);
}

#[tokio::test]
async fn a_relay_told_to_stop_closes_both_sides_with_the_reason_and_keeps_its_figures() {
    let stop = CancellationToken::new();
    let (relay, mut carrier, mut agent) = relaying(RelayLimits::default(), stop.clone(), ()).await;
    carrier.send(Message::text(MEDIA)).await.unwrap();
    next_text(&mut agent).await;
    stop.cancel();
    let stats = relay.await.unwrap();
    assert_eq!(stats.end, EndReason::Shutdown);
    assert_eq!(stats.frames_from_carrier, 1);
    assert_eq!(close_reason(&mut carrier).await, "shutdown");
    assert_eq!(close_reason(&mut agent).await, "shutdown");
}
