//! `exsearch train questions` and `exsearch train auto` as a user runs
//! them: questions written from a library by a model behind an
//! OpenAI-compatible server, read back as a QA file, and a run that trains
//! on them and resumes without redoing anything.

mod common;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use std::path::Path;

use serde_json::{json, Value};

/// Four documents: Shirley Temple joins a film to her career, Maple Press
/// a library's copy to the year it first printed.
fn question_library(home: &Path, docs: &Path) {
    for (file, title, text) in [
        (
            "kiss.md",
            "Kiss and Tell",
            "Kiss and Tell is a comedy film starring Shirley Temple as a teenage girl.",
        ),
        (
            "temple.md",
            "Shirley Temple",
            "Shirley Temple later served as the Chief of Protocol.",
        ),
        (
            "maple.md",
            "Maple Press",
            "Maple Press printed its first book in 1921.",
        ),
        (
            "oak.md",
            "Oak Street Library",
            "Oak Street Library holds a copy printed by Maple Press.",
        ),
    ] {
        common::write(&docs.join(file), format!("# {title}\n\n{text}\n"));
    }
    common::ok(home, &["library", "add", docs.to_str().expect("utf-8")]);
}

/// A model that follows the prompts: the question the blanked sentence
/// asks, a description naming the first passage's title, and as a reader
/// the last of the library's names in the last passage it is given that
/// the question lacks (a two-hop question only from both passages).
fn question_writer(body: &Value) -> String {
    let messages = body["messages"].as_array().expect("messages");
    let last = messages.last().expect("a message")["content"]
        .as_str()
        .expect("text");
    let after = |s: &str| s.split_once("): ").expect("a text").1.to_string();
    if last.starts_with("Write the question") {
        return format!(
            "{}?",
            after(last).trim_end_matches('.').replace("___", "what")
        );
    }
    if last.starts_with("Describe") {
        let title = last
            .split_once("Text (")
            .expect("(")
            .1
            .split_once(')')
            .expect(")")
            .0;
        return format!("the one named in the text about {title}");
    }
    let (text, question) = last.split_once("\nQuestion: ").expect("a reading prompt");
    let passages: Vec<&str> = text.lines().skip(1).collect();
    if question.contains("the one named") && passages.len() < 2 {
        return "I cannot tell".into();
    }
    let last_passage = passages.last().expect("a passage");
    ["Shirley Temple", "Chief of Protocol", "1921", "Maple Press"]
        .into_iter()
        .filter(|name| last_passage.contains(name) && !question.contains(name))
        .max_by_key(|name| last_passage.rfind(name))
        .unwrap_or("I cannot tell")
        .to_string()
}

#[test]
fn train_questions_writes_one_and_two_hop_questions_that_read_back_as_a_qa_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    // An empty library: nothing to write from, and the message says why.
    let server = fake_openai::FakeOpenAi::serve_by(question_writer);
    let (out, all) = (tmp.path().join("qa.jsonl"), tmp.path().join("all.jsonl"));
    let args = |n: &str| {
        vec![
            "train".to_string(),
            "questions".into(),
            "--endpoint".into(),
            server.endpoint.clone(),
            "-n".into(),
            n.into(),
            "--two-hop".into(),
            "1".into(),
            "--out".into(),
            s(&out),
            "--all".into(),
            s(&all),
        ]
    };
    let empty = common::exsearch(&home)
        .args(args("4"))
        .output()
        .expect("run");
    assert!(!empty.status.success());
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("no passages"), "{err}");

    question_library(&home, &tmp.path().join("docs"));
    let mut json_args = args("4");
    json_args.push("--json".into());
    let json_args: Vec<&str> = json_args.iter().map(String::as_str).collect();
    let summary = common::json(&home, &json_args);
    assert_eq!(summary["candidates"], 4, "{summary}");
    assert_eq!(
        (&summary["kept_one_hop"], &summary["kept_two_hop"]),
        (&json!(2), &json!(2)),
        "{summary}"
    );
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .expect("written")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    };
    let kept = lines(&out);
    assert_eq!(kept.len(), 4);
    let chief = kept
        .iter()
        .find(|q| q["answers"][0] == "1921")
        .expect("the two-hop question about Maple Press");
    assert_eq!(
        chief["question"],
        "the one named in the text about Oak Street Library printed its first book in what?"
    );
    assert_eq!(chief["hops"], 2);
    assert_eq!(chief["bridge"], "Maple Press");
    assert_eq!(
        chief["construction"]["queries"],
        json!(["Oak Street Library", "Maple Press"])
    );
    assert!(lines(&all).iter().all(|q| q["fate"] == "kept"));

    // The file is a QA file: the searches that built its questions, run
    // over the library, find every answer.
    let eval = common::json(&home, &["eval", "--data", &s(&out), "--oracle", "--json"]);
    assert_eq!(
        (
            eval["questions"].as_u64(),
            eval["em"].as_f64(),
            eval["recall"].as_f64()
        ),
        (Some(4), Some(100.0), Some(100.0)),
        "{eval}"
    );

    // A model that cannot read: every candidate is kept on record with why
    // it was filtered, and the run says it fell short.
    let mute = fake_openai::FakeOpenAi::serve_by(|body: &Value| {
        let last = body["messages"]
            .as_array()
            .expect("messages")
            .last()
            .expect("m")["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if last.starts_with("Answer the question") {
            "I cannot tell".into()
        } else {
            question_writer(body)
        }
    });
    let mut mute_args = args("4");
    mute_args[3] = mute.endpoint.clone();
    let mute_args: Vec<&str> = mute_args.iter().map(String::as_str).collect();
    let printed = common::ok(&home, &mute_args);
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.contains("kept 0 of 4 candidates"), "{text}");
    assert!(text.contains("not answered from its passages"), "{text}");
    assert!(text.contains("fewer than the 4 asked for"), "{text}");
    assert_eq!(lines(&out).len(), 0);
    for q in lines(&all) {
        assert_eq!(q["fate"], "filtered", "{q}");
        assert_eq!(q["filter"], "unanswerable", "{q}");
        assert!(
            q["why"].as_str().expect("why").contains("I cannot tell"),
            "{q}"
        );
    }
}

