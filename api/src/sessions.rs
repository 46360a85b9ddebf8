//! The media sessions this process is relaying, so that shutdown can let live calls finish
//! (and store what their relays saw) before the database closes, and so that no more than
//! the configured number run at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long relays asked to stop get to close their sockets and store their figures.
const FINISH: Duration = Duration::from_secs(10);

/// Every media session of the process: tracked while it runs, told to stop at shutdown.
pub struct MediaSessions {
    tracker: TaskTracker,
    stop: CancellationToken,
    places: Arc<Semaphore>,
    cap: usize,
}

/// A place for one more media session; taken before the upgrade is answered.
pub struct SessionPlace {
    _permit: OwnedSemaphorePermit,
}

impl Default for MediaSessions {
    fn default() -> Self {
        MediaSessions::with_cap(crate::limits::Limits::default().media_sessions)
    }
}

impl MediaSessions {
    /// At most `cap` sessions at once.
    pub fn with_cap(cap: usize) -> MediaSessions {
        MediaSessions {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            places: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }

    /// A place for one more session, or `None` when `cap` sessions run.
    pub fn place(&self) -> Option<SessionPlace> {
        self.places
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| SessionPlace { _permit: permit })
    }

    /// The most sessions that run at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Runs one media session as a tracked task, holding its place until it ends.
    pub fn spawn<F>(&self, place: SessionPlace, session: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(async move {
            session.await;
            drop(place);
        });
    }

    /// Cancelled when the process stops relaying: a relay ends with reason `shutdown`.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Sessions running now.
    pub fn live(&self) -> usize {
        self.tracker.len()
    }

    /// Waits up to `grace` for the live sessions to end by themselves, then tells the rest
    /// to stop and waits for them to store their figures. Returns how many were stopped.
    pub async fn drain(&self, grace: Duration) -> usize {
        self.tracker.close();
        if self.tracker.is_empty() {
            return 0;
        }
        tracing::info!(
            live = self.live(),
            grace_secs = grace.as_secs(),
            "waiting for live calls' media streams to end"
        );
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.live();
        tracing::warn!(
            left,
            "closing the media streams of calls still live at shutdown"
        );
        self.stop.cancel();
        if tokio::time::timeout(FINISH, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::error!(
                left = self.live(),
                "media sessions did not finish storing their figures"
            );
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn draining_waits_for_sessions_that_end_within_the_grace() {
        let sessions = MediaSessions::default();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
        sessions.spawn(sessions.place().unwrap(), async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = done_tx.send(()).await;
        });
        assert_eq!(sessions.drain(Duration::from_secs(5)).await, 0);
        assert!(done_rx.try_recv().is_ok(), "the session ran to its end");
    }

    #[tokio::test]
    async fn sessions_still_live_after_the_grace_are_told_to_stop_and_finish() {
        let sessions = MediaSessions::default();
        let stop = sessions.stop_token();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
        sessions.spawn(sessions.place().unwrap(), async move {
            stop.cancelled().await;
            // What a relay does once told: close, then store its figures.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = done_tx.send("stored").await;
        });
        assert_eq!(sessions.drain(Duration::from_millis(50)).await, 1);
        assert_eq!(done_rx.try_recv().ok(), Some("stored"));
        assert_eq!(sessions.live(), 0);
    }

    #[tokio::test]
    async fn no_more_than_the_cap_run_and_an_ended_session_frees_its_place() {
        let sessions = MediaSessions::with_cap(2);
        let (end_tx, end_rx) = tokio::sync::watch::channel(false);
        for _ in 0..2 {
            let mut end = end_rx.clone();
            sessions.spawn(sessions.place().expect("under the cap"), async move {
                let _ = end.wait_for(|e| *e).await;
            });
        }
        assert!(sessions.place().is_none(), "two run: the third waits");
        end_tx.send(true).unwrap();
        assert_eq!(sessions.drain(Duration::from_secs(5)).await, 0);
        assert!(sessions.place().is_some(), "their places are free again");
    }
}
