//! The search loop over a real library on disk, driven by a scripted model
//! that plays back fixed turns: trajectories, citations, repair, budget,
//! repeats, re-ranking, baselines, samples, cancel and conversations.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use exsearch_agent::generator::Scripted;
use exsearch_agent::{
    Agent, AgentEvent, AgentSettings, ChatStore, EndReason, Exchange, Method, Question, Trajectory,
    TurnStatus,
};
use exsearch_core::{CancelToken, Home, Library, Quiet};

const VELCORA: &str = "# Velcora\n\nVelcora is a shipping company from the north. \
                       Velcora was founded by Ada Lind in 1990.\n";
const ADA: &str =
    "# Ada Lind\n\nAda Lind is an engineer. Ada Lind was born in Oslo, the capital of Norway.\n";
const SHIPS: &str = "# Ships\n\nShips carry containers across the sea for many companies.\n";

struct Fixture {
    _dir: tempfile::TempDir,
    docs: PathBuf,
    home: Home,
    library: Library,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let docs = [
        ("velcora.md", VELCORA),
        ("ada.md", ADA),
        ("ships.md", SHIPS),
    ];
    let library = common::library(dir.path(), &docs);
    Fixture {
        docs: dir.path().join("docs"),
        home: Home::at(dir.path().join("home")),
        _dir: dir,
        library,
    }
}

/// Runs one question and returns its trajectory and every event.
fn ask(
    f: &Fixture,
    model: &Scripted,
    settings: &AgentSettings,
    question: Question,
    method: Method,
) -> (Trajectory, Vec<AgentEvent>) {
    let events = Mutex::new(Vec::new());
    let sink = |e: AgentEvent| events.lock().expect("lock").push(e);
    let agent = Agent {
        generator: model,
        retriever: &f.library,
        settings,
    };
    let t = agent
        .answer(&question, method, &sink, &CancelToken::new())
        .expect("answers");
    (t, events.into_inner().expect("lock"))
}

const TWO_HOPS: [&str; 4] = [
    "<QUERY> who founded Velcora",
    "<FACT> Velcora was founded by Ada Lind.\n<QUERY> where was Ada Lind born",
    "<FACT> Ada Lind was born in Oslo.\n<FINAL>",
    "Oslo",
];

