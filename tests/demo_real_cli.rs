//! `exsearch demo real` as a user runs it, on a tiny Llama written as a
//! Q4_K_M GGUF file: adapters trained over the quantized model, the best
//! one made active and used by `eval` with the search settings it was
//! trained with, resuming by running the same command again, and
//! `kill -9` at three moments and at two random points of its progress.

mod common;
#[path = "common/qa.rs"]
mod qa;

use std::path::Path;

use common::s;
use serde_json::{json, Value};

/// A tiny Llama as a Q4_K_M GGUF file, 14 questions and settings small
/// enough for a test: the model file, the QA file and the config file.
fn real_demo_inputs(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use candle_core::DType;
    use exsearch_model::fixtures;
    use exsearch_model::model::Family;

    let model_dir = dir.join("model");
    fixtures::write_hf_model(
        &model_dir,
        &fixtures::tiny_config(Family::Llama),
        7,
        DType::F32,
    )
    .expect("fixture");
    let gguf = dir.join("tiny-q4_k_m.gguf");
    fixtures::write_gguf(&model_dir, &gguf, fixtures::Quant::Q4KM).expect("gguf");
    let data = dir.join("qa.jsonl");
    qa::small_qa(&data, 14);
    let config = dir.join("real.json");
    common::write(&config, real_demo_settings().to_string());
    (gguf, data, config)
}

fn real_demo_settings() -> Value {
    json!({
        "warmup": 4, "train": 3, "valid": 2, "test": 3,
        "lora": {"rank": 2, "alpha": 4.0, "dropout": 0.0,
                 "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
        "warmup_train": {"lr": 0.001, "epochs": 2, "token_budget": 1024, "checkpoint_every": 1},
        "rounds": 1,
        "estep": {"samples": 2, "batch": 2},
        "mstep": {"lr": 0.001, "epochs": 1, "token_budget": 1024, "checkpoint_every": 1},
        "agent": {"instructions": "Search with {query}, read {search}, note {fact}, end with {finish}.",
                  "final_request": "Answer: {question}", "k": 1, "max_steps": 2,
                  "step_tokens": 12, "answer_tokens": 6, "passage_chars": 120}
    })
}

fn demo_real_args<'a>(
    gguf: &'a Path,
    data: &'a Path,
    config: &'a Path,
    dir: &'a Path,
) -> Vec<&'a str> {
    vec![
        "demo",
        "real",
        "-m",
        s(gguf),
        "--data",
        s(data),
        "--config",
        s(config),
        "--dir",
        s(dir),
        "--json",
    ]
}

fn evals_recorded(dir: &Path) -> i64 {
    rusqlite::Connection::open(dir.join("runs.sqlite"))
        .and_then(|db| db.query_row("SELECT COUNT(*) FROM evals", [], |r| r.get(0)))
        .expect("evals")
}

#[test]
fn demo_real_trains_adapters_over_a_quantized_model_makes_the_best_active_and_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let (gguf, data, config) = real_demo_inputs(tmp.path());
    let settings = real_demo_settings();
    let dir = tmp.path().join("d");
    let args = demo_real_args(&gguf, &data, &config, &dir);
    let report = common::json(&home, &args);
    for method in ["direct", "rag", "exsearch"] {
        let em = report["zero_shot"][method]["em"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&em), "{method}: {report}");
    }
    for key in ["warmup_em", "control_em", "final_em"] {
        let v = report[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&v), "{key} = {v}");
    }
    assert_eq!(report["round_em"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        report["questions"],
        json!({"warmup": 4, "train": 3, "valid": 2, "test": 3})
    );
    // The phase validation chose is the active adapter, in PEFT's layout
    // with the base model's Hugging Face module names.
    let best = report["best"]
        .as_str()
        .expect("a best phase")
        .replace(' ', "-");
    let active = format!("d.{best}");
    assert_eq!(report["active_adapter"], active.as_str());
    let adapters = common::json(&home, &["adapters", "list", "--json"]);
    let listed = adapters
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["name"] == active.as_str())
        .expect("the active adapter is listed");
    assert_eq!(listed["active"], true);
    let peft: Value = serde_json::from_str(
        &std::fs::read_to_string(
            home.join("adapters")
                .join(&active)
                .join("adapter_config.json"),
        )
        .expect("adapter_config.json"),
    )
    .expect("json");
    assert_eq!(peft["peft_type"], "LORA");
    assert!(peft["target_modules"]
        .as_array()
        .expect("targets")
        .contains(&json!("q_proj")));
    // `eval` with the base model answers through the active adapter and
    // searches as it was trained to; `--adapter none` leaves both off.
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "-m",
            s(&gguf),
            "--data",
            s(&data),
            "--corpus-from-contexts",
            "--limit",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        // Questions the tiny model cannot fit in its context fail alone
        // (exit 2); what is said on stderr is what matters here.
        let out = common::exsearch(&home).args(&args).output().expect("runs");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = eval(&[]);
    assert!(
        err.contains(&format!("adapter: {active}")) && err.contains("k = 1, at most 2 searches"),
        "{err}"
    );
    let err = eval(&["--adapter", "none"]);
    assert!(
        !err.contains("adapter") && !err.contains("searching as"),
        "{err}"
    );
    // Every phase evaluated once; run again, it reads them back.
    let before = evals_recorded(&dir);
    let again = common::json(&home, &args);
    assert_eq!(evals_recorded(&dir), before, "nothing evaluated twice");
    for key in [
        "zero_shot",
        "warmup_em",
        "round_em",
        "control_em",
        "best",
        "final_em",
    ] {
        assert_eq!(again[key], report[key], "{key}");
    }
    // Other settings in the same folder are refused, naming it.
    common::write(&config, {
        let mut other = settings.clone();
        other["rounds"] = json!(2);
        other.to_string()
    });
    let out = common::exsearch(&home).args(&args).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("other settings") && err.contains(s(&dir)),
        "{err}"
    );
}

