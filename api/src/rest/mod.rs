//! The operator REST API under `/api/v1`: campaigns and their controls, contacts, lists,
//! the do-not-call list, audience and template previews. Every route needs an API key
//! ([`crate::auth::Auth`]) and sees only its tenant's objects: another tenant's object is
//! "not found". Errors are RFC 9457 problems naming the field and value at fault.

pub mod audience;
pub mod campaigns;
pub mod contacts;
pub mod controls;
pub mod dnc;
pub mod erasure;
pub mod lists;
pub mod status;
pub mod suppressions;
pub mod timeseries;

use crate::app::AppState;
use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::str::FromStr;
use switchboard_engine::phone::Region;
use utoipa_axum::router::OpenApiRouter;

/// What the REST API needs from the settings.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    /// Region for national-format numbers in imports, contacts and DNC entries.
    pub default_region: Option<Region>,
    /// Price of one billed minute (the `call_cost_per_minute` setting), used for cost.
    pub cost_per_minute: f64,
    /// The settings the campaign runtime lacks (empty when it runs).
    pub runtime_missing: Vec<&'static str>,
    /// The LiveKit settings SIP campaigns need and the server lacks (empty when LiveKit is
    /// configured).
    pub livekit_missing: Vec<&'static str>,
    /// Webhook URLs may reach loopback, private and link-local addresses.
    pub webhook_allow_private_addresses: bool,
    /// Agent URLs may reach loopback, private and link-local addresses.
    pub agent_allow_private_addresses: bool,
}

/// Every REST route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(campaigns::routes())
        .merge(controls::routes())
        .merge(status::routes())
        .merge(timeseries::routes())
        .merge(contacts::routes())
        .merge(erasure::routes())
        .merge(lists::routes())
        .merge(dnc::routes())
        .merge(suppressions::routes())
        .merge(audience::routes())
}

/// A page of a collection and the cursor of the next one (`None`: the last page).
#[derive(Debug, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page whose next cursor is `cursor(last item)` when the page is full.
    pub fn new(items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> i64) -> Self {
        let next_cursor = (items.len() as u32 >= limit)
            .then(|| items.last().map(|i| cursor(i).to_string()))
            .flatten();
        Page { items, next_cursor }
    }
}

/// The query string, decoded, with typed accessors whose errors name the parameter.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Ok(Params(pairs))
    }
}

impl Params {
    /// The raw value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A parameter parsed with `FromStr`; a bad value is a 400 naming it.
    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, Problem>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|e| Problem::bad_request(name, format!("{v:?}: {e}")))
            })
            .transpose()
    }

    /// `limit`, between 1 and `max` (default `default`).
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, Problem> {
        match self.parse::<u32>("limit")? {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(Problem::bad_request(
                "limit",
                format!("{n} is out of range: expected 1 to {max}"),
            )),
        }
    }

    /// `cursor`: the id a previous page ended with.
    pub fn cursor(&self) -> Result<Option<i64>, Problem> {
        self.parse::<i64>("cursor")
    }

    /// A time parameter: RFC 3339 (`2026-01-31T09:00:00Z`) or a date (`2026-01-31`, midnight UTC).
    pub fn time(&self, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
            return Ok(Some(t.with_timezone(&chrono::Utc)));
        }
        chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| Some(t.and_utc()))
            .ok_or_else(|| {
                Problem::bad_request(
                    name,
                    format!("{v:?} is not a time: expected RFC 3339 or YYYY-MM-DD"),
                )
            })
    }
}

/// Parses a JSON object body; an unreadable body, or one that is not an object (serde
/// would read a struct from an array), is a 400 naming where it is wrong.
pub fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request(
            "body",
            "expected a JSON body, got nothing",
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Problem::bad_request("body", e.to_string()))?;
    whole_numbers(&mut value);
    if !value.is_object() {
        return Err(Problem::bad_request(
            "body",
            format!("expected a JSON object, found {}", json_kind(&value)),
        ));
    }
    let mut track = serde_path_to_error::Track::new();
    T::deserialize(serde_path_to_error::Deserializer::new(value, &mut track)).map_err(|e| {
        let path = track.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Problem::bad_request(&field, e.to_string())
    })
}

