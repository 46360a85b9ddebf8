//! What a callee asked for outlives the contact, over real HTTP on both backends: a number
//! opted out through the API and one whose agent reported `do_not_call` stay suppressed
//! through a PUT without `opted_out_at`, a delete and a re-import; the do-not-call entry the
//! agent added cannot be deleted as a plain entry; and only a removal with a reason makes
//! the number callable again, with who and why in its history.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::store::{ApiKeyScope, Store};
use switchboard_engine::{E164, TenantId};
use switchboard_tests::api_client::Api;
use switchboard_tests::{TestServer, seed_calls};

const AGENT_SAID_NO: &str = "+14155550001";
const OPTED_OUT_BY_API: &str = "+14155550002";

fn e164(phone: &str) -> E164 {
    E164::parse(phone, None).unwrap()
}

/// Whether the dialer would call this number: the checks the campaign tick makes before
/// every dial (a do-not-call entry or a suppression skips it).
async fn dialer_would_call(store: &Store, tenant: TenantId, phone: &str) -> bool {
    let number = e164(phone);
    store.dnc_check(tenant, &number).await.unwrap().is_none()
        && store.suppression(tenant, &number).await.unwrap().is_none()
}

async fn contact_of(api: &Api, phone: &str) -> Value {
    let found = api
        .get(&format!("/api/v1/contacts?q={}", &phone[1..]))
        .await;
    found.expect(200)["items"][0].clone()
}

async fn delete_with(
    api: &Api,
    path: &str,
    body: Option<Value>,
) -> switchboard_tests::api_client::Answer {
    let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
    api.raw(Method::DELETE, path, body).await
}

