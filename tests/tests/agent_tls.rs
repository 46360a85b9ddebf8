//! A `wss://` agent behind a private CA: a CA made for the test, a real TLS WebSocket
//! server (a rustls acceptor in front of the scripted agent) with a certificate for
//! localhost and 127.0.0.1 signed by that CA. With the CA configured (`agent_ca_file`) the
//! call is bridged and the agent's outcome stored; without it the attempt ends
//! `agent_unreachable`, saying the certificate is not trusted for localhost.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{AttemptRecord, AttemptStatus, Store};
use switchboard_loadtest::{AgentConfig, ScriptedAgent, SimCarrier};
use switchboard_tests::{TestServer, answering_carrier, seed_calls};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA of the test's own, written to a PEM file, and a server certificate it signed.
struct TestCa {
    pem_file: PathBuf,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Switchboard test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let pem_file = std::env::temp_dir().join(format!(
            "switchboard-test-ca-{name}-{}.pem",
            std::process::id()
        ));
        std::fs::write(&pem_file, ca_cert.pem()).unwrap();
        TestCa {
            pem_file,
            server_chain: vec![server_cert.der().clone()],
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
        }
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_file);
    }
}

/// Terminates TLS on a loopback port and forwards each connection to `backend`.
async fn tls_front(ca: &TestCa, backend: SocketAddr) -> SocketAddr {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(ca.server_chain.clone(), ca.server_key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

async fn ended(
    store: &Store,
    attempt: &AttemptRecord,
    what: impl Fn(&AttemptRecord) -> bool,
) -> AttemptRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let current = store.attempt(attempt.id).await.unwrap();
        if current.status == AttemptStatus::Ended && what(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "the call did not settle: {current:#?}, events {:#?}",
            store.attempt_events(attempt.id).await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn one_call(
    db: &TestDb,
    ca_file: Option<PathBuf>,
    agent_url: &str,
    carrier: &SimCarrier,
) -> (TestServer, AttemptRecord) {
    let mut settings = Settings::for_tests(db.url());
    settings.agent_ca_file = ca_file;
    let server = TestServer::start_with(settings).await;
    let contacts = [("+14155550701", json!({"agent_outcome": "interested"}))];
    let (_, attempts) = seed_calls(server.store(), agent_url, &contacts).await;
    let attempt = attempts[0].clone();
    server
        .dialer(&carrier.base_url())
        .dial(server.writer(), &attempt)
        .await
        .unwrap();
    (server, attempt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_agent_behind_a_private_ca_takes_calls_only_when_the_ca_is_trusted() {
    let agent = ScriptedAgent::start(AgentConfig {
        greeting_delay_ms: 50,
        talk_ms: 300,
        listen_ms: 200,
        ..AgentConfig::default()
    })
    .await
    .unwrap();
    let ca = TestCa::new("tls");
    let front = tls_front(&ca, agent.local_addr()).await;
    let url = format!("wss://localhost:{}/agent", front.port());
    let carrier = SimCarrier::start(answering_carrier(50)).await.unwrap();

    // Trusted: bridged over TLS, the agent reports, the outcome is stored.
    let db = TestDb::sqlite().await;
    let (server, attempt) = one_call(&db, Some(ca.pem_file.clone()), &url, &carrier).await;
    let done = ended(server.store(), &attempt, |a| a.outcome.is_some()).await;
    assert_eq!(done.outcome.as_deref(), Some("interested"), "{done:#?}");
    assert!(!done.detail.contains_key("end_reason"), "{done:#?}");
    let events = server.store().attempt_events(attempt.id).await.unwrap();
    let bridged = events.iter().find(|e| e.kind == "agent.bridged").unwrap();
    assert_eq!(bridged.data["agent_url"], url.as_str());
    server.stop().await;

    // Not trusted: the attempt ends agent_unreachable, naming the certificate.
    let db = TestDb::sqlite().await;
    let (server, attempt) = one_call(&db, None, &url, &carrier).await;
    let done = ended(server.store(), &attempt, |a| {
        a.detail.contains_key("end_reason")
    })
    .await;
    assert_eq!(done.detail["end_reason"], "agent_unreachable", "{done:#?}");
    let reason = done.detail["end_reason_detail"].as_str().unwrap();
    assert!(
        reason.contains("certificate not trusted for localhost"),
        "{reason}"
    );
    assert_eq!(done.outcome, None);
    let events = server.store().attempt_events(attempt.id).await.unwrap();
    let refused = events.iter().find(|e| e.kind == "stream.refused").unwrap();
    assert!(
        refused.data["reason"]
            .as_str()
            .unwrap()
            .contains("certificate not trusted for localhost"),
        "{refused:?}"
    );
    server.stop().await;
    carrier.shutdown().await;
    agent.shutdown().await;
}
