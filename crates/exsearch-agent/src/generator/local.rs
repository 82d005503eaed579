//! A local model through its `ModelHandle`: prompts are rendered with the
//! model's chat template and tokenized here; the model thread batches all
//! of them (K samples of one prompt share its prefill).

use std::sync::Arc;

use crossbeam_channel::{select, unbounded};
use exsearch_core::CancelToken;
use exsearch_model::{GenerateEvent, GenerateRequest, ModelHandle, SamplingParams};

use super::{Generated, Generator, OnDelta, Prompt};
use crate::error::{Error, Result};

pub struct Local {
    model: Arc<ModelHandle>,
}

impl Local {
    pub fn new(model: Arc<ModelHandle>) -> Self {
        Self { model }
    }

    pub fn handle(&self) -> &Arc<ModelHandle> {
        &self.model
    }

    /// The prompt's token ids: the conversation rendered with the chat
    /// template (ending in the assistant's turn), then the prefill.
    pub fn tokenize(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        let codec = self.model.codec();
        let mut text = codec.render_chat(&prompt.messages, true, &Default::default())?;
        text.push_str(&prompt.prefill);
        Ok(codec.encode_rendered(&text)?)
    }
}

impl Generator for Local {
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>> {
        let request = GenerateRequest {
            prompts: prompts
                .iter()
                .map(|p| self.tokenize(p))
                .collect::<Result<_>>()?,
            samples,
            params: params.clone(),
        };
        let (events_tx, events) = unbounded();
        let reply = self
            .model
            .submit_generate(request, Some(events_tx), cancel.clone())?;
        let completions = loop {
            select! {
                recv(events) -> event => {
                    if let Ok(GenerateEvent::Delta { prompt, sample, text }) = event {
                        on_delta(prompt, sample, &text);
                    }
                }
                recv(reply) -> result => {
                    // Deltas sent before the reply are still queued.
                    for event in events.try_iter() {
                        if let GenerateEvent::Delta { prompt, sample, text } = event {
                            on_delta(prompt, sample, &text);
                        }
                    }
                    break result.map_err(|_| Error::from(exsearch_model::Error::Stopped))??;
                }
            }
        };
        let mut completions = completions;
        completions.sort_by_key(|c| (c.prompt, c.sample));
        let mut out: Vec<Vec<Generated>> = vec![Vec::with_capacity(samples); prompts.len()];
        for c in completions {
            let generated = Generated {
                tokens: c.tokens.len(),
                text: c.text,
                finish: c.finish,
            };
            out[c.prompt].push(generated);
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.model.info().name.clone()
    }

    fn context_tokens(&self) -> Option<usize> {
        Some(self.model.info().context)
    }

    fn prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        Ok(self.tokenize(prompt)?.len())
    }
}
