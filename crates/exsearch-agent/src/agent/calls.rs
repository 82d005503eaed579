//! Model calls: timed, counted per run, and a failed prompt ending only its
//! own runs.

use std::sync::Arc;
use std::time::Instant;

use exsearch_core::{CancelToken, EventSink};
use exsearch_model::SamplingParams;

use super::{Agent, AgentEvent, Phase, Run};
use crate::error::{Error, Result};
use crate::generator::{Generated, Prompt};
use crate::trajectory::EndReason;

impl Agent<'_> {
    /// Calls the generator, timing it and counting tokens per run. The runs
    /// whose prompt failed are ended as failed (their entries are `None`)
    /// and the others get their text. A cancel is an error for all.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        owners: &[usize],
        runs: &mut [Run],
        model_ms: &mut f64,
        on_delta: &(dyn Fn(usize, usize, &str) + Sync),
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<Vec<Option<Generated>>> {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let t = Instant::now();
        let per_prompt = self
            .generator
            .generate_each(prompts, samples, params, on_delta, cancel)?;
        *model_ms += t.elapsed().as_secs_f64() * 1e3;
        let mut flat: Vec<Option<Generated>> = Vec::with_capacity(owners.len());
        for (p, row) in per_prompt.into_iter().enumerate() {
            match row {
                Ok(row) if row.len() == samples => flat.extend(row.into_iter().map(Some)),
                Ok(row) => {
                    return Err(Error::InvalidSetting(format!(
                        "the generator returned {} texts for prompt {p}'s {samples} samples",
                        row.len()
                    )))
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for s in 0..samples {
                        if let Some(&r) = owners.get(p * samples + s) {
                            fail(r, &mut runs[r], Arc::clone(&e), events);
                        }
                        flat.push(None);
                    }
                }
            }
        }
        if flat.len() != owners.len() {
            return Err(Error::InvalidSetting(format!(
                "the generator returned {} texts for {} requests",
                flat.len(),
                owners.len()
            )));
        }
        for (g, &r) in flat.iter().zip(owners) {
            if let Some(g) = g {
                runs[r].tokens += g.tokens;
            }
            runs[r].calls += 1;
        }
        Ok(flat)
    }
}

/// Ends run `index` as failed with `error`, its last event a `Failed`.
pub(super) fn fail(
    index: usize,
    run: &mut Run,
    error: Arc<Error>,
    events: &dyn EventSink<AgentEvent>,
) {
    events.emit(AgentEvent::Failed {
        run: index,
        code: error.code().to_string(),
        error: error.to_string(),
    });
    run.phase = Phase::Done;
    run.end = EndReason::Failed;
    run.failure = Some(error);
}
