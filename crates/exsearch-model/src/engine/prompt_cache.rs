//! The KV caches of recent prompts, so that a prompt that extends one
//! (the next search step of a conversation, another sample's step after a
//! shared question) prefills only its new tokens.
//!
//! Entries are single-row caches after a prompt's prefill, with the logits
//! after its last token. They are never written once stored: a prompt that
//! continues an entry copies the shared columns into a cache of its own
//! first, so two continuations of one entry never see each other's tokens.
//! The least recently used entries go when the bytes held pass the budget.
//!
//! Entries belong to one version of the weights ([`WeightsVersion`]): when
//! a trainer has changed them since, every entry goes, and a prompt
//! prefilled under an older version is not kept.
//!
//! [`WeightsVersion`]: crate::model::WeightsVersion

use crate::error::Result;
use crate::model::KvCache;

struct Entry {
    tokens: Vec<u32>,
    cache: KvCache,
    logits: Vec<f32>,
    last_used: u64,
    bytes: usize,
}

/// What a prompt can take from the cache.
pub(crate) enum Reuse {
    /// The same prompt: its cache (read only) and logits.
    Whole(KvCache, Vec<f32>),
    /// A cache holding the first `len` tokens, to be extended.
    Prefix(KvCache, usize),
    Nothing,
}

pub(crate) struct PromptCache {
    entries: Vec<Entry>,
    budget: usize,
    held: usize,
    clock: u64,
    /// The weights' version the entries were computed with.
    version: u64,
    /// Prompt tokens served from the cache and prefilled, since creation.
    pub(crate) reused_tokens: u64,
    pub(crate) prefilled_tokens: u64,
}

impl PromptCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            entries: Vec::new(),
            budget,
            held: 0,
            clock: 0,
            version: 0,
            reused_tokens: 0,
            prefilled_tokens: 0,
        }
    }

    /// Drops every entry (the weights are about to change).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.held = 0;
    }

    /// The entry sharing the longest prefix with `tokens`, among those of
    /// weights `version`: whole `chunk`s of it are reused (prefill chunks
    /// start at their multiples), and at least one token is left to prefill
    /// unless the prompt is cached whole.
    pub(crate) fn lookup(
        &mut self,
        tokens: &[u32],
        extra: usize,
        chunk: usize,
        version: u64,
    ) -> Result<Reuse> {
        if version != self.version {
            self.clear();
            self.version = version;
        }
        self.clock += 1;
        let best = self
            .entries
            .iter_mut()
            .map(|e| {
                let shared = e
                    .tokens
                    .iter()
                    .zip(tokens)
                    .take_while(|(a, b)| a == b)
                    .count();
                (shared, e)
            })
            .max_by_key(|(shared, e)| (*shared, e.last_used));
        let Some((shared, entry)) = best else {
            return Ok(Reuse::Nothing);
        };
        entry.last_used = self.clock;
        if shared == tokens.len() && entry.tokens.len() == tokens.len() {
            self.reused_tokens += tokens.len() as u64;
            return Ok(Reuse::Whole(entry.cache.clone(), entry.logits.clone()));
        }
        let keep = shared.min(tokens.len() - 1) / chunk * chunk;
        if keep == 0 {
            return Ok(Reuse::Nothing);
        }
        self.reused_tokens += keep as u64;
        Ok(Reuse::Prefix(
            entry.cache.prefix_copy(keep, tokens.len() - keep + extra)?,
            keep,
        ))
    }

    /// Keeps a prompt's cache and logits, computed with weights `version`,
    /// evicting the least recently used entries beyond the budget (a prompt
    /// larger than the budget, or of other weights than the entries', is not
    /// kept).
    pub(crate) fn insert(&mut self, tokens: &[u32], cache: &KvCache, logits: &[f32], version: u64) {
        let bytes = cache.bytes() + logits.len() * 4 + tokens.len() * 4;
        if bytes > self.budget || version != self.version {
            return;
        }
        if self.entries.iter().any(|e| e.tokens == tokens) {
            return;
        }
        self.clock += 1;
        self.entries.push(Entry {
            tokens: tokens.to_vec(),
            cache: cache.clone(),
            logits: logits.to_vec(),
            last_used: self.clock,
            bytes,
        });
        self.held += bytes;
        while self.held > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            self.held -= self.entries.swap_remove(oldest).bytes;
        }
    }
}
