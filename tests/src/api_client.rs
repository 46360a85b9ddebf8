//! A small REST client for end-to-end tests: one tenant's API key over real HTTP, with
//! every answer read back as its status and JSON (or text) body.

use crate::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_engine::TenantId;
use switchboard_engine::store::{ApiKeyScope, Store};

/// What a request answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body as JSON (a string when it is not JSON, null when empty).
    pub body: Value,
    /// The content type.
    pub content_type: String,
}

impl Answer {
    /// The body, after checking the status (the test fails with the body otherwise).
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{:#}", self.body);
        &self.body
    }

    /// The body as text (for CSV answers).
    pub fn text(&self) -> &str {
        self.body.as_str().unwrap_or_default()
    }
}

/// One tenant's view of the API.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// The API key this client sends.
    pub key: String,
    /// The tenant it belongs to.
    pub tenant: TenantId,
}

impl Api {
    /// A new tenant with a fresh key, talking to `server`.
    pub async fn new_tenant(server: &TestServer, name: &str) -> Api {
        Self::new_tenant_with_scope(server, name, ApiKeyScope::Tenant).await
    }

    /// A new tenant with a fresh key of this scope.
    pub async fn new_tenant_with_scope(server: &TestServer, name: &str, scope: ApiKeyScope) -> Api {
        let tenant = server.store().create_tenant(name).await.unwrap().id;
        Self::for_tenant(server.store(), &server.url(""), tenant, scope).await
    }

    /// A fresh key for an existing tenant.
    pub async fn for_tenant(
        store: &Store,
        base: &str,
        tenant: TenantId,
        scope: ApiKeyScope,
    ) -> Api {
        let (_, key) = switchboard_api::auth::create_key(store, tenant, "test", scope)
            .await
            .unwrap();
        Api {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            tenant,
        }
    }

    /// This client with another key (or none).
    pub fn with_key(&self, key: Option<&str>) -> Api {
        Api {
            key: key.unwrap_or_default().to_owned(),
            ..self.clone()
        }
    }

    /// Sends a request with an optional body of this content type.
    pub async fn raw(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if !self.key.is_empty() {
            request = request.bearer_auth(&self.key);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            body,
            content_type,
        }
    }

    /// Sends JSON (or nothing).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        self.raw(method, path, body).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a campaign from `config` and starts it; returns its id.
    pub async fn start_new_campaign(&self, config: Value) -> i64 {
        let created = self.post("/api/v1/campaigns", config).await;
        let id = created.expect(201)["id"].as_i64().expect("a campaign id");
        self.post_empty(&format!("/api/v1/campaigns/{id}/start"))
            .await
            .expect(200);
        id
    }

    /// POST with no body.
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.call(Method::POST, path, None).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// POST a text body (CSV, DNC lists).
    pub async fn post_text(&self, path: &str, content_type: &str, text: &str) -> Answer {
        self.raw(
            Method::POST,
            path,
            Some((content_type, text.as_bytes().to_vec())),
        )
        .await
    }
}

/// A fixed-offset IANA zone where the local hour is now about `hour` (0 to 23).
///
/// The engine reads a window in the contact's zone AND its number's zones, and refuses a
/// zone outside the number's country; so tests that pick a window by zone give their
/// contacts numbers of a country in none of the engine's zone tables (the Faroe Islands,
/// `+29831xxxx`), where the contact's zone alone decides.
pub fn zone_at(hour: u32) -> String {
    use chrono::Timelike;
    let now = chrono::Utc::now().hour() as i32;
    // local = utc + offset, with offsets from -11 to +12 as the Etc zones have them.
    let offset = (hour as i32 - now + 35).rem_euclid(24) - 11;
    // Etc/GMT-3 is UTC+3 (the sign is inverted in these names).
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// A zone where it is about noon now: calls placed now are inside a midday window.
pub fn zone_at_noon() -> String {
    zone_at(12)
}
