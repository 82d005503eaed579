//! `Oracle`: searches for a question's gold supporting titles and answers
//! with the gold answer. It measures the retrieval side of multi-hop search,
//! independent of any model (`exsearch eval --method oracle`), and drives
//! the training crate's measurements on its synthetic worlds.

use std::collections::HashMap;

use exsearch_core::CancelToken;
use exsearch_model::SamplingParams;

use super::playback::play;
use super::{Generated, Generator, OnDelta, Prompt};
use crate::error::Result;
use crate::eval::QaItem;
use crate::settings::Tags;

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
