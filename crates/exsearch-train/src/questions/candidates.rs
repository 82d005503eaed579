//! The candidates: passages in a seeded order, each giving at most one
//! question to write, with its answer span chosen by rule (and for a
//! two-hop one, the passage that names its bridge).

use exsearch_agent::Retriever;

use super::text::{answer_spans, body, body_of, resolve_pronoun};
use super::{agent_error, fnv, LibraryPassage, WriteConfig};
use crate::error::Result;
use crate::plan::{contains_words, entity_name, sentences};

/// A candidate before the model has written anything.
#[derive(Clone, Debug)]
pub(super) enum Candidate {
    One {
        passage: LibraryPassage,
        sentence: String,
        answer: String,
    },
    Two {
        first: LibraryPassage,
        second: LibraryPassage,
        bridge: String,
        first_sentence: String,
        second_sentence: String,
        answer: String,
    },
}

/// The passages in a seeded order that does not depend on the library's
/// order, each giving at most one candidate.
pub(super) struct Candidates<'a> {
    passages: &'a [LibraryPassage],
    order: Vec<usize>,
    at: usize,
    config: &'a WriteConfig,
    retriever: &'a dyn Retriever,
}

impl<'a> Candidates<'a> {
    pub(super) fn new(
        passages: &'a [LibraryPassage],
        config: &'a WriteConfig,
        retriever: &'a dyn Retriever,
    ) -> Self {
        let mut order: Vec<usize> = (0..passages.len()).collect();
        order.sort_by_key(|&i| {
            let p = &passages[i];
            fnv(config.seed, &[p.title.as_str(), p.text.as_str()])
        });
        Self {
            passages,
            order,
            at: 0,
            config,
            retriever,
        }
    }

    pub(super) fn next(&mut self) -> Result<Option<Candidate>> {
        while self.at < self.order.len() {
            let passage = &self.passages[self.order[self.at]];
            let draw = fnv(self.config.seed ^ 0x5bd1_e995, &[&passage.text]);
            self.at += 1;
            let two_hop = (draw % 10_000) as f64 / 10_000.0 < self.config.two_hop;
            if two_hop {
                if let Some(c) = self.two_hop(passage, draw)? {
                    return Ok(Some(c));
                }
            }
            let spans: Vec<(&str, String)> = sentences(body(passage))
                .into_iter()
                .flat_map(|s| {
                    answer_spans(s)
                        .into_iter()
                        .filter(|a| !contains_words(&entity_name(&passage.title), a))
                        .map(move |a| (s, a))
                })
                .collect();
            if spans.is_empty() {
                continue;
            }
            let (sentence, answer) = &spans[(draw >> 20) as usize % spans.len()];
            return Ok(Some(Candidate::One {
                passage: passage.clone(),
                sentence: sentence.to_string(),
                answer: answer.clone(),
            }));
        }
        Ok(None)
    }

    /// `second` as the passage holding the answer, joined to a passage of
    /// another document that names its subject.
    fn two_hop(&self, second: &LibraryPassage, draw: u64) -> Result<Option<Candidate>> {
        let bridge = entity_name(&second.title);
        if bridge.chars().filter(|c| c.is_alphanumeric()).count() < 3 {
            return Ok(None);
        }
        let hits = self.retriever.retrieve(&bridge, 10).map_err(agent_error)?;
        // The first passage is about something else: "Polar bear plunge"
        // naming the polar bear, or "Higgins Lake, Michigan" the lake, would
        // give a description that names the bridge.
        let Some(first) = hits.into_iter().find(|h| {
            let subject = entity_name(&h.title);
            contains_words(&h.text, &bridge)
                && !contains_words(&subject, &bridge)
                && !contains_words(&bridge, &subject)
        }) else {
            return Ok(None);
        };
        let first_body = body_of(&first.title, &first.text);
        let Some(first_sentence) = sentences(first_body)
            .into_iter()
            .find(|s| contains_words(s, &bridge))
        else {
            return Ok(None);
        };
        // The answer comes from a sentence that names the bridge (or opens
        // with a pronoun for it), so the question written from it can.
        let spans: Vec<(&str, String)> = sentences(body(second))
            .into_iter()
            .filter(|s| contains_words(&resolve_pronoun(s, &bridge), &bridge))
            .flat_map(|s| {
                answer_spans(s)
                    .into_iter()
                    .filter(|a| {
                        !contains_words(&first.text, a)
                            && !contains_words(&first.title, a)
                            && !contains_words(&bridge, a)
                            && !contains_words(a, &bridge)
                    })
                    .map(move |a| (s, a))
            })
            .collect();
        if spans.is_empty() {
            return Ok(None);
        }
        let (second_sentence, answer) = &spans[(draw >> 20) as usize % spans.len()];
        Ok(Some(Candidate::Two {
            first: LibraryPassage {
                title: first.title,
                text: first.text.clone(),
            },
            second: second.clone(),
            bridge,
            first_sentence: first_sentence.to_string(),
            second_sentence: second_sentence.to_string(),
            answer: answer.clone(),
        }))
    }
}
