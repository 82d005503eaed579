//! The Training page's commands, through the real shell: the synthetic
//! demonstration, warm-up and EM runs, adapters, and the real-model
//! demonstration on a QA file over a quantized model.

use super::*;

/// A demonstration small enough for a test: seconds, not minutes.
fn tiny_demo() -> Value {
    json!({
        "world": {"warmup": 6, "train": 6, "valid": 3, "test": 4, "cities": 4},
        "model": {"hidden": 32, "layers": 2, "heads": 2, "kv_heads": 1, "intermediate": 64},
        "reading": {"questions": 8, "train": {"lr": 0.003, "epochs": 1, "token_budget": 2048, "checkpoint_every": 0}},
        "warmup": {"lr": 0.003, "epochs": 2, "token_budget": 2048, "checkpoint_every": 0},
        "patience": 1,
        "rounds": 1,
        "estep": {"samples": 2, "batch": 4},
        "mstep": {"lr": 0.001, "epochs": 1, "token_budget": 2048, "checkpoint_every": 0}
    })
}

#[test]
fn training_commands_run_a_demonstration_and_an_em_run_with_charts_and_adapters() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    assert_eq!(app.ok("training_list", json!({})), json!([]));
    // The forms start from the same defaults as `exsearch train`.
    let defaults = app.ok("training_defaults", json!({}));
    assert_eq!(
        defaults,
        serde_json::to_value(exsearch_train::defaults::form()).expect("json")
    );
    assert_eq!(defaults["lora_rank"], 16, "{defaults}");

    let report = app.ok(
        "train_demo",
        json!({"name": "demo-1", "seed": 4, "quick": true, "config": tiny_demo(),
               "job": "t1", "onEvent": channel(1)}),
    );
    assert_eq!(report["seed"], 4);
    assert_eq!(report["round_em"].as_array().map(Vec::len), Some(1));
    let list = app.ok("training_list", json!({}));
    assert_eq!(list[0]["kind"], "demo");
    assert_eq!(list[0]["finished"], true);
    let detail = app.ok("training_detail", json!({"kind": "demo", "name": "demo-1"}));
    assert_eq!(detail["charts"][0]["name"], "convergence");
    assert!(detail["charts"][0]["svg"]
        .as_str()
        .unwrap_or("")
        .starts_with("<svg"));
    assert_eq!(detail["rounds"].as_array().map(Vec::len), Some(1));
    assert!(
        detail["evals"].as_array().map_or(0, Vec::len) >= 3,
        "{detail}"
    );
    let err = app
        .call("training_detail", json!({"kind": "demo", "name": "../etc"}))
        .expect_err("names are folder names");
    assert_eq!(err["code"], "invalid_setting");

    // "Try this model": the demonstration's model answers with the settings
    // it was trained with, over its world's documents.
    let used = app.ok("demo_use", json!({"name": "demo-1"}));
    let settings = app.ok("settings_get", json!({}));
    assert_eq!(settings["model"], used["model"]);
    assert_eq!(
        settings["agent"]["k"], 1,
        "the demonstration's agent settings"
    );
    app.add_folder(&used["corpus"], "i");
    let question: Value = serde_json::from_str(
        std::fs::read_to_string(tmp.path().join("home/demos/demo-1/world/test.jsonl"))
            .expect("test questions")
            .lines()
            .next()
            .expect("a question"),
    )
    .expect("json");
    let asked = app.ok(
        "ask",
        json!({"question": question["question"], "conversation": null, "method": "exsearch",
               "job": "a", "onEvent": channel(3)}),
    );
    assert!(asked["trajectory"]["model_calls"].as_u64().unwrap_or(0) >= 2);

    // A warm-up on written trajectories, then EM rounds on questions with
    // answers starting from its adapter.
    let demo = tmp.path().join("home/demos/demo-1");
    let warm = app.ok(
        "train_warmup",
        json!({"request": {"name": "w", "model": used["model"],
                           "data": demo.join("warmup-trajectories.jsonl"), "valid": null,
                           "epochs": 1, "lora_rank": 4, "lr": 0.001},
               "job": "t0", "onEvent": channel(6)}),
    );
    assert_eq!(warm["phases"][0]["phase"], "warm-up", "{warm}");
    let world = demo.join("world");
    let run = app.ok(
        "train_em",
        json!({"request": {"name": "mine", "model": used["model"], "adapter": "w.warm-up",
                           "data": world.join("train.jsonl"), "valid": world.join("valid.jsonl"),
                           "rounds": 1, "samples": 2, "lora_rank": 4, "lr": 0.001},
               "job": "t2", "onEvent": channel(4)}),
    );
    assert_eq!(run["name"], "mine");
    let list = app.ok("training_list", json!({}));
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .any(|t| t["kind"] == "run" && t["finished"] == true));
    let detail = app.ok("training_detail", json!({"kind": "run", "name": "mine"}));
    assert!(!detail["charts"].as_array().expect("charts").is_empty());
    assert_eq!(app.ok("app_info", json!({}))["unfinished_runs"], json!([]));
    // Resuming a finished run redoes nothing and gives its report.
    let again = app.ok(
        "train_resume",
        json!({"name": "mine", "job": "t3", "onEvent": channel(5)}),
    );
    assert_eq!(again, run);

    let adapters = app.ok("adapters_list", json!({}));
    let name = adapters[0]["name"]
        .as_str()
        .expect("an adapter per round")
        .to_string();
    app.ok("adapter_use", json!({"name": name}));
    let adapters = app.ok("adapters_list", json!({}));
    assert_eq!(adapters[0]["active"], true);
    app.ok("adapter_use", json!({"name": null}));
    assert_eq!(app.ok("adapters_list", json!({}))[0]["active"], false);

    let err = app
        .call("demo_use", json!({"name": "no-such-demo"}))
        .expect_err("unknown");
    assert_eq!(err["code"], "unknown_training");
    app.shapes.check("training");
}