/// Every step's loss and gradient norm, every evaluation and every round's
/// E-step figures, in order.
fn recorded(dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(dir.join("runs.sqlite")).expect("store");
    let rows = |sql: &str| -> Vec<String> {
        let mut statement = db.prepare(sql).expect("query");
        let rows = statement
            .query_map([], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|r| r.expect("row"));
        rows.collect()
    };
    [
        "SELECT phase || ' ' || step || ' ' || loss || ' ' || grad_norm FROM steps ORDER BY phase, step",
        "SELECT phase || ' ' || split || ' ' || em || ' ' || f1 || ' ' || recall FROM evals ORDER BY phase, split",
        "SELECT round || ' ' || sample_em || ' ' || bound || ' ' || ess FROM rounds ORDER BY round",
    ]
    .iter()
    .flat_map(|sql| rows(sql))
    .collect()
}

#[test]
fn demo_real_with_lora_dropout_repeats_under_the_same_seed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let (gguf, data, config) = real_demo_inputs(tmp.path());
    let mut settings = real_demo_settings();
    settings["lora"]["dropout"] = json!(0.2);
    common::write(&config, settings.to_string());
    let run = |name: &str| {
        let dir = tmp.path().join(name);
        common::json(&home, &demo_real_args(&gguf, &data, &config, &dir));
        recorded(&dir)
    };
    let first = run("a");
    assert!(
        first.iter().filter(|r| r.starts_with("warm-up ")).count() >= 4,
        "{first:?}"
    );
    assert!(first.iter().any(|r| r.starts_with("round 1 ")), "{first:?}");
    assert_eq!(run("b"), first, "the same seed, the same run");
}

#[test]
fn demo_real_killed_at_any_moment_resumes_to_the_end() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let (gguf, data, config) = real_demo_inputs(tmp.path());
    // An unbroken run, for what it records.
    let whole = tmp.path().join("whole");
    let report = common::json(&home, &demo_real_args(&gguf, &data, &config, &whole));
    let evals = evals_recorded(&whole);
    assert_eq!(report["round_em"].as_array().map(Vec::len), Some(1));

    // Killed while the baselines are measured, while the warm-up trains,
    // during the EM round, and at two random points of its progress (the
    // training steps and evaluations it has recorded: unlike a share of
    // the clock, that lands inside the run however fast the machine is).
    let count = |dir: &Path, sql: &str| -> i64 {
        rusqlite::Connection::open(dir.join("runs.sqlite"))
            .and_then(|db| db.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let progress = move |dir: &Path| {
        count(dir, "SELECT COUNT(*) FROM steps") + count(dir, "SELECT COUNT(*) FROM evals")
    };
    let total = progress(&whole);
    assert!(total >= 4, "the run records its progress: {total}");
    type Moment = Box<dyn Fn(&Path) -> bool>;
    let mut moments: Vec<(String, Moment)> = vec![
        (
            "a baseline".into(),
            Box::new(|d: &Path| d.join("evals").is_dir()),
        ),
        (
            "the warm-up".into(),
            Box::new(move |d: &Path| {
                count(d, "SELECT COUNT(*) FROM steps WHERE phase = 'warm-up'") > 0
            }),
        ),
        (
            "the EM round".into(),
            Box::new(|d: &Path| d.join("round-1/samples.jsonl").is_file()),
        ),
    ];
    let (seed, random) = common::kill_moments(2, 0.05, 0.95);
    for share in random {
        let at = ((share * total as f64).round() as i64).clamp(1, total - 1);
        moments.push((
            format!("step or evaluation {at} of {total} (EXSEARCH_KILL_SEED={seed})"),
            Box::new(move |d: &Path| progress(d) >= at),
        ));
    }
    let mut killed = 0;
    for (i, (moment, reached)) in moments.iter().enumerate() {
        let dir = tmp.path().join(format!("killed-{i}"));
        let mut child = common::exsearch(&home)
            .args(demo_real_args(&gguf, &data, &config, &dir))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        while !reached(&dir) && child.try_wait().expect("poll").is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        if child.wait().expect("reap").signal() != Some(9) {
            continue; // it finished first: nothing to resume
        }
        killed += 1;
        // The same command continues it to the end.
        let resumed = common::json(&home, &demo_real_args(&gguf, &data, &config, &dir));
        assert_eq!(
            resumed["round_em"].as_array().map(Vec::len),
            Some(1),
            "killed during {moment}: {resumed}"
        );
        assert_eq!(
            evals_recorded(&dir),
            evals,
            "killed during {moment}: every phase evaluated once"
        );
        let active = resumed["active_adapter"]
            .as_str()
            .expect("an active adapter");
        assert!(
            home.join("adapters")
                .join(active)
                .join("adapter_model.safetensors")
                .is_file(),
            "killed during {moment}: {active}"
        );
    }
    assert!(
        killed >= 4,
        "only {killed} of 5 runs were killed before they ended"
    );
}
