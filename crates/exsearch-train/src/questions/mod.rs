//! Questions written from the person's own library, so self-training needs
//! no labelled data.
//!
//! The answer comes first: a span of a passage (a name, a date, a year)
//! is chosen by rule, so it occurs in its passage by construction, and the
//! model is asked for the question the blanked sentence answers (answer-
//! first generation; a 135M model asked for "a question and its answer"
//! writes neither). A two-hop question joins two passages by a bridge
//! entity: the second passage's subject (its document's title), named in
//! a first passage of another document. The model writes a question about
//! the second passage that names the bridge, and a description of the
//! bridge from the first passage's sentence that mentions it; the bridge's
//! name is replaced by the description, so the question names only what
//! the first passage says and the answer is in the second.
//!
//! Every candidate is kept or filtered, and the record says which filter
//! and why: no question written, the answer given away in the question,
//! the answer not in its passage, a two-hop question that cannot be joined
//! or that names its bridge, a near-duplicate of a kept question, a
//! question the model does not answer when given its passages, and a
//! two-hop question the model answers from one passage alone.
//!
//! A kept question carries what built it: its passages, in the order a
//! searcher would look them up, and the evidence each gives
//! ([`Construction`]), which [`crate::plan::oracle_trajectories`] turns
//! into warm-up trajectories over the real index. The JSONL it is written
//! as reads back as a QA file (`exsearch eval --data`, `train em --data`).

use std::collections::{BTreeMap, HashSet};

use exsearch_agent::eval::{Context, QaItem};
use exsearch_agent::generator::OracleAnswer;
use exsearch_agent::{Generator, Retriever};
use exsearch_core::CancelToken;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod candidates;
mod judge;
mod prompts;
mod text;
use candidates::Candidates;
use judge::{judge_batch, question_words};
pub use text::answer_spans;

/// A passage of the library, as questions are written from it.
#[derive(Clone, Debug, PartialEq)]
pub struct LibraryPassage {
    /// Its document's title.
    pub title: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteConfig {
    /// Questions to keep.
    pub count: usize,
    /// Share of candidates tried as two-hop questions (a passage without a
    /// bridge to another document gets a one-hop question instead).
    pub two_hop: f64,
    /// Which passages, sentences and spans are chosen.
    pub seed: u64,
    /// Candidates written per call to the model.
    pub batch: usize,
    /// Candidates tried at most before giving up (0: ten per question).
    pub max_candidates: usize,
}

impl Default for WriteConfig {
    fn default() -> Self {
        Self {
            count: 50,
            two_hop: 0.5,
            seed: 0,
            batch: 16,
            max_candidates: 0,
        }
    }
}

impl WriteConfig {
    fn candidate_limit(&self) -> usize {
        if self.max_candidates > 0 {
            self.max_candidates
        } else {
            self.count.saturating_mul(10).max(1)
        }
    }
}

/// Why a candidate was not kept, in the order the filters run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The model wrote no question (no `?`, or too short or long).
    NoQuestion,
    /// The question contains its answer.
    AnswerInQuestion,
    /// The answer does not occur in the passage that should hold it.
    AnswerNotInPassage,
    /// The question names nothing its first passage names (a title, a
    /// name, a year), so there is nothing to search for.
    Vague,
    /// Two-hop: the second hop's question does not name the bridge, so
    /// the description cannot take its place.
    BridgeNotInQuestion,
    /// Two-hop: the question still names the bridge entity.
    BridgeNamed,
    /// The same as, or nearly, a question kept before.
    Duplicate,
    /// Given its passages, the model does not answer it with its answer.
    Unanswerable,
    /// Two-hop: the model answers it from one of its passages alone.
    OnePassageAnswers,
}

impl Filter {
    pub const ALL: [Filter; 9] = [
        Filter::NoQuestion,
        Filter::AnswerInQuestion,
        Filter::AnswerNotInPassage,
        Filter::Vague,
        Filter::BridgeNotInQuestion,
        Filter::BridgeNamed,
        Filter::Duplicate,
        Filter::Unanswerable,
        Filter::OnePassageAnswers,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Filter::NoQuestion => "no question written",
            Filter::AnswerInQuestion => "answer given away in the question",
            Filter::AnswerNotInPassage => "answer not in its passage",
            Filter::Vague => "names nothing to search for",
            Filter::BridgeNotInQuestion => "second hop does not name the bridge",
            Filter::BridgeNamed => "question names the bridge",
            Filter::Duplicate => "near-duplicate",
            Filter::Unanswerable => "not answered from its passages",
            Filter::OnePassageAnswers => "answered from one passage alone",
        }
    }
}

/// What became of a written candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    Kept,
    Filtered { filter: Filter, why: String },
}

/// The search that built a question: what to look up, in order, and the
/// evidence each passage gives (the last one holds the answer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Construction {
    pub queries: Vec<String>,
    pub facts: Vec<String>,
    pub answer: String,
}

impl From<&Construction> for OracleAnswer {
    fn from(c: &Construction) -> Self {
        OracleAnswer {
            queries: c.queries.clone(),
            facts: c.facts.clone(),
            answer: c.answer.clone(),
        }
    }
}

/// A passage a question was written from, as a QA file's paragraph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrittenContext {
    pub title: String,
    pub text: String,
    pub supporting: bool,
}

