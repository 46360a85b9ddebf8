//! The application on both backends: built from settings, bound to port 0, answering its
//! health endpoints over a real socket, and shutting down cleanly.

use switchboard_api::{Application, Settings};
use switchboard_engine::store::testing::TestDb;

async fn check(db: &TestDb) {
    let app = Application::build(&Settings::for_tests(db.url()))
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let health: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_server_answers_health_checks_on_sqlite() {
    check(&TestDb::sqlite().await).await;
}

#[tokio::test]
async fn the_server_answers_health_checks_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    check(&db).await;
}

#[tokio::test]
async fn the_dashboard_cannot_be_framed_by_another_site() {
    let db = TestDb::sqlite().await;
    let server = switchboard_tests::TestServer::start(&db).await;
    let page = reqwest::get(server.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY");
    assert!(
        header("content-security-policy").contains("frame-ancestors 'none'"),
        "{}",
        header("content-security-policy")
    );
    server.stop().await;
}
