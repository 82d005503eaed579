//! `exsearch ask`, `exsearch chats` and `exsearch eval` as a user runs them:
//! the real binary over a real library, an OpenAI-compatible server on
//! loopback as the model, and a tiny random model loaded from disk.

mod common;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use std::path::Path;

use candle_core::DType;
use exsearch_model::fixtures;
use exsearch_model::model::Family;
use fake_openai::FakeOpenAi;
use serde_json::Value;

fn library(home: &Path, docs: &Path) {
    common::write(
        &docs.join("velcora.md"),
        "# Velcora\n\nVelcora is a shipping company. Velcora was founded by Ada Lind in 1990.\n",
    );
    common::write(
        &docs.join("ada.md"),
        "# Ada Lind\n\nAda Lind was born in Oslo.\n",
    );
    common::ok(home, &["library", "add", docs.to_str().expect("utf-8")]);
}

const TRAJECTORY: [&str; 4] = [
    "<QUERY> who founded Velcora",
    "<FACT> Velcora was founded by Ada Lind.\n<QUERY> where was Ada Lind born",
    "<FACT> Ada Lind was born in Oslo.\n<FINAL>",
    "Oslo",
];

#[test]
fn ask_prints_each_step_and_cited_passages_and_keeps_the_conversation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    library(&home, &docs);
    let mut replies: Vec<&str> = TRAJECTORY.to_vec();
    replies.extend(TRAJECTORY);
    replies.extend(["<QUERY> Velcora founded", "<FACT> in 1990\n<FINAL>", "1990"]);
    let server = FakeOpenAi::serve(replies);
    let question = "In which city was the founder of Velcora born?";
    let out = common::ok(&home, &["ask", "--endpoint", &server.endpoint, question]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let velcora = docs.join("velcora.md");
    let ada = docs.join("ada.md");
    for line in [
        "[1] search: who founded Velcora".to_string(),
        "    evidence: Velcora was founded by Ada Lind.".to_string(),
        "[2] search: where was Ada Lind born".to_string(),
        "answer: Oslo".to_string(),
        format!("  [1] {} chars ", velcora.display()),
        format!("  [2] {} chars ", ada.display()),
    ] {
        assert!(stdout.contains(&line), "missing {line:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("    found 2: Velcora; Ada Lind")
            || stdout.contains("    found 2: Ada Lind; Velcora"),
        "{stdout}"
    );

    // --json prints the whole trajectory.
    let out = common::ok(
        &home,
        &["ask", "--endpoint", &server.endpoint, "--json", question],
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let t = &v["trajectory"];
    assert_eq!(t["answer"], "Oslo");
    assert_eq!(t["steps"][1]["query"], "where was Ada Lind born");
    assert_eq!(
        t["steps"][0]["evidence"],
        "Velcora was founded by Ada Lind."
    );
    assert_eq!(
        t["steps"][0]["passages"][0]["passage_id"]
            .as_str()
            .map(str::len),
        Some(16)
    );
    assert_eq!(
        t["citations"][1]["passage"]["path"],
        ada.to_str().expect("utf-8")
    );
    assert_eq!(t["citations"][1]["number"], 2);
    let second = v["conversation"].as_i64().expect("id");

    // A follow-up continues the conversation and sees its answer.
    let out = common::ok(
        &home,
        &[
            "ask",
            "--endpoint",
            &server.endpoint,
            "--chat",
            &second.to_string(),
            "When was Velcora founded?",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("answer: 1990"));
    let follow_up = &server.requests()[8]["messages"];
    assert_eq!(follow_up[0]["content"], question);
    assert_eq!(follow_up[1]["content"], "Oslo");

    let chats = common::json(&home, &["chats", "list", "--json"]);
    let chats = chats.as_array().expect("list");
    assert_eq!(chats.len(), 2);
    assert_eq!(
        (chats[0]["id"].as_i64(), chats[0]["turns"].as_u64()),
        (Some(second), Some(2))
    );
    let shown = common::json(&home, &["chats", "show", &second.to_string(), "--json"]);
    assert_eq!(shown["turns"][1]["question"], "When was Velcora founded?");
    assert_eq!(shown["turns"][1]["status"], "answered");
    assert_eq!(
        shown["turns"][0]["trajectory"]["citations"][0]["passage"]["path"],
        velcora.to_str().expect("utf-8")
    );
    let text = common::ok(&home, &["chats", "show", &second.to_string()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("A: 1990"));

    // A failing server leaves the question on record with its error.
    let down = FakeOpenAi::serve(["HTTP 500 out of memory", "HTTP 500 out of memory"]);
    let out = common::exsearch(&home)
        .args([
            "ask",
            "--retries",
            "2",
            "--endpoint",
            &down.endpoint,
            "--chat",
            &second.to_string(),
            "Why?",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("HTTP 500: ") && stderr.contains("gave up after 2 tries"),
        "{stderr}"
    );
    assert_eq!(down.requests().len(), 2, "a 5xx is tried again");
    let shown = common::json(&home, &["chats", "show", &second.to_string(), "--json"]);
    assert_eq!(shown["turns"][2]["status"], "failed");
    assert!(shown["turns"][2]["error"]
        .as_str()
        .expect("error")
        .contains("out of memory"));

    let out = common::exsearch(&home)
        .args(["chats", "show", "999"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no conversation 999"));
}

#[test]
fn ask_with_a_tiny_local_model_and_eval_with_the_oracle() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    library(&home, &docs);
    let model = tmp.path().join("model");
    fixtures::write_hf_model(&model, &fixtures::tiny_config(Family::Llama), 3, DType::F32)
        .expect("fixture");
    let v = common::json(
        &home,
        &[
            "ask",
            "--model",
            model.to_str().expect("utf-8"),
            "--max-steps",
            "2",
            "--seed",
            "5",
            "--json",
            "Who founded Velcora?",
        ],
    );
    let t = &v["trajectory"];
    assert!(t["steps"].as_array().expect("steps").len() <= 2);
    assert!(
        ["finished", "budget", "unparsable", "repeated"].contains(&t["end"].as_str().expect("end")),
        "{t}"
    );
    assert!(t["generated_tokens"].as_u64().expect("tokens") > 0);

    let out = common::exsearch(&home)
        .args(["ask", "Q?"])
        .env_remove("EXSEARCH_MODEL")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model: pass --model"));

    let data = tmp.path().join("qa.jsonl");
    common::write(
        &data,
        concat!(
            r#"{"question": "Where was the founder of Velcora born?", "answers": ["Oslo"], "contexts": [{"title": "Velcora", "text": "Velcora was founded by Ada Lind.", "supporting": true}, {"title": "Ada Lind", "text": "Ada Lind was born in Oslo.", "supporting": true}, {"title": "Ships", "text": "Ships carry containers.", "supporting": false}]}"#,
            "\n"
        ),
    );
    let results = tmp.path().join("results.jsonl");
    let summary = common::json(
        &home,
        &[
            "eval",
            "--data",
            data.to_str().expect("utf-8"),
            "--corpus-from-contexts",
            "--oracle",
            "--out",
            results.to_str().expect("utf-8"),
            "--json",
        ],
    );
    assert_eq!(
        (summary["questions"].as_u64(), summary["complete"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        (summary["em"].as_f64(), summary["recall"].as_f64()),
        (Some(100.0), Some(100.0))
    );
    assert_eq!(summary["avg_steps"].as_f64(), Some(2.0));
    let line: Value =
        serde_json::from_str(std::fs::read_to_string(&results).expect("results").trim())
            .expect("json");
    assert_eq!(line["prediction"], "Oslo");

    let out = common::ok(
        &home,
        &[
            "eval",
            "--data",
            data.to_str().expect("utf-8"),
            "--corpus-from-contexts",
            "--oracle",
            "--method",
            "rag",
        ],
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| rag | 1 | 100.0 | 100.0 | 100.0 |"),
        "{table}"
    );
}

#[test]
fn eval_records_a_question_the_server_refuses_and_scores_the_others() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let data = tmp.path().join("qa.jsonl");
    let item = |q: &str, a: &str| {
        serde_json::json!({"question": q, "answers": [a],
            "contexts": [{"title": a, "text": format!("{a} is a city."), "supporting": true}]})
        .to_string()
    };
    common::write(
        &data,
        [
            item("Where is Lune?", "Oslo"),
            item("Where is a very long question?", "Bergen"),
            item("Where is Dunmore?", "Oslo"),
        ]
        .join("\n"),
    );
    // As llama.cpp's server answers a prompt longer than its context: 400,
    // for that question only; a 503 once for another, then its answer.
    let flaky = std::sync::atomic::AtomicUsize::new(0);
    let server = FakeOpenAi::serve_by(move |body| {
        let prompt = body["messages"].to_string();
        if prompt.contains("very long") {
            "HTTP 400 the request exceeds the available context size".into()
        } else if prompt.contains("Dunmore")
            && flaky.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            "HTTP 503 loading model".into()
        } else {
            "Oslo".into()
        }
    });
    let results = tmp.path().join("results.jsonl");
    let out = common::exsearch(&home)
        .args([
            "eval",
            "--data",
            data.to_str().expect("utf-8"),
            "--corpus-from-contexts",
            "--endpoint",
            &server.endpoint,
            "--method",
            "direct",
            "--batch",
            "3",
            "--out",
            results.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "some failed: {stdout}");
    assert!(stdout.contains("FAILED: 1 of 3"), "{stdout}");
    assert!(stdout.contains("| direct | 3 | 66.7 |"), "{stdout}");
    let lines: Vec<Value> = std::fs::read_to_string(&results)
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3, "every question on record");
    assert_eq!(lines[1]["end"], "failed");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap_or("")
        .contains("HTTP 400: the request exceeds the available context size"));
    assert_eq!(
        (
            lines[0]["prediction"].as_str(),
            lines[2]["prediction"].as_str()
        ),
        (Some("Oslo"), Some("Oslo"))
    );
}

#[test]
fn a_full_disk_when_the_answer_is_stored_keeps_the_question_with_why() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let server = FakeOpenAi::serve(["Oslo", "Bergen"]);
    let ask = |fault: Option<&str>| {
        let mut cmd = common::exsearch(&home);
        cmd.args([
            "ask",
            "--endpoint",
            &server.endpoint,
            "--method",
            "direct",
            "Where?",
        ]);
        if let Some(point) = fault {
            cmd.env("EXSEARCH_FAIL_AT", point);
        }
        cmd.output().expect("run")
    };
    let out = ask(Some("chats_write"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let chats = common::json(&home, &["chats", "list", "--json"]);
    let id = chats[0]["id"].as_i64().expect("the question is kept");
    let shown = common::json(&home, &["chats", "show", &id.to_string(), "--json"]);
    assert_eq!(shown["turns"][0]["status"], "failed", "{shown}");
    assert!(shown["turns"][0]["error"]
        .as_str()
        .unwrap_or("")
        .contains("the answer could not be stored"));
    // The disk has room again: the next question is answered and kept.
    let out = ask(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        common::json(&home, &["chats", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
