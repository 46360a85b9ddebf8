//! API keys over real HTTP: a tenant key reaches tenant routes, only a supervisor or an
//! operator key passes `AdminAuth`, only an operator key `OperatorAuth` (and an operator
//! key no tenant route), and a missing, unknown or revoked key is a 401 problem. Only an
//! operator sets a tenant's LiveKit allowlist, which its campaigns then follow.

use axum::Router;
use axum::routing::get;
use serde_json::json;
use switchboard_api::Settings;
use switchboard_api::auth::{AdminAuth, Auth, OperatorAuth};
use switchboard_engine::store::ApiKeyScope;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

async fn whoami(auth: Auth) -> String {
    format!("tenant {} {}", auth.tenant, auth.scope.as_str())
}

async fn admin_only(admin: AdminAuth) -> String {
    match admin.tenant() {
        Some(tenant) => format!("supervisor of tenant {tenant}"),
        None => "operator of every tenant".to_owned(),
    }
}

async fn operator_only(operator: OperatorAuth) -> String {
    format!("operator key {}", operator.key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_supervisor_and_operator_keys_reach_only_their_routes_and_revoked_keys_stop_at_once()
{
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    // A router of two probe routes over the server's own state, on its own port.
    let probes = Router::new()
        .route("/whoami", get(whoami))
        .route("/admin", get(admin_only))
        .route("/operator", get(operator_only))
        .with_state(server.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, probes).await });

    let tenant = Api::new_tenant(&server, "acme").await;
    let admin = Api::for_tenant(
        server.store(),
        &base,
        tenant.tenant,
        ApiKeyScope::Supervisor,
    )
    .await;
    let tenant = Api::for_tenant(server.store(), &base, tenant.tenant, ApiKeyScope::Tenant).await;

    let me = tenant.get("/whoami").await;
    assert_eq!(
        (me.status.as_u16(), me.text()),
        (200, format!("tenant {} tenant", tenant.tenant).as_str())
    );
    assert_eq!(tenant.get("/admin").await.status, 403);
    let seen = admin.get("/admin").await;
    assert_eq!(
        (seen.status.as_u16(), seen.text()),
        (
            200,
            format!("supervisor of tenant {}", admin.tenant).as_str()
        )
    );
    assert_eq!(admin.get("/operator").await.status, 403);
    assert_eq!(tenant.get("/operator").await.status, 403);

    let (record, key) = switchboard_api::auth::create_operator_key(server.store(), "ops on call")
        .await
        .unwrap();
    let operator = tenant.with_key(Some(&key));
    let refused = operator.get("/whoami").await;
    assert_eq!(refused.status, 403, "an operator key belongs to no tenant");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("operator key"),
        "{}",
        refused.body
    );
    assert_eq!(
        operator.get("/admin").await.text(),
        "operator of every tenant"
    );
    assert_eq!(
        operator.get("/operator").await.text(),
        format!("operator key {}", record.id)
    );
    assert_eq!(
        tenant
            .with_key(Some("sb_op_unknown"))
            .get("/operator")
            .await
            .status,
        401
    );
    server.store().revoke_operator_key(record.id).await.unwrap();
    assert_eq!(
        operator.get("/operator").await.status,
        401,
        "a revoked operator key stops at once"
    );
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
    let admin_key = keys
        .iter()
        .find(|k| k.scope == ApiKeyScope::Supervisor)
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_sets_what_livekit_a_tenant_may_use_and_campaigns_follow_it() {
    let db = TestDb::sqlite().await;
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let tenant = Api::new_tenant(&server, "acme").await;
    let supervisor = Api::for_tenant(
        server.store(),
        &server.url(""),
        tenant.tenant,
        ApiKeyScope::Supervisor,
    )
    .await;
    let (_, key) = switchboard_api::auth::create_operator_key(server.store(), "ops")
        .await
        .unwrap();
    let operator = tenant.with_key(Some(&key));
    let path = format!("/admin/tenants/{}/livekit", tenant.tenant);
    let sip = |trunk: &str| {
        json!({"name": format!("via {trunk}"),
               "agent": {"mode": "sip", "agent_name": "sarah", "trunk_id": trunk}})
    };

    assert_eq!(
        operator.get(&path).await.expect(200),
        &json!({"trunks": [], "agent_names": []})
    );
    tenant
        .post("/api/v1/campaigns", sip("ST_1"))
        .await
        .expect(422);
    let wanted = json!({"trunks": ["ST_1"], "agent_names": ["sarah"]});
    for (who, status) in [
        (&tenant, 403),
        (&supervisor, 403),
        (&tenant.with_key(None), 401),
    ] {
        let refused = who.put(&path, wanted.clone()).await;
        assert_eq!(refused.status, status, "{:#}", refused.body);
    }
    assert_eq!(
        operator.put(&path, wanted.clone()).await.expect(200),
        &wanted
    );
    assert_eq!(operator.get(&path).await.expect(200), &wanted);
    tenant
        .post("/api/v1/campaigns", sip("ST_1"))
        .await
        .expect(201);
    let refused = tenant.post("/api/v1/campaigns", sip("ST_2")).await;
    let body = refused.expect(422);
    assert_eq!(body["errors"][0]["field"], "agent.trunk_id", "{body:#}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`ST_2`"),
        "{body:#}"
    );

    // Bad input changes nothing: a blank value (422 naming the list), an unknown field
    // (400), an unknown tenant (404).
    let blank = operator
        .put(&path, json!({"trunks": [" "], "agent_names": []}))
        .await;
    assert_eq!(blank.expect(422)["errors"][0]["field"], "trunks");
    operator
        .put(&path, json!({"trunk": ["ST_9"]}))
        .await
        .expect(400);
    operator
        .put("/admin/tenants/999999/livekit", wanted.clone())
        .await
        .expect(404);
    assert_eq!(operator.get(&path).await.expect(200), &wanted);
    server.stop().await;
}
