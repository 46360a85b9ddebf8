//! The agent session driven by channels instead of a socket, in real time (a few tens of milliseconds).

use std::collections::BTreeMap;

use futures_util::{sink, stream};
use switchboard_media::streams::{DtmfInfo, MediaFormat, StartInfo};
use tokio::sync::mpsc;

use super::*;

fn start_event(params: &[(&str, &str)]) -> String {
    let custom_parameters: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    StreamEvent::Start {
        sequence_number: Some("1".to_owned()),
        stream_sid: "MZ1".to_owned(),
        start: StartInfo {
            stream_sid: "MZ1".to_owned(),
            account_sid: "AC1".to_owned(),
            call_sid: "CA1".to_owned(),
            tracks: vec!["inbound".to_owned()],
            media_format: MediaFormat::default(),
            custom_parameters,
        },
    }
    .to_json()
}

fn dtmf(digit: &str) -> String {
    StreamEvent::Dtmf {
        sequence_number: Some("9".to_owned()),
        stream_sid: "MZ1".to_owned(),
        dtmf: DtmfInfo {
            track: Some("inbound_track".to_owned()),
            digit: digit.to_owned(),
        },
    }
    .to_json()
}

#[tokio::test]
async fn the_agent_greets_marks_and_opts_out_over_plain_channels() {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<WsOut>();
    let out = Box::pin(sink::unfold(out_tx, |tx, item: WsOut| async move {
        tx.send(item).map(|()| tx).map_err(|_| "receiver gone")
    }));
    let (in_tx, in_rx) = mpsc::unbounded_channel::<WsIn>();
    let incoming = Box::pin(stream::unfold(in_rx, |mut rx| async move {
        rx.recv().await.map(|message| (message, rx))
    }));
    let config = AgentConfig {
        greeting_delay_ms: 0,
        talk_ms: 60,
        listen_ms: 60_000,
        ..AgentConfig::default()
    };
    let entry = Arc::new(AgentEntry::new(None));
    let (_stop, shutdown) = watch::channel(false);
    let session = Session {
        config: Arc::new(config),
        http: reqwest::Client::new(),
        entry: entry.clone(),
        shutdown,
    };
    in_tx
        .send(WsIn::Text(StreamEvent::connected().to_json()))
        .unwrap();
    in_tx
        .send(WsIn::Text(start_event(&[("call_id", "c-9")])))
        .unwrap();
    let task = tokio::spawn(run(out, incoming, session));

    for _ in 0..3 {
        let Some(WsOut::Text(frame)) = out_rx.recv().await else {
            panic!("expected a media frame");
        };
        assert_eq!(peek_event(&frame), Some(EventKind::Media));
    }
    let Some(WsOut::Text(mark)) = out_rx.recv().await else {
        panic!("expected the mark");
    };
    assert_eq!(
        StreamEvent::parse(&mark).unwrap(),
        StreamEvent::mark("MZ1", GREETING_MARK)
    );

    in_tx.send(WsIn::Text(dtmf("9"))).unwrap();
    assert!(matches!(
        out_rx.recv().await,
        Some(WsOut::Close(CLOSE_NORMAL, _))
    ));
    drop(in_tx);
    assert_eq!(task.await.unwrap(), AgentCloseReason::OptedOut);

    let record = entry.record();
    assert_eq!(record.call_id.as_deref(), Some("c-9"));
    assert_eq!((record.frames_sent, record.dtmf_received.len()), (3, 1));
    let report = record.outcome.expect("an outcome is recorded");
    assert_eq!((report.outcome, report.attempts), (Outcome::DoNotCall, 0));
    assert!(report.error.is_some(), "no outcome_url was given");
}
