//! Sends the simulator's events as LiveKit does: JSON (protobuf JSON names) posted with
//! `Content-Type: application/webhook+json` and `Authorization: <jwt>` (no `Bearer`), the
//! JWT signed with livekit-api's `AccessToken`, valid 5 minutes, its `sha256` claim the
//! base64 SHA-256 of the body. One at a time, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use livekit_api::access_token::AccessToken;
use livekit_protocol as proto;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::record::SentWebhook;

/// Validity of a webhook token.
const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Signs `body` as LiveKit signs webhooks.
pub fn sign(api_key: &str, api_secret: &str, body: &[u8]) -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    AccessToken::with_api_key(api_key, api_secret)
        .with_ttl(TOKEN_TTL)
        .with_sha256(&hash)
        .to_jwt()
        .unwrap_or_default()
}

/// Where and how webhooks are sent.
pub(crate) struct Sender {
    pub http: reqwest::Client,
    pub url: Option<String>,
    pub api_key: String,
    pub api_secret: String,
    pub log: Arc<Mutex<Vec<SentWebhook>>>,
}

impl Sender {
    /// Delivers events until the channel closes or shutdown is asked.
    pub async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<proto::WebhookEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(event) = event else { break };
            let sent = self.deliver(event).await;
            self.log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(sent);
        }
    }

    async fn deliver(&self, event: proto::WebhookEvent) -> SentWebhook {
        let body = serde_json::to_string(&event).unwrap_or_default();
        let mut sent = SentWebhook {
            event,
            body,
            status: None,
            error: None,
        };
        let Some(url) = &self.url else {
            return sent;
        };
        let token = sign(&self.api_key, &self.api_secret, sent.body.as_bytes());
        let response = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, token)
            .header(reqwest::header::CONTENT_TYPE, "application/webhook+json")
            .header(reqwest::header::USER_AGENT, "LiveKit")
            .body(sent.body.clone())
            .send()
            .await;
        match response {
            Ok(response) => sent.status = Some(response.status().as_u16()),
            Err(error) => {
                tracing::debug!(%error, "simulated livekit could not deliver a webhook");
                sent.error = Some(error.to_string());
            }
        }
        sent
    }
}
