//! `exsearch model init` and `exsearch demo em` as a user runs them: a new
//! model from a corpus, then the whole EM demonstration at a tiny size
//! (world, index, warm-up, control, a round, evaluations, store, charts,
//! checkpoints a user can load).

mod common;

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
    assert!(steps("warm-up") > 0 && steps("round 1") > 0 && steps("control") > 0);
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
