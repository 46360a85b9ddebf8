//! The OpenAPI spec served at /openapi.json is the router: every documented operation is
//! routed (it answers something other than 404/405 when called with real ids), a
//! documented path answers 405 to any undocumented method, and every route of the API
//! contract is documented. /docs is served and self-contained.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_api::Settings;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::TestServer;
use switchboard_tests::api_client::Api;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The routes of the API contract this server owns.
const CONTRACT: &[(&str, &str)] = &[
    ("post", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns/{id}"),
    ("put", "/api/v1/campaigns/{id}"),
    ("patch", "/api/v1/campaigns/{id}"),
    ("delete", "/api/v1/campaigns/{id}"),
    ("post", "/api/v1/campaigns/{id}/duplicate"),
    ("post", "/api/v1/campaigns/{id}/start"),
    ("post", "/api/v1/campaigns/{id}/schedule"),
    ("post", "/api/v1/campaigns/{id}/pause"),
    ("post", "/api/v1/campaigns/{id}/resume"),
    ("post", "/api/v1/campaigns/{id}/stop"),
    ("get", "/api/v1/campaigns/{id}/status"),
    ("get", "/api/v1/campaigns/{id}/calls"),
    ("get", "/api/v1/campaigns/{id}/calls.csv"),
    ("post", "/api/v1/contacts"),
    ("get", "/api/v1/contacts"),
    ("get", "/api/v1/contacts/{id}"),
    ("put", "/api/v1/contacts/{id}"),
    ("delete", "/api/v1/contacts/{id}"),
    ("post", "/api/v1/contacts/import"),
    ("get", "/api/v1/contacts/export"),
    ("get", "/api/v1/lists"),
    ("post", "/api/v1/lists"),
    ("get", "/api/v1/lists/{id}"),
    ("delete", "/api/v1/lists/{id}"),
    ("post", "/api/v1/lists/{id}/members"),
    ("delete", "/api/v1/lists/{id}/members"),
    ("post", "/api/v1/audience/preview"),
    ("post", "/api/v1/templates/preview"),
    ("post", "/api/v1/dnc"),
    ("delete", "/api/v1/dnc/{pattern}"),
    ("post", "/api/v1/dnc/import"),
    ("get", "/api/v1/dnc/check"),
    ("get", "/api/v1/dnc"),
    ("post", "/api/v1/agent/outcome"),
];

async fn the_spec_matches_the_router(db: TestDb) {
    let server = TestServer::start_with(Settings::for_tests(db.url())).await;
    let api = Api::new_tenant(&server, "acme").await;
    let spec: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        spec["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    let paths = spec["paths"].as_object().unwrap();

    for (method, path) in CONTRACT {
        assert!(
            paths.get(*path).is_some_and(|p| p.get(*method).is_some()),
            "{method} {path} is in the contract but not in the spec"
        );
    }

    // Real objects so that every operation finds what it names.
    let contact = api
        .post(
            "/api/v1/contacts",
            json!({"phone": "+14155550101", "name": "Ada"}),
        )
        .await;
    let contact = contact.body["id"].as_i64().unwrap();
    let list = api.post("/api/v1/lists", json!({"name": "vip"})).await.body["id"]
        .as_i64()
        .unwrap();
    let campaign = api
        .post(
            "/api/v1/campaigns",
            json!({"name": "Spec", "audience": {"query": {}}}),
        )
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        api.post("/api/v1/dnc", json!({"pattern": "+14155550199"}))
            .await
            .status,
        201
    );
    let fill = |path: &str| {
        let id = if path.starts_with("/api/v1/contacts/") {
            contact
        } else if path.starts_with("/api/v1/lists/") {
            list
        } else {
            campaign
        };
        path.replace("{id}", &id.to_string())
            .replace("{pattern}", "%2B14155550199")
    };

    // Deletes last, members before their list.
    let mut operations: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_string(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    operations.sort_by_key(|(m, p)| (m == "delete", std::cmp::Reverse(p.len())));
    assert!(operations.len() >= CONTRACT.len());
    for (method, path) in &operations {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = api
            .raw(
                method.clone(),
                &fill(path),
                Some(("application/json", b"{}".to_vec())),
            )
            .await;
        assert!(
            answer.status != 404 && answer.status != 405,
            "{method} {path} is documented but answered {}: {:#}",
            answer.status,
            answer.body
        );
    }

    // No undocumented method on a documented path.
    for (path, item) in paths {
        for method in METHODS.iter().filter(|m| item.get(**m).is_none()) {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = api.raw(m, &fill(path), None).await;
            assert_eq!(
                answer.status, 405,
                "{method} {path} is routed but not documented"
            );
        }
    }

    let docs = reqwest::get(server.url("/docs")).await.unwrap();
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    assert!(
        page.contains("/openapi.json") && !page.contains("<script src="),
        "a self-contained page"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_matches_the_router_on_sqlite() {
    the_spec_matches_the_router(TestDb::sqlite().await).await;
}
