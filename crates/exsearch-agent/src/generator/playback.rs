//! Text played back as a model would stream it, for the generators that do
//! not run a model (`Oracle`, and `Scripted` in tests).

use exsearch_core::CancelToken;
use exsearch_model::{FinishReason, SamplingParams};

use super::{cut_at_stop, Generated, OnDelta};
use crate::error::{Error, Result};

/// Streams `turn` word by word as the model would, honouring the stop
/// strings and `max_tokens` (one word counts as one token).
pub(super) fn play(
    turn: &str,
    prompt: usize,
    sample: usize,
    params: &SamplingParams,
    on_delta: OnDelta<'_>,
    cancel: &CancelToken,
) -> Result<Generated> {
    let (text, mut finish) = match cut_at_stop(turn, &params.stop) {
        Some((before, stop)) => (before, FinishReason::Stop(stop.to_string())),
        None => (turn, FinishReason::Eos),
    };
    let mut out = String::new();
    let mut tokens = 0;
    for word in text.split_inclusive(char::is_whitespace) {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if tokens == params.max_tokens {
            finish = FinishReason::Length;
            break;
        }
        out.push_str(word);
        tokens += 1;
        on_delta(prompt, sample, word);
    }
    Ok(Generated {
        text: out,
        tokens,
        finish,
    })
}
