//! The webhook delivery worker: a task that claims due deliveries from the outbox, POSTs
//! each one signed to its subscription's URL, and records every send (delivered,
//! rescheduled with backoff, or failed when the retry schedule gives up).
//!
//! The outbox lives in the database, so deliveries survive restarts; claims carry a lease,
//! so several processes sharing one PostgreSQL deliver each event once (at least once if a
//! process dies mid-send).
//!
//! Unless private addresses are allowed, a delivery whose URL is, or resolves to, an
//! internal address ([`crate::webhook_guard`]) is not sent: it fails at once with the
//! reason, without retries. Proxies from the environment are not used then, since a proxy
//! would connect on the worker's behalf wherever the name points.

use crate::webhook_guard::{GuardedResolver, check_literal, refused_in};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_engine::store::{DeliveryStatus, DueDelivery, SendReport, Store};
use switchboard_engine::webhook::{RetrySchedule, SIGNATURE_HEADER, signature};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument as _;

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Retries and backoff.
    pub schedule: RetrySchedule,
    /// How long one send may take.
    pub timeout: Duration,
    /// How often the outbox is checked when it had nothing due.
    pub poll: Duration,
    /// Most deliveries sent at once.
    pub batch: u32,
    /// Send to loopback, private and link-local addresses too.
    pub allow_private_addresses: bool,
    /// CA certificates trusted besides the web PKI roots (`agent_ca_file`).
    pub extra_roots: Vec<switchboard_media::agent_ws::CertificateDer<'static>>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            batch: 32,
            allow_private_addresses: false,
            extra_roots: Vec::new(),
        }
    }
}

/// The handle to a running worker.
pub struct WebhookWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the worker needs to send.
struct Sender {
    store: Store,
    http: reqwest::Client,
    settings: WorkerSettings,
}

impl WebhookWorker {
    /// Starts delivering from `store`'s outbox.
    pub fn start(store: Store, settings: WorkerSettings) -> Result<WebhookWorker, reqwest::Error> {
        let mut http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_addresses {
            http = http.dns_resolver(GuardedResolver).no_proxy();
        }
        for root in &settings.extra_roots {
            http = http.add_root_certificate(reqwest::Certificate::from_der(root)?);
        }
        let http = http.build()?;
        let (stop, stopped) = watch::channel(false);
        let sender = Arc::new(Sender {
            store,
            http,
            settings,
        });
        let task = tokio::spawn(run(sender, stopped));
        Ok(WebhookWorker { stop, task })
    }

    /// Stops claiming new deliveries, lets sends in flight finish (each within the send
    /// timeout) and waits for the task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(sender: Arc<Sender>, mut stopped: watch::Receiver<bool>) {
    let lease = sender.settings.timeout * 2 + Duration::from_secs(5);
    // Old deliveries are purged by the retention job (`retention_webhook_deliveries_days`).
    while !*stopped.borrow() {
        let now = switchboard_engine::time::now();
        let due = match sender
            .store
            .claim_due_deliveries(now, lease, sender.settings.batch)
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the webhook outbox");
                Vec::new()
            }
        };
        let busy = !due.is_empty();
        let mut sends = JoinSet::new();
        for delivery in due {
            let sender = sender.clone();
            let span = tracing::info_span!(
                "webhook_delivery",
                delivery_id = %delivery.id,
                webhook_id = %delivery.webhook_id,
                event = %delivery.event
            );
            sends.spawn(async move { sender.deliver(delivery).await }.instrument(span));
        }
        while sends.join_next().await.is_some() {}
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(sender.settings.poll) => {}
                _ = stopped.changed() => {}
            }
        }
    }
}

impl Sender {
    /// Sends one delivery and records how it went.
    async fn deliver(&self, delivery: DueDelivery) {
        let body = json!({
            "id": delivery.id,
            "type": delivery.event,
            "created_at": delivery.created_at,
            "data": delivery.payload,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let at = switchboard_engine::time::now();
        if !self.settings.allow_private_addresses
            && let Err(refused) = check_literal(&delivery.url)
        {
            let report = SendReport {
                at,
                status_code: None,
                error: Some(format!("refused destination: {refused}")),
                duration: Duration::ZERO,
                give_up: true,
            };
            return self.record(&delivery, report).await;
        }
        let signed = signature(&delivery.secret, at.timestamp(), &body);
        let started = Instant::now();
        let sent = self
            .http
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signed)
            .header("Switchboard-Event", &delivery.event)
            .header("Switchboard-Delivery", delivery.id.to_string())
            .body(body)
            .send()
            .await;
        let duration = started.elapsed();
        let report = match sent {
            Ok(response) => SendReport {
                at,
                status_code: Some(response.status().as_u16()),
                error: None,
                duration,
                give_up: false,
            },
            Err(e) => match refused_in(&e) {
                Some(refused) => SendReport {
                    at,
                    status_code: None,
                    error: Some(format!("refused destination: {refused}")),
                    duration,
                    give_up: true,
                },
                None => SendReport {
                    at,
                    status_code: None,
                    error: Some(describe(&e, self.settings.timeout)),
                    duration,
                    give_up: false,
                },
            },
        };
        self.record(&delivery, report).await
    }

    /// Records a send (metrics, the store, the log).
    async fn record(&self, delivery: &DueDelivery, report: SendReport) {
        crate::metrics::webhook_send(&delivery.event, &report);
        match self
            .store
            .record_delivery_attempt(delivery.id, &report, &self.settings.schedule)
            .await
        {
            Ok(DeliveryStatus::Delivered) => {
                tracing::debug!(attempt = delivery.attempts + 1, "webhook delivered")
            }
            Ok(DeliveryStatus::Pending) => tracing::info!(
                attempt = delivery.attempts + 1,
                status = ?report.status_code,
                error = ?report.error,
                "webhook send failed; retrying later"
            ),
            Ok(DeliveryStatus::Failed) if report.give_up => tracing::warn!(
                error = ?report.error,
                "webhook delivery failed: its destination is refused"
            ),
            Ok(DeliveryStatus::Failed) => tracing::warn!(
                attempts = delivery.attempts + 1,
                status = ?report.status_code,
                error = ?report.error,
                "webhook delivery failed; no more retries"
            ),
            Err(e) => tracing::warn!(error = %e, "could not record a webhook send"),
        }
    }
}

/// A send error in words, with its causes (`connection refused`, `timed out after 10s`).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
