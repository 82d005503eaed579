//! Judging a batch of candidates: the model writes their questions (and
//! two-hop descriptions), the filters that need no model run, then the
//! model answers those left from their passages.

use std::collections::HashSet;

use exsearch_agent::eval::{normalize_answer, score_answer};
use exsearch_agent::generator::Prompt;
use exsearch_agent::Generator;
use exsearch_core::CancelToken;
use exsearch_model::SamplingParams;

use super::candidates::Candidate;
use super::prompts::*;
use super::text::{answer_spans, blank, body, names, replace_words, resolve_pronoun};
use super::{
    agent_error, Construction, Fate, Filter, LibraryPassage, WrittenContext, WrittenQuestion,
};
use crate::error::Result;
use crate::plan::{contains_words, entity_name, shorten, words};

/// Has the model write each candidate's question, filters it, and asks
/// the model to answer those left from their passages.
pub(super) fn judge_batch(
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
pub(super) fn check_written(w: &mut WrittenQuestion, passage: &str) {
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

pub(super) fn question_words(q: &str) -> HashSet<String> {
    words(q)
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}
