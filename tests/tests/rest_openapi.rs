//! The OpenAPI spec served at /openapi.json is the router: every documented operation is
//! routed (it answers something other than 404/405 when called with real ids), a
//! documented path answers 405 to any undocumented method, every route of the API
//! contract is documented, and the routes left out of the spec are exactly the ones
//! listed below with the reason, each served and none documented. /docs/ is served and
//! self-contained.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_api::Settings;
use switchboard_api::internal::UNDOCUMENTED;
use switchboard_engine::store::ApiKeyScope;
use switchboard_engine::store::testing::TestDb;
use switchboard_tests::api_client::Api;
use switchboard_tests::{TestServer, seed_calls};

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
    ("get", "/api/v1/campaigns/{id}/history"),
    ("get", "/api/v1/campaigns/{id}/calls"),
    ("get", "/api/v1/campaigns/{id}/calls.csv"),
    ("get", "/api/v1/campaigns/{id}/timeseries"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/contacts"),
    ("get", "/api/v1/contacts"),
    ("get", "/api/v1/contacts/{id}"),
    ("put", "/api/v1/contacts/{id}"),
    ("delete", "/api/v1/contacts/{id}"),
    ("post", "/api/v1/contacts/{id}/erase"),
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
    ("get", "/api/v1/suppressions"),
    ("get", "/api/v1/suppressions/{phone}"),
    ("delete", "/api/v1/suppressions/{phone}"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("post", "/api/v1/agent/outcome"),
    ("get", "/admin/campaigns"),
    ("post", "/admin/campaigns/{id}/pause"),
    ("get", "/admin/calls"),
    ("get", "/admin/calls/{attempt_id}"),
    ("post", "/admin/calls/{attempt_id}/hangup"),
    ("get", "/admin/engine"),
    ("get", "/admin/events"),
    ("get", "/admin/tenants/{tenant_id}/livekit"),
    ("put", "/admin/tenants/{tenant_id}/livekit"),
];

/// The routes deliberately left out of the spec, and why. A route the server adds outside
/// the spec must be added here, with its reason, or this test fails.
const INTERNAL: &[(&[&str], &str, &str)] = &[
    (&["get"], "/healthz", "a liveness probe, no key"),
    (&["get"], "/readyz", "a readiness probe, no key"),
    (&["get"], "/metrics", "the Prometheus scrape, no key"),
    (
        &["post"],
        "/twilio/status",
        "carrier webhook, signed by Twilio",
    ),
    (
        &["post"],
        "/twilio/amd",
        "machine detection callbacks, signed by Twilio",
    ),
    (
        &["get", "post"],
        "/twilio/twiml",
        "TwiML for the carrier, signed by Twilio",
    ),
    (&["get"], "/twilio/media", "the carrier's media WebSocket"),
    (
        &["post"],
        "/livekit/webhook",
        "LiveKit's webhooks, signed by LiveKit",
    ),
    (&["get"], "/", "the dashboard page"),
    (&["get"], "/openapi.json", "the spec itself"),
    (
        &["get"],
        "/docs",
        "the API reference, sends the browser to /docs/",
    ),
    (&["get"], "/docs/", "the API reference page"),
    (&["get"], "/docs/{*file}", "the API reference's assets"),
];

/// Whether the operation streams Server-Sent Events (read only its head).
fn is_stream(operation: &Value) -> bool {
    operation["responses"]["200"]["content"]
        .get("text/event-stream")
        .is_some()
}

/// Whether the operation needs an admin key (a supervisor's or an operator's).
fn is_admin(operation: &Value) -> bool {
    operation["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.get("admin_key").is_some() || r.get("operator_key").is_some())
    })
}

/// Whether the operation needs an operator key.
fn is_operator(operation: &Value) -> bool {
    operation["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.get("operator_key").is_some()))
}

/// The status (and content type) of a request, without reading the body (streams never end).
async fn head_of(api: &Api, server: &TestServer, path: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(&api.key)
        .send()
        .await
        .unwrap();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), kind)
}

