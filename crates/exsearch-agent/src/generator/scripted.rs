//! Generators that play back text instead of running a model: `Scripted`
//! returns fixed turns in order (tests), `Oracle` searches for a question's
//! gold supporting titles and answers with the gold answer (it measures the
//! retrieval side of multi-hop search, independent of any model).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use exsearch_core::CancelToken;
use exsearch_model::{FinishReason, SamplingParams};

use super::{cut_at_stop, Generated, Generator, OnDelta, Prompt};
use crate::error::{Error, Result};
use crate::eval::QaItem;
use crate::settings::Tags;

/// Plays back fixed turns, one per (prompt, sample) in call order, streamed
/// word by word; a cancel between two words stops it. Records every prompt.
pub struct Scripted {
    turns: Mutex<VecDeque<String>>,
    seen: Mutex<Vec<Prompt>>,
}

impl Scripted {
    pub fn new<S: Into<String>>(turns: impl IntoIterator<Item = S>) -> Self {
        Self {
            turns: Mutex::new(turns.into_iter().map(Into::into).collect()),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Every prompt received so far, in order (one entry per prompt, not
    /// per sample).
    pub fn prompts(&self) -> Vec<Prompt> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Turns not played yet.
    pub fn remaining(&self) -> usize {
        self.turns.lock().map(|t| t.len()).unwrap_or_default()
    }
}

impl Generator for Scripted {
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(prompts.iter().cloned());
        }
        let mut out = Vec::with_capacity(prompts.len());
        for p in 0..prompts.len() {
            let mut row = Vec::with_capacity(samples);
            for s in 0..samples {
                let turn = self
                    .turns
                    .lock()
                    .ok()
                    .and_then(|mut t| t.pop_front())
                    .unwrap_or_default();
                row.push(play(&turn, p, s, params, on_delta, cancel)?);
            }
            out.push(row);
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// Streams `turn` word by word as the model would, honouring the stop
/// strings and `max_tokens` (one word counts as one token).
fn play(
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

/// What the oracle knows about one question.
#[derive(Clone, Debug)]
pub struct OracleAnswer {
    /// The sub-queries, searched for in order.
    pub queries: Vec<String>,
    /// The evidence recorded after each search.
    pub facts: Vec<String>,
    pub answer: String,
}

/// Searches for each known sub-query in turn, records its evidence, ends,
/// and gives the gold answer (for QA files: the gold supporting titles as
/// both sub-queries and evidence; for the synthetic worlds of the training
/// crate: written sub-queries and facts). Questions it does not know
/// get the end marker at once and an empty answer.
pub struct Oracle {
    tags: Tags,
    questions: HashMap<String, OracleAnswer>,
}

impl Oracle {
    pub fn new(tags: Tags, questions: impl IntoIterator<Item = (String, OracleAnswer)>) -> Self {
        Self {
            tags,
            questions: questions
                .into_iter()
                .map(|(q, a)| (q.trim().to_string(), a))
                .collect(),
        }
    }

    /// The oracle of a QA file: each question's supporting titles and first
    /// gold answer.
    pub fn for_items(tags: Tags, items: &[QaItem]) -> Self {
        Self::new(
            tags,
            items.iter().map(|i| {
                let titles: Vec<String> = i
                    .supporting_titles()
                    .iter()
                    .map(|t| t.to_string())
                    .collect();
                let known = OracleAnswer {
                    queries: titles.clone(),
                    facts: titles,
                    answer: i.answers.first().cloned().unwrap_or_default(),
                };
                (i.question.clone(), known)
            }),
        )
    }

    fn turn(&self, prompt: &Prompt) -> String {
        let question_tag = self.tags.question.as_str();
        let Some(first) = prompt
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user" && m.content.contains(question_tag))
        else {
            // A baseline prompt: find the question it ends with.
            let last = prompt.messages.last().map_or("", |m| m.content.as_str());
            return self
                .questions
                .iter()
                .find(|(q, _)| last.contains(q.as_str()))
                .map(|(_, a)| a.answer.clone())
                .unwrap_or_default();
        };
        let question = first.content.rsplit(question_tag).next().unwrap_or("");
        let question = question.trim().trim_end_matches("Your Output:").trim();
        let known = self.questions.get(question);
        let last = prompt.messages.last().map_or("", |m| m.content.as_str());
        let searches = prompt
            .messages
            .iter()
            .filter(|m| m.role == "user" && m.content.starts_with(self.tags.search.as_str()))
            .count();
        let asked_for_answer = !std::ptr::eq(last, first.content.as_str())
            && !last.starts_with(self.tags.search.as_str());
        if asked_for_answer {
            return known.map(|k| k.answer.clone()).unwrap_or_default();
        }
        let t = &self.tags;
        let (queries, facts) = known.map_or((&[][..], &[][..]), |k| (&k.queries[..], &k.facts[..]));
        let fact = match searches {
            0 => String::new(),
            n => format!(
                "{} {}\n",
                t.fact,
                facts.get(n - 1).map_or("", |s| s.as_str())
            ),
        };
        match queries.get(searches) {
            Some(query) => format!("{fact}{} {query}", t.query),
            None => format!("{fact}{}", t.finish),
        }
    }
}

impl Generator for Oracle {
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>> {
        prompts
            .iter()
            .enumerate()
            .map(|(p, prompt)| {
                let turn = self.turn(prompt);
                (0..samples)
                    .map(|s| play(&turn, p, s, params, on_delta, cancel))
                    .collect()
            })
            .collect()
    }

    fn describe(&self) -> String {
        "oracle (known sub-queries and evidence)".into()
    }
}
