//! SIP-mode calls through the simulated LiveKit over real sockets: the callee's SIP answer
//! becomes the attempt's result (486 busy, 603 declined, 480/503 carrier capacity and
//! retryable, a ringing timeout no answer), and an answered call is bridged with its agent
//! dispatched into the room with the call context.

use secrecy::SecretString;
use serde_json::json;
use std::time::Duration;
use switchboard_actors::dial::{DialError, SipDialer};
use switchboard_actors::urls::PublicUrls;
use switchboard_engine::store::AttemptStatus;
use switchboard_engine::store::testing::TestDb;
use switchboard_loadtest::livekit::{SimLiveKit, SimLiveKitConfig, SipScript};
use switchboard_media::livekit::{LiveKitAgents, LiveKitConfig, SipDialOptions};
use switchboard_tests::{TestServer, seed_calls_with};

const KEY: &str = "APIsip";
const SECRET: &str = "sip-test-secret-that-is-long-enough-000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_answers_become_attempt_results() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start(&db).await;
    let cases = [
        (
            "+14155550201",
            SipScript::busy(20),
            "busy",
            Some(486u64),
            false,
        ),
        (
            "+14155550202",
            SipScript::declined(20),
            "declined",
            Some(603),
            false,
        ),
        (
            "+14155550203",
            SipScript::unavailable(20),
            "carrier_capacity",
            Some(480),
            true,
        ),
        (
            "+14155550204",
            SipScript::service_unavailable(20),
            "carrier_capacity",
            Some(503),
            true,
        ),
        (
            "+14155550205",
            SipScript::no_answer(),
            "no_answer",
            None,
            false,
        ),
    ];
    let answered = "+14155550206";
    let mut config = SimLiveKitConfig::new(KEY, SECRET);
    for (phone, script, ..) in &cases {
        config
            .sip_scripts
            .insert((*phone).to_owned(), script.clone());
    }
    config
        .sip_scripts
        .insert(answered.to_owned(), SipScript::answered(20));
    let livekit = SimLiveKit::start(config).await.unwrap();

    let mut contacts: Vec<(&str, serde_json::Value)> =
        cases.iter().map(|(p, ..)| (*p, json!({}))).collect();
    contacts.push((answered, json!({"plan": "gold"})));
    let agent = json!({"mode": "sip", "agent_name": "outbound-sales", "trunk_id": "ST_trunk"});
    let (tenant, attempts) = seed_calls_with(server.store(), agent, &contacts).await;
    let campaign = server
        .store()
        .campaign(tenant, attempts[0].campaign_id)
        .await
        .unwrap();

    let agents = LiveKitAgents::new(LiveKitConfig::new(
        livekit.url(),
        KEY,
        SecretString::from(SECRET.to_owned()),
    ))
    .unwrap();
    let options = SipDialOptions {
        ringing_timeout: Duration::from_millis(500),
        ..SipDialOptions::default()
    };
    let dialer = SipDialer::new(agents, PublicUrls::new(&server.url("")), options);

    for attempt in &attempts {
        let contact = server
            .store()
            .contact(tenant, attempt.contact_id)
            .await
            .unwrap();
        let result = dialer
            .dial(server.writer(), attempt, &campaign, &contact, b"secret")
            .await;
        let stored = server.store().attempt(attempt.id).await.unwrap();
        match cases.iter().find(|(p, ..)| *p == attempt.phone) {
            Some((_, _, expected, code, retryable)) => {
                let Err(DialError::Sip(refusal)) = result else {
                    panic!("{} should be refused", attempt.phone)
                };
                assert_eq!(refusal.is_retryable(), *retryable, "{}", attempt.phone);
                assert_eq!(
                    refusal.is_callee_refusal(),
                    matches!(*expected, "busy" | "declined")
                );
                assert_eq!(
                    (stored.status, stored.result.as_deref()),
                    (AttemptStatus::Ended, Some(*expected)),
                    "{}",
                    attempt.phone
                );
                assert_eq!(
                    stored
                        .detail
                        .get("sip_status_code")
                        .and_then(|c| c.as_u64()),
                    *code,
                    "{}",
                    attempt.phone
                );
            }
            None => {
                let session = result.expect("the answered call connects");
                assert_eq!(stored.status, AttemptStatus::Bridged);
                assert!(
                    stored.carrier_call_id.is_some(),
                    "the SIP call id is recorded"
                );
                let dispatch = livekit
                    .dispatches()
                    .into_iter()
                    .find(|d| d.dispatch.room == session.room())
                    .unwrap();
                let metadata = dispatch.metadata_json.unwrap();
                assert_eq!(metadata["call_id"], json!(attempt.id.0));
                assert_eq!(metadata["agent_name"], "outbound-sales");
                assert_eq!(metadata["contact"]["attributes"]["plan"], "gold");
                assert!(
                    metadata["token"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(&format!("{}.", attempt.id)))
                );
                session.close().await.unwrap();
                assert!(
                    livekit
                        .rooms()
                        .iter()
                        .any(|r| r.room.name == format!("call-{}", attempt.id) && r.deleted),
                    "hang-up deletes the room"
                );
            }
        }
    }
    livekit.shutdown().await;
    server.stop().await;
}
