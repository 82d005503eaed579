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
use exsearch_model::{ChatMessage, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::{contains_words, entity_name, sentences, shorten, words};

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
        let Some(first) = hits
            .into_iter()
            .find(|h| h.title != second.title && contains_words(&h.text, &bridge))
        else {
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

const WRITE_TASK: &str = "Write the question that the missing words (___) answer.";
const DESCRIBE_TASK: &str = "Describe the missing words (___) without naming them.";
const READ_TASK: &str = "Answer the question with a few words from the text.";

/// (title, sentence with a blank, question): the shots of the writing
/// prompt. Pronouns are resolved to the title, so a question stands alone.
const WRITE_SHOTS: [(&str, &str, &str); 4] = [
    (
        "Eiffel Tower",
        "The tower was designed by the engineer ___ in 1887.",
        "Who designed the Eiffel Tower?",
    ),
    (
        "Marie Curie",
        "She was born in ___ and later moved to Paris to study physics.",
        "Where was Marie Curie born?",
    ),
    (
        "Nile",
        "The river flows north through eleven countries before it reaches ___.",
        "What sea does the Nile flow into?",
    ),
    (
        "Harry Potter and the Philosopher's Stone",
        "The novel was first published in ___ by Bloomsbury.",
        "In what year was Harry Potter and the Philosopher's Stone first published?",
    ),
];

/// (title, sentence with the bridge blanked, description).
const DESCRIBE_SHOTS: [(&str, &str, &str); 3] = [
    (
        "Eiffel Tower",
        "The tower was designed by the engineer ___ in 1887.",
        "the engineer who designed the Eiffel Tower",
    ),
    (
        "Marie Curie",
        "She was born in ___ and later moved to Paris to study physics.",
        "the city where Marie Curie was born",
    ),
    (
        "Bloomsbury",
        "The publisher's best-known book is ___, released in 1997.",
        "the best-known book of the publisher Bloomsbury",
    ),
];

/// (text, question, answer).
const READ_SHOTS: [(&str, &str, &str); 2] = [
    (
        "Eiffel Tower: The tower was designed by the engineer Gustave Eiffel in 1887.",
        "Who designed the Eiffel Tower?",
        "Gustave Eiffel",
    ),
    (
        "Marie Curie: She was born in Warsaw and later moved to Paris to study physics.",
        "Where was Marie Curie born?",
        "Warsaw",
    ),
];

/// A few-shot conversation: each shot a user turn and the reply.
fn shots_prompt(shots: impl IntoIterator<Item = (String, String)>, last: String) -> Prompt {
    let mut messages = Vec::new();
    for (user, reply) in shots {
        messages.push(ChatMessage::user(user));
        messages.push(ChatMessage::new("assistant", reply));
    }
    messages.push(ChatMessage::user(last));
    Prompt::new(messages)
}

fn write_prompt(title: &str, blanked: &str) -> Prompt {
    let turn = |t: &str, s: &str| format!("{WRITE_TASK}\nText ({t}): {s}");
    shots_prompt(
        WRITE_SHOTS
            .iter()
            .map(|(t, s, q)| (turn(t, s), q.to_string())),
        turn(title, blanked),
    )
}

fn describe_prompt(title: &str, blanked: &str) -> Prompt {
    let turn = |t: &str, s: &str| format!("{DESCRIBE_TASK}\nText ({t}): {s}");
    shots_prompt(
        DESCRIBE_SHOTS
            .iter()
            .map(|(t, s, d)| (turn(t, s), d.to_string())),
        turn(title, blanked),
    )
}

fn read_prompt(contexts: &[WrittenContext], question: &str) -> Prompt {
    let turn = |text: &str, q: &str| format!("{READ_TASK}\nText: {text}\nQuestion: {q}");
    let text: Vec<String> = contexts
        .iter()
        .map(|c| format!("{}: {}", c.title, c.text))
        .collect();
    shots_prompt(
        READ_SHOTS
            .iter()
            .map(|(t, q, a)| (turn(t, q), a.to_string())),
        turn(&text.join("\n"), question),
    )
}

/// The question in a reply: its first line up to the first `?`, without
/// a "Question:" label or quotes; `None` unless it has 4 to 40 words.
fn clean_question(reply: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = strip_label(line, "question:");
    let end = line.find('?')?;
    let q = line[..=end]
        .trim()
        .trim_start_matches(['"', '\'', '“'])
        .trim();
    let n = q.split_whitespace().count();
    (4..=40).contains(&n).then(|| q.to_string())
}

/// A description in a reply: its first line without a label, quotes or a
/// final period.
fn clean_phrase(reply: &str) -> String {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty());
    let line = strip_label(line.unwrap_or(""), "description:");
    line.trim_matches(['"', '\'', '“', '”', '.', ' '])
        .to_string()
}

fn strip_label<'a>(line: &'a str, label: &str) -> &'a str {
    match line.get(..label.len()) {
        Some(head) if head.eq_ignore_ascii_case(label) => line[label.len()..].trim(),
        _ => line,
    }
}

