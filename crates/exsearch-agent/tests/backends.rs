//! The agent with real backends: a tiny random model of a real architecture
//! loaded from disk (its output is noise, which is the point: the loop must
//! survive it), and an OpenAI-compatible server on loopback.

mod common;
#[path = "../../../tests/common/fake_openai.rs"]
mod fake_openai;

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use exsearch_agent::generator::{Local, OpenAi, Retry};
use exsearch_agent::{Agent, AgentEvent, AgentSettings, EndReason, Generator, Method, Question};
use exsearch_core::{CancelToken, Library, Quiet};
use exsearch_model::fixtures;
use exsearch_model::model::Family;
use exsearch_model::{LoadedModel, ModelHandle, ModelSource};
use fake_openai::FakeOpenAi;

fn library(dir: &std::path::Path) -> Library {
    common::library(
        dir,
        &[
            (
                "velcora.md",
                "# Velcora\n\nVelcora was founded by Ada Lind in 1990.\n",
            ),
            ("ada.md", "# Ada Lind\n\nAda Lind was born in Oslo.\n"),
        ],
    )
}

fn tiny_model(dir: &std::path::Path) -> Arc<ModelHandle> {
    let model_dir = dir.join("model");
    fixtures::write_hf_model(
        &model_dir,
        &fixtures::tiny_config(Family::Qwen2),
        11,
        DType::F32,
    )
    .expect("fixture");
    let source: ModelSource = model_dir.to_str().expect("utf-8").parse().expect("folder");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(dir.join("no-cache")))
        .expect("files");
    let handle = ModelHandle::spawn(
        move || LoadedModel::load(&files, &Device::Cpu, DType::F32),
        8,
    )
    .expect("model thread");
    Arc::new(handle)
}

#[test]
fn a_tiny_random_model_runs_the_loop_to_an_answer_and_can_be_cancelled() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = library(dir.path());
    let local = Local::new(tiny_model(dir.path()));
    let settings = AgentSettings {
        max_steps: 3,
        step_tokens: 12,
        answer_tokens: 6,
        ..AgentSettings::default()
    };
    let agent = Agent {
        generator: &local,
        retriever: &library,
        settings: &settings,
    };
    let questions = [
        Question::new("Who founded Velcora?"),
        Question::new("Where was Ada Lind born?"),
    ];
    let runs = agent
        .run(&questions, 2, Method::Exsearch, &Quiet, &CancelToken::new())
        .expect("runs");
    assert_eq!(runs.len(), 4);
    for t in &runs {
        // Random text rarely parses: whatever it wrote, the loop ended and
        // the answer was asked for and given.
        assert_ne!(t.end, EndReason::Cancelled);
        assert!(t.steps.len() <= 3);
        assert!(t.generated_tokens > 0);
        let last = t.transcript.last().expect("turns");
        assert_eq!(
            (last.role.as_str(), last.content.as_str()),
            ("assistant", t.answer.as_str())
        );
        assert!(t.transcript[t.transcript.len() - 2]
            .content
            .contains("final answer"));
    }
    assert_eq!(runs[0].question, "Who founded Velcora?");
    assert_eq!(runs[3].question, "Where was Ada Lind born?");
    // Samples draw different text from the shared prompt.
    assert_ne!(runs[0].transcript[1], runs[1].transcript[1]);

    // A cancel from the event stream stops generation within a token.
    let cancel = CancelToken::new();
    let stop = cancel.clone();
    let deltas = Mutex::new(0);
    let sink = |e: AgentEvent| {
        if let AgentEvent::StepText { .. } = e {
            *deltas.lock().expect("lock") += 1;
            stop.cancel();
        }
    };
    let t = agent
        .answer(&questions[0], Method::Exsearch, &sink, &cancel)
        .expect("cancelled run returns");
    assert_eq!(t.end, EndReason::Cancelled);
    assert!(
        t.generated_tokens <= 2,
        "{} tokens after cancel",
        t.generated_tokens
    );
    assert!(*deltas.lock().expect("lock") >= 1);
}

