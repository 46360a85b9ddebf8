//! The far side's audio as the callee would hear it, to know when a `mark` has "played".
//!
//! Model: received media frames enter a playout buffer that drains in real time, 20 ms per
//! frame. A frame arriving while the buffer is empty starts playing at once; otherwise it
//! queues behind the buffered ones. A mark is due when every frame received before it has
//! finished playing (at once if nothing is buffered), and marks are echoed in the order they
//! arrived. `clear` empties the buffer, so every pending mark is due at once.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Playing time of one media frame.
const FRAME: Duration = Duration::from_millis(switchboard_media::audio::FRAME_MS as u64);

/// Playout clock and marks waiting for their audio to finish.
#[derive(Debug, Default)]
pub(crate) struct Playout {
    /// When the buffered audio will have finished playing.
    until: Option<Instant>,
    /// Marks and the time they become due, in arrival order (due times never decrease).
    pending: VecDeque<(String, Instant)>,
}

impl Playout {
    /// A media frame arrived at `now`.
    pub(crate) fn on_media(&mut self, now: Instant) {
        let start = self.until.map_or(now, |until| until.max(now));
        self.until = Some(start + FRAME);
    }

    /// A mark arrived at `now`.
    pub(crate) fn on_mark(&mut self, name: String, now: Instant) {
        let due = self.until.map_or(now, |until| until.max(now));
        self.pending.push_back((name, due));
    }

    /// `clear` arrived: buffered audio is dropped and every pending mark is returned.
    pub(crate) fn on_clear(&mut self, now: Instant) -> Vec<String> {
        self.until = Some(now);
        self.pending.drain(..).map(|(name, _)| name).collect()
    }

    /// Marks whose audio has finished playing by `now`, in order.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((_, at)) = self.pending.front() {
            if *at > now {
                break;
            }
            if let Some((name, _)) = self.pending.pop_front() {
                due.push(name);
            }
        }
        due
    }

    /// When the next pending mark becomes due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pending.front().map(|(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_mark_is_due_once_the_frames_before_it_have_played() {
        let t0 = Instant::now();
        let mut playout = Playout::default();
        for _ in 0..5 {
            playout.on_media(t0);
        }
        playout.on_mark("greeting-done".into(), t0);
        assert_eq!(playout.next_due(), Some(t0 + ms(100)));
        assert!(playout.take_due(t0 + ms(99)).is_empty());
        assert_eq!(playout.take_due(t0 + ms(100)), ["greeting-done"]);
        assert_eq!(playout.next_due(), None);
    }

    #[test]
    fn real_time_frames_keep_the_buffer_at_one_frame() {
        let t0 = Instant::now();
        let mut playout = Playout::default();
        for n in 0..10 {
            playout.on_media(t0 + ms(20 * n));
        }
        playout.on_mark("m".into(), t0 + ms(181));
        assert_eq!(playout.next_due(), Some(t0 + ms(200)));
    }

    #[test]
    fn a_mark_with_nothing_buffered_is_due_at_once() {
        let t0 = Instant::now();
        let mut playout = Playout::default();
        playout.on_mark("first".into(), t0);
        playout.on_media(t0);
        playout.on_mark("second".into(), t0 + ms(50));
        assert_eq!(playout.take_due(t0), ["first"]);
        assert_eq!(playout.take_due(t0 + ms(50)), ["second"]);
    }

    #[test]
    fn clear_flushes_pending_marks_in_order_and_empties_the_buffer() {
        let t0 = Instant::now();
        let mut playout = Playout::default();
        for _ in 0..50 {
            playout.on_media(t0);
        }
        playout.on_mark("a".into(), t0);
        playout.on_mark("b".into(), t0);
        assert_eq!(playout.on_clear(t0 + ms(10)), ["a", "b"]);
        playout.on_mark("c".into(), t0 + ms(10));
        assert_eq!(playout.take_due(t0 + ms(10)), ["c"]);
    }
}
