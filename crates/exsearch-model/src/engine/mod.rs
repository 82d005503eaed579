//! Batched generation and teacher-forced scoring on a loaded model.
//!
//! Generation prefills each distinct prompt once at batch size one, copies
//! its cache into one row per sample (left-padded to the longest prompt), then
//! decodes all rows together, one token per step. Finished rows are dropped
//! from the batch. Scoring prefills each distinct context once and runs all
//! targets for it as one batch on top of that cache.

mod handle;
mod prompt_cache;
pub mod sampling;

use std::collections::HashMap;

use candle_core::{Tensor, D};
use exsearch_jobs::{CancelToken, EventSink};
use serde::{Deserialize, Serialize};

pub use handle::{ModelHandle, ModelInfo};
pub use sampling::{Sampler, SamplingParams};

use crate::error::{Error, Result};
use crate::model::kv_cache::attention_mask;
use crate::model::{KvCache, LoadedModel};
use crate::text::TextStream;
use prompt_cache::{PromptCache, Reuse};

/// Sequences decoded together at most; more samples run in further waves.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// Prompt tokens per prefill step (bounds the attention matrix). Chunks
/// start at multiples of it, and the prompt cache reuses whole chunks only:
/// a token's keys and values then come from products of the same shapes
/// whether its prompt was cached or not, so both give the same numbers.
pub(crate) const PREFILL_CHUNK: usize = 64;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// Token ids of each prompt (already rendered and tokenized).
    pub prompts: Vec<Vec<u32>>,
    /// Samples drawn per prompt.
    pub samples: usize,
    pub params: SamplingParams,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model emitted an end-of-turn token.
    Eos,
    /// A stop string appeared; the text ends before it.
    Stop(String),
    /// `max_tokens` were generated.
    Length,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub prompt: usize,
    pub sample: usize,
    pub text: String,
    /// Generated token ids (an end-of-turn token included when it ended the text).
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
}

/// Streamed while generating.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GenerateEvent {
    Delta {
        prompt: usize,
        sample: usize,
        text: String,
    },
    Done {
        prompt: usize,
        sample: usize,
        finish: FinishReason,
    },
}

/// One (context, target) pair to score.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScorePair {
    pub context: Vec<u32>,
    pub target: Vec<u32>,
}

/// A loaded model plus its batching settings; owned by one thread.
pub struct Engine {
    model: LoadedModel,
    max_batch: usize,
    prompts: std::sync::Mutex<PromptCache>,
}

/// Bytes of prompt KV caches kept for reuse by default (a 1,000-token
/// prompt of SmolLM2-135M holds 46 MB, of Qwen2.5-0.5B 25 MB);
/// `EXSEARCH_PROMPT_CACHE_MB` sets another budget, 0 turns it off.
pub const DEFAULT_PROMPT_CACHE: usize = 512 << 20;