#[test]
fn an_openai_compatible_server_answers_through_the_same_loop() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = library(dir.path());
    let server = FakeOpenAi::serve([
        // The server ignores `stop`: the client cuts at <SEARCH> itself.
        "<QUERY> who founded Velcora <SEARCH> [1] invented passage",
        "<FACT> Ada Lind founded it.",
        "\n<QUERY> where was Ada Lind born",
        "<FACT> Oslo\n<FINAL>",
        "Oslo",
    ]);
    let openai = OpenAi::new(&server.endpoint, "qwen2.5:7b", Some("sk-test".into()));
    let settings = AgentSettings::default();
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let t = agent
        .answer(
            &Question::new("Where was Velcora's founder born?"),
            Method::Exsearch,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("answers");
    assert_eq!(t.answer, "Oslo");
    assert_eq!(t.steps.len(), 2);
    assert_eq!(t.steps[0].query, "who founded Velcora");
    assert_eq!(t.steps[0].evidence.as_deref(), Some("Ada Lind founded it."));
    assert!(t.steps[1].repaired);
    assert_eq!(t.citations.len(), 2);

    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    let first = &requests[0];
    assert_eq!(first["model"], "qwen2.5:7b");
    assert_eq!(first["stream"], true);
    assert_eq!(first["stop"], serde_json::json!(["<SEARCH>"]));
    assert_eq!(first["max_tokens"], 64);
    assert!((first["temperature"].as_f64().expect("t") - 0.8).abs() < 1e-6);
    assert_eq!(first["messages"][0]["role"], "user");
    // The repair continues a primed assistant turn.
    let repair = &requests[2];
    let messages = repair["messages"].as_array().expect("messages");
    let last = messages.last().expect("last");
    assert_eq!(last["role"], "assistant");
    assert_eq!(last["content"], "<FACT> Ada Lind founded it.\n<QUERY> ");
    assert_eq!(repair["continue_final_message"], true);
    assert!(server
        .auth()
        .iter()
        .all(|a| a.as_deref() == Some("Bearer sk-test")));
    // Token counts come from the server's usage report.
    assert!(t.generated_tokens > 0);
}

#[test]
fn endpoint_failures_name_the_url_and_the_server_s_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = library(dir.path());
    let server = FakeOpenAi::serve(["HTTP 500 model qwen9 is not loaded"; 2]);
    let events = Mutex::new(Vec::new());
    let sink = |e: AgentEvent| events.lock().expect("lock").push(e);
    let openai =
        OpenAi::new(&format!("{}/v1/", server.endpoint), "qwen9", None).with_retry(fast(2));
    let settings = AgentSettings::default();
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let e = agent
        .answer(
            &Question::new("Q?"),
            Method::Direct,
            &sink,
            &CancelToken::new(),
        )
        .expect_err("fails");
    let events = events.into_inner().expect("lock");
    assert!(
        matches!(events.last(), Some(AgentEvent::Failed { run: 0, code, .. }) if code == "endpoint"),
        "{events:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains(&format!("{}/v1/chat/completions", server.endpoint)),
        "{message}"
    );
    assert!(
        message.contains("HTTP 500") && message.contains("qwen9 is not loaded"),
        "{message}"
    );
    assert!(message.contains("gave up after 2 tries"), "{message}");
    assert_eq!(server.auth(), vec![None, None]);

    let closed = OpenAi::new("http://127.0.0.1:9", "m", None).with_retry(fast(3));
    let agent = Agent {
        generator: &closed,
        ..agent
    };
    let e = agent
        .answer(
            &Question::new("Q?"),
            Method::Direct,
            &Quiet,
            &CancelToken::new(),
        )
        .expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("http://127.0.0.1:9/v1/chat/completions: "),
        "{e}"
    );
}

/// Retries without the real waits.
fn fast(attempts: u32) -> Retry {
    Retry {
        attempts,
        first_wait: std::time::Duration::from_millis(1),
        ..Retry::default()
    }
}

