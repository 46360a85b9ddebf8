//! The HTTP server loop: hyper's HTTP/1 connection driver with the limits a public server
//! needs and `axum::serve` does not set. A client gets [`ServerLimits::header_read_timeout`]
//! to send a request's head (a slow-header client is closed, not kept forever); at most
//! [`ServerLimits::max_connections`] connections are served at once (the next one waits in
//! the kernel's backlog until one closes); a request's head is capped in size and header
//! count. Upgraded connections (the carrier's media streams) leave the count when they
//! upgrade; the media sessions have their own cap.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The bounds of the server's connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a client has to send a request's head (request line and headers),
    /// counted from the first byte; and how long a kept-alive connection may idle.
    pub header_read_timeout: Duration,
    /// Headers one request may carry.
    pub max_headers: usize,
    /// Bytes of buffered request head (and of any one read); larger heads get 431.
    pub max_buf_size: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            max_headers: 64,
            max_buf_size: 64 * 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, asks
/// every connection to finish its request in flight and close, and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let closing = closing.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_headers(limits.max_headers)
                .max_buf_size(limits.max_buf_size);
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    closing.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// An accept that failed: out of file descriptors or a connection reset before it was
/// taken. The first kind lasts a while, so the loop pauses before taking the next one.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing accepts for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