/// A tiny random Llama as a Q4_K_M GGUF file (the format of the real
/// models people download).
fn tiny_gguf(dir: &Path) -> std::path::PathBuf {
    use exsearch_model::fixtures;
    use exsearch_model::model::Family;

    let model_dir = dir.join("model");
    fixtures::write_hf_model(
        &model_dir,
        &fixtures::tiny_config(Family::Llama),
        7,
        candle_core::DType::F32,
    )
    .expect("fixture");
    let gguf = dir.join("tiny-q4_k_m.gguf");
    fixtures::write_gguf(&model_dir, &gguf, fixtures::Quant::Q4KM).expect("gguf");
    gguf
}

#[test]
fn train_auto_trains_on_questions_from_the_library_and_resumes_without_redoing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    question_library(&home, &tmp.path().join("docs"));
    let gguf = tiny_gguf(tmp.path());
    let config = tmp.path().join("auto.json");
    common::write(
        &config,
        json!({
            "tuning": {"lora": {"rank": 2, "alpha": 4.0, "dropout": 0.0,
                "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}},
            "warmup": {"lr": 0.001, "epochs": 1, "token_budget": 1024, "checkpoint_every": 1},
            "estep": {"samples": 2, "batch": 2},
            "mstep": {"lr": 0.001, "epochs": 1, "token_budget": 1024, "checkpoint_every": 1},
            "agent": {"instructions": "Search with {query}, read {search}, note {fact}, end with {finish}.",
                      "final_request": "Answer: {question}", "k": 1, "max_steps": 2,
                      "step_tokens": 12, "answer_tokens": 6, "passage_chars": 120}
        })
        .to_string(),
    );
    let auto = |extra: &[&str]| {
        let mut args = vec![
            "train".to_string(),
            "auto".into(),
            "-m".into(),
            s(&gguf),
            "--config".into(),
            s(&config),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };

    // The tiny random model writes nothing usable: the run stops before
    // training and says why, every candidate on record with its fate.
    let out = common::exsearch(&home)
        .args(auto(&["--questions", "4", "--name", "mine"]))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0 questions") && err.contains("questions.jsonl"),
        "{err}"
    );
    let record = home.join("training/mine/questions.jsonl");
    let fates: Vec<Value> = std::fs::read_to_string(&record)
        .expect("every candidate recorded")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(fates.len(), 4, "one candidate per passage");
    assert!(fates
        .iter()
        .all(|q| q["fate"] == "filtered" && q["why"].as_str().is_some_and(|w| !w.is_empty())));

    // Questions written by a stronger model behind a server train it.
    let server = fake_openai::FakeOpenAi::serve_by(question_writer);
    let qa = tmp.path().join("qa.jsonl");
    common::ok(
        &home,
        &[
            "train",
            "questions",
            "--endpoint",
            &server.endpoint,
            "-n",
            "4",
            "--two-hop",
            "1",
            "--out",
            &s(&qa),
        ],
    );
    let args = auto(&["--questions-file", &s(&qa), "--name", "taught", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = common::json(&home, &args);
    assert_eq!(
        (&report["questions"]["train"], &report["questions"]["valid"]),
        (&json!(3), &json!(1)),
        "{report}"
    );
    let before = report["questions"]["start_em"].as_f64().expect("EM before");
    assert!((0.0..=100.0).contains(&before));
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase"))
        .collect();
    assert_eq!(phases, ["warm-up", "round 1"], "{report}");
    assert!(report["phases"][0]["steps"].as_u64().unwrap_or(0) > 0);
    let best = report["best"].as_str().expect("best").replace(' ', "-");
    assert_eq!(report["active_adapter"], format!("taught.{best}").as_str());
    let evals = |name: &str| -> i64 {
        rusqlite::Connection::open(home.join("training").join(name).join("runs.sqlite"))
            .and_then(|db| db.query_row("SELECT COUNT(*) FROM evals", [], |r| r.get(0)))
            .expect("evals")
    };
    // Before, after the warm-up, after the round.
    assert_eq!(evals("taught"), 3);

    // `train status` shows held-out questions answered before and after.
    let status = common::json(&home, &["train", "status", "taught", "--json"]);
    let compared = status["before_after"].as_array().expect("before/after");
    assert_eq!(compared.len(), 1, "the one held-out question: {status}");
    let row = &compared[0];
    assert!(
        ["Shirley Temple", "Chief of Protocol", "1921", "Maple Press"]
            .contains(&row["answer"].as_str().expect("answer")),
        "{row}"
    );
    assert!(
        row["before"].is_string() && row["after"].is_string(),
        "{row}"
    );

    // Resumed after it finished: nothing is trained or measured again.
    let again = common::json(&home, &["train", "resume", "taught", "--json"]);
    assert_eq!(again, report);
    assert_eq!(evals("taught"), 3);
}