#[test]
fn a_real_model_demonstration_runs_on_a_question_file_and_is_listed_with_its_report() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let model_dir = tmp.path().join("model");
    fixtures::write_hf_model(
        &model_dir,
        &fixtures::tiny_config(Family::Llama),
        7,
        DType::F32,
    )
    .expect("fixture");
    let gguf = tmp.path().join("tiny-q4_k_m.gguf");
    fixtures::write_gguf(&model_dir, &gguf, fixtures::Quant::Q4KM).expect("gguf");
    let data = tmp.path().join("qa.jsonl");
    super::qa::small_qa(&data, 12);
    let config = json!({
        "warmup": 4, "train": 2, "valid": 2, "test": 3,
        "lora": {"rank": 2, "alpha": 4.0, "dropout": 0.0, "targets": ["q_proj", "v_proj"]},
        "warmup_train": {"lr": 0.001, "epochs": 1, "token_budget": 1024, "checkpoint_every": 1},
        "rounds": 1,
        "estep": {"samples": 2, "batch": 2},
        "mstep": {"lr": 0.001, "epochs": 1, "token_budget": 1024, "checkpoint_every": 1},
        "agent": {"instructions": "Search with {query}, read {search}, note {fact}, end with {finish}.",
                  "final_request": "Answer: {question}", "k": 1, "max_steps": 2,
                  "step_tokens": 8, "answer_tokens": 4, "passage_chars": 100}
    });
    let request =
        json!({"name": "real-qa", "model": gguf, "data": data, "quick": false, "config": config});

    let report = app.ok(
        "train_real",
        json!({"request": request, "job": "r1", "onEvent": channel(2)}),
    );
    assert_eq!(report["questions"]["test"], 3, "{report}");
    for method in ["direct", "rag", "exsearch"] {
        assert!(report["zero_shot"][method]["em"].is_number(), "{report}");
    }
    assert_eq!(report["round_em"].as_array().map(Vec::len), Some(1));
    let list = app.ok("training_list", json!({}));
    let entry = list
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["name"] == "real-qa")
        .expect("listed");
    assert_eq!(entry["kind"], "real", "{list}");
    assert_eq!(entry["finished"], true);
    assert_eq!(entry["model"], json!(gguf));
    let detail = app.ok(
        "training_detail",
        json!({"kind": "real", "name": "real-qa"}),
    );
    assert_eq!(detail["report"], report);
    assert!(!detail["charts"].as_array().expect("charts").is_empty());
    // Every zero-shot method, the warm-up, the round (test and validation)
    // and the control were measured and stored.
    assert!(
        detail["evals"].as_array().map_or(0, Vec::len) >= 8,
        "{detail}"
    );
    // Continuing a finished demonstration redoes nothing.
    let again = app.ok(
        "train_real_resume",
        json!({"name": "real-qa", "job": "r2", "onEvent": channel(3)}),
    );
    assert_eq!(again["final_em"], report["final_em"]);
    assert_eq!(again["zero_shot"], report["zero_shot"]);
    // The synthetic demonstrations' commands do not take it for theirs.
    let err = app.call(
        "training_detail",
        json!({"kind": "demo", "name": "real-qa"}),
    );
    assert!(
        err.is_err() || err.as_ref().is_ok_and(|d| d["report"].is_null()),
        "{err:?}"
    );
    let err = app
        .call(
            "train_real_resume",
            json!({"name": "no-such", "job": "r3", "onEvent": channel(4)}),
        )
        .expect_err("unknown");
    assert_eq!(err["code"], "unknown_training");
    app.shapes.check("real");
}

