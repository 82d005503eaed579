//! `exsearch model pull|list` and `exsearch generate`, as a user runs them:
//! the real binary, a loopback server standing in for the hub (HF_ENDPOINT),
//! and a temporary HF cache (HF_HOME).

mod common;
#[path = "common/fake_hub.rs"]
mod fake_hub;

use std::path::Path;
use std::process::Command;

use candle_core::DType;
use exsearch_model::fixtures;
use exsearch_model::model::Family;
use fake_hub::{FakeHub, Faults};
use serde_json::Value;

const REPO: &str = "exsearch-test/tiny-qwen2";

fn exsearch(hf_home: &Path, endpoint: &str) -> Command {
    let mut cmd = common::exsearch(&hf_home.join("exsearch-home"));
    cmd.env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("EXSEARCH_OFFLINE");
    cmd
}

fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run exsearch");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn pull_list_and_generate_from_the_hub_cache() {
    let src = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(
        src.path(),
        &fixtures::tiny_config(Family::Qwen2),
        9,
        DType::F32,
    )
    .expect("fixture");
    let hub = FakeHub::serve(
        src.path(),
        REPO,
        Faults {
            cut_after: Some(50_000),
            ..Default::default()
        },
    );
    let hf_home = tempfile::tempdir().expect("tmp");
    let cli = || exsearch(hf_home.path(), &hub.endpoint);

    let out = cli().args(["model", "pull", REPO]).output().expect("pull");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("retrying"),
        "the cut connection is reported and retried:\n{stderr}"
    );
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("Sha256"),
        "{stderr}"
    );
    assert!(hf_home
        .path()
        .join("hub/models--exsearch-test--tiny-qwen2/refs/main")
        .is_file());

    let list = cli().args(["model", "list"]).output().expect("list");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains(REPO) && text.contains("ready") && text.contains("(main)"),
        "{text}"
    );

    let generate = |extra: &[&str]| {
        let mut cmd = cli();
        cmd.args([
            "generate",
            "--model",
            REPO,
            "Who wrote Dune?",
            "--json",
            "--max-tokens",
            "12",
        ])
        .args(extra);
        run_json(&mut cmd)
    };
    let a = generate(&["--temperature", "0"]);
    let b = generate(&["--temperature", "0"]);
    assert_eq!(
        a["completions"], b["completions"],
        "greedy output is reproducible"
    );
    assert_eq!(
        a["completions"][0]["tokens"].as_array().map(Vec::len),
        Some(12)
    );
    let many = generate(&["-n", "3", "--temperature", "1.0", "--seed", "4"]);
    assert_eq!(many["completions"].as_array().map(Vec::len), Some(3));

    // Offline mode never touches the network.
    let out = cli()
        .env("HF_HUB_OFFLINE", "1")
        .args(["model", "pull", REPO])
        .output()
        .expect("pull");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("offline"));
    let before = hub.log().len();
    let mut offline = cli();
    offline.env("HF_HUB_OFFLINE", "1").args([
        "generate",
        "--model",
        REPO,
        "hi",
        "--json",
        "--max-tokens",
        "2",
    ]);
    run_json(&mut offline);
    assert_eq!(hub.log().len(), before, "generate reads the cache only");
}

#[test]
fn a_model_that_is_not_downloaded_names_the_command_that_fetches_it() {
    let hf_home = tempfile::tempdir().expect("tmp");
    let out = exsearch(hf_home.path(), "http://127.0.0.1:9")
        .args(["generate", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "hi"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exsearch model pull Qwen/Qwen2.5-0.5B-Instruct"),
        "{stderr}"
    );

    let out = exsearch(hf_home.path(), "http://127.0.0.1:9")
        .args(["model", "list", "--available"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for repo in [
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen/Qwen3-0.6B",
        "meta-llama/Llama-3.2-1B-Instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ] {
        assert!(text.contains(repo), "{repo} missing from:\n{text}");
    }
}

#[test]
fn a_gguf_file_generates_with_its_own_tokenizer_and_template() {
    let dir = tempfile::tempdir().expect("tmp");
    let model_dir = dir.path().join("hf");
    let gguf = dir.path().join("tiny-q4_k_m.gguf");
    // Q4_K needs rows of 256: widen the tiny model.
    let mut config = fixtures::tiny_config(Family::Qwen2);
    config["hidden_size"] = 256.into();
    config["intermediate_size"] = 512.into();
    fixtures::write_hf_model(&model_dir, &config, 2, DType::F32).expect("fixture");
    fixtures::write_gguf(&model_dir, &gguf, fixtures::Quant::Q4KM).expect("gguf");
    let mut cmd = exsearch(dir.path(), "http://127.0.0.1:9");
    cmd.args([
        "generate",
        "--model",
        gguf.to_str().expect("utf-8"),
        "Hello",
        "--json",
        "--max-tokens",
        "5",
        "--temperature",
        "0",
    ]);
    let out = run_json(&mut cmd);
    assert_eq!(
        out["completions"][0]["tokens"].as_array().map(Vec::len),
        Some(5)
    );
}
