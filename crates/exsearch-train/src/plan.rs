//! Warm-up trajectories without a teacher model: for a question whose
//! supporting passages and answer are known (a QA file's gold paragraphs,
//! or the passages a generated question was written from), the search a
//! good searcher would make. One sub-query per supporting passage, naming
//! what to look up (its title); after each, the evidence that passage
//! gives (the sentence with the answer, or for a bridge passage the
//! sentence that leads on to the next); then the gold answer as a short
//! span. The real agent then runs the plan over the real index (an
//! [`Oracle`] writes the model's turns), so the trajectories have exactly
//! the prompts, passages and format the model sees when it searches alone.

use std::collections::HashSet;

use exsearch_agent::eval::{Context, QaItem};
use exsearch_agent::generator::{Oracle, OracleAnswer};
use exsearch_agent::{Agent, AgentEvent, AgentSettings, Method, Question, Retriever, Trajectory};
use exsearch_core::{CancelToken, EventSink, Quiet};

use crate::error::Result;

/// Longest evidence kept from one sentence, in characters.
const MAX_EVIDENCE: usize = 300;

/// The search for `item`, or `None` when it has no answer or no
/// supporting passage to plan from.
pub fn plan(item: &QaItem) -> Option<OracleAnswer> {
    let answer = item.answers.first()?.trim();
    if answer.is_empty() {
        return None;
    }
    let mut seen = HashSet::new();
    let mut passages: Vec<&Context> = item
        .contexts
        .iter()
        .filter(|c| c.supporting && seen.insert(c.title.as_str()))
        .collect();
    if passages.is_empty() {
        return None;
    }
    let question = item.question.to_lowercase();
    let holds_answer = |c: &Context| contains_words(&c.text, answer);
    // Passages the question names come first, in the order it names them;
    // the passage that holds the answer comes last (a bridge question names
    // the first hop and asks for something the second one says). A passage
    // another one leads to (its title in the other's text) comes after it.
    // Titles are matched without their disambiguation, "Kiss and Tell (1945 film)".
    let named_at = |c: &Context| {
        let title = entity_name(&c.title).to_lowercase();
        question.find(&title).unwrap_or(usize::MAX)
    };
    let leads_to = |a: &Context, b: &Context| contains_words(&a.text, &b.title);
    passages.sort_by_key(|c| (holds_answer(c), named_at(c)));
    // A passage the other one leads to goes second, unless that would put
    // the only passage with the answer first.
    if passages.len() == 2
        && leads_to(passages[1], passages[0])
        && !leads_to(passages[0], passages[1])
        && (!holds_answer(passages[1]) || holds_answer(passages[0]))
    {
        passages.swap(0, 1);
    }
    let question_words = words(&item.question);
    let mut queries = Vec::with_capacity(passages.len());
    let mut facts = Vec::with_capacity(passages.len());
    for (i, passage) in passages.iter().enumerate() {
        queries.push(passage.title.clone());
        // What the evidence should lead to: the answer, else the passages
        // still to look up.
        let mut wanted: HashSet<String> = HashSet::new();
        for later in &passages[i + 1..] {
            wanted.extend(words(&later.title));
        }
        let fact = if holds_answer(passage) {
            sentences(&passage.text)
                .into_iter()
                .find(|s| contains_words(s, answer))
        } else {
            best_sentence(&passage.text, &question_words, &wanted)
        };
        facts.push(shorten(fact.unwrap_or(&passage.text)));
    }
    Some(OracleAnswer {
        queries,
        facts,
        answer: answer.to_string(),
    })
}

/// Runs each planned question through the real agent over `retriever`,
/// the oracle writing the model's turns. Items without a plan are skipped.
pub fn planned_trajectories(
    items: &[QaItem],
    retriever: &dyn Retriever,
    settings: &AgentSettings,
    cancel: &CancelToken,
) -> Result<Vec<Trajectory>> {
    let planned: Vec<(String, OracleAnswer)> = items
        .iter()
        .filter_map(|i| Some((i.question.clone(), plan(i)?)))
        .collect();
    oracle_trajectories(planned, retriever, settings, cancel)
}

/// Runs known searches (question, sub-queries, evidence, answer) through
/// the real agent over `retriever`.
pub fn oracle_trajectories(
    known: Vec<(String, OracleAnswer)>,
    retriever: &dyn Retriever,
    settings: &AgentSettings,
    cancel: &CancelToken,
) -> Result<Vec<Trajectory>> {
    let asked: Vec<Question> = known.iter().map(|(q, _)| Question::new(q)).collect();
    let oracle = Oracle::new(settings.tags.clone(), known);
    let agent = Agent {
        generator: &oracle,
        retriever,
        settings,
    };
    Ok(agent.run(
        &asked,
        1,
        Method::Exsearch,
        &Quiet as &dyn EventSink<AgentEvent>,
        cancel,
    )?)
}

/// A title without a trailing disambiguation, "Kiss and Tell (1945 film)"
/// -> "Kiss and Tell".
pub(crate) fn entity_name(title: &str) -> String {
    title.split(" (").next().unwrap_or(title).trim().to_string()
}