/// Four documents: Shirley Temple joins a film to her career, Maple Press
/// a library's copy to the year it first printed; and questions on them as
/// `exsearch train questions` writes them.
fn library_and_questions(dir: &Path) -> (PathBuf, PathBuf) {
    let docs = dir.join("library");
    std::fs::create_dir_all(&docs).expect("docs");
    let passages = [
        (
            "Kiss and Tell",
            "Kiss and Tell is a comedy film starring Shirley Temple as a teenage girl.",
        ),
        (
            "Shirley Temple",
            "Shirley Temple later served as the Chief of Protocol.",
        ),
        ("Maple Press", "Maple Press printed its first book in 1921."),
        (
            "Oak Street Library",
            "Oak Street Library holds a copy printed by Maple Press.",
        ),
    ];
    for (i, (title, text)) in passages.iter().enumerate() {
        std::fs::write(
            docs.join(format!("{i}.md")),
            format!("# {title}\n\n{text}\n"),
        )
        .expect("doc");
    }
    let question = |q: &str, answer: &str, hops: &[usize]| {
        json!({"id": q, "question": q, "answers": [answer],
               "contexts": hops.iter().map(|&i| json!({"title": passages[i].0, "text": passages[i].1, "supporting": true})).collect::<Vec<_>>(),
               "construction": {"queries": hops.iter().map(|&i| passages[i].0).collect::<Vec<_>>(),
                                "facts": hops.iter().map(|&i| passages[i].1).collect::<Vec<_>>(),
                                "answer": answer}})
        .to_string()
    };
    let qa = dir.join("qa.jsonl");
    std::fs::write(
        &qa,
        [
            question("Who starred in Kiss and Tell?", "Shirley Temple", &[0]),
            question(
                "What did the star of Kiss and Tell serve as?",
                "Chief of Protocol",
                &[0, 1],
            ),
            question("When did Maple Press print its first book?", "1921", &[2]),
            question(
                "Who printed the copy at Oak Street Library?",
                "Maple Press",
                &[3],
            ),
            question(
                "When did the printer of Oak Street Library's copy first print?",
                "1921",
                &[3, 2],
            ),
        ]
        .join("\n"),
    )
    .expect("qa");
    (docs, qa)
}

#[test]
fn teaching_the_model_the_library_estimates_trains_and_compares_before_and_after() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let (docs, qa) = library_and_questions(tmp.path());
    app.add_folder(&docs, "i");
    let model_dir = tmp.path().join("model");
    fixtures::write_hf_model(
        &model_dir,
        &fixtures::tiny_config(Family::Llama),
        7,
        DType::F32,
    )
    .expect("fixture");
    let gguf = tmp.path().join("tiny-q4_k_m.gguf");
    fixtures::write_gguf(&model_dir, &gguf, fixtures::Quant::Q4KM).expect("gguf");

    // The estimate scales with the questions asked for.
    let estimate = |n: usize| {
        app.ok(
            "train_auto_estimate",
            json!({"model": gguf, "questions": n}),
        )
    };
    let (short, long) = (estimate(30), estimate(100));
    assert!(
        short["seconds"].as_f64().expect("seconds") < long["seconds"].as_f64().expect("seconds"),
        "{short} {long}"
    );
    assert!(short["basis"].as_str().expect("basis").contains("SmolLM2"));
    let err = app
        .call(
            "train_auto_estimate",
            json!({"model": gguf, "questions": 2}),
        )
        .expect_err("too few");
    assert_eq!(err["code"], "invalid_setting");

    // The tiny random model writes no question worth keeping: the run
    // stops before training and the page can show every candidate's fate.
    let err = app
        .call(
            "train_auto",
            json!({"request": {"name": "library", "model": gguf, "questions": 5, "questions_file": null},
                   "job": "a1", "onEvent": channel(2)}),
        )
        .expect_err("nothing kept");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("questions.jsonl")),
        "{err}"
    );
    let detail = app.ok("training_detail", json!({"kind": "run", "name": "library"}));
    assert_eq!(detail["questions"]["candidates"], 4, "{detail}");
    assert_eq!(detail["questions"]["kept"], 0);

    // Questions written elsewhere (a stronger model, or edited) train it.
    let report = app.ok(
        "train_auto",
        json!({"request": {"name": "taught", "model": gguf, "questions": 5, "questions_file": qa},
               "job": "a2", "onEvent": channel(3)}),
    );
    assert_eq!(report["questions"]["train"], 4, "{report}");
    assert_eq!(report["questions"]["valid"], 1);
    let detail = app.ok("training_detail", json!({"kind": "run", "name": "taught"}));
    let compared = detail["before_after"].as_array().expect("before/after");
    assert_eq!(compared.len(), 1, "{detail}");
    assert!(compared[0]["question"].is_string() && compared[0]["after"].is_string());
    assert!(!detail["charts"].as_array().expect("charts").is_empty());
    app.shapes.check("teach");
}
