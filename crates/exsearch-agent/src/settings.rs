//! Every knob of the agent in one place: the tag vocabulary, the instruction
//! and request texts, passages per step, budgets and sampling. The desktop
//! app stores these as JSON; missing fields take their defaults.

use std::fmt;
use std::str::FromStr;

use exsearch_model::SamplingParams;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a question is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The agentic loop: sub-query, search, record evidence, repeat, answer.
    Exsearch,
    /// Retrieve the top-k passages for the question once, then answer.
    Rag,
    /// Answer from the model's own knowledge, no retrieval.
    Direct,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Exsearch => "exsearch",
            Method::Rag => "rag",
            Method::Direct => "direct",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "exsearch" => Ok(Method::Exsearch),
            "rag" => Ok(Method::Rag),
            "direct" => Ok(Method::Direct),
            other => Err(Error::InvalidSetting(format!(
                "unknown method {other:?} (exsearch, rag or direct)"
            ))),
        }
    }
}

/// The plain-text markers of the wire format (the reference code's
/// vocabulary; the paper's figure calls the query tag THINK).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tags {
    /// Precedes the question in the first user turn.
    pub question: String,
    /// Precedes a sub-query the model writes.
    pub query: String,
    /// Precedes the retrieved passages the engine inserts.
    pub search: String,
    /// Precedes the evidence the model records.
    pub fact: String,
    /// The model's end marker: it has enough to answer.
    pub finish: String,
}

impl Default for Tags {
    fn default() -> Self {
        Self {
            question: "<USER QUERY>".into(),
            query: "<QUERY>".into(),
            search: "<SEARCH>".into(),
            fact: "<FACT>".into(),
            finish: "<FINAL>".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSettings {
    pub tags: Tags,
    /// The first user turn, before `{question tag} {question}  Your Output:`.
    /// `{query}`, `{search}`, `{fact}` and `{finish}` are replaced by the tags.
    pub instructions: String,
    /// The user turn that asks for the answer after the search;
    /// `{question}` is replaced by the question.
    pub final_request: String,
    /// The single user turn of the `rag` baseline; `{passages}` and
    /// `{question}` are replaced.
    pub rag_prompt: String,
    /// The single user turn of the `direct` baseline.
    pub direct_prompt: String,
    /// The re-ranking call's user turn; `{query}` and `{passages}` are replaced.
    pub rerank_prompt: String,
    /// Passages retrieved per sub-query.
    pub k: usize,
    /// Sub-queries at most before the answer is requested anyway.
    pub max_steps: usize,
    /// New tokens per search step.
    pub step_tokens: usize,
    /// New tokens for the final answer.
    pub answer_tokens: usize,
    /// Run the re-ranking action after each search (paper, section 3).
    pub rerank: bool,
    /// Characters of each passage shown to the model (0: all).
    pub passage_chars: usize,
    /// Earlier question/answer pairs of a conversation shown to the model.
    pub history_turns: usize,
    /// Temperature, top-p, top-k and seed for every call (`max_tokens` and
    /// `stop` are set per call from the fields above).
    pub sampling: SamplingParams,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            tags: Tags::default(),
            instructions: DEFAULT_INSTRUCTIONS.into(),
            final_request: "Please give the final answer to the input question as a short \
                            phrase, without explanation: {question}"
                .into(),
            rag_prompt: "Answer the question using the passages below. Give the answer as a \
                         short phrase, without explanation.\n\n{passages}\n\nQuestion: {question}"
                .into(),
            direct_prompt: "Answer the question as a short phrase, without explanation.\n\n\
                            Question: {question}"
                .into(),
            rerank_prompt: "Which of the passages below help answer the query \"{query}\"? \
                            Reply with their numbers, most useful first, like [3] > [1].\n\n\
                            {passages}"
                .into(),
            k: 5,
            max_steps: 8,
            step_tokens: 64,
            answer_tokens: 32,
            rerank: false,
            passage_chars: 0,
            history_turns: 3,
            sampling: SamplingParams {
                temperature: 0.8,
                top_p: 0.95,
                top_k: 0,
                seed: 0,
                max_tokens: 64,
                stop: Vec::new(),
            },
        }
    }
}

const DEFAULT_INSTRUCTIONS: &str = "\
You answer a question by searching a document collection, one search at a time.
Write {query} followed by a short search query for what you need to know first.
You will receive {search} followed by numbered passages.
Then write {fact} followed by the fact those passages give for your query, in a few words,
and on a new line either {query} with your next search query, or {finish} when you know enough to answer.
Write nothing else.";

impl AgentSettings {
    pub fn validate(&self) -> Result<()> {
        let t = &self.tags;
        let tags = [&t.question, &t.query, &t.search, &t.fact, &t.finish];
        if tags.iter().any(|tag| tag.trim().is_empty()) {
            return Err(Error::InvalidSetting("a tag is empty".into()));
        }
        for (i, a) in tags.iter().enumerate() {
            if tags[i + 1..].iter().any(|b| a.eq_ignore_ascii_case(b)) {
                return Err(Error::InvalidSetting(format!("tag {a} is used twice")));
            }
        }
        if self.k == 0 {
            return Err(Error::InvalidSetting("k must be at least 1".into()));
        }
        if self.max_steps == 0 {
            return Err(Error::InvalidSetting("max_steps must be at least 1".into()));
        }
        if self.step_tokens == 0 || self.answer_tokens == 0 {
            return Err(Error::InvalidSetting(
                "step_tokens and answer_tokens must be at least 1".into(),
            ));
        }
        for (name, text, needs) in [
            ("final_request", &self.final_request, &["{question}"][..]),
            (
                "rag_prompt",
                &self.rag_prompt,
                &["{passages}", "{question}"],
            ),
            ("direct_prompt", &self.direct_prompt, &["{question}"]),
            (
                "rerank_prompt",
                &self.rerank_prompt,
                &["{query}", "{passages}"],
            ),
        ] {
            if let Some(missing) = needs.iter().find(|n| !text.contains(*n)) {
                return Err(Error::InvalidSetting(format!(
                    "{name} must contain {missing}"
                )));
            }
        }
        let mut sampling = self.sampling.clone();
        sampling.max_tokens = 1;
        sampling
            .validate()
            .map_err(|e| Error::InvalidSetting(e.to_string()))
    }

    /// Sampling for one search step: stops where the engine's passages start.
    pub fn step_sampling(&self) -> SamplingParams {
        SamplingParams {
            max_tokens: self.step_tokens,
            stop: vec![self.tags.search.clone()],
            ..self.sampling.clone()
        }
    }

    /// Sampling for the final answer, the baselines and the re-ranking call.
    pub fn answer_sampling(&self) -> SamplingParams {
        SamplingParams {
            max_tokens: self.answer_tokens,
            stop: Vec::new(),
            ..self.sampling.clone()
        }
    }
}
