//! Training examples: a conversation rendered once with the model's chat
//! template, its tokens, and which of them are in the loss.
//!
//! Only assistant turns are learned (sub-queries, evidence, the end marker,
//! the answer) together with the end-of-turn token that closes each, so the
//! model learns to stop. Instructions, every retrieved-passage block and the
//! final-answer request are user turns: never in the loss (METHOD.md, 2).

use exsearch_model::{ChatMessage, TextCodec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A conversation to learn from and its weight in the loss (1 for warm-up,
/// the importance weight times K in an M-step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub messages: Vec<ChatMessage>,
    #[serde(default = "one")]
    pub weight: f32,
}

fn one() -> f32 {
    1.0
}

/// An example as tokens: `trained[i]` says whether `ids[i]` is a target
/// (predicted from `ids[..i]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
    pub weight: f32,
}

impl Encoded {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tokens in the loss.
    pub fn targets(&self) -> usize {
        self.trained.iter().skip(1).filter(|&&t| t).count()
    }
}

/// Renders `example` with the chat template, finds each assistant turn in
/// the text (plus the end-of-turn marker the template writes after it) and
/// marks the tokens that start inside those spans.
pub fn encode(codec: &TextCodec, example: &Example) -> Result<Encoded> {
    if !example.weight.is_finite() || example.weight < 0.0 {
        return Err(Error::InvalidSetting(format!(
            "example weight {} is not a finite non-negative number",
            example.weight
        )));
    }
    let text = codec.render_chat(&example.messages, false, &Default::default())?;
    let spans = assistant_spans(codec, &text, &example.messages)?;
    let encoding = codec
        .tokenizer()
        .encode(text.as_str(), false)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer: {e}")))?;
    let trained = encoding
        .get_offsets()
        .iter()
        .map(|&(start, end)| end > start && spans.iter().any(|s| s.contains(&start)))
        .collect();
    Ok(Encoded {
        ids: encoding.get_ids().to_vec(),
        trained,
        weight: example.weight,
    })
}

/// Byte ranges of the assistant turns in the rendered text.
fn assistant_spans(
    codec: &TextCodec,
    text: &str,
    messages: &[ChatMessage],
) -> Result<Vec<std::ops::Range<usize>>> {
    let end_markers: Vec<String> = codec
        .eos_ids()
        .iter()
        .filter_map(|&id| codec.tokenizer().id_to_token(id))
        .collect();
    let mut spans = Vec::new();
    let mut cursor = 0;
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        // Templates may trim a turn; look for it as written, then trimmed.
        let content = m.content.as_str();
        let (start, len) = [content, content.trim()]
            .iter()
            .filter(|c| !c.is_empty())
            .find_map(|c| text[cursor..].find(*c).map(|at| (cursor + at, c.len())))
            .ok_or_else(|| {
                Error::InvalidSetting(format!(
                    "assistant turn {i} does not appear in the rendered conversation \
                     (does the chat template rewrite it?)"
                ))
            })?;
        let mut end = start + len;
        if let Some(marker) = end_markers.iter().find(|e| text[end..].starts_with(*e)) {
            end += marker.len();
        }
        spans.push(start..end);
        cursor = end;
    }
    Ok(spans)
}

/// Groups examples into micro-batches of at most `token_budget` padded tokens
/// (rows times the longest row), longest first so padding stays small.
/// An example longer than the budget gets a batch of its own.
pub fn pack(examples: &[Encoded], token_budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(examples[i].len()));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut width = 0;
    for i in order {
        let w = width.max(examples[i].len());
        if !current.is_empty() && w * (current.len() + 1) > token_budget {
            batches.push(std::mem::take(&mut current));
            width = 0;
        }
        width = width.max(examples[i].len());
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}