#[test]
fn a_failed_call_ends_only_its_own_run_and_transient_faults_are_retried() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = library(dir.path());
    // Per question: "Lune" is refused (as a prompt over the context is),
    // "Dunmore" meets a 429, a 503 and a stream cut after one word before
    // its answer, and the rest are answered at once.
    let tries = Mutex::new(0usize);
    let server = FakeOpenAi::serve_by(move |body| {
        let prompt = body["messages"].to_string();
        if prompt.contains("Lune") {
            return "HTTP 400 the request exceeds the available context size".into();
        }
        if !prompt.contains("Dunmore") {
            return "Oslo".into();
        }
        let mut n = tries.lock().expect("lock");
        *n += 1;
        match *n {
            1 => "HTTP 429 slow down".into(),
            2 => "HTTP 503 loading".into(),
            3 => "CUT 1 New York".into(),
            _ => "New York".into(),
        }
    });
    let openai = OpenAi::new(&server.endpoint, "m", None).with_retry(fast(5));
    let settings = AgentSettings::default();
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let events = Mutex::new(Vec::new());
    let sink = |e: AgentEvent| events.lock().expect("lock").push(e);
    let questions = [
        Question::new("Where is Velcora?"),
        Question::new("Where is Lune?"),
        Question::new("Where is Dunmore?"),
    ];
    let runs = agent
        .run(&questions, 1, Method::Direct, &sink, &CancelToken::new())
        .expect("the batch goes on");
    assert_eq!(
        (runs[0].end.clone(), runs[0].answer.as_str()),
        (EndReason::Finished, "Oslo")
    );
    assert_eq!(runs[1].end, EndReason::Failed);
    let error = runs[1].error.as_deref().unwrap_or("");
    assert!(
        error.contains("HTTP 400: the request exceeds the available context size"),
        "{error}"
    );
    assert_eq!(
        (runs[2].end.clone(), runs[2].answer.as_str()),
        (EndReason::Finished, "New York")
    );
    // The cut attempt's first word was streamed once, not again.
    let events = events.into_inner().expect("lock");
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::AnswerDelta { run: 2, text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "New York");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Failed { run: 1, code, .. } if code == "endpoint")),
        "{events:?}"
    );
    // A 400 is not tried again, and no other question is asked twice:
    // Velcora once, Lune once, Dunmore four times (429, 503, cut, answer).
    let asked = |what: &str| {
        server
            .requests()
            .iter()
            .filter(|b| b["messages"].to_string().contains(what))
            .count()
    };
    assert_eq!(
        (asked("Velcora"), asked("Lune"), asked("Dunmore")),
        (1, 1, 4)
    );
}

/// Three documents of long passages that all match "lorem".
fn long_library(dir: &std::path::Path) -> Library {
    let doc = |n: usize| {
        let words: Vec<String> = (0..300)
            .map(|i| format!("lorem{n}x{i:03} longwordpad"))
            .collect();
        format!("# Document {n}\n\nlorem {}\n", words.join(" "))
    };
    let (a, b, c) = (doc(1), doc(2), doc(3));
    common::library(dir, &[("a.md", &a), ("b.md", &b), ("c.md", &c)])
}

#[test]
fn a_search_that_outgrows_the_server_s_context_is_trimmed_then_answered() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = long_library(dir.path());
    // Each step searches for something new; the final request gets the answer.
    let server = FakeOpenAi::serve_by(|body| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let last = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        if last.starts_with("Please give the final answer") {
            "Oslo".into()
        } else {
            format!("<FACT> lorem facts\n<QUERY> lorem step {}", messages.len())
        }
    })
    .with_context(1500);
    let openai = OpenAi::new(&server.endpoint, "m", None).with_retry(fast(1));
    let settings = AgentSettings::default();
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let t = agent
        .answer(
            &Question::new("What does lorem say?"),
            Method::Exsearch,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("answered within the context");
    assert_eq!(server.refused(), 0, "no request over the server's context");
    assert_eq!(t.answer, "Oslo");
    assert_eq!(t.end, EndReason::ContextFull, "{:?}", t.steps.len());
    assert!(t.context_trims >= 1);
    // The citations still point at the whole passages.
    assert!(t.steps.iter().all(|s| s.passages.len() == 5));
}

/// A tiny local model with a 1,024-token context, too small for five whole
/// passages of the long library.
fn small_context_model(dir: &std::path::Path) -> Local {
    let model_dir = dir.join("model");
    let mut config = fixtures::tiny_config(Family::Qwen2);
    config["max_position_embeddings"] = serde_json::json!(1024);
    fixtures::write_hf_model(&model_dir, &config, 11, DType::F32).expect("fixture");
    let source: ModelSource = model_dir.to_str().expect("utf-8").parse().expect("folder");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(dir.join("no-cache")))
        .expect("files");
    let handle = ModelHandle::spawn(
        move || LoadedModel::load(&files, &Device::Cpu, DType::F32),
        8,
    )
    .expect("model thread");
    Local::new(Arc::new(handle))
}

