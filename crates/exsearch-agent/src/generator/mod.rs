//! Where the model's words come from. The agent talks to a `Generator`:
//! chat prompts in, sampled text out, deltas streamed, cancel at any token.
//! Backends: a local model (`Local`), an OpenAI-compatible server
//! (`OpenAi`), the gold searches of a QA file for measurements (`Oracle`),
//! and fixed turns for tests (`Scripted`, with the `test-support` feature).

mod local;
mod openai;
mod oracle;
mod playback;
#[cfg(any(test, feature = "test-support"))]
mod scripted;

pub use local::Local;
pub use openai::{OpenAi, Retry};
pub use oracle::{Oracle, OracleAnswer};
#[cfg(any(test, feature = "test-support"))]
pub use scripted::Scripted;

use exsearch_core::CancelToken;
use exsearch_model::{ChatMessage, FinishReason, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A conversation to continue. `prefill` starts the assistant's turn (the
/// repair of an unparsable step primes it with the tags it expects); the
/// generated text continues it and does not repeat it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub messages: Vec<ChatMessage>,
    pub prefill: String,
}

impl Prompt {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            prefill: String::new(),
        }
    }
}

/// One sampled continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub text: String,
    /// New tokens the backend produced (as it counts them).
    pub tokens: usize,
    pub finish: FinishReason,
}

/// Receives streamed text: (prompt index, sample index, new text).
pub type OnDelta<'a> = &'a (dyn Fn(usize, usize, &str) + Sync);

pub trait Generator: Send + Sync {
    /// Draws `samples` continuations of each prompt; the result is indexed
    /// `[prompt][sample]`. Stops at the first of `params.stop` (excluded
    /// from the text). Returns `Error::Cancelled` once `cancel` is set.
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>>;

    /// `generate` with each prompt's outcome apart, so one prompt's failure
    /// does not fail the others: `[prompt]` is that prompt's samples or its
    /// error. A cancel is still an error for all. The default calls
    /// `generate` and, when it fails, each prompt alone; a backend whose
    /// requests are independent overrides it and runs each prompt once.
    fn generate_each(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Result<Vec<Generated>>>> {
        match self.generate(prompts, samples, params, on_delta, cancel) {
            Ok(rows) => Ok(rows.into_iter().map(Ok).collect()),
            Err(Error::Cancelled) => Err(Error::Cancelled),
            Err(e) if prompts.len() == 1 => Ok(vec![Err(e)]),
            Err(_) => {
                let mut rows = Vec::with_capacity(prompts.len());
                for (p, prompt) in prompts.iter().enumerate() {
                    let alone = |_: usize, s: usize, text: &str| on_delta(p, s, text);
                    match self.generate(
                        std::slice::from_ref(prompt),
                        samples,
                        params,
                        &alone,
                        cancel,
                    ) {
                        Err(Error::Cancelled) => return Err(Error::Cancelled),
                        result => rows.push(result.map(|mut r| r.pop().unwrap_or_default())),
                    }
                }
                Ok(rows)
            }
        }
    }

    /// What to record as the model of a conversation or an evaluation.
    fn describe(&self) -> String;

    /// The model's context in tokens (prompt and reply together), when the
    /// backend knows it. The agent keeps every prompt within it.
    fn context_tokens(&self) -> Option<usize> {
        None
    }

    /// The tokens `prompt` takes: exact where the backend can count them,
    /// else [`estimate_tokens`], which errs on the high side.
    fn prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        Ok(estimate_tokens(prompt))
    }
}

/// A count of `prompt`'s tokens that errs high for the tokenizers in use:
/// a token per 3 bytes of text (English averages about 4 characters a
/// token; a CJK character is 3 bytes and about one token), plus each
/// message's template markup.
pub fn estimate_tokens(prompt: &Prompt) -> usize {
    let bytes: usize = prompt
        .messages
        .iter()
        .map(|m| m.content.len())
        .sum::<usize>()
        + prompt.prefill.len();
    bytes.div_ceil(3) + 8 * prompt.messages.len() + 16
}

/// Cuts `text` before the first stop string, if any.
pub(crate) fn cut_at_stop<'a>(text: &'a str, stop: &'a [String]) -> Option<(&'a str, &'a str)> {
    stop.iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str())))
        .min_by_key(|&(at, _)| at)
        .map(|(at, s)| (&text[..at], s))
}
