//! The outcome report: `POST {outcome_url}` with the call's bearer token, retried with
//! exponential backoff on 5xx answers and transport errors.

use std::time::Duration;

/// What happened to a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Posts `body` as JSON with `Authorization: Bearer {token}`.
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    max_attempts: u32,
    first_backoff: Duration,
) -> Delivered {
    let mut delivered = Delivered {
        http_status: None,
        attempts: 0,
        error: None,
    };
    let mut backoff = first_backoff;
    while delivered.attempts < max_attempts.max(1) {
        if delivered.attempts > 0 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        delivered.attempts += 1;
        match http.post(url).bearer_auth(token).json(body).send().await {
            Ok(response) => {
                let status = response.status();
                delivered.http_status = Some(status.as_u16());
                delivered.error = None;
                if !status.is_server_error() {
                    break;
                }
            }
            Err(error) => {
                delivered.http_status = None;
                delivered.error = Some(error.to_string());
            }
        }
    }
    delivered
}