/// One written candidate and its fate; kept ones read back as QA items.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrittenQuestion {
    pub id: String,
    /// The question (empty when the model wrote none).
    pub question: String,
    pub answers: Vec<String>,
    /// Its passages in the order a searcher looks them up.
    pub contexts: Vec<WrittenContext>,
    pub hops: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    pub construction: Construction,
    /// What the model wrote: the question, and for two hops the second
    /// hop's question and the bridge's description.
    pub written: Vec<String>,
    /// What the model answered when given the passages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    #[serde(flatten)]
    pub fate: Fate,
}

impl WrittenQuestion {
    pub fn kept(&self) -> bool {
        self.fate == Fate::Kept
    }

    /// As a QA file's question.
    pub fn item(&self) -> QaItem {
        QaItem {
            id: self.id.clone(),
            question: self.question.clone(),
            answers: self.answers.clone(),
            contexts: self
                .contexts
                .iter()
                .map(|c| Context {
                    title: c.title.clone(),
                    text: c.text.clone(),
                    supporting: c.supporting,
                })
                .collect(),
        }
    }

    fn filtered(&mut self, filter: Filter, why: impl Into<String>) {
        self.fate = Fate::Filtered {
            filter,
            why: why.into(),
        };
    }
}

/// How many candidates were written, kept and filtered (by filter).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteSummary {
    pub candidates: usize,
    pub kept: usize,
    pub kept_one_hop: usize,
    pub kept_two_hop: usize,
    pub tried_two_hop: usize,
    /// The filters that dropped any, in the order they run.
    pub filtered: Vec<Filtered>,
}

/// How many candidates one filter dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Filtered {
    pub filter: Filter,
    pub count: usize,
}

impl WriteSummary {
    pub fn of(written: &[WrittenQuestion]) -> Self {
        let mut s = Self {
            candidates: written.len(),
            ..Self::default()
        };
        let mut filtered: BTreeMap<Filter, usize> = BTreeMap::new();
        for w in written {
            s.tried_two_hop += usize::from(w.hops == 2);
            match &w.fate {
                Fate::Kept => {
                    s.kept += 1;
                    if w.hops == 2 {
                        s.kept_two_hop += 1;
                    } else {
                        s.kept_one_hop += 1;
                    }
                }
                Fate::Filtered { filter, .. } => *filtered.entry(*filter).or_default() += 1,
            }
        }
        s.filtered = filtered
            .into_iter()
            .map(|(filter, count)| Filtered { filter, count })
            .collect();
        s
    }

    /// How many `filter` dropped.
    pub fn dropped_by(&self, filter: Filter) -> usize {
        self.filtered
            .iter()
            .find(|f| f.filter == filter)
            .map_or(0, |f| f.count)
    }
}

/// Progress after each batch of candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteProgress {
    pub candidates: usize,
    pub kept: usize,
    pub wanted: usize,
}

/// Writes questions from `passages` until `config.count` are kept, the
/// candidates run out or reach the limit. `earlier` are the records of a
/// stopped earlier call with the same passages and settings: their
/// candidates are not written again and the call continues after them.
/// `on_batch` gets each batch's records as they are decided (to store
/// them) and the progress.
pub fn write_questions(
    generator: &dyn Generator,
    retriever: &dyn Retriever,
    passages: &[LibraryPassage],
    config: &WriteConfig,
    earlier: &[WrittenQuestion],
    on_batch: &mut dyn FnMut(&[WrittenQuestion], &WriteProgress) -> Result<()>,
    cancel: &CancelToken,
) -> Result<Vec<WrittenQuestion>> {
    if passages.is_empty() {
        return Err(Error::InvalidSetting(
            "the library has no passages to write questions from; add documents first".into(),
        ));
    }
    let mut all: Vec<WrittenQuestion> = earlier.to_vec();
    let mut kept_texts: Vec<HashSet<String>> = all
        .iter()
        .filter(|w| w.kept())
        .map(|w| question_words(&w.question))
        .collect();
    let mut kept = kept_texts.len();
    let limit = config.candidate_limit();
    let mut order = Candidates::new(passages, config, retriever);
    // Candidates are drawn in a fixed order: skip those written before.
    for _ in 0..all.len() {
        if order.next()?.is_none() {
            break;
        }
    }
    while kept < config.count && all.len() < limit {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut batch = Vec::new();
        while batch.len() < config.batch.max(1) && all.len() + batch.len() < limit {
            match order.next()? {
                Some(c) => batch.push(c),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let first = all.len();
        let mut decided = judge_batch(generator, &batch, first, &mut kept_texts, cancel)?;
        // Nothing after the last question wanted is recorded.
        if let Some(last) = decided
            .iter()
            .enumerate()
            .filter(|(_, w)| w.kept())
            .nth(config.count - kept - 1)
            .map(|(i, _)| i)
        {
            decided.truncate(last + 1);
        }
        kept += decided.iter().filter(|w| w.kept()).count();
        all.extend(decided);
        on_batch(
            &all[first..],
            &WriteProgress {
                candidates: all.len(),
                kept,
                wanted: config.count,
            },
        )?;
    }
    Ok(all)
}

fn agent_error(e: exsearch_agent::Error) -> Error {
    match e {
        exsearch_agent::Error::Cancelled => Error::Cancelled,
        e => Error::Agent(e),
    }
}

/// Where question `id` falls in a seeded order that does not depend on the
/// order questions were written or listed in.
pub fn order_key(seed: u64, id: &str) -> u64 {
    fnv(seed, &[id])
}

/// FNV-1a of the seed and the parts.
fn fnv(seed: u64, parts: &[&str]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests;