/// Lower-case words of three letters or more.
pub(crate) fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// Whether `needle` occurs in `text` case-insensitively on word boundaries.
pub(crate) fn contains_words(text: &str, needle: &str) -> bool {
    let (text, needle) = (text.to_lowercase(), needle.trim().to_lowercase());
    if needle.is_empty() {
        return false;
    }
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The passage's sentences: text split after `.`, `!` or `?` followed by
/// whitespace and a capital letter, a digit or an opening quote.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let mut spaced = false;
        while let Some(&(_, next)) = chars.peek() {
            if !next.is_whitespace() {
                break;
            }
            spaced = true;
            chars.next();
        }
        let Some(&(at, next)) = chars.peek() else {
            break;
        };
        if spaced && (next.is_uppercase() || next.is_ascii_digit() || matches!(next, '"' | '(')) {
            let sentence = text[start..at].trim();
            if !sentence.is_empty() {
                out.push(sentence);
            }
            start = at;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// The sentence sharing most words with the question, the words of what
/// is still to be looked up counting twice.
fn best_sentence<'a>(
    text: &'a str,
    question: &HashSet<String>,
    wanted: &HashSet<String>,
) -> Option<&'a str> {
    sentences(text)
        .into_iter()
        .enumerate()
        .max_by_key(|(i, s)| {
            let w = words(s);
            let score = w.intersection(question).count() + 2 * w.intersection(wanted).count();
            // Ties go to the earlier sentence (a passage's first sentence
            // says what its subject is).
            (score, usize::MAX - i)
        })
        .map(|(_, s)| s)
}

pub(crate) fn shorten(sentence: &str) -> String {
    let sentence = sentence.trim();
    if sentence.chars().count() <= MAX_EVIDENCE {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(MAX_EVIDENCE).collect();
    match cut.rfind(' ') {
        Some(at) => format!("{}…", &cut[..at]),
        None => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(question: &str, answer: &str, passages: &[(&str, &str, bool)]) -> QaItem {
        QaItem {
            id: "q".into(),
            question: question.into(),
            answers: vec![answer.into()],
            contexts: passages
                .iter()
                .map(|(title, text, supporting)| Context {
                    title: title.to_string(),
                    text: text.to_string(),
                    supporting: *supporting,
                })
                .collect(),
        }
    }

    #[test]
    fn a_bridge_question_looks_up_the_named_passage_then_the_one_with_the_answer() {
        let q = item(
            "What government position was held by the woman who portrayed Corliss Archer in \
             the film Kiss and Tell?",
            "Chief of Protocol",
            &[
                (
                    "Shirley Temple",
                    "Shirley Temple Black (April 23, 1928 – February 10, 2014) was an American \
                     actress.  As an adult, she was named United States ambassador to Ghana and \
                     also served as Chief of Protocol of the United States.",
                    true,
                ),
                ("Janet Waldo", "Janet Waldo was a voice actress.", false),
                (
                    "Kiss and Tell (1945 film)",
                    "Kiss and Tell is a 1945 American comedy film.  It stars then 17-year-old \
                     Shirley Temple as Corliss Archer.  In the film, two teenage girls cause \
                     their respective parents much concern.",
                    true,
                ),
            ],
        );
        let plan = plan(&q).expect("a plan");
        assert_eq!(
            plan.queries,
            ["Kiss and Tell (1945 film)", "Shirley Temple"]
        );
        assert_eq!(
            plan.facts[0],
            "It stars then 17-year-old Shirley Temple as Corliss Archer."
        );
        assert!(plan.facts[1].ends_with("Chief of Protocol of the United States."));
        assert!(plan.facts[1].starts_with("As an adult"));
        assert_eq!(plan.answer, "Chief of Protocol");
    }

    #[test]
    fn a_comparison_question_looks_up_both_in_the_order_it_names_them() {
        let q = item(
            "Were Scott Derrickson and Ed Wood of the same nationality?",
            "yes",
            &[
                (
                    "Ed Wood",
                    "Edward Davis Wood Jr. was an American filmmaker.",
                    true,
                ),
                (
                    "Scott Derrickson",
                    "Scott Derrickson (born July 16, 1966) is an American director.  He lives \
                     in Los Angeles.",
                    true,
                ),
            ],
        );
        let plan = plan(&q).expect("a plan");
        assert_eq!(plan.queries, ["Scott Derrickson", "Ed Wood"]);
        assert!(plan.facts[0].contains("American director"));
        assert_eq!(plan.answer, "yes");
    }

    #[test]
    fn no_plan_without_an_answer_or_a_supporting_passage() {
        assert!(plan(&item("Who?", "", &[("A", "A is.", true)])).is_none());
        assert!(plan(&item("Who?", "B", &[("A", "A is B.", false)])).is_none());
    }

    #[test]
    fn answers_match_on_word_boundaries_and_long_sentences_are_cut() {
        assert!(contains_words(
            "served as Chief of Protocol.",
            "chief of protocol"
        ));
        assert!(!contains_words("Parisian life", "Paris"));
        let long = format!("{} end.", "word ".repeat(100));
        let short = shorten(&long);
        assert!(short.chars().count() <= MAX_EVIDENCE + 1 && short.ends_with('…'));
        assert_eq!(
            sentences("It began in 1945.  The end came in 2001. 2002 was later! Yes? no."),
            [
                "It began in 1945.",
                "The end came in 2001.",
                "2002 was later!",
                "Yes? no."
            ]
        );
    }
}
