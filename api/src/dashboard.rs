//! The operator dashboard: one self-contained page at `/` (inline CSS and script, no
//! external resources) that talks to the REST API and the admin live view with the key
//! the operator enters; and `GET /api/v1/campaigns/{id}/timeseries`, the campaign's
//! attempts over time behind its charts.

use crate::app::AppState;
use crate::auth::Auth;
use crate::problem::Problem;
use crate::rest::{Params, path_id};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use switchboard_engine::CampaignId;

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("dashboard.html");

/// Bucket size when `bucket_secs` is not given.
pub const DEFAULT_BUCKET_SECS: u32 = 60;

/// The dashboard and the time series route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/campaigns/{id}/timeseries", get(timeseries))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// GET /api/v1/campaigns/{id}/timeseries?bucket_secs=60: the campaign's attempts in
/// buckets by reservation time, with answer rate, abandonment rate and dial rate (attempts
/// per minute) per bucket. Buckets without attempts are left out.
async fn timeseries(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> Result<Json<Value>, Problem> {
    let id: CampaignId = path_id(&id, "id")?;
    let bucket_secs = params
        .parse::<u32>("bucket_secs")?
        .unwrap_or(DEFAULT_BUCKET_SECS);
    state.store.campaign(auth.tenant, id).await?;
    let buckets = state
        .store
        .campaign_timeseries(auth.tenant, id, bucket_secs)
        .await?;
    let items: Vec<Value> = buckets
        .iter()
        .map(|b| {
            json!({
                "start": b.start,
                "dialed": b.dialed,
                "answered": b.answered,
                "connected": b.connected,
                "abandoned": b.abandoned,
                "answer_rate": ratio(b.answered, b.dialed),
                "abandonment_rate": ratio(b.abandoned, b.answered),
                "dial_rate_per_min": b.dialed as f64 * 60.0 / f64::from(bucket_secs),
            })
        })
        .collect();
    Ok(Json(
        json!({ "campaign_id": id, "bucket_secs": bucket_secs, "items": items }),
    ))
}
