//! What one tenant may take of the server: requests per second per key, event streams per
//! key, media sessions, connections, time per request, database connections and time per
//! query. Every bound has a setting (the `[limits]` table) with a default sized for one
//! 2-core server; a request over a bound gets a problem that says which bound, and a 429
//! says when to come back (`Retry-After`).

use crate::problem::Problem;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_engine::ApiKeyId;

/// The bounds, as configured (`[limits]` in `switchboard.toml`,
/// `SWITCHBOARD_LIMITS__<NAME>` in the environment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// HTTP connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Seconds a client has to send a request's head; also the idle time of a kept-alive
    /// connection.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take to be answered (body read included); 408 after.
    pub request_timeout_secs: u64,
    /// Seconds a CSV import (contacts or do-not-call) may take; 408 after.
    pub import_timeout_secs: u64,
    /// Requests per second one API key may make, on average.
    pub rate_per_sec: u32,
    /// Requests one API key may make at once above its rate.
    pub rate_burst: u32,
    /// Event streams (`/api/v1/events`, `/admin/events`) one key may hold open.
    pub event_streams_per_key: usize,
    /// Media streams relayed at once by this process; the carrier's next upgrade gets 503.
    pub media_sessions: usize,
    /// Rows one CSV import may hold.
    pub import_max_rows: u64,
    /// Bytes one contacts CSV upload may hold (413 beyond).
    pub import_max_bytes: u64,
    /// Database connections of the REST API.
    pub api_db_connections: u32,
    /// Database connections of the campaign runtime (dialing, carrier callbacks, the event
    /// writer, webhooks); the API's queries never take these.
    pub runtime_db_connections: u32,
    /// Milliseconds one API query may run on PostgreSQL before it is cancelled (503).
    pub api_statement_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            import_timeout_secs: 900,
            rate_per_sec: 100,
            rate_burst: 200,
            event_streams_per_key: 4,
            media_sessions: 4000,
            import_max_rows: 1_000_000,
            import_max_bytes: 256 * 1024 * 1024,
            api_db_connections: 8,
            runtime_db_connections: 16,
            api_statement_timeout_ms: 10_000,
        }
    }
}

impl Limits {
    /// Refuses a bound that would stop the server from working, by name.
    pub fn check(&self) -> Result<(), String> {
        let zero = [
            ("max_connections", self.max_connections as u64),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("import_timeout_secs", self.import_timeout_secs),
            ("rate_per_sec", u64::from(self.rate_per_sec)),
            ("rate_burst", u64::from(self.rate_burst)),
            ("event_streams_per_key", self.event_streams_per_key as u64),
            ("media_sessions", self.media_sessions as u64),
            ("import_max_rows", self.import_max_rows),
            ("import_max_bytes", self.import_max_bytes),
            ("api_db_connections", u64::from(self.api_db_connections)),
            (
                "runtime_db_connections",
                u64::from(self.runtime_db_connections),
            ),
            ("api_statement_timeout_ms", self.api_statement_timeout_ms),
        ];
        match zero.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("limits.{name}: must be at least 1")),
            None => Ok(()),
        }
    }

    /// The server loop's bounds.
    pub fn server(&self) -> crate::server::ServerLimits {
        crate::server::ServerLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            ..Default::default()
        }
    }
}

/// The bounds enforced while the server runs. Cheap to share.
pub struct Guards {
    limits: Limits,
    rate: DefaultKeyedRateLimiter<ApiKeyId>,
    streams: Mutex<HashMap<ApiKeyId, usize>>,
}

impl std::fmt::Debug for Guards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guards")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Guards {
    /// Guards for these bounds (checked: zeros are raised to one).
    pub fn new(limits: Limits) -> Arc<Guards> {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_second(NonZeroU32::new(limits.rate_per_sec).unwrap_or(one))
            .allow_burst(NonZeroU32::new(limits.rate_burst).unwrap_or(one));
        Arc::new(Guards {
            limits,
            rate: RateLimiter::keyed(quota),
            streams: Mutex::new(HashMap::new()),
        })
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one request of this key; over its rate, a 429 that says when to retry.
    pub fn admit(&self, key: ApiKeyId) -> Result<(), Problem> {
        self.rate.check_key(&key).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("switchboard_api_rate_limited_total").increment(1);
            Problem::too_many_requests(
                format!(
                    "this api key made more than {} requests per second (burst {}); retry after the time in Retry-After",
                    self.limits.rate_per_sec, self.limits.rate_burst
                ),
                wait,
            )
        })
    }

    /// A place for one more event stream of this key, held until the slot is dropped; a
    /// key at its cap gets a 429.
    pub fn stream_slot(self: &Arc<Self>, key: ApiKeyId) -> Result<StreamSlot, Problem> {
        let mut streams = self
            .streams
            .lock()
            .expect("stream counts are never poisoned");
        let open = streams.entry(key).or_insert(0);
        if *open >= self.limits.event_streams_per_key {
            return Err(Problem::too_many_requests(
                format!(
                    "this api key already holds {} open event streams, the most it may; close one first",
                    self.limits.event_streams_per_key
                ),
                Duration::from_secs(5),
            ));
        }
        *open += 1;
        Ok(StreamSlot {
            guards: self.clone(),
            key,
        })
    }

    /// Event streams open for this key now.
    pub fn streams_open(&self, key: ApiKeyId) -> usize {
        let streams = self
            .streams
            .lock()
            .expect("stream counts are never poisoned");
        streams.get(&key).copied().unwrap_or(0)
    }

    /// Forgets rate-limit state of keys idle long enough to be back at a full burst.
    pub fn forget_idle(&self) {
        self.rate.retain_recent();
        self.rate.shrink_to_fit();
    }
}

/// One open event stream of a key; dropping it frees the place.
pub struct StreamSlot {
    guards: Arc<Guards>,
    key: ApiKeyId,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self
            .guards
            .streams
            .lock()
            .expect("stream counts are never poisoned");
        if let Some(open) = streams.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

/// Routes whose request is a CSV upload, allowed [`Limits::import_timeout_secs`].
const IMPORTS: [&str; 2] = ["/api/v1/contacts/import", "/api/v1/dnc/import"];

/// The request timeout and the problem form of the body-size refusal, as one middleware
/// on every route. A request not answered in time gets 408 (its work is dropped with it:
/// a database transaction in flight rolls back); a body over the route's limit, refused by
/// the extractor as plain text, is answered as a problem naming the limit.
pub async fn layer(State(guards): State<Arc<Guards>>, request: Request, next: Next) -> Response {
    let import = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| IMPORTS.contains(&p.as_str()));
    let secs = if import {
        guards.limits.import_timeout_secs
    } else {
        guards.limits.request_timeout_secs
    };
    let response = match tokio::time::timeout(Duration::from_secs(secs), next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("switchboard_api_timeouts_total").increment(1);
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request timeout",
                format!("the request was not answered within {secs} s; nothing it asked for was kept unless its answer says so"),
            )
            .into_response();
        }
    };
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(&response) {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            "the request body is larger than this route accepts",
        )
        .into_response();
    }
    response
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}