async fn a_callees_no_outlives_the_contact(db: TestDb) {
    let server = TestServer::start(&db).await;
    let store = server.store().clone();
    let (tenant, attempts) = seed_calls(
        &store,
        "ws://127.0.0.1:9/agent",
        &[(AGENT_SAID_NO, json!({})), (OPTED_OUT_BY_API, json!({}))],
    )
    .await;
    let api = Api::for_tenant(&store, &server.url(""), tenant, ApiKeyScope::Tenant).await;

    // The agent reports do_not_call with its call's token.
    let secret = {
        use secrecy::ExposeSecret;
        server
            .state
            .calls
            .call_token_secret
            .expose_secret()
            .to_owned()
    };
    let token = switchboard_engine::call_token::issue(secret.as_bytes(), attempts[0].id);
    let reported = reqwest::Client::new()
        .post(server.url("/api/v1/agent/outcome"))
        .bearer_auth(&token)
        .json(&json!({"outcome": "do_not_call", "notes": "asked to stop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status(), 200);

    // The other callee opts out through the API.
    let other = contact_of(&api, OPTED_OUT_BY_API).await;
    let opted = api
        .put(
            &format!("/api/v1/contacts/{}", other["id"]),
            json!({"phone": OPTED_OUT_BY_API, "opted_out_at": "2026-01-05T10:00:00Z"}),
        )
        .await;
    assert_eq!(opted.status, 200, "{:#}", opted.body);
    for phone in [AGENT_SAID_NO, OPTED_OUT_BY_API] {
        assert!(!dialer_would_call(&store, tenant, phone).await, "{phone}");
    }
    let by_api = api.get("/api/v1/suppressions/%2B14155550002").await;
    let by_api = by_api.expect(200);
    assert_eq!(by_api["current"]["source"], "api");
    assert!(
        by_api["current"]["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("api key ")
    );
    let listed = api.get("/api/v1/suppressions?limit=1").await;
    assert_eq!(listed.expect(200)["items"][0]["phone"], AGENT_SAID_NO);
    let cursor = listed.body["next_cursor"].as_str().unwrap().to_owned();
    let next = api
        .get(&format!(
            "/api/v1/suppressions?limit=1&cursor={}",
            cursor.replace('+', "%2B")
        ))
        .await;
    assert_eq!(next.expect(200)["items"][0]["phone"], OPTED_OUT_BY_API);

    // (a) A PUT that omits opted_out_at keeps it.
    for phone in [AGENT_SAID_NO, OPTED_OUT_BY_API] {
        let contact = contact_of(&api, phone).await;
        let put = api
            .put(
                &format!("/api/v1/contacts/{}", contact["id"]),
                json!({"phone": phone, "name": "Renamed"}),
            )
            .await;
        assert_eq!(put.status, 200, "{:#}", put.body);
        assert!(
            put.body["opted_out_at"].is_string(),
            "{phone}: {:#}",
            put.body
        );
        assert!(!dialer_would_call(&store, tenant, phone).await, "{phone}");
    }

    // (b) Deleted and imported again, both come back opted out and suppressed.
    for phone in [AGENT_SAID_NO, OPTED_OUT_BY_API] {
        let contact = contact_of(&api, phone).await;
        let path = format!("/api/v1/contacts/{}", contact["id"]);
        assert_eq!(api.delete(&path).await.status, 204);
    }
    let csv = format!("phone,name\n{AGENT_SAID_NO},Ann\n{OPTED_OUT_BY_API},Ben\n");
    let imported = api
        .post_text("/api/v1/contacts/import", "text/csv", &csv)
        .await;
    assert_eq!(imported.status, 200, "{:#}", imported.body);
    for phone in [AGENT_SAID_NO, OPTED_OUT_BY_API] {
        let contact = contact_of(&api, phone).await;
        assert!(contact["opted_out_at"].is_string(), "{phone}: {contact:#}");
        assert!(!dialer_would_call(&store, tenant, phone).await, "{phone}");
        let path = format!("/api/v1/suppressions/%2B{}", &phone[1..]);
        assert_eq!(api.get(&path).await.expect(200)["suppressed"], true);
    }
    let check = api.get("/api/v1/dnc/check?number=%2B14155550001").await;
    assert_eq!(check.expect(200)["entry"]["source"], "agent");

    // (c) The agent's do-not-call entry is the callee's: not deleted as a plain entry.
    let refused = api.delete("/api/v1/dnc/%2B14155550001").await;
    assert_eq!(refused.status, 409, "{:#}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("DELETE /api/v1/suppressions/"),
        "{:#}",
        refused.body
    );
    assert!(!dialer_would_call(&store, tenant, AGENT_SAID_NO).await);
    let ours = api
        .post("/api/v1/dnc", json!({"pattern": "+14155550009"}))
        .await;
    assert_eq!(ours.status, 201, "{:#}", ours.body);
    assert_eq!(api.delete("/api/v1/dnc/%2B14155550009").await.status, 204);

    // (d) Removing a suppression needs a reason, and the history keeps who and why.
    let path = "/api/v1/suppressions/%2B14155550001";
    for body in [
        None,
        Some(json!({})),
        Some(json!({"reason": ""})),
        Some(json!({"reason": "x".repeat(501)})),
    ] {
        let missing = delete_with(&api, path, body.clone()).await;
        assert_eq!(missing.status, 422, "{body:?}: {:#}", missing.body);
        assert_eq!(missing.body["errors"][0]["field"], "reason");
    }
    assert!(!dialer_would_call(&store, tenant, AGENT_SAID_NO).await);
    let reason = "callee called back and asked to be called";
    let removed = delete_with(&api, path, Some(json!({"reason": reason}))).await;
    assert_eq!(removed.status, 204, "{:#}", removed.body);
    assert!(dialer_would_call(&store, tenant, AGENT_SAID_NO).await);
    assert!(contact_of(&api, AGENT_SAID_NO).await["opted_out_at"].is_null());
    let detail = api.get(path).await;
    let detail = detail.expect(200);
    assert_eq!(detail["suppressed"], false);
    let history = detail["history"].as_array().unwrap();
    let (added, lifted) = (&history[0], history.last().unwrap());
    assert_eq!(
        (added["action"].as_str(), added["source"].as_str()),
        (Some("added"), Some("agent"))
    );
    assert_eq!(lifted["action"], "removed");
    assert_eq!(lifted["reason"], reason);
    assert!(lifted["actor"].as_str().unwrap().starts_with("api key "));
    let again = delete_with(&api, path, Some(json!({"reason": reason}))).await;
    assert_eq!(again.status, 404, "{:#}", again.body);
    assert_eq!(
        api.get("/api/v1/suppressions/%2B14155550077").await.status,
        404
    );
    // The other callee is still not called.
    assert!(!dialer_would_call(&store, tenant, OPTED_OUT_BY_API).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callees_no_outlives_the_contact_on_sqlite() {
    a_callees_no_outlives_the_contact(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callees_no_outlives_the_contact_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    a_callees_no_outlives_the_contact(db).await;
}
