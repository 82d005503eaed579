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

use exsearch_agent::eval::{normalize_answer, score_answer, Context, QaItem};
use exsearch_agent::generator::{OracleAnswer, Prompt};
use exsearch_agent::{Generator, Retriever};
use exsearch_core::CancelToken;
use exsearch_model::SamplingParams;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{contains_words, entity_name, sentences, shorten, words};

mod prompts;
mod text;
use prompts::*;
pub use text::answer_spans;
use text::{blank, names, replace_words};

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

/// A candidate before the model has written anything.
#[derive(Clone, Debug)]
enum Candidate {
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
struct Candidates<'a> {
    passages: &'a [LibraryPassage],
    order: Vec<usize>,
    at: usize,
    config: &'a WriteConfig,
    retriever: &'a dyn Retriever,
}

/// Where question `id` falls in a seeded order that does not depend on the
/// order questions were written or listed in.
pub fn order_key(seed: u64, id: &str) -> u64 {
    fnv(seed, &[id])
}

impl<'a> Candidates<'a> {
    fn new(
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

    fn next(&mut self) -> Result<Option<Candidate>> {
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

/// Has the model write each candidate's question, filters it, and asks
/// the model to answer those left from their passages.
fn judge_batch(
    generator: &dyn Generator,
    batch: &[Candidate],
    first_index: usize,
    kept_texts: &mut Vec<HashSet<String>>,
    cancel: &CancelToken,
) -> Result<Vec<WrittenQuestion>> {
    // What the model is asked to write: per candidate, the indices of its
    // prompts (a question; for two hops also a description).
    let mut prompts = Vec::new();
    for c in batch {
        match c {
            Candidate::One {
                passage,
                sentence,
                answer,
            } => {
                let subject = entity_name(&passage.title);
                let sentence = resolve_pronoun(sentence, &subject);
                prompts.push(write_prompt(&passage.title, &blank(&sentence, answer)));
            }
            Candidate::Two {
                first,
                second,
                bridge,
                first_sentence,
                second_sentence,
                answer,
            } => {
                let second_sentence = resolve_pronoun(second_sentence, bridge);
                prompts.push(write_prompt(
                    &second.title,
                    &blank(&second_sentence, answer),
                ));
                let first_sentence = resolve_pronoun(first_sentence, &entity_name(&first.title));
                prompts.push(describe_prompt(
                    &first.title,
                    &blank(&first_sentence, bridge),
                ));
            }
        }
    }
    let texts = complete(generator, &prompts, 40, cancel)?;
    let mut texts = texts.into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        let id = format!("w{:05}", first_index + i + 1);
        let record = match c {
            Candidate::One {
                passage,
                sentence,
                answer,
            } => {
                let written = texts.next().unwrap_or_default();
                let mut w = WrittenQuestion {
                    id,
                    question: clean_question(&written).unwrap_or_default(),
                    answers: vec![answer.clone()],
                    contexts: vec![context(passage)],
                    hops: 1,
                    bridge: None,
                    construction: Construction {
                        queries: vec![passage.title.clone()],
                        facts: vec![shorten(sentence)],
                        answer: answer.clone(),
                    },
                    written: vec![written],
                    read: None,
                    fate: Fate::Kept,
                };
                check_written(&mut w, &passage.text);
                w
            }
            Candidate::Two {
                first,
                second,
                bridge,
                first_sentence,
                second_sentence,
                answer,
            } => {
                let hop = texts.next().unwrap_or_default();
                let description = texts.next().unwrap_or_default();
                let description = clean_phrase(&description);
                let hop_question = clean_question(&hop);
                let question = hop_question
                    .as_deref()
                    .and_then(|q| replace_words(q, bridge, &description))
                    .unwrap_or_default();
                let mut w = WrittenQuestion {
                    id,
                    question,
                    answers: vec![answer.clone()],
                    contexts: vec![context(first), context(second)],
                    hops: 2,
                    bridge: Some(bridge.clone()),
                    construction: Construction {
                        queries: vec![first.title.clone(), second.title.clone()],
                        facts: vec![shorten(first_sentence), shorten(second_sentence)],
                        answer: answer.clone(),
                    },
                    written: vec![hop, description.clone()],
                    read: None,
                    fate: Fate::Kept,
                };
                match &hop_question {
                    None => w.filtered(Filter::NoQuestion, "no question about the second passage"),
                    Some(q) if !contains_words(q, bridge) => w.filtered(
                        Filter::BridgeNotInQuestion,
                        format!("\"{q}\" does not name {bridge}"),
                    ),
                    Some(_) if description.split_whitespace().count() < 2 => {
                        w.filtered(Filter::NoQuestion, "no description of the bridge")
                    }
                    Some(_) if names(&description, bridge) => w.filtered(
                        Filter::BridgeNamed,
                        format!("the description \"{description}\" names {bridge}"),
                    ),
                    Some(_) => check_written(&mut w, &second.text),
                }
                w
            }
        };
        out.push(record);
    }
    // Near-duplicates of kept questions, including earlier ones in this batch.
    let before = kept_texts.len();
    for w in &mut out {
        if !w.kept() {
            continue;
        }
        let mine = question_words(&w.question);
        if kept_texts.iter().any(|k| jaccard(k, &mine) >= 0.8) {
            w.filtered(
                Filter::Duplicate,
                "nearly the same as a question kept before",
            );
        } else {
            kept_texts.push(mine);
        }
    }
    // The model answers each question from its passages; a two-hop one
    // also from each passage alone.
    let mut reads = Vec::new();
    for (i, w) in out.iter().enumerate() {
        if !w.kept() {
            continue;
        }
        reads.push((i, None, read_prompt(&w.contexts, &w.question)));
        if w.hops == 2 {
            for (p, c) in w.contexts.iter().enumerate() {
                reads.push((
                    i,
                    Some(p),
                    read_prompt(std::slice::from_ref(c), &w.question),
                ));
            }
        }
    }
    let prompts: Vec<Prompt> = reads.iter().map(|(_, _, p)| p.clone()).collect();
    let answers = complete(generator, &prompts, 16, cancel)?;
    for ((i, alone, _), said) in reads.into_iter().zip(answers) {
        let w = &mut out[i];
        let answered = answers_it(&said, &w.answers);
        match alone {
            None => {
                w.read = Some(said.clone());
                if !answered && w.kept() {
                    w.filtered(
                        Filter::Unanswerable,
                        format!("given its passages the model answered \"{said}\""),
                    );
                }
            }
            Some(p) if answered && w.kept() => {
                let title = w.contexts[p].title.clone();
                w.filtered(
                    Filter::OnePassageAnswers,
                    format!("answered \"{said}\" from {title} alone"),
                );
            }
            Some(_) => {}
        }
    }
    // A question the reader dropped no longer stands for its wording.
    kept_texts.truncate(before);
    kept_texts.extend(
        out.iter()
            .filter(|w| w.kept())
            .map(|w| question_words(&w.question)),
    );
    Ok(out)
}

/// The filters that need no model: a question was written, it does not
/// give its answer away, and the answer is in its passage.
fn check_written(w: &mut WrittenQuestion, passage: &str) {
    let answer = &w.answers[0];
    if w.question.is_empty() {
        let written = w.written.first().cloned().unwrap_or_default();
        w.filtered(
            Filter::NoQuestion,
            format!("the model wrote \"{}\"", written.trim()),
        );
    } else if contains_words(&w.question, answer)
        || normalize_answer(&w.question).contains(&normalize_answer(answer))
    {
        w.filtered(
            Filter::AnswerInQuestion,
            format!("it contains \"{answer}\""),
        );
    } else if !contains_words(passage, answer) {
        w.filtered(
            Filter::AnswerNotInPassage,
            format!("\"{answer}\" is not in the passage"),
        );
    } else if !names_its_passage(&w.question, answer, &w.contexts[0]) {
        let title = w.contexts[0].title.clone();
        w.filtered(
            Filter::Vague,
            format!("it names nothing that {title} names"),
        );
    }
}

/// Whether `question` names something `first` names besides the answer:
/// a word of its title, or a name or year of its text.
fn names_its_passage(question: &str, answer: &str, first: &WrittenContext) -> bool {
    let answer_words = words(answer);
    let mut named: HashSet<String> = words(&entity_name(&first.title));
    for span in answer_spans(&first.text) {
        named.extend(words(&span));
    }
    let asked: HashSet<String> = answer_spans(question)
        .iter()
        .flat_map(|s| words(s))
        .collect();
    asked
        .iter()
        .any(|w| named.contains(w) && !answer_words.contains(w))
}

/// Whether the model's reply gives the answer: the same after
/// normalisation, containing it, or an F1 of at least 0.5 with it.
fn answers_it(said: &str, answers: &[String]) -> bool {
    let s = score_answer(said, answers);
    s.em > 0.0 || s.acc > 0.0 || s.f1 >= 0.5
}

fn context(p: &LibraryPassage) -> WrittenContext {
    WrittenContext {
        title: p.title.clone(),
        text: body(p).to_string(),
        supporting: true,
    }
}

fn body(p: &LibraryPassage) -> &str {
    body_of(&p.title, &p.text)
}

/// A passage's text without the heading that repeats its document's title
/// (a Markdown file's passages start "# Title").
fn body_of<'a>(title: &str, text: &'a str) -> &'a str {
    let rest = text.trim_start().trim_start_matches('#').trim_start();
    match rest.strip_prefix(title.trim()) {
        Some(after) if !title.trim().is_empty() && text.trim_start().starts_with('#') => {
            after.trim_start()
        }
        _ => text,
    }
}

