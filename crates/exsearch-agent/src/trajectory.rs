//! What one answered question leaves behind: the steps (sub-query, passages,
//! evidence), the answer with its citations, and the whole transcript the
//! model saw and wrote (the training issue renders it once with the chat
//! template and learns from the assistant turns).

use exsearch_core::Hit;
use exsearch_model::ChatMessage;
use serde::{Deserialize, Serialize};

use crate::settings::Method;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub question: String,
    pub method: Method,
    pub steps: Vec<Step>,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub end: EndReason,
    /// Every turn, from the earlier exchanges of the conversation to the
    /// final answer. Assistant turns are model tokens; user turns are not.
    pub transcript: Vec<ChatMessage>,
    /// Turns of `transcript` that are earlier exchanges, not this question.
    pub history_turns: usize,
    /// Single-turn side calls (re-ranking), with their replies.
    pub side_calls: Vec<SideCall>,
    pub generated_tokens: usize,
    pub model_calls: usize,
    pub timing: Timing,
    /// Why the run failed, when `end` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Passage blocks shortened (or cut to titles) to keep the conversation
    /// within the model's context, a step each.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context_trims: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Trajectory {
    /// A run that failed before it produced anything.
    pub fn failed(question: &str, method: Method, error: &crate::Error) -> Self {
        Self {
            question: question.to_string(),
            method,
            steps: Vec::new(),
            answer: String::new(),
            citations: Vec::new(),
            end: EndReason::Failed,
            transcript: Vec::new(),
            history_turns: 0,
            side_calls: Vec::new(),
            generated_tokens: 0,
            model_calls: 0,
            timing: Timing::default(),
            error: Some(error.to_string()),
            context_trims: 0,
        }
    }

    /// Every passage retrieved, in order, without repeats.
    pub fn retrieved(&self) -> Vec<&Hit> {
        let mut seen = std::collections::HashSet::new();
        self.steps
            .iter()
            .flat_map(|s| &s.passages)
            .filter(|h| seen.insert(h.passage_id))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub query: String,
    /// What went into the search block, in the order shown.
    pub passages: Vec<Hit>,
    /// The model's evidence for this sub-query (written in its next turn).
    pub evidence: Option<String>,
    /// The turn that wrote this sub-query was repaired.
    pub repaired: bool,
    /// Passage order chosen by the re-ranking call, 0-based indices into
    /// the retrieved candidates (`None` without re-ranking).
    pub rerank: Option<Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SideCall {
    /// 1-based step the call belongs to.
    pub step: usize,
    pub prompt: Vec<ChatMessage>,
    pub reply: String,
}

/// A passage the answer rests on, numbered from 1 as shown to the reader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub number: usize,
    /// 1-based step whose evidence it supports (0 for the `rag` baseline).
    pub step: usize,
    pub passage: Hit,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The model wrote its end marker (or the baseline answered).
    Finished,
    /// The step budget ran out; the answer was asked for anyway.
    Budget,
    /// A step had no sub-query even after its repair.
    Unparsable,
    /// The model asked a sub-query it had already asked.
    Repeated,
    Cancelled,
    /// A model call failed (after the backend's own retries); `error` in
    /// the trajectory says why. The other runs of its batch went on.
    Failed,
    /// The next step would not fit the model's context, even with the older
    /// passages cut to their titles; the answer was asked for.
    ContextFull,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub total_ms: f64,
    /// Time waiting for the generator; the rest is the agent's own work.
    pub model_ms: f64,
}
