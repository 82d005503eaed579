//! What every long job shares: a cancel token checked at safe points and a
//! sink that receives typed progress events. The CLI's sink draws progress
//! bars, the desktop shell forwards events over IPC, tests collect them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap, cloneable flag. Jobs check it between units of work (a file, a
/// commit batch) and stop cleanly, keeping what was already committed.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Receives a job's events. Implemented for closures.
pub trait EventSink<E>: Send + Sync {
    fn emit(&self, event: E);
}

impl<E, F: Fn(E) + Send + Sync> EventSink<E> for F {
    fn emit(&self, event: E) {
        self(event)
    }
}

/// A sink that drops everything, for callers that do not watch progress.
pub struct Quiet;

impl<E> EventSink<E> for Quiet {
    fn emit(&self, _event: E) {}
}
