//! `Scripted`: fixed turns played back in order, for tests (behind the
//! `test-support` feature).

use std::collections::VecDeque;
use std::sync::Mutex;

use exsearch_core::CancelToken;
use exsearch_model::SamplingParams;

use super::playback::play;
use super::{Generated, Generator, OnDelta, Prompt};
use crate::error::Result;

/// Plays back fixed turns, one per (prompt, sample) in call order, streamed
/// word by word; a cancel between two words stops it. Records every prompt.
pub struct Scripted {
    turns: Mutex<VecDeque<String>>,
    seen: Mutex<Vec<Prompt>>,
}

impl Scripted {
    pub fn new<S: Into<String>>(turns: impl IntoIterator<Item = S>) -> Self {
        Self {
            turns: Mutex::new(turns.into_iter().map(Into::into).collect()),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Every prompt received so far, in order (one entry per prompt, not
    /// per sample).
    pub fn prompts(&self) -> Vec<Prompt> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Turns not played yet.
    pub fn remaining(&self) -> usize {
        self.turns.lock().map(|t| t.len()).unwrap_or_default()
    }
}

impl Generator for Scripted {
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(prompts.iter().cloned());
        }
        let mut out = Vec::with_capacity(prompts.len());
        for p in 0..prompts.len() {
            let mut row = Vec::with_capacity(samples);
            for s in 0..samples {
                let turn = self
                    .turns
                    .lock()
                    .ok()
                    .and_then(|mut t| t.pop_front())
                    .unwrap_or_default();
                row.push(play(&turn, p, s, params, on_delta, cancel)?);
            }
            out.push(row);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}
