//! Turning a growing list of token ids into text, and stopping on strings.
//!
//! Tokens do not map to whole characters (a byte-level BPE token can hold half
//! of a UTF-8 sequence) and stop strings do not map to whole tokens (`"\nObs"`
//! may arrive as `"\n"`, `"Ob"`, `"s"`). [`TextStream`] decodes incrementally,
//! finds a stop string wherever it falls, and only releases text that can no
//! longer turn out to be the start of a stop string.

use tokenizers::Tokenizer;

/// Incremental decoding state for one sequence.
#[derive(Debug, Default)]
pub struct TextStream {
    tokens: Vec<u32>,
    /// Start of the window decoded for context (so spaces and merges are right).
    prefix: usize,
    /// Tokens before this index are already part of `text`.
    read: usize,
    /// Everything decoded so far.
    text: String,
    /// Bytes of `text` already handed to the caller as stream deltas.
    released: usize,
    /// Where the stop search resumes.
    scanned: usize,
    stopped: Option<usize>,
    /// The last token ended the text and is not decoded.
    silent: bool,
}

/// What happened after one more token.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Text that became final with this token (may be empty).
    pub delta: String,
    /// The stop string that matched, if any; the text is cut before it.
    pub stop: Option<String>,
}

impl TextStream {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The text so far, cut before a matched stop string.
    pub fn text(&self) -> &str {
        &self.text[..self.stopped.unwrap_or(self.text.len())]
    }

    /// Adds a token; decodes with special tokens skipped.
    pub fn push(&mut self, tokenizer: &Tokenizer, token: u32, stops: &[String]) -> Step {
        self.tokens.push(token);
        let decode = |ids: &[u32]| tokenizer.decode(ids, true).unwrap_or_default();
        let before = decode(&self.tokens[self.prefix..self.read]);
        let after = decode(&self.tokens[self.prefix..]);
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            // `after` extends `before` except in rare normalisations; take the tail.
            let tail = after.get(before.len()..).unwrap_or_default();
            self.text.push_str(tail);
            self.prefix = self.read;
            self.read = self.tokens.len();
        }
        self.release(stops)
    }

    /// Records a token that ends the text (an end-of-turn token) without
    /// decoding it.
    pub fn push_silent(&mut self, token: u32) {
        self.tokens.push(token);
        self.silent = true;
    }

    /// Flushes what is left at the end of generation (an incomplete UTF-8
    /// sequence is kept as its replacement character).
    pub fn finish(&mut self, tokenizer: &Tokenizer, stops: &[String]) -> Step {
        let end = self.tokens.len() - usize::from(self.silent);
        if self.read < end {
            let before = tokenizer
                .decode(&self.tokens[self.prefix..self.read], true)
                .unwrap_or_default();
            let after = tokenizer
                .decode(&self.tokens[self.prefix..end], true)
                .unwrap_or_default();
            if let Some(tail) = after.get(before.len()..) {
                self.text.push_str(tail);
            }
            self.read = end;
        }
        let mut step = self.release(stops);
        if step.stop.is_none() {
            let end = self.text.len();
            step.delta.push_str(&self.text[self.released..end]);
            self.released = end;
        }
        step
    }

    fn release(&mut self, stops: &[String]) -> Step {
        if self.stopped.is_some() {
            return Step {
                delta: String::new(),
                stop: None,
            };
        }
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        let mut start = self.scanned.saturating_sub(longest);
        while !self.text.is_char_boundary(start) {
            start -= 1;
        }
        let found = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                self.text[start..]
                    .find(s.as_str())
                    .map(|at| (start + at, s))
            })
            .min_by_key(|(at, _)| *at);
        if let Some((at, stop)) = found {
            let delta = self.text[self.released.min(at)..at].to_string();
            self.released = at;
            self.stopped = Some(at);
            return Step {
                delta,
                stop: Some(stop.clone()),
            };
        }
        self.scanned = self.text.len();
        // Hold back a suffix that could still grow into a stop string.
        let mut hold = 0;
        for s in stops {
            for k in (1..s.len().min(self.text.len() + 1)).rev() {
                if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                    hold = hold.max(k);
                    break;
                }
            }
        }
        let end = self.text.len() - hold;
        let delta = if end > self.released {
            let d = self.text[self.released..end].to_string();
            self.released = end;
            d
        } else {
            String::new()
        };
        Step { delta, stop: None }
    }
}
