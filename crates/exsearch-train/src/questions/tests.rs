use super::judge::check_written;
use super::prompts::*;
use super::text::{body, replace_words, resolve_pronoun};
use super::*;
use crate::plan::contains_words;
use exsearch_agent::generator::{Generated, Prompt};
use exsearch_core::{Hit, PassageId};
use exsearch_model::{FinishReason, SamplingParams};

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
    write_over(&library(), reads, config)
}

/// Questions written from `passages`, which are also the index.
fn write_over(
    passages: &[LibraryPassage],
    reads: Reads,
    config: &WriteConfig,
) -> Vec<WrittenQuestion> {
    write_questions(
        &Rules(reads),
        &Shelf(passages.to_vec()),
        passages,
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
fn a_two_hop_question_joins_passages_about_different_subjects() {
    // "Maple Press Building" names Maple Press but is about the same name:
    // the bridge is found through the library that holds its book instead.
    let mut passages = library();
    passages.insert(
        2,
        passage(
            "Maple Press Building",
            "Maple Press Building was the home of Maple Press until 1950.",
        ),
    );
    let written = write_over(&passages, Reads::NeedsBoth, &config(1.0));
    let maple = written
        .iter()
        .find(|w| w.hops == 2 && w.bridge.as_deref() == Some("Maple Press"))
        .expect("a question bridged by Maple Press");
    assert_eq!(
        maple.construction.queries,
        ["Oak Street Library", "Maple Press"]
    );
    assert!(written
        .iter()
        .all(|w| w.contexts[0].title != "Maple Press Building" || w.hops == 1));
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
    let written = write_over(&passages, Reads::LastPassage, &config(0.0));
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
