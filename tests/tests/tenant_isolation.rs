//! Tenant isolation over real HTTP on both backends: tenant A owns campaigns (a draft and
//! an active one with calls), contacts, a list and do-not-call entries; tenant B walks every
//! route with A's ids and sees "not found" (or an empty collection), and afterwards every
//! object of A reads exactly as before.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_api::Settings;
use switchboard_engine::campaign::{CampaignStatus, Cause};
use switchboard_engine::store::NewAttempt;
use switchboard_engine::store::testing::TestDb;
use switchboard_engine::{CampaignId, ContactId, E164};
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

/// What B must see.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 404 problem.
    NotFound,
    /// 422 problem naming this field as not found (an object the body names).
    NotFoundIn(&'static str),
    /// 200 with `items` empty.
    NoItems,
    /// 200 and this JSON pointer holds this value.
    Holds(&'static str, fn() -> Value),
    /// 200 CSV with only the header line.
    HeaderOnly,
}

/// Everything A can read about what it owns, to compare before and after.
async fn snapshot(a: &Api, campaigns: &[i64], contacts: &[i64], list: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut paths: Vec<String> = vec![
        "/api/v1/campaigns".into(),
        "/api/v1/contacts".into(),
        "/api/v1/lists".into(),
        format!("/api/v1/lists/{list}"),
        "/api/v1/dnc".into(),
        "/api/v1/contacts/export".into(),
    ];
    for c in campaigns {
        paths.push(format!("/api/v1/campaigns/{c}"));
        paths.push(format!("/api/v1/campaigns/{c}/calls"));
        paths.push(format!("/api/v1/campaigns/{c}/history"));
    }
    for c in contacts {
        paths.push(format!("/api/v1/contacts/{c}"));
    }
    for p in paths {
        let answer = a.get(&p).await;
        assert_eq!(answer.status, 200, "A reads {p}: {:#}", answer.body);
        out.push(json!({ "path": p, "body": answer.body }));
    }
    out
}

async fn another_tenant_sees_nothing_of_a_tenant(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let store = server.store().clone();
    let a = Api::new_tenant(&server, "tenant a").await;
    let b = Api::new_tenant(&server, "tenant b").await;

    // A's world.
    let ada = a
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550101", "name": "Ada", "attributes": {"city": "Doha"}}),
        )
        .await;
    assert_eq!(ada.status, 201, "{:#}", ada.body);
    let ada = ada.body["id"].as_i64().unwrap();
    let bob = a
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550102", "name": "Bob"}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let list = a.post("/api/v1/lists", json!({"name": "vip"})).await.body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        a.post(
            &format!("/api/v1/lists/{list}/members"),
            json!({"contact_ids": [ada]})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        a.post(
            "/api/v1/dnc",
            json!({"pattern": "+14155550199", "reason": "asked"})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        a.post("/api/v1/dnc", json!({"pattern": "+1900*"}))
            .await
            .status,
        201
    );
    let config = json!({
        "name": "A's campaign",
        "audience": {"query": {"city": "Doha"}, "lists": [list]},
        "agent": {"mode": "media_stream", "url": "wss://agent.example.com/a"},
        "script": {"template": "Hello {name}"}
    });
    let draft = a.post("/api/v1/campaigns", config.clone()).await.body["id"]
        .as_i64()
        .unwrap();
    let active = a.post("/api/v1/campaigns", config).await.body["id"]
        .as_i64()
        .unwrap();
    for to in [CampaignStatus::Scheduled, CampaignStatus::Active] {
        store
            .transition_campaign(a.tenant, CampaignId(active), to, Cause::User, "go", None)
            .await
            .unwrap();
    }
    store
        .enqueue_contacts(CampaignId(active), &[ContactId(ada)], 0)
        .await
        .unwrap();
    store
        .reserve_attempt(&NewAttempt {
            tenant_id: a.tenant,
            campaign_id: CampaignId(active),
            contact_id: ContactId(ada),
            phone: E164::parse("+14155550101", None).unwrap(),
            attempts_seen: 0,
        })
        .await
        .unwrap();
    let before = snapshot(&a, &[draft, active], &[ada, bob], list).await;

    // B's own list, to try adding A's contact to it.
    let b_list = b.post("/api/v1/lists", json!({"name": "mine"})).await.body["id"]
        .as_i64()
        .unwrap();

    let campaign_body = json!({"name": "taken over", "audience": {"query": {}}});
    let contact_body = json!({"phone": "+14155550111", "name": "Mallory"});
    let members = json!({"contact_ids": [ada]});
    let mut walk: Vec<(Method, String, Option<Value>, Expect)> = vec![
        (
            Method::GET,
            "/api/v1/campaigns".into(),
            None,
            Expect::NoItems,
        ),
        (
            Method::GET,
            "/api/v1/campaigns?status=active".into(),
            None,
            Expect::NoItems,
        ),
        (
            Method::GET,
            "/api/v1/contacts".into(),
            None,
            Expect::NoItems,
        ),
        (
            Method::GET,
            "/api/v1/contacts?q=ada".into(),
            None,
            Expect::NoItems,
        ),
        (
            Method::GET,
            "/api/v1/contacts?query=%7B%22city%22%3A%22Doha%22%7D".into(),
            None,
            Expect::NoItems,
        ),
        (
            Method::GET,
            "/api/v1/contacts/export".into(),
            None,
            Expect::HeaderOnly,
        ),
        (Method::GET, "/api/v1/dnc".into(), None, Expect::NoItems),
        (
            Method::GET,
            "/api/v1/dnc/check?number=%2B14155550199".into(),
            None,
            Expect::Holds("/listed", || json!(false)),
        ),
        (
            Method::GET,
            "/api/v1/dnc/check?number=%2B19005550100".into(),
            None,
            Expect::Holds("/listed", || json!(false)),
        ),
        (
            Method::DELETE,
            "/api/v1/dnc/%2B14155550199".into(),
            None,
            Expect::NotFound,
        ),
        (
            Method::DELETE,
            "/api/v1/dnc/%2B1900*".into(),
            None,
            Expect::NotFound,
        ),
        (
            Method::POST,
            "/api/v1/audience/preview".into(),
            Some(json!({"query": {"city": "Doha"}})),
            Expect::Holds("/count", || json!(0)),
        ),
        (
            Method::POST,
            "/api/v1/audience/preview".into(),
            Some(json!({"lists": [list]})),
            Expect::NotFound,
        ),
        (
            Method::POST,
            "/api/v1/templates/preview".into(),
            Some(json!({"template": "Hi {name}", "contact_id": ada})),
            Expect::NotFound,
        ),
        (
            Method::GET,
            "/api/v1/lists".into(),
            None,
            Expect::Holds("/items/0/name", || json!("mine")),
        ),
        (
            Method::GET,
            format!("/api/v1/lists/{list}"),
            None,
            Expect::NotFound,
        ),
        (
            Method::DELETE,
            format!("/api/v1/lists/{list}"),
            None,
            Expect::NotFound,
        ),
        (
            Method::POST,
            format!("/api/v1/lists/{list}/members"),
            Some(members.clone()),
            Expect::NotFound,
        ),
        (
            Method::DELETE,
            format!("/api/v1/lists/{list}/members"),
            Some(members.clone()),
            Expect::NotFound,
        ),
        (
            Method::POST,
            format!("/api/v1/lists/{b_list}/members"),
            Some(members),
            Expect::NotFoundIn("contact_ids[0]"),
        ),
    ];
    for c in [ada, bob] {
        walk.push((
            Method::GET,
            format!("/api/v1/contacts/{c}"),
            None,
            Expect::NotFound,
        ));
        walk.push((
            Method::PUT,
            format!("/api/v1/contacts/{c}"),
            Some(contact_body.clone()),
            Expect::NotFound,
        ));
        walk.push((
            Method::DELETE,
            format!("/api/v1/contacts/{c}"),
            None,
            Expect::NotFound,
        ));
    }
    for c in [draft, active] {
        let p = format!("/api/v1/campaigns/{c}");
        for (method, path, body) in [
            (Method::GET, p.clone(), None),
            (Method::PUT, p.clone(), Some(campaign_body.clone())),
            (
                Method::PATCH,
                p.clone(),
                Some(json!({"max_concurrent_calls": 99})),
            ),
            (Method::DELETE, p.clone(), None),
            (Method::POST, format!("{p}/duplicate"), None),
            (Method::POST, format!("{p}/start"), None),
            (Method::POST, format!("{p}/schedule"), None),
            (
                Method::POST,
                format!("{p}/pause"),
                Some(json!({"reason": "hostile"})),
            ),
            (Method::POST, format!("{p}/resume"), None),
            (
                Method::POST,
                format!("{p}/stop"),
                Some(json!({"reason": "hostile"})),
            ),
            (Method::GET, format!("{p}/status"), None),
            (Method::GET, format!("{p}/calls"), None),
            (Method::GET, format!("{p}/calls?status=reserved"), None),
            (Method::GET, format!("{p}/calls.csv"), None),
            (Method::GET, format!("{p}/history"), None),
        ] {
            walk.push((method, path, body, Expect::NotFound));
        }
    }

    for (method, path, body, expect) in &walk {
        let answer = b.call(method.clone(), path, body.clone()).await;
        let what = format!("B {method} {path}");
        match expect {
            Expect::NotFound => {
                assert_eq!(answer.status, 404, "{what}: {:#}", answer.body);
                assert_eq!(answer.content_type, "application/problem+json", "{what}");
            }
            Expect::NotFoundIn(field) => {
                assert_eq!(answer.status, 422, "{what}: {:#}", answer.body);
                assert_eq!(answer.body["errors"][0]["field"], *field, "{what}");
                assert!(
                    answer.body["detail"]
                        .as_str()
                        .unwrap()
                        .contains("not found"),
                    "{what}: {:#}",
                    answer.body
                );
            }
            Expect::NoItems => {
                assert_eq!(answer.status, 200, "{what}: {:#}", answer.body);
                assert_eq!(answer.body["items"], json!([]), "{what}");
            }
            Expect::Holds(pointer, value) => {
                assert_eq!(answer.status, 200, "{what}: {:#}", answer.body);
                assert_eq!(
                    answer.body.pointer(pointer),
                    Some(&value()),
                    "{what}: {:#}",
                    answer.body
                );
            }
            Expect::HeaderOnly => {
                assert_eq!(answer.status, 200, "{what}");
                assert_eq!(
                    answer.text().lines().count(),
                    1,
                    "{what}: {}",
                    answer.text()
                );
            }
        }
    }

    // B may use a campaign audience only with its own lists.
    let foreign = b
        .post(
            "/api/v1/campaigns",
            json!({"name": "x", "audience": {"lists": [list]}}),
        )
        .await;
    assert_eq!(foreign.status, 422, "{:#}", foreign.body);
    assert_eq!(foreign.body["errors"][0]["field"], "audience.lists[0]");

    // B creating a contact with A's number makes B's own contact; A's is untouched.
    let mine = b
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550101", "name": "Not Ada"}),
        )
        .await;
    assert_eq!(mine.status, 201, "{:#}", mine.body);
    assert_ne!(mine.body["id"].as_i64().unwrap(), ada);

    let after = snapshot(&a, &[draft, active], &[ada, bob], list).await;
    assert_eq!(before, after, "nothing of A changed");
    assert_eq!(
        store
            .campaign(a.tenant, CampaignId(active))
            .await
            .unwrap()
            .status,
        CampaignStatus::Active
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_sees_nothing_of_a_tenant_on_sqlite() {
    another_tenant_sees_nothing_of_a_tenant(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_sees_nothing_of_a_tenant_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    another_tenant_sees_nothing_of_a_tenant(db).await;
}
