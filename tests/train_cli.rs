//! `exsearch model init`, `exsearch demo em`, `exsearch train` and
//! `exsearch adapters` as a user runs them: a new model from a corpus, the
//! whole EM demonstration at a tiny size (world, index, warm-up, control, a
//! round, evaluations, store, charts, checkpoints a user can load), then a
//! warm-up and EM run of a person's own with LoRA adapters, their status,
//! the active adapter in `ask`, and merging; questions written from a
//! library by a model behind an OpenAI-compatible server.

mod common;
#[path = "common/fake_openai.rs"]
mod fake_openai;

use std::path::Path;

use serde_json::{json, Value};

#[test]
fn model_init_creates_a_model_that_generates() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, corpus, model) = (
        tmp.path().join("home"),
        tmp.path().join("corpus"),
        tmp.path().join("model"),
    );
    common::prose_corpus(&corpus, 5, 300);
    let out = common::ok(
        &home,
        &[
            "model",
            "init",
            model.to_str().expect("utf-8"),
            "--corpus",
            corpus.to_str().expect("utf-8"),
            "--hidden",
            "32",
            "--layers",
            "2",
            "--heads",
            "2",
            "--kv-heads",
            "1",
            "--intermediate",
            "64",
            "--vocab",
            "600",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 layers, hidden 32"), "{text}");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).expect("config"))
            .expect("json");
    assert_eq!(config["model_type"], "qwen2");
    let generated = common::json(
        &home,
        &[
            "generate",
            "-m",
            model.to_str().expect("utf-8"),
            "hello",
            "--max-tokens",
            "4",
            "--json",
        ],
    );
    assert!(
        generated["generated_tokens"].as_u64().unwrap_or(0) >= 1,
        "{generated}"
    );
    // A second init into the same folder needs --force.
    let again = common::exsearch(&home)
        .args(["model", "init", model.to_str().expect("utf-8"), "--corpus"])
        .arg(&corpus)
        .output()
        .expect("runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

fn tiny_demo(path: &Path) {
    let config = json!({
        "world": {"warmup": 6, "train": 6, "valid": 3, "test": 4, "cities": 4},
        "model": {"hidden": 32, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 64},
        "reading": {"questions": 8, "train": {"lr": 0.003, "epochs": 1, "token_budget": 2048, "checkpoint_every": 0}},
        "warmup": {"lr": 0.003, "epochs": 2, "token_budget": 2048, "checkpoint_every": 0},
        "patience": 1,
        "rounds": 1,
        "estep": {"samples": 2, "batch": 4},
        "mstep": {"lr": 0.001, "epochs": 1, "token_budget": 2048, "checkpoint_every": 0}
    });
    common::write(path, config.to_string());
}

#[test]
fn demo_em_runs_every_phase_and_leaves_its_evidence_on_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    let config = tmp.path().join("demo.json");
    tiny_demo(&config);
    let report = common::json(
        &home,
        &[
            "demo",
            "em",
            "--seed",
            "3",
            "--json",
            "--dir",
            run.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
    );
    for key in ["warmup_em", "control_em", "final_em"] {
        let v = report[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(report["round_em"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["seed"], 3);
    // The world a user can open.
    for file in [
        "warmup.jsonl",
        "train.jsonl",
        "valid.jsonl",
        "test.jsonl",
        "world.json",
    ] {
        assert!(run.join("world").join(file).is_file(), "{file}");
    }
    let test_questions = std::fs::read_to_string(run.join("world/test.jsonl")).expect("test");
    assert_eq!(test_questions.lines().count(), 4);
    assert!(run.join("warmup-trajectories.jsonl").is_file());
    // Every step, evaluation and round is in the run's SQLite file.
    let db = rusqlite::Connection::open(run.join("runs.sqlite")).expect("store");
    let steps = |phase: &str| -> i64 {
        db.query_row(
            "SELECT COUNT(*) FROM steps WHERE phase = ?1",
            [phase],
            |r| r.get(0),
        )
        .expect("count")
    };
    assert!(
        steps("reading") > 0
            && steps("warm-up") > 0
            && steps("round 1") > 0
            && steps("control") > 0
    );
    let rounds: i64 = db
        .query_row("SELECT COUNT(*) FROM rounds", [], |r| r.get(0))
        .expect("rounds");
    assert_eq!(rounds, 1);
    let (em, questions): (f64, i64) = db
        .query_row(
            "SELECT em, questions FROM evals WHERE phase = 'round 1' AND split = 'test'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("round 1 evaluated");
    assert_eq!(Some(em), report["round_em"][0].as_f64());
    assert_eq!(questions, 4);
    // The charts, drawn from the store.
    let svg = std::fs::read_to_string(run.join("charts/convergence.svg")).expect("chart");
    for title in [
        "Exact match per EM round",
        "M-step loss per step",
        "Effective sample size",
    ] {
        assert!(svg.contains(title), "{title}");
    }
    let png = std::fs::read(run.join("charts/convergence.png")).expect("png chart");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // Each checkpoint is a model folder `-m` loads.
    let checkpoint = run.join("checkpoints/round-1");
    let generated = common::json(
        &home,
        &[
            "generate",
            "-m",
            checkpoint.to_str().expect("utf-8"),
            "hi",
            "--max-tokens",
            "2",
            "--json",
        ],
    );
    assert!(generated["completions"].is_array(), "{generated}");
}

/// The demonstration at a size the suite can afford: 600 warm-up
/// trajectories, 150 EM questions, 60 held-out ones, and small steps (the
/// model learns to copy names after a number of steps, not of tokens).
/// The short run: the same seeded demonstration the app's end-to-end test
/// answers with (`tests/e2e/showcase-demo.json`).
fn short_demo(path: &Path) {
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/showcase-demo.json"),
    )
    .expect("tests/e2e/showcase-demo.json");
    common::write(path, config);
}

#[test]
fn demo_em_rounds_beat_the_warm_up_on_a_short_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    let config = tmp.path().join("short.json");
    short_demo(&config);
    let report = common::json(
        &home,
        &[
            "demo",
            "em",
            "--seed",
            "1",
            "--json",
            "--dir",
            s(&run),
            "--config",
            s(&config),
        ],
    );
    let em = |key: &str| report[key].as_f64().unwrap_or(-1.0);
    let round = report["round_em"][0].as_f64().unwrap_or(-1.0);
    // The round's model answers three of the 60 held-out questions more at
    // least: more than a tie broken by one lucky answer.
    assert!(
        round >= em("warmup_em") + 5.0,
        "EM after warm-up {}, after the round {round}: {report}",
        em("warmup_em"),
    );
    // The model kept is the one the 20 validation questions prefer, never
    // worse than the warm-up on them; on the held-out set it is the round's
    // or the warm-up's. (Validation on 20 questions can keep the warm-up:
    // two runs of this seed here kept one each.)
    let kept = match report["best_round"].as_u64() {
        Some(1) => round,
        Some(0) => em("warmup_em"),
        other => panic!("best round {other:?}: {report}"),
    };
    assert_eq!(em("final_em"), kept, "{report}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn train_warmup_then_em_with_adapters_a_user_can_list_use_and_merge() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (home, demo) = (tmp.path().join("home"), tmp.path().join("demo"));
    let config = tmp.path().join("demo.json");
    tiny_demo(&config);
    // The tiny demo gives a model, a world and warm-up trajectories.
    common::ok(
        &home,
        &[
            "demo",
            "em",
            "--seed",
            "5",
            "--dir",
            s(&demo),
            "--config",
            s(&config),
        ],
    );
    let model = demo.join("model");
    common::ok(&home, &["library", "add", s(&demo.join("world/corpus"))]);

    let warm = common::json(
        &home,
        &[
            "train",
            "warmup",
            "-m",
            s(&model),
            "--data",
            s(&demo.join("warmup-trajectories.jsonl")),
            "--epochs",
            "2",
            "--rank",
            "4",
            "--lr",
            "0.003",
            "--token-budget",
            "2048",
            "--name",
            "w",
            "--json",
        ],
    );
    assert_eq!(warm["active_adapter"], "w.warm-up", "{warm}");
    assert!(warm["phases"][0]["steps"].as_u64().unwrap_or(0) > 0);
    let adapter = home.join("adapters/w.warm-up");
    let peft: Value = serde_json::from_str(
        &std::fs::read_to_string(adapter.join("adapter_config.json")).expect("peft config"),
    )
    .expect("json");
    assert_eq!(peft["r"], 4);
    assert_eq!(peft["base_model_name_or_path"], s(&model));

    let em = common::json(
        &home,
        &[
            "train",
            "em",
            "-m",
            s(&model),
            "--adapter",
            "w.warm-up",
            "--data",
            s(&demo.join("world/train.jsonl")),
            "--valid",
            s(&demo.join("world/valid.jsonl")),
            "--rounds",
            "2",
            "--patience",
            "0",
            "-K",
            "2",
            "--rank",
            "4",
            "--lr",
            "0.003",
            "--token-budget",
            "2048",
            "-k",
            "1",
            "--max-steps",
            "2",
            "--name",
            "e",
            "--json",
        ],
    );
    assert_eq!(em["phases"].as_array().map(Vec::len), Some(2), "{em}");
    let best = em["best"].as_str().expect("a best round").replace(' ', "-");
    assert_eq!(em["active_adapter"], format!("e.{best}"));

    // Status: every round's E-step figures and validation.
    let status = common::json(&home, &["train", "status", "e", "--json"]);
    assert_eq!(
        status["rounds"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    let phases: Vec<&str> = status["evals"]
        .as_array()
        .expect("evals")
        .iter()
        .filter_map(|e| e["phase"].as_str())
        .collect();
    assert_eq!(phases, ["start", "round 1", "round 2"]);
    let runs = common::json(&home, &["train", "status", "--json"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(2));
    for chart in ["convergence.svg", "convergence.png", "em.png", "loss.svg"] {
        assert!(
            home.join("training/e/charts").join(chart).is_file(),
            "{chart}"
        );
    }
    // A finished run resumed does nothing again.
    let again = common::ok(&home, &["train", "resume", "e"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("round 2 (finished before)"), "{err}");

    // The adapters, the active one marked.
    let list = common::json(&home, &["adapters", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["e.round-1", "e.round-2", "w.warm-up"]);
    let active: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|a| a["active"] == true)
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(active, [format!("e.{best}").as_str()]);

    // `ask` applies the active adapter to its base model, and says so.
    let asked = common::exsearch(&home)
        .args([
            "ask",
            "-m",
            s(&model),
            "--json",
            "--max-steps",
            "1",
            "-k",
            "1",
        ])
        .arg("Where was the author of The Vela born?")
        .output()
        .expect("runs");
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let err = String::from_utf8_lossy(&asked.stderr);
    assert!(err.contains(&format!("adapter: e.{best}")), "{err}");

    common::ok(&home, &["adapters", "use", "w.warm-up"]);
    let list = common::json(&home, &["adapters", "list", "--json"]);
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .any(|a| a["name"] == "w.warm-up" && a["active"] == true));
    let unknown = common::exsearch(&home)
        .args(["adapters", "use", "nope"])
        .output()
        .expect("runs");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("w.warm-up"));

    // Merged into the base: a plain model folder anything loads.
    let merged = tmp.path().join("merged");
    common::ok(
        &home,
        &["adapters", "merge", "w.warm-up", "--out", s(&merged)],
    );
    let generated = common::json(
        &home,
        &[
            "generate",
            "-m",
            s(&merged),
            "hi",
            "--max-tokens",
            "2",
            "--json",
        ],
    );
    assert!(generated["completions"].is_array(), "{generated}");
    common::ok(&home, &["adapters", "use", "--none"]);
    let list = common::json(&home, &["adapters", "list", "--json"]);
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|a| a["active"] == false));

    // A disk that fills while a checkpoint is written: the run stops with an
    // error naming the file, and `train resume` finishes it.
    let trajectories = demo.join("warmup-trajectories.jsonl");
    let args = [
        "train",
        "warmup",
        "-m",
        s(&model),
        "--data",
        s(&trajectories),
        "--epochs",
        "1",
        "--rank",
        "4",
        "--token-budget",
        "2048",
        "--name",
        "full-disk",
    ];
    let failed = common::exsearch(&home)
        .args(args)
        .env("EXSEARCH_FAIL_AT", "checkpoint")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "{err}");
    assert!(
        err.contains("optimizer.safetensors") && err.contains("No space left on device"),
        "{err}"
    );
    let resumed = common::json(&home, &["train", "resume", "full-disk", "--json"]);
    assert_eq!(resumed["active_adapter"], "full-disk.warm-up", "{resumed}");
    let status = common::json(&home, &["train", "status", "--json"]);
    assert!(
        status
            .as_array()
            .expect("runs")
            .iter()
            .any(|r| r["name"] == "full-disk" && r["finished"] == true),
        "{status}"
    );
}

#[test]
fn train_em_killed_at_any_moment_resumes_to_the_end() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    let tmp = tempfile::tempdir().expect("tmp");
    let (home, demo) = (tmp.path().join("home"), tmp.path().join("demo"));
    let config = tmp.path().join("demo.json");
    tiny_demo(&config);
    common::ok(
        &home,
        &[
            "demo",
            "em",
            "--seed",
            "3",
            "--dir",
            s(&demo),
            "--config",
            s(&config),
        ],
    );
    common::ok(&home, &["library", "add", s(&demo.join("world/corpus"))]);
    let model = demo.join("model");
    let (train, valid) = (
        demo.join("world/train.jsonl"),
        demo.join("world/valid.jsonl"),
    );
    let em = |name: &str| {
        let mut cmd = common::exsearch(&home);
        cmd.args([
            "train",
            "em",
            "-m",
            s(&model),
            "--data",
            s(&train),
            "--valid",
            s(&valid),
            "--rounds",
            "2",
            "--patience",
            "0",
            "-K",
            "2",
            "--rank",
            "4",
            "--lr",
            "0.003",
            "--token-budget",
            "2048",
            "-k",
            "1",
            "--max-steps",
            "2",
            "--name",
            name,
        ]);
        cmd
    };
    // An unbroken run, for its length and what it leaves.
    let started = Instant::now();
    let out = em("whole").output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole = started.elapsed();
    let rounds = |name: &str| {
        common::json(&home, &["train", "status", name, "--json"])["rounds"]
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(rounds("whole"), Some(2));

    let mut killed = 0;
    // Shares of the unbroken run's length, short of its end: a busy
    // machine may run the killed ones faster than it ran the whole one.
    let (seed, moments) = common::kill_moments(3, 0.05, 0.85);
    for (i, share) in moments.into_iter().enumerate() {
        let share = (share * 100.0).round() / 100.0;
        let name = format!("killed-{i}");
        let mut child = em(&name)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(whole.mul_f64(share).max(Duration::from_millis(50)));
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        if status.signal() != Some(9) {
            continue; // it finished first: nothing to resume
        }
        killed += 1;
        let resumed = common::exsearch(&home)
            .args(["train", "resume", &name, "--json"])
            .output()
            .expect("resume");
        assert!(
            resumed.status.success(),
            "killed at {share} of the run (EXSEARCH_KILL_SEED={seed}): {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_eq!(
            rounds(&name),
            Some(2),
            "killed at {share} of the run (EXSEARCH_KILL_SEED={seed})"
        );
        let list = common::json(&home, &["train", "status", "--json"]);
        assert!(
            list.as_array()
                .expect("runs")
                .iter()
                .any(|r| r["name"] == name.as_str() && r["finished"] == true),
            "{list}"
        );
    }
    assert!(
        killed >= 2,
        "only {killed} of 3 runs were killed before they ended"
    );
}

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