fn prompt_cache_budget() -> usize {
    std::env::var("EXSEARCH_PROMPT_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(DEFAULT_PROMPT_CACHE, |mb| mb << 20)
}

struct Sequence {
    prompt: usize,
    sample: usize,
    prompt_len: usize,
    sampler: Sampler,
    stream: TextStream,
    finish: Option<FinishReason>,
}

impl Engine {
    pub fn new(model: LoadedModel) -> Self {
        Self {
            model,
            max_batch: DEFAULT_MAX_BATCH,
            prompts: std::sync::Mutex::new(PromptCache::new(prompt_cache_budget())),
        }
    }

    /// Bytes of prompt caches to keep for reuse; 0 turns the cache off.
    pub fn with_prompt_cache(self, bytes: usize) -> Self {
        Self {
            prompts: std::sync::Mutex::new(PromptCache::new(bytes)),
            ..self
        }
    }

    /// Prompt tokens taken from the prompt cache and prefilled, so far.
    pub fn prompt_cache_stats(&self) -> (u64, u64) {
        let cache = self.prompt_cache();
        (cache.reused_tokens, cache.prefilled_tokens)
    }

    fn prompt_cache(&self) -> std::sync::MutexGuard<'_, PromptCache> {
        // A panic while holding it left at worst a stale entry list.
        self.prompts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// The model, to change (adapters, training). The prompt cache starts
    /// over. A trainer that later updates variables this model shares bumps
    /// the decoder's [`WeightsVersion`](crate::model::WeightsVersion), which
    /// empties the cache again before the next prompt.
    pub fn model_mut(&mut self) -> &mut LoadedModel {
        self.prompt_cache().clear();
        &mut self.model
    }

    /// Runs a prompt through the model at batch size one; returns its cache
    /// and the logits after its last token. What an earlier prompt shared
    /// with it comes from the prompt cache; only the rest is computed.
    fn prefill(
        &self,
        tokens: &[u32],
        extra: usize,
        cancel: &CancelToken,
    ) -> Result<(KvCache, Vec<f32>)> {
        if tokens.is_empty() {
            return Err(Error::InvalidOption("a prompt is empty".into()));
        }
        // Read before the prefill: an update during it makes the result stale.
        let version = self.model.decoder.weights().get();
        let reuse = self
            .prompt_cache()
            .lookup(tokens, extra, PREFILL_CHUNK, version)?;
        let (cache, from) = match reuse {
            Reuse::Whole(cache, logits) => return Ok((cache, logits)),
            Reuse::Prefix(cache, len) => (cache, len),
            Reuse::Nothing => (KvCache::new(self.model.decoder.config().num_layers), 0),
        };
        let (cache, logits) = self.extend(cache, &tokens[from..], cancel)?;
        let mut prompts = self.prompt_cache();
        prompts.prefilled_tokens += (tokens.len() - from) as u64;
        prompts.insert(tokens, &cache, &logits, version);
        Ok((cache, logits))
    }

    /// Appends `tokens` to a single-row cache; the logits after the last.
    fn extend(
        &self,
        mut cache: KvCache,
        tokens: &[u32],
        cancel: &CancelToken,
    ) -> Result<(KvCache, Vec<f32>)> {
        let decoder = &self.model.decoder;
        let device = decoder.device();
        let mut last = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let start = cache.len() as u32;
            let ids = Tensor::new(chunk, device)?.unsqueeze(0)?;
            let pos: Vec<u32> = (start..start + chunk.len() as u32).collect();
            let pos = Tensor::new(pos, device)?.unsqueeze(0)?;
            let hidden = decoder.forward(&ids, &pos, None, Some(&mut cache))?;
            last = Some(hidden.narrow(1, chunk.len() - 1, 1)?);
        }
        let last = last.ok_or_else(|| Error::InvalidOption("a prompt is empty".into()))?;
        let logits = decoder.logits(&last)?.flatten_all()?.to_vec1::<f32>()?;
        Ok((cache, logits))
    }

    pub fn generate(
        &self,
        request: &GenerateRequest,
        events: &dyn EventSink<GenerateEvent>,
        cancel: &CancelToken,
    ) -> Result<Vec<Completion>> {
        let params = &request.params;
        params.validate()?;
        if let Some(i) = request.prompts.iter().position(Vec::is_empty) {
            return Err(Error::InvalidOption(format!("prompt {i} is empty")));
        }
        let limit = self.model.decoder.config().max_position_embeddings;
        if let Some(p) = request
            .prompts
            .iter()
            .find(|p| p.len() + params.max_tokens > limit)
        {
            return Err(Error::InvalidOption(format!(
                "a prompt of {} tokens plus max_tokens {} exceeds the model's context of {limit}",
                p.len(),
                params.max_tokens
            )));
        }
        let mut sequences: Vec<Sequence> = Vec::new();
        for (prompt, tokens) in request.prompts.iter().enumerate() {
            for sample in 0..request.samples {
                sequences.push(Sequence {
                    prompt,
                    sample,
                    prompt_len: tokens.len(),
                    sampler: Sampler::new(params.seed, prompt, sample),
                    stream: TextStream::new(),
                    finish: None,
                });
            }
        }
        // A prompt's prefill is computed when its first wave needs it.
        let mut prefixes: HashMap<usize, (KvCache, Vec<f32>)> = HashMap::new();
        for wave in sequences.chunks_mut(self.max_batch) {
            for s in wave.iter() {
                if let std::collections::hash_map::Entry::Vacant(slot) = prefixes.entry(s.prompt) {
                    match self.prefill(&request.prompts[s.prompt], params.max_tokens, cancel) {
                        Ok(p) => {
                            slot.insert(p);
                        }
                        Err(Error::Cancelled) => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            if cancel.is_cancelled() {
                for s in wave.iter_mut() {
                    self.finish(s, FinishReason::Cancelled, params, events);
                }
                continue;
            }
            self.decode_wave(wave, &prefixes, params, events, cancel)?;
            prefixes.retain(|p, _| wave.last().is_some_and(|s| s.prompt <= *p));
        }
        Ok(sequences
            .into_iter()
            .map(|s| Completion {
                prompt: s.prompt,
                sample: s.sample,
                text: s.stream.text().to_string(),
                tokens: s.stream.tokens().to_vec(),
                finish: s.finish.unwrap_or(FinishReason::Cancelled),
            })
            .collect())
    }

    fn decode_wave(
        &self,
        wave: &mut [Sequence],
        prefixes: &HashMap<usize, (KvCache, Vec<f32>)>,
        params: &SamplingParams,
        events: &dyn EventSink<GenerateEvent>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let decoder = &self.model.decoder;
        let device = decoder.device().clone();
        // Rows of one prompt are adjacent: share one cache copy per group.
        let mut parts: Vec<(&KvCache, usize)> = Vec::new();
        let mut previous = None;
        for s in wave.iter() {
            let cache = &prefixes[&s.prompt].0;
            if previous == Some(s.prompt) {
                if let Some(last) = parts.last_mut() {
                    last.1 += 1;
                }
            } else {
                parts.push((cache, 1));
                previous = Some(s.prompt);
            }
        }
        let mut cache = KvCache::batch_of(&parts, params.max_tokens)?;
        for s in wave.iter_mut() {
            let token = s.sampler.sample(&prefixes[&s.prompt].1, params);
            self.accept(s, token, params, events);
        }
        let mut rows: Vec<usize> = (0..wave.len()).collect();
        // `rows x vocab` logits, one buffer for the whole wave.
        let mut logits = Vec::new();
        loop {
            let live: Vec<usize> = (0..rows.len())
                .filter(|&r| wave[rows[r]].finish.is_none())
                .collect();
            if live.is_empty() {
                return Ok(());
            }
            if cancel.is_cancelled() {
                for &r in &live {
                    self.finish(&mut wave[rows[r]], FinishReason::Cancelled, params, events);
                }
                return Ok(());
            }
            if live.len() < rows.len() {
                cache.select_rows(&live)?;
                rows = live.iter().map(|&r| rows[r]).collect();
            }
            let last: Vec<u32> = rows
                .iter()
                .map(|&i| *wave[i].stream.tokens().last().unwrap_or(&0))
                .collect();
            let pos: Vec<u32> = rows
                .iter()
                .map(|&i| (wave[i].prompt_len + wave[i].stream.tokens().len() - 1) as u32)
                .collect();
            let b = rows.len();
            let ids = Tensor::from_vec(last, (b, 1), &device)?;
            let pos = Tensor::from_vec(pos, (b, 1), &device)?;
            let mask = if cache.padded() {
                Some(attention_mask(
                    cache.pad(),
                    cache.len(),
                    1,
                    decoder.dtype(),
                    &device,
                )?)
            } else {
                None
            };
            let hidden = decoder.forward(&ids, &pos, mask.as_ref(), Some(&mut cache))?;
            decoder.logits_into(&hidden.squeeze(1)?, &mut logits)?;
            // `rows` is ascending, so the samplers come out in row order.
            let samplers: Vec<&mut Sampler> = wave
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| rows.binary_search(i).is_ok())
                .map(|(_, s)| &mut s.sampler)
                .collect();
            let tokens = sampling::sample_rows(samplers, &logits, params);
            for (&i, token) in rows.iter().zip(tokens) {
                self.accept(&mut wave[i], token, params, events);
            }
        }
    }

    fn accept(
        &self,
        s: &mut Sequence,
        token: u32,
        params: &SamplingParams,
        events: &dyn EventSink<GenerateEvent>,
    ) {
        let codec = &self.model.codec;
        if codec.eos_ids().contains(&token) {
            s.stream.push_silent(token);
            self.finish(s, FinishReason::Eos, params, events);
            return;
        }
        let step = s.stream.push(codec.tokenizer(), token, &params.stop);
        if !step.delta.is_empty() {
            events.emit(GenerateEvent::Delta {
                prompt: s.prompt,
                sample: s.sample,
                text: step.delta,
            });
        }
        if let Some(stop) = step.stop {
            s.finish = Some(FinishReason::Stop(stop.clone()));
            events.emit(GenerateEvent::Done {
                prompt: s.prompt,
                sample: s.sample,
                finish: FinishReason::Stop(stop),
            });
        } else if s.stream.tokens().len() >= params.max_tokens {
            self.finish(s, FinishReason::Length, params, events);
        }
    }

    fn finish(
        &self,
        s: &mut Sequence,
        reason: FinishReason,
        params: &SamplingParams,
        events: &dyn EventSink<GenerateEvent>,
    ) {
        let step = s.stream.finish(self.model.codec.tokenizer(), &params.stop);
        if !step.delta.is_empty() {
            events.emit(GenerateEvent::Delta {
                prompt: s.prompt,
                sample: s.sample,
                text: step.delta,
            });
        }
        let reason = step.stop.map(FinishReason::Stop).unwrap_or(reason);
        s.finish = Some(reason.clone());
        events.emit(GenerateEvent::Done {
            prompt: s.prompt,
            sample: s.sample,
            finish: reason,
        });
    }

    /// Teacher-forced log-probabilities: for each pair, `log p(target[i] |
    /// context, target[..i])` for every target token.
    pub fn score(&self, pairs: &[ScorePair], cancel: &CancelToken) -> Result<Vec<Vec<f32>>> {
        let decoder = &self.model.decoder;
        let device = decoder.device().clone();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); pairs.len()];
        let mut groups: HashMap<&[u32], Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, p) in pairs.iter().enumerate() {
            if p.context.is_empty() {
                return Err(Error::InvalidOption(format!(
                    "pair {i}: the context is empty"
                )));
            }
            let entry = groups.entry(&p.context).or_default();
            if entry.is_empty() {
                order.push(p.context.as_slice());
            }
            entry.push(i);
        }
        for context in order {
            let (cache, last_logits) = self.prefill(context, 0, cancel)?;
            let first = log_softmax(&last_logits);
            let members = &groups[context];
            for &i in members {
                if let Some(&t) = pairs[i].target.first() {
                    out[i].push(first[t as usize]);
                }
            }
            let rest: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| pairs[i].target.len() > 1)
                .collect();
            for batch in rest.chunks(self.max_batch) {
                if cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let width = batch
                    .iter()
                    .map(|&i| pairs[i].target.len() - 1)
                    .max()
                    .unwrap_or(0);
                let mut ids = vec![0u32; batch.len() * width];
                for (row, &i) in batch.iter().enumerate() {
                    let t = &pairs[i].target[..pairs[i].target.len() - 1];
                    ids[row * width..row * width + t.len()].copy_from_slice(t);
                }
                let start = context.len() as u32;
                let pos: Vec<u32> = (0..batch.len())
                    .flat_map(|_| start..start + width as u32)
                    .collect();
                let mut rows = KvCache::batch_of(&[(&cache, batch.len())], width)?;
                let ids = Tensor::from_vec(ids, (batch.len(), width), &device)?;
                let pos = Tensor::from_vec(pos, (batch.len(), width), &device)?;
                let hidden = decoder.forward(&ids, &pos, None, Some(&mut rows))?;
                for (row, &i) in batch.iter().enumerate() {
                    let n = pairs[i].target.len() - 1;
                    let h = hidden.get(row)?.narrow(0, 0, n)?;
                    let logp = candle_nn::ops::log_softmax(&decoder.logits(&h)?, D::Minus1)?;
                    let targets = Tensor::new(&pairs[i].target[1..], &device)?.unsqueeze(1)?;
                    let picked = logp.gather(&targets, 1)?.squeeze(1)?.to_vec1::<f32>()?;
                    out[i].extend(picked);
                }
            }
        }
        Ok(out)
    }
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let log_z = max + sum.ln() as f32;
    logits.iter().map(|&l| l - log_z).collect()
}