fn text_at(path: &Path, start: usize, end: usize) -> String {
    let text = std::fs::read_to_string(path).expect("source");
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn a_two_hop_question_is_answered_with_citations_to_the_exact_passages() {
    let f = fixture();
    let model = Scripted::new(TWO_HOPS);
    let settings = AgentSettings::default();
    let (t, events) = ask(
        &f,
        &model,
        &settings,
        Question::new("In which city was the founder of Velcora born?"),
        Method::Exsearch,
    );
    assert_eq!(t.answer, "Oslo");
    assert_eq!(t.end, EndReason::Finished);
    let queries: Vec<&str> = t.steps.iter().map(|s| s.query.as_str()).collect();
    assert_eq!(queries, ["who founded Velcora", "where was Ada Lind born"]);
    assert_eq!(
        t.steps[0].evidence.as_deref(),
        Some("Velcora was founded by Ada Lind.")
    );
    assert_eq!(
        t.steps[1].evidence.as_deref(),
        Some("Ada Lind was born in Oslo.")
    );
    assert!(t
        .steps
        .iter()
        .all(|s| !s.passages.is_empty() && s.passages.len() <= 5));

    // One citation per step, numbered from 1, pointing into the source files.
    let cited: Vec<(usize, usize, String)> = t
        .citations
        .iter()
        .map(|c| {
            let name = Path::new(&c.passage.path).file_name().expect("name");
            (c.number, c.step, name.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(
        cited,
        [
            (1, 1, "velcora.md".to_string()),
            (2, 2, "ada.md".to_string())
        ]
    );
    for c in &t.citations {
        let p = &c.passage;
        assert_eq!(Path::new(&p.path).parent(), Some(f.docs.as_path()));
        assert_eq!(p.page, None);
        let source = text_at(Path::new(&p.path), p.char_start, p.char_end);
        assert_eq!(
            source.split_whitespace().collect::<Vec<_>>(),
            p.text.split_whitespace().collect::<Vec<_>>()
        );
    }
    assert!(text_at(
        Path::new(&t.citations[1].passage.path),
        t.citations[1].passage.char_start,
        t.citations[1].passage.char_end
    )
    .contains("born in Oslo"));

    // The model saw the instructions, the question and the passages, in turns.
    let roles: Vec<&str> = t.transcript.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
            "assistant"
        ]
    );
    assert!(t.transcript[0]
        .content
        .ends_with("<USER QUERY> In which city was the founder of Velcora born?  Your Output:"));
    assert!(t.transcript[2]
        .content
        .starts_with("<SEARCH> [1] Title: Velcora. Content: "));
    assert!(t.transcript[6].content.contains("final answer"));
    assert_eq!(t.generated_tokens, 4 + 13 + 8 + 1);
    assert_eq!(t.model_calls, 4);

    // Events tell the story in order.
    let kinds: Vec<String> = events
        .iter()
        .filter(|e| {
            !matches!(
                e,
                AgentEvent::StepText { .. } | AgentEvent::AnswerDelta { .. }
            )
        })
        .map(|e| {
            let v = serde_json::to_value(e).expect("json");
            format!(
                "{}:{}",
                v["event"].as_str().expect("tag"),
                v["step"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started:0",
            "sub_query:1",
            "retrieved:1",
            "evidence:1",
            "sub_query:2",
            "retrieved:2",
            "evidence:2",
            "finished:0"
        ]
    );
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::AnswerDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "Oslo");
}

#[test]
fn an_unparsable_step_is_repaired_once_then_the_loop_ends_with_an_answer() {
    let f = fixture();
    let model = Scripted::new([
        "Let me think about this.",   // no sub-query: repaired
        "Velcora founder",            // continues "<QUERY> "
        "<FACT> founded by Ada Lind", // no next action: repaired
        "",                           // still nothing: the search ends
        "Ada Lind",
    ]);
    let (t, _) = ask(
        &f,
        &model,
        &AgentSettings::default(),
        Question::new("Who founded Velcora?"),
        Method::Exsearch,
    );
    let prompts = model.prompts();
    assert_eq!(prompts[1].prefill, "<QUERY> ");
    assert_eq!(prompts[3].prefill, "<FACT> founded by Ada Lind\n<QUERY> ");
    assert_eq!(t.steps.len(), 1);
    assert_eq!(t.steps[0].query, "Velcora founder");
    assert!(t.steps[0].repaired);
    assert_eq!(t.steps[0].evidence.as_deref(), Some("founded by Ada Lind"));
    assert_eq!(t.end, EndReason::Unparsable);
    assert_eq!(t.answer, "Ada Lind");
    // The repaired turn is recorded as the model's full text.
    assert_eq!(t.transcript[1].content, "<QUERY> Velcora founder");
    assert_eq!(t.citations.len(), 1);
}

#[test]
fn the_step_budget_and_repeated_searches_end_the_loop_with_an_answer() {
    let f = fixture();
    let settings = AgentSettings {
        max_steps: 2,
        ..AgentSettings::default()
    };
    let model = Scripted::new([
        "<QUERY> Velcora",
        "<FACT> a company\n<QUERY> Ada Lind",
        "I give up",
    ]);
    let (t, _) = ask(
        &f,
        &model,
        &settings,
        Question::new("Who?"),
        Method::Exsearch,
    );
    assert_eq!(t.end, EndReason::Budget);
    assert_eq!(t.steps.len(), 2);
    assert_eq!(t.answer, "I give up");
    assert_eq!(
        t.transcript.last().map(|m| m.role.as_str()),
        Some("assistant")
    );

    let model = Scripted::new([
        "<QUERY> Velcora founder",
        "<FACT> Ada Lind\n<QUERY> velcora   FOUNDER?",
        "Ada Lind",
    ]);
    let (t, events) = ask(
        &f,
        &model,
        &AgentSettings::default(),
        Question::new("Who?"),
        Method::Exsearch,
    );
    assert_eq!(t.end, EndReason::Repeated);
    assert_eq!(t.steps.len(), 1);
    assert_eq!(t.steps[0].evidence.as_deref(), Some("Ada Lind"));
    assert!(events
        .iter()
        .any(|e| matches!(e, AgentEvent::Repeated { step: 2, .. })));
    assert_eq!(t.answer, "Ada Lind");
}

#[test]
fn reranking_keeps_the_passages_the_model_picks_numbered_from_one() {
    let f = fixture();
    let settings = AgentSettings {
        rerank: true,
        ..AgentSettings::default()
    };
    let model = Scripted::new([
        "<QUERY> Velcora Ada Lind",
        "[2] > [9] > [2]",
        "<FACT> Ada Lind founded Velcora\n<FINAL>",
        "Ada Lind",
    ]);
    let (t, events) = ask(
        &f,
        &model,
        &settings,
        Question::new("Who founded Velcora?"),
        Method::Exsearch,
    );
    let retrieved = events
        .iter()
        .find_map(|e| match e {
            AgentEvent::Retrieved { passages, .. } => Some(passages.clone()),
            _ => None,
        })
        .expect("retrieved");
    assert!(retrieved.len() >= 2);
    assert_eq!(t.steps[0].rerank, Some(vec![1]));
    assert_eq!(t.steps[0].passages, vec![retrieved[1].clone()]);
    assert!(events
        .iter()
        .any(|e| matches!(e, AgentEvent::Reranked { kept, .. } if kept == &vec![2])));
    assert_eq!(t.side_calls.len(), 1);
    assert!(t.side_calls[0].prompt[0].content.contains("[2] Title:"));
    // The search block shows only the kept passage, renumbered from 1.
    assert!(t.transcript[2]
        .content
        .starts_with(&format!("<SEARCH> [1] Title: {}", retrieved[1].title)));
    assert!(!t.transcript[2].content.contains("[2] Title:"));
}

#[test]
fn baselines_answer_with_one_retrieval_or_none() {
    let f = fixture();
    let model = Scripted::new(["Oslo"]);
    let (t, _) = ask(
        &f,
        &model,
        &AgentSettings::default(),
        Question::new("Where was Ada Lind born?"),
        Method::Rag,
    );
    assert_eq!(t.steps.len(), 1);
    assert_eq!(t.answer, "Oslo");
    let prompt = &model.prompts()[0].messages[0].content;
    assert!(
        prompt.contains("[1] Title: Ada Lind. Content: "),
        "{prompt}"
    );
    assert!(prompt.ends_with("Question: Where was Ada Lind born?"));
    assert_eq!(t.citations.len(), 1);
    assert!(t.citations[0].passage.path.ends_with("ada.md"));

    let model = Scripted::new(["Paris"]);
    let (t, _) = ask(
        &f,
        &model,
        &AgentSettings::default(),
        Question::new("Where was Ada Lind born?"),
        Method::Direct,
    );
    assert!(t.steps.is_empty() && t.citations.is_empty());
    assert!(!model.prompts()[0].messages[0].content.contains("Title:"));
}

#[test]
fn k_samples_share_their_first_prompt_and_then_run_apart() {
    let f = fixture();
    let model = Scripted::new([
        // Step 1: one prompt, three samples.
        "<QUERY> Velcora",
        "<QUERY> Ada Lind",
        "<FINAL>",
        // Step 2 for the two runs still searching.
        "<FACT> founded by Ada Lind\n<FINAL>",
        "<FACT> born in Oslo\n<FINAL>",
        // Answers, one per run.
        "Ada Lind",
        "Oslo",
        "no idea",
    ]);
    let agent = Agent {
        generator: &model,
        retriever: &f.library,
        settings: &AgentSettings::default(),
    };
    let runs = agent
        .run(
            &[Question::new("Q?")],
            3,
            Method::Exsearch,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("runs");
    let prompts = model.prompts();
    assert_eq!(prompts.len(), 1 + 2 + 3);
    let answers: Vec<&str> = runs.iter().map(|t| t.answer.as_str()).collect();
    assert_eq!(answers, ["Ada Lind", "Oslo", "no idea"]);
    assert_eq!(runs[1].steps[0].evidence.as_deref(), Some("born in Oslo"));
    assert!(runs[2].steps.is_empty());
    assert_eq!(model.remaining(), 0);
}

#[test]
fn cancel_at_a_token_stops_at_once_and_keeps_what_was_found() {
    let f = fixture();
    let model = Scripted::new(TWO_HOPS);
    let cancel = CancelToken::new();
    let stop = cancel.clone();
    let sink = move |e: AgentEvent| {
        if let AgentEvent::StepText { step: 2, .. } = e {
            stop.cancel();
        }
    };
    let agent = Agent {
        generator: &model,
        retriever: &f.library,
        settings: &AgentSettings::default(),
    };
    let t = agent
        .answer(&Question::new("Where?"), Method::Exsearch, &sink, &cancel)
        .expect("a cancelled run still returns");
    assert_eq!(t.end, EndReason::Cancelled);
    assert_eq!(t.steps.len(), 1);
    assert_eq!(t.answer, "");
    // Step 2 stopped after its first word; the answer was never asked for.
    assert_eq!(model.remaining(), 2);
}

#[test]
fn conversations_persist_and_follow_ups_see_earlier_answers() {
    let f = fixture();
    let settings = AgentSettings::default();
    let store = ChatStore::open(&f.home).expect("store");
    let question = "In which city was the founder of Velcora born?";
    let conversation = store.create(question).expect("conversation");
    let turn = store
        .begin_turn(conversation, question, Method::Exsearch, "scripted")
        .expect("turn");
    let (t, _) = ask(
        &f,
        &Scripted::new(TWO_HOPS),
        &settings,
        Question::new(question),
        Method::Exsearch,
    );
    store.finish_turn(turn, &t).expect("stored");
    // A second question is left running, as a killed process would leave it.
    store
        .begin_turn(conversation, "And when?", Method::Exsearch, "scripted")
        .expect("turn");
    drop(store);

    let store = ChatStore::open(&f.home).expect("reopened");
    let list = store.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].title.as_str(), list[0].turns), (question, 2));
    let c = store.conversation(conversation).expect("shown");
    assert_eq!(c.turns[0].status, TurnStatus::Answered);
    let mut stored = c.turns[0].trajectory.clone().expect("trajectory stored");
    // Timings are f64 milliseconds; JSON keeps them to the last bit or two.
    assert!((stored.timing.model_ms - t.timing.model_ms).abs() < 1e-9);
    assert!((stored.timing.total_ms - t.timing.total_ms).abs() < 1e-9);
    stored.timing = t.timing.clone();
    assert_eq!(stored, t);
    assert_eq!(c.turns[1].status, TurnStatus::Running);
    let history = store.history(conversation).expect("history");
    assert_eq!(
        history,
        [Exchange {
            question: question.into(),
            answer: "Oslo".into()
        }]
    );

    let model = Scripted::new(["<QUERY> Velcora founded", "<FACT> 1990\n<FINAL>", "1990"]);
    let follow_up = Question {
        text: "When was it founded?".into(),
        history,
    };
    let (t2, _) = ask(&f, &model, &settings, follow_up, Method::Exsearch);
    let first = &model.prompts()[0].messages;
    assert_eq!(
        (first[0].role.as_str(), first[0].content.as_str()),
        ("user", question)
    );
    assert_eq!(
        (first[1].role.as_str(), first[1].content.as_str()),
        ("assistant", "Oslo")
    );
    assert_eq!(t2.history_turns, 2);
    assert_eq!(t2.answer, "1990");

    store.delete(conversation).expect("deleted");
    assert!(store.list().expect("list").is_empty());
    let e = store.conversation(conversation).expect_err("gone");
    assert_eq!(e.code(), "unknown_conversation");
}