async fn the_spec_matches_the_router(db: TestDb) {
    let mut settings = Settings::for_tests(db.url());
    // The test's webhook points at a closed loopback port: nothing leaves the machine.
    settings.webhook_allow_private_addresses = true;
    let server = TestServer::start_with(settings).await;
    let api = Api::new_tenant(&server, "acme").await;
    // The admin routes are called with an operator key (every tenant); a supervisor key
    // must be refused where the spec asks for an operator key.
    let (_, operator_key) = switchboard_api::auth::create_operator_key(server.store(), "ops")
        .await
        .unwrap();
    let admin = api.with_key(Some(&operator_key));
    let supervisor =
        Api::new_tenant_with_scope(&server, "operators", ApiKeyScope::Supervisor).await;
    let spec: Value = reqwest::get(server.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for scheme in ["api_key", "admin_key", "operator_key", "call_token"] {
        assert_eq!(
            spec["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
    for schema in ["AdminCalls", "AdminCampaigns", "CallDetail", "Timeseries"] {
        assert!(
            spec["components"]["schemas"].get(schema).is_some(),
            "{schema} is described"
        );
    }
    let paths = spec["paths"].as_object().unwrap();

    // Every operation documents every error it can give, each as a problem, and the
    // statuses any route may answer (429 with when to retry).
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in ["401", "408", "413", "429", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path}: no 404");
            }
            assert!(
                responses["429"]["headers"].get("Retry-After").is_some(),
                "{method} {path}: 429 without Retry-After"
            );
            for (status, response) in responses.iter().filter(|(s, _)| s.as_str() >= "400") {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
    }

    for (method, path) in CONTRACT {
        assert!(
            paths.get(*path).is_some_and(|p| p.get(*method).is_some()),
            "{method} {path} is in the contract but not in the spec"
        );
    }

    // The routes outside the spec are the ones listed here, each with a reason.
    let listed: Vec<(&[&str], &str)> = INTERNAL.iter().map(|(m, p, _)| (*m, *p)).collect();
    let served: Vec<(&[&str], &str)> = UNDOCUMENTED.iter().map(|r| (r.methods, r.path)).collect();
    assert_eq!(served, listed, "the undocumented routes changed");
    assert!(UNDOCUMENTED.iter().all(|r| !r.why.is_empty()));
    for (methods, path, why) in INTERNAL {
        assert!(paths.get(*path).is_none(), "{path} ({why}) is in the spec");
        // A wildcard route is asked for a file it serves.
        let asked = path.replace("{*file}", "swagger-ui.css");
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = api.raw(m, &asked, None).await.status.as_u16();
            if methods.contains(&method) {
                assert!(
                    answer != 404 && answer != 405,
                    "{method} {path} ({why}) is not served: {answer}"
                );
            } else {
                assert_eq!(answer, 405, "{method} {path} is served but not listed");
            }
        }
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
    let suppressed = switchboard_engine::E164::parse("+14155550198", None).unwrap();
    server
        .store()
        .suppress(api.tenant, &suppressed, "api", None, None)
        .await
        .unwrap();
    let hook = json!({"url": "http://127.0.0.1:9/hooks", "events": ["contact.opted_out"]});
    let webhook = api.post("/api/v1/webhooks", hook).await.expect(201)["id"]
        .as_i64()
        .unwrap();
    let (_, attempts) = seed_calls(
        server.store(),
        "ws://127.0.0.1:9/agent",
        &[("+14155550102", json!({}))],
    )
    .await;
    let fill = |path: &str| {
        let id = if path.starts_with("/api/v1/contacts/") {
            contact
        } else if path.starts_with("/api/v1/lists/") {
            list
        } else if path.starts_with("/api/v1/webhooks/") {
            webhook
        } else {
            campaign
        };
        path.replace("{id}", &id.to_string())
            .replace("{attempt_id}", &attempts[0].id.to_string())
            .replace("{tenant_id}", &api.tenant.to_string())
            .replace("{pattern}", "%2B14155550199")
            .replace("{phone}", "%2B14155550198")
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
    assert_eq!(operations.len(), CONTRACT.len(), "{operations:?}");
    for (method, path) in &operations {
        let operation = &paths[path][method];
        let caller = if is_admin(operation) { &admin } else { &api };
        if is_admin(operation) {
            let refused = if is_stream(operation) {
                head_of(&api, &server, &fill(path)).await.0
            } else {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                api.raw(m, &fill(path), None).await.status.as_u16()
            };
            assert_eq!(refused, 403, "{method} {path} refuses a tenant key");
        }
        if is_operator(operation) {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let refused = supervisor.raw(m, &fill(path), None).await.status.as_u16();
            assert_eq!(refused, 403, "{method} {path} refuses a supervisor key");
        }
        if is_stream(operation) {
            let (status, kind) = head_of(caller, &server, &fill(path)).await;
            assert_eq!(status, 200, "{method} {path}");
            assert_eq!(kind, "text/event-stream", "{method} {path}");
            continue;
        }
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = caller
            .raw(m, &fill(path), Some(("application/json", b"{}".to_vec())))
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

    // The API reference: every script and style it loads comes from this server, and its
    // configuration reads this server's spec and keeps the key once entered.
    let docs = reqwest::get(server.url("/docs")).await.unwrap();
    assert_eq!(docs.status(), 200, "followed to /docs/");
    assert_eq!(docs.url().path(), "/docs/");
    let page = docs.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let mut assets = 0;
    for attr in ["src=\"", "href=\""] {
        for part in page.split(attr).skip(1) {
            let asset = part.split('"').next().unwrap();
            let url = server.url(&format!("/docs/{}", asset.trim_start_matches("./")));
            let answer = reqwest::get(&url).await.unwrap();
            assert_eq!(answer.status(), 200, "{url}");
            assets += 1;
        }
    }
    assert!(assets >= 3, "{page}");
    let init = reqwest::get(server.url("/docs/swagger-initializer.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        init.contains("/openapi.json") && init.contains("\"persistAuthorization\": true"),
        "{init}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_matches_the_router_on_sqlite() {
    the_spec_matches_the_router(TestDb::sqlite().await).await;
}