#[test]
fn a_local_model_s_context_is_never_exceeded() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = long_library(dir.path());
    let local = small_context_model(dir.path());
    let settings = AgentSettings {
        answer_tokens: 6,
        ..AgentSettings::default()
    };
    let agent = Agent {
        generator: &local,
        retriever: &library,
        settings: &settings,
    };
    let full = local
        .prompt_tokens(&exsearch_agent::Prompt::new(vec![
            exsearch_model::ChatMessage::user(exsearch_agent::prompt::rag_turn(
                &settings,
                "What does lorem say?",
                &library.search("What does lorem say?", 5).expect("search"),
            )),
        ]))
        .expect("count");
    assert!(
        full > 1024,
        "the whole passages would not fit: {full} tokens"
    );
    let t = agent
        .answer(
            &Question::new("What does lorem say?"),
            Method::Rag,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("the engine never sees a prompt over its context");
    assert_eq!(t.end, EndReason::Finished);
    assert!(t.context_trims >= 1, "the passages were shortened");
    let shown = &t.transcript[t.transcript.len() - 2].content;
    assert!(shown.len() < 4000, "{} bytes shown", shown.len());
}

#[test]
fn a_server_that_stalls_is_given_up_on_and_asked_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = library(dir.path());
    // The first request hangs for 3 s; the client waits 500 ms at most.
    let server = FakeOpenAi::serve(["STALL 3000 Bergen", "Oslo"]);
    let openai = OpenAi::new(&server.endpoint, "m", None)
        .with_retry(fast(2))
        .with_stall_timeout(std::time::Duration::from_millis(500));
    let settings = AgentSettings::default();
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let started = std::time::Instant::now();
    let t = agent
        .answer(
            &Question::new("Where?"),
            Method::Direct,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("answered by the second request");
    assert_eq!(t.answer, "Oslo");
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "the stalled request was not waited out: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_long_conversation_leaves_out_its_oldest_exchanges_to_fit() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = long_library(dir.path());
    let local = small_context_model(dir.path());
    let settings = AgentSettings {
        answer_tokens: 6,
        history_turns: 3,
        ..AgentSettings::default()
    };
    let agent = Agent {
        generator: &local,
        retriever: &library,
        settings: &settings,
    };
    // Three earlier exchanges whose answers alone fill the context.
    let mut question = Question::new("What does lorem say?");
    question.history = (0..3)
        .map(|i| exsearch_agent::Exchange {
            question: format!("What did the notes say, part {i}?"),
            answer: "lorem ipsum dolor sit amet ".repeat(60),
        })
        .collect();
    let t = agent
        .answer(&question, Method::Rag, &Quiet, &CancelToken::new())
        .expect("answers");
    assert_eq!(t.end, EndReason::Finished, "{:?}", t.error);
    assert!(
        t.history_turns < 6,
        "the oldest exchanges were left out: {} history turns kept",
        t.history_turns
    );
    assert!(t.context_trims >= 1);
    // What was kept is the newest part of the conversation.
    assert!(t.transcript[..t.history_turns]
        .iter()
        .all(|m| !m.content.contains("part 0")));
}

#[test]
fn a_rerank_request_is_fitted_to_the_server_s_context() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = long_library(dir.path());
    let server = FakeOpenAi::serve_by(|body| {
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let last = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or("");
        if last.starts_with("Which of the passages") {
            "[2] > [1]".into()
        } else if last.starts_with("Please give the final answer") {
            "Oslo".into()
        } else if messages.len() > 1 {
            "<FACT> lorem facts\n<FINAL>".into()
        } else {
            "<QUERY> lorem".into()
        }
    })
    .with_context(1000);
    let openai = OpenAi::new(&server.endpoint, "m", None).with_retry(fast(1));
    let settings = AgentSettings {
        rerank: true,
        ..AgentSettings::default()
    };
    let whole = exsearch_agent::prompt::rerank_turn(
        &settings,
        "lorem",
        &library.search("lorem", settings.k).expect("search"),
    );
    assert!(
        whole.len() / 3 > 1000,
        "the whole passages would not fit: {} bytes",
        whole.len()
    );
    let agent = Agent {
        generator: &openai,
        retriever: &library,
        settings: &settings,
    };
    let t = agent
        .answer(
            &Question::new("What does lorem say?"),
            Method::Exsearch,
            &Quiet,
            &CancelToken::new(),
        )
        .expect("answered");
    assert_eq!(server.refused(), 0, "no request over the server's context");
    assert_eq!(t.answer, "Oslo");
    // The ranking was asked for with shortened passages, and used.
    let asked = &t.side_calls[0].prompt[0].content;
    assert!(asked.len() < whole.len(), "{} bytes", asked.len());
    assert_eq!(t.steps[0].rerank.as_deref(), Some(&[1, 0][..]));
}