/// Whether `text` names `entity`: the whole name, or any of its words
/// longer than three letters that is capitalized in the name.
fn names(text: &str, entity: &str) -> bool {
    contains_words(text, entity)
        || entity
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().count() > 3 && w.starts_with(char::is_uppercase))
            .any(|w| contains_words(text, w))
}

/// `text` with the first whole-word, case-insensitive occurrence of
/// `needle` replaced by `by`; `None` when `needle` does not occur.
fn replace_words(text: &str, needle: &str, by: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let n = needle.trim().to_lowercase();
    if n.is_empty() || lower.len() != text.len() {
        return None;
    }
    let at = lower.match_indices(&n).map(|(at, _)| at).find(|&at| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + n.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })?;
    Some(format!("{}{by}{}", &text[..at], &text[at + n.len()..]))
}

/// `sentence` with `span` replaced by a blank (the sentence as it is when
/// `span` is not in it).
fn blank(sentence: &str, span: &str) -> String {
    replace_words(sentence, span, "___").unwrap_or_else(|| sentence.to_string())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Words that start a sentence or join a name without being one.
const NOT_NAMES: [&str; 32] = [
    "The", "A", "An", "In", "On", "At", "He", "She", "It", "They", "This", "That", "These", "His",
    "Her", "Its", "Their", "As", "After", "Before", "During", "When", "While", "There", "What",
    "Who", "Whom", "Whose", "Which", "Where", "Why", "How",
];

/// Short answers a sentence holds: dates ("April 23, 1928"), years, and
/// names (runs of capitalized words, "of", "the", "de" allowed inside). Spans of one short word, and the words that open a sentence
/// without naming anything, are left out.
pub fn answer_spans(sentence: &str) -> Vec<String> {
    let tokens: Vec<&str> = sentence
        .split(|c: char| c.is_whitespace() || matches!(c, '—' | '–'))
        .filter(|t| !t.is_empty())
        .collect();
    let bare = |t: &str| -> String {
        let t = t.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '&');
        t.strip_suffix("'s").unwrap_or(t).to_string()
    };
    let ends_clause = |t: &str| t.ends_with([',', ';', ':', '.', ')', '"']);
    let is_year = |t: &str| {
        t.len() == 4 && t.chars().all(|c| c.is_ascii_digit()) && t.starts_with(['1', '2'])
    };
    let capitalized = |t: &str| t.starts_with(|c: char| c.is_uppercase());
    let mut spans = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let word = bare(tokens[i]);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // A date: Month [day[,]] year.
        if MONTHS.contains(&word.as_str()) {
            let mut j = i + 1;
            let mut parts = vec![word.clone()];
            if j < tokens.len() && bare(tokens[j]).chars().all(|c| c.is_ascii_digit()) {
                let day = bare(tokens[j]);
                if day.len() <= 2 && j + 1 < tokens.len() && is_year(&bare(tokens[j + 1])) {
                    parts.push(format!("{day},"));
                    parts.push(bare(tokens[j + 1]));
                    j += 2;
                } else if is_year(&day) {
                    parts.push(day);
                    j += 1;
                }
            }
            if parts.len() > 1 {
                spans.push(parts.join(" "));
                i = j;
                continue;
            }
        }
        if is_year(&word) {
            spans.push(word);
            i += 1;
            continue;
        }
        if capitalized(&word) && !(i == 0 && NOT_NAMES.contains(&word.as_str())) {
            let mut parts = vec![word.clone()];
            let mut j = i + 1;
            let mut last_closed = ends_clause(tokens[i]);
            while !last_closed && j < tokens.len() && !opens_aside(tokens[j]) {
                let next = bare(tokens[j]);
                if capitalized(&next) && !MONTHS.contains(&next.as_str()) {
                    parts.push(next);
                    last_closed = ends_clause(tokens[j]);
                    j += 1;
                } else if matches!(next.as_str(), "of" | "the" | "de" | "von" | "&")
                    && j + 1 < tokens.len()
                    && capitalized(&bare(tokens[j + 1]))
                    && !ends_clause(tokens[j])
                {
                    parts.push(next);
                    j += 1;
                } else {
                    break;
                }
            }
            let span = parts.join(" ");
            let keep = !(parts.len() == 1
                && (NOT_NAMES.contains(&span.as_str()) || span.chars().count() < 4));
            if keep {
                spans.push(span);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    // A span is the sentence's own words ("Punk's Not Dead" is not
    // "Punk Not Dead").
    let mut seen = HashSet::new();
    spans.retain(|s| contains_words(sentence, s) && seen.insert(s.clone()));
    spans
}

/// Whether a token opens a parenthesis or a quotation, which a name does
/// not run into ("Christine Aprile (Silent Diane)").
fn opens_aside(token: &str) -> bool {
    token.starts_with(['(', '"', '“', '[', '\''])
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
mod tests {
    use super::*;
    use exsearch_agent::generator::Generated;
    use exsearch_core::{Hit, PassageId};
    use exsearch_model::FinishReason;

    fn passage(title: &str, text: &str) -> LibraryPassage {
        LibraryPassage {
            title: title.into(),
            text: text.into(),
        }
    }

    /// Two documents joined by Shirley Temple, two by Maple Press.
    fn library() -> Vec<LibraryPassage> {
        vec![
            passage(
                "Kiss and Tell",
                "Kiss and Tell is a comedy film starring Shirley Temple as a teenage girl.",
            ),
            passage(
                "Shirley Temple",
                "Shirley Temple later served as the Chief of Protocol.",
            ),
            passage("Maple Press", "Maple Press printed its first book in 1921."),
            passage(
                "Oak Street Library",
                "Oak Street Library holds a copy printed by Maple Press.",
            ),
        ]
    }

    /// Finds the passages that name the query.
    struct Shelf(Vec<LibraryPassage>);

    impl Retriever for Shelf {
        fn retrieve(&self, query: &str, k: usize) -> exsearch_agent::Result<Vec<Hit>> {
            Ok(self
                .0
                .iter()
                .filter(|p| contains_words(&p.text, query))
                .take(k)
                .enumerate()
                .map(|(i, p)| Hit {
                    passage_id: PassageId(i as u64),
                    path: format!("/docs/{}.md", p.title),
                    title: p.title.clone(),
                    page: None,
                    score: 1.0,
                    char_start: 0,
                    char_end: p.text.chars().count(),
                    text: p.text.clone(),
                    highlights: Vec::new(),
                    ocr: false,
                })
                .collect())
        }
    }

    /// How the stand-in model reads: which passages it answers from.
    #[derive(Clone, Copy, PartialEq)]
    enum Reads {
        /// The last name in the last passage that the question lacks.
        LastPassage,
        /// As `LastPassage`, only when given two passages or more.
        NeedsBoth,
        /// Never the answer.
        Nothing,
    }

    /// A rule-following stand-in for the model: a question is the blanked
    /// sentence with "what" in the blank; a description names the first
    /// passage's title; reading follows `Reads`.
    struct Rules(Reads);

    impl Rules {
        fn reply(&self, prompt: &Prompt) -> String {
            let last = &prompt.messages.last().expect("as built").content;
            let text_of = |s: &str| s.split_once("): ").map(|(_, t)| t.to_string());
            if let Some(task) = last.strip_prefix(WRITE_TASK) {
                let cloze = text_of(task).expect("as built");
                return format!("{}?", cloze.trim_end_matches('.').replace("___", "what"));
            }
            if let Some(task) = last.strip_prefix(DESCRIBE_TASK) {
                let title = task
                    .split_once('(')
                    .expect("as built")
                    .1
                    .split_once(')')
                    .expect("as built")
                    .0;
                return format!("the one named in the text about {title}");
            }
            let task = last.strip_prefix(READ_TASK).expect("a reading prompt");
            let (text, question) = task.split_once("\nQuestion: ").expect("as built");
            let passages: Vec<&str> = text.trim_start_matches("\nText: ").lines().collect();
            if self.0 == Reads::Nothing || (self.0 == Reads::NeedsBoth && passages.len() < 2) {
                return "I do not know".into();
            }
            let (_, body) = passages
                .last()
                .expect("as built")
                .split_once(": ")
                .expect("as built");
            answer_spans(body)
                .into_iter()
                .rfind(|s| !contains_words(question, s))
                .unwrap_or_default()
        }
    }

    impl Generator for Rules {
        fn generate(
            &self,
            prompts: &[Prompt],
            _samples: usize,
            _params: &SamplingParams,
            _on_delta: exsearch_agent::generator::OnDelta<'_>,
            _cancel: &CancelToken,
        ) -> exsearch_agent::Result<Vec<Vec<Generated>>> {
            Ok(prompts
                .iter()
                .map(|p| {
                    vec![Generated {
                        text: self.reply(p),
                        tokens: 1,
                        finish: FinishReason::Eos,
                    }]
                })
                .collect())
        }

        fn describe(&self) -> String {
            "rules".into()
        }
    }

    fn write(reads: Reads, config: &WriteConfig) -> Vec<WrittenQuestion> {
        let passages = library();
        write_questions(
            &Rules(reads),
            &Shelf(passages.clone()),
            &passages,
            config,
            &[],
            &mut |_, _| Ok(()),
            &CancelToken::new(),
        )
        .expect("as built")
    }

    fn config(two_hop: f64) -> WriteConfig {
        WriteConfig {
            count: 10,
            two_hop,
            batch: 3,
            ..WriteConfig::default()
        }
    }

    #[test]
    fn spans_are_dates_years_and_names_not_the_words_that_open_a_sentence() {
        assert_eq!(
            answer_spans(
                "The film starred Shirley Temple Black (born April 23, 1928) as Chief of Protocol \
                 in 1945."
            ),
            [
                "Shirley Temple Black",
                "April 23, 1928",
                "Chief of Protocol",
                "1945"
            ]
        );
        assert_eq!(
            answer_spans("She moved to the Kingdom of Spain, then to Paris."),
            ["Kingdom of Spain", "Paris"]
        );
        assert!(answer_spans("it was a quiet year and nothing happened.").is_empty());
        // A name stops at a parenthesis; a span is the sentence's own words.
        assert_eq!(
            answer_spans("Its lineup had Christine Aprile (Silent Diane) on bass."),
            ["Christine Aprile", "Silent Diane"]
        );
        assert!(answer_spans("Punk's Not Dead is a film.").is_empty());
    }

    #[test]
    fn one_hop_questions_keep_their_passage_answer_and_construction() {
        let written = write(Reads::LastPassage, &config(0.0));
        assert_eq!(written.len(), 4, "one candidate per passage");
        assert!(
            written.iter().all(|w| w.kept() && w.hops == 1),
            "{written:#?}"
        );
        for w in &written {
            let passage = &w.contexts[0];
            assert!(contains_words(&passage.text, &w.answers[0]));
            assert!(
                !contains_words(&w.question, &w.answers[0]),
                "{}",
                w.question
            );
            assert_eq!(w.construction.queries, std::slice::from_ref(&passage.title));
            assert!(contains_words(&w.construction.facts[0], &w.answers[0]));
            assert_eq!(w.item().supporting_titles(), [passage.title.as_str()]);
        }
        let kiss = written
            .iter()
            .find(|w| w.contexts[0].title == "Kiss and Tell")
            .expect("as built");
        assert_eq!(
            kiss.question,
            "Kiss and Tell is a comedy film starring what as a teenage girl?"
        );
        assert_eq!(kiss.answers, ["Shirley Temple"]);
    }

    #[test]
    fn two_hop_questions_name_only_the_first_passage_and_need_both() {
        let written = write(Reads::NeedsBoth, &config(1.0));
        let two: Vec<&WrittenQuestion> = written.iter().filter(|w| w.hops == 2).collect();
        assert_eq!(two.len(), 2, "{written:#?}");
        for w in &two {
            assert!(w.kept(), "{w:#?}");
            let bridge = w.bridge.as_deref().expect("as built");
            assert!(!contains_words(&w.question, bridge), "{}", w.question);
            assert!(contains_words(&w.contexts[1].text, &w.answers[0]));
            assert!(!contains_words(&w.contexts[0].text, &w.answers[0]));
            assert_eq!(w.contexts[1].title, bridge);
            assert_eq!(w.construction.queries.len(), 2);
        }
        let maple = two
            .iter()
            .find(|w| w.answers == ["1921"])
            .expect("as built");
        assert_eq!(
            maple.question,
            "the one named in the text about Oak Street Library printed its first book in what?"
        );
        assert_eq!(
            maple.construction.queries,
            ["Oak Street Library", "Maple Press"]
        );
    }

    #[test]
    fn the_filters_say_which_questions_fail_and_why() {
        // Answered from the second passage alone.
        let written = write(Reads::LastPassage, &config(1.0));
        let two: Vec<&WrittenQuestion> = written.iter().filter(|w| w.hops == 2).collect();
        assert_eq!(two.len(), 2);
        for w in two {
            let Fate::Filtered { filter, why } = &w.fate else {
                panic!("kept {w:#?}")
            };
            assert_eq!(*filter, Filter::OnePassageAnswers);
            assert!(why.contains("alone"), "{why}");
        }
        // Not answered at all: the reply is recorded.
        let written = write(Reads::Nothing, &config(0.0));
        for w in &written {
            assert!(
                matches!(&w.fate, Fate::Filtered { filter: Filter::Unanswerable, why } if why.contains("I do not know")),
                "{w:#?}"
            );
        }
        let summary = WriteSummary::of(&written);
        assert_eq!((summary.candidates, summary.kept), (4, 0));
        assert_eq!(summary.dropped_by(Filter::Unanswerable), 4);
        // The same sentence under two titles is one question.
        let passages = vec![
            passage("A", "The Iron Bridge was built by Gustave Eiffel."),
            passage("B", "The Iron Bridge was built by Gustave Eiffel."),
        ];
        let written = write_questions(
            &Rules(Reads::LastPassage),
            &Shelf(passages.clone()),
            &passages,
            &config(0.0),
            &[],
            &mut |_, _| Ok(()),
            &CancelToken::new(),
        )
        .expect("as built");
        let fates: Vec<Option<Filter>> = written
            .iter()
            .map(|w| match w.fate {
                Fate::Kept => None,
                Fate::Filtered { filter, .. } => Some(filter),
            })
            .collect();
        assert_eq!(fates, [None, Some(Filter::Duplicate)]);
        // A question that gives its answer away.
        let mut w = written[0].clone();
        let filter_of = |w: &WrittenQuestion| match w.fate {
            Fate::Kept => None,
            Fate::Filtered { filter, .. } => Some(filter),
        };
        w.answers = vec!["Gustave Eiffel".into()];
        w.question = "Was the bridge built by Gustave Eiffel?".into();
        w.fate = Fate::Kept;
        check_written(&mut w, "The Iron Bridge was built by Gustave Eiffel.");
        assert_eq!(filter_of(&w), Some(Filter::AnswerInQuestion));
        // One that names nothing to search for.
        w.question = "What is the name of the engineer who built the bridge?".into();
        w.fate = Fate::Kept;
        check_written(&mut w, "The Iron Bridge was built by Gustave Eiffel.");
        assert_eq!(filter_of(&w), Some(Filter::Vague));
        w.question = "Who built the Iron Bridge?".into();
        w.fate = Fate::Kept;
        check_written(&mut w, "The Iron Bridge was built by Gustave Eiffel.");
        assert_eq!(filter_of(&w), None);
    }

    #[test]
    fn a_stopped_call_continues_where_it_stopped_and_stops_at_the_count() {
        let config = WriteConfig {
            count: 3,
            batch: 2,
            ..config(0.0)
        };
        let unbroken = write(Reads::LastPassage, &config);
        assert_eq!(unbroken.len(), 3, "of four passages");
        assert_eq!(unbroken.iter().filter(|w| w.kept()).count(), 3);
        assert!(
            unbroken.last().expect("as built").kept(),
            "nothing after the third"
        );
        let passages = library();
        let mut batches = 0;
        let resumed = write_questions(
            &Rules(Reads::LastPassage),
            &Shelf(passages.clone()),
            &passages,
            &config,
            &unbroken[..1],
            &mut |_, _| {
                batches += 1;
                Ok(())
            },
            &CancelToken::new(),
        )
        .expect("as built");
        assert_eq!(resumed, unbroken);
        assert_eq!(batches, 1, "the first was not written again");
    }

    #[test]
    fn a_markdown_heading_is_not_text_and_an_opening_pronoun_is_the_subject() {
        let p = passage(
            "Maple Press",
            "# Maple Press Maple Press is a printer. It printed its first book in 1921.",
        );
        assert_eq!(
            body(&p),
            "Maple Press is a printer. It printed its first book in 1921."
        );
        assert_eq!(body(&passage("Notes", "Maple Press")), "Maple Press");
        assert_eq!(
            resolve_pronoun("It printed its first book in 1921.", "Maple Press"),
            "Maple Press printed its first book in 1921."
        );
        assert_eq!(
            resolve_pronoun("Its first book came out in 1921.", "Maple Press"),
            "Maple Press's first book came out in 1921."
        );
    }

    #[test]
    fn replies_are_cleaned_to_one_question_or_phrase() {
        assert_eq!(
            clean_question("Question: \"Who designed the tower?\" It was Eiffel.").as_deref(),
            Some("Who designed the tower?")
        );
        assert_eq!(clean_question("The tower is tall."), None);
        assert_eq!(clean_question("Who?"), None);
        assert_eq!(
            clean_phrase("\"the engineer who designed it.\""),
            "the engineer who designed it"
        );
        assert_eq!(
            replace_words(
                "Where was Shirley Temple born?",
                "shirley temple",
                "the actress"
            )
            .as_deref(),
            Some("Where was the actress born?")
        );
        assert_eq!(
            replace_words("Where was Templeton born?", "Temple", "x"),
            None
        );
    }
}