/// What kind of JSON value this is, for error messages.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Writes every whole number as an integer (`3.0` as `3`): JSON Schema, and JSON itself,
/// make no difference between them, but serde's integer types refuse `3.0`.
pub fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            // A large whole number written with a fraction (`2233345217854855.0`) may
            // parse a fraction of its last binary digit off; within one step it is whole.
            if let Some(f) = n.as_f64()
                && (f - f.round()).abs() <= f.abs() * f64::EPSILON
                && (-(2f64.powi(63))..2f64.powi(63)).contains(&f)
            {
                *value = serde_json::Value::from(f.round() as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Parses an optional JSON body (empty means the default).
pub fn optional_json_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_body(body)
}

/// Reads the region setting or a `region` parameter.
pub fn region(params: &Params, settings: &ApiSettings) -> Result<Option<Region>, Problem> {
    match params.get("region") {
        Some(code) => Region::parse(code)
            .map(Some)
            .map_err(|e| Problem::bad_request("region", e.to_string())),
        None => Ok(settings.default_region),
    }
}

/// Parses an id from the path; anything but a number is a 400 naming the parameter.
pub fn path_id<T: From<i64>>(raw: &str, name: &str) -> Result<T, Problem> {
    raw.parse::<i64>()
        .map(T::from)
        .map_err(|_| Problem::bad_request(name, format!("{raw:?} is not an id")))
}

impl ApiSettings {
    /// From the server settings; `runtime` says whether the campaign runtime started.
    pub fn from_settings(
        settings: &crate::Settings,
        runtime: bool,
    ) -> Result<ApiSettings, crate::app::StartError> {
        let default_region = settings
            .default_region
            .as_deref()
            .map(Region::parse)
            .transpose()
            .map_err(|e| crate::app::StartError::Setting(format!("default_region: {e}")))?;
        if !settings.call_cost_per_minute.is_finite() || settings.call_cost_per_minute < 0.0 {
            return Err(crate::app::StartError::Setting(format!(
                "call_cost_per_minute: {} must be a number of at least 0",
                settings.call_cost_per_minute
            )));
        }
        let mut runtime_missing = Vec::new();
        if !runtime {
            for (name, set) in [
                ("twilio_account_sid", settings.twilio_account_sid.is_some()),
                ("twilio_auth_token", settings.twilio_auth_token.is_some()),
                ("twilio_from", settings.twilio_from.is_some()),
            ] {
                if !set {
                    runtime_missing.push(name);
                }
            }
        }
        Ok(ApiSettings {
            default_region,
            cost_per_minute: settings.call_cost_per_minute,
            runtime_missing,
            livekit_missing: [
                ("livekit_url", settings.livekit_url.is_some()),
                ("livekit_api_key", settings.livekit_api_key.is_some()),
                ("livekit_api_secret", settings.livekit_api_secret.is_some()),
            ]
            .into_iter()
            .filter(|(_, set)| !set)
            .map(|(name, _)| name)
            .collect(),
            webhook_allow_private_addresses: settings.webhook_allow_private_addresses,
            agent_allow_private_addresses: settings.agent_allow_private_addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_an_object_whose_whole_numbers_read_as_integers() {
        #[derive(Debug, serde::Deserialize)]
        struct Ids {
            ids: Vec<i64>,
            sample: u32,
            rate: f64,
        }
        let read: Ids = json_body(&Bytes::from(
            r#"{"ids": [3.0, -2, 1e3], "sample": 18.0, "rate": 1.0}"#,
        ))
        .unwrap();
        assert_eq!(
            (read.ids, read.sample, read.rate),
            (vec![3, -2, 1000], 18, 1.0)
        );
        let half = json_body::<Ids>(&Bytes::from(r#"{"ids": [2.5], "sample": 1, "rate": 0}"#));
        assert_eq!(half.unwrap_err().errors()[0].field, "ids[0]");
        for not_an_object in ["[]", "[1]", "3", "null", "\"x\""] {
            let refused = json_body::<serde_json::Value>(&Bytes::from(not_an_object));
            assert_eq!(
                refused.unwrap_err().status(),
                axum::http::StatusCode::BAD_REQUEST
            );
        }
    }
}