/// `sentence` with a pronoun that opens it ("He", "Its") replaced by
/// `subject` (a passage's first sentences are about its subject), so a
/// question written from it names what it asks about.
fn resolve_pronoun(sentence: &str, subject: &str) -> String {
    let Some((first, rest)) = sentence.split_once(' ') else {
        return sentence.to_string();
    };
    match first {
        "He" | "She" | "It" | "They" => format!("{subject} {rest}"),
        "His" | "Her" | "Its" | "Their" => format!("{subject}'s {rest}"),
        _ => sentence.to_string(),
    }
}

/// Greedy replies to each prompt, one line each.
fn complete(
    generator: &dyn Generator,
    prompts: &[Prompt],
    max_tokens: usize,
    cancel: &CancelToken,
) -> Result<Vec<String>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens,
        stop: vec!["\n".into()],
        ..SamplingParams::default()
    };
    let rows = generator
        .generate_each(prompts, 1, &params, &|_, _, _| {}, cancel)
        .map_err(agent_error)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.ok()
                .and_then(|mut s| s.pop())
                .map(|g| g.text.trim().to_string())
                .unwrap_or_default()
        })
        .collect())
}

fn agent_error(e: exsearch_agent::Error) -> Error {
    match e {
        exsearch_agent::Error::Cancelled => Error::Cancelled,
        e => Error::Agent(e),
    }
}

fn question_words(q: &str) -> HashSet<String> {
    words(q)
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
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
