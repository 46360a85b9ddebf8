//! API keys over real HTTP: a tenant key reaches tenant routes, only an admin key passes
//! `AdminAuth`, and a missing, unknown or revoked key is a 401 problem.

use axum::Router;
use axum::routing::get;
use switchboard_api::Settings;
use switchboard_api::auth::{AdminAuth, Auth};
use switchboard_engine::store::ApiKeyScope;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

async fn whoami(auth: Auth) -> String {
    format!("tenant {} {}", auth.tenant, auth.scope.as_str())
}

async fn admin_only(AdminAuth(auth): AdminAuth) -> String {
    format!("admin of tenant {}", auth.tenant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_keys_pass_admin_auth_and_revoked_keys_stop_at_once() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    // A router of two probe routes over the server's own state, on its own port.
    let probes = Router::new()
        .route("/whoami", get(whoami))
        .route("/admin", get(admin_only))
        .with_state(server.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, probes).await });

    let tenant = Api::new_tenant(&server, "acme").await;
    let admin = Api::for_tenant(server.store(), &base, tenant.tenant, ApiKeyScope::Admin).await;
    let tenant = Api::for_tenant(server.store(), &base, tenant.tenant, ApiKeyScope::Tenant).await;

    let me = tenant.get("/whoami").await;
    assert_eq!(
        (me.status.as_u16(), me.text()),
        (200, format!("tenant {} tenant", tenant.tenant).as_str())
    );
    assert_eq!(tenant.get("/admin").await.status, 403);
    assert_eq!(admin.get("/admin").await.status, 200);
    let anonymous = tenant.with_key(None).get("/whoami").await;
    assert_eq!(
        (anonymous.status.as_u16(), anonymous.content_type.as_str()),
        (401, "application/problem+json")
    );
    assert_eq!(
        tenant
            .with_key(Some("sb_unknown"))
            .get("/whoami")
            .await
            .status,
        401
    );

    let keys = server.store().list_api_keys(admin.tenant).await.unwrap();
    let admin_key = keys.iter().find(|k| k.scope == ApiKeyScope::Admin).unwrap();
    assert!(
        admin.key.starts_with(&admin_key.prefix),
        "the stored prefix recognises the key"
    );
    server
        .store()
        .revoke_api_key(admin.tenant, admin_key.id)
        .await
        .unwrap();
    assert_eq!(
        admin.get("/admin").await.status,
        401,
        "a revoked key stops at once"
    );
    server.stop().await;
}
