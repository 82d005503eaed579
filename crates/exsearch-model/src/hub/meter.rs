//! Progress of a pull across all its files: bytes, rate over this run, ETA,
//! emitted at most every 100 ms.

use std::time::{Duration, Instant};

use super::download::PullEvent;

const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Overall progress across files: bytes, rate over this run, ETA.
pub(super) struct Meter {
    total: u64,
    done: u64,
    started: Instant,
    /// Bytes that were already present (not part of this run's rate).
    reused: u64,
    last: Option<Instant>,
}

impl Meter {
    pub(super) fn new(total: u64) -> Self {
        Self {
            total,
            done: 0,
            started: Instant::now(),
            reused: 0,
            last: None,
        }
    }

    pub(super) fn skip(&mut self, bytes: u64) {
        self.done += bytes;
        self.reused += bytes;
    }

    pub(super) fn skip_back(&mut self, bytes: u64) {
        self.done -= bytes.min(self.done);
        self.reused -= bytes.min(self.reused);
    }

    pub(super) fn advance(&mut self, bytes: u64, file: &str) -> Option<PullEvent> {
        self.done += bytes;
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return None;
        }
        self.flush(file)
    }

    pub(super) fn flush(&mut self, file: &str) -> Option<PullEvent> {
        self.last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.done - self.reused) as f64 / secs;
        let left = self.total.saturating_sub(self.done) as f64;
        Some(PullEvent::Progress {
            file: file.to_string(),
            downloaded: self.done,
            total: self.total,
            bytes_per_sec: rate,
            eta_secs: (rate > 0.0).then(|| left / rate),
        })
    }
}
