//! The real download code against a loopback server that serves files the
//! way the Hugging Face hub does.

#[path = "../../../tests/common/fake_hub.rs"]
mod fake_hub;

use std::sync::Mutex;
use std::time::Duration;

use candle_core::{DType, Device};
use exsearch_jobs::{CancelToken, Quiet};
use exsearch_model::engine::{Engine, GenerateRequest, SamplingParams};
use exsearch_model::fixtures;
use exsearch_model::hub::{Check, Hub, HubCache, PullEvent, PullOptions};
use exsearch_model::model::Family;
use exsearch_model::{Error, LoadedModel, ModelSource};
use fake_hub::{FakeHub, Faults, COMMIT};

const REPO: &str = "exsearch-test/tiny-qwen2";

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(
        dir.path(),
        &fixtures::tiny_config(Family::Qwen2),
        5,
        DType::F32,
    )
    .expect("fixture");
    dir
}

#[test]
fn a_cut_connection_resumes_with_a_range_request_and_the_model_loads() {
    let src = fixture();
    let size = std::fs::metadata(src.path().join("model.safetensors"))
        .expect("size")
        .len();
    let hub = FakeHub::serve(
        src.path(),
        REPO,
        Faults {
            cut_after: Some(100_000),
            ..Default::default()
        },
    );
    let cache_dir = tempfile::tempdir().expect("tmp");
    let client = Hub::new(&hub.endpoint, None, HubCache::new(cache_dir.path()));
    let events = Mutex::new(Vec::new());
    let sink = |e: PullEvent| events.lock().expect("lock").push(e);
    let report = client
        .pull(REPO, &PullOptions::default(), &sink, &CancelToken::new())
        .expect("pull");

    assert_eq!(report.commit, COMMIT);
    let events = events.into_inner().expect("lock");
    assert!(events
        .iter()
        .any(|e| matches!(e, PullEvent::Retry { file, .. } if file == "model.safetensors")));
    let log = hub.log();
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET /lfs/") && l.ends_with("bytes=100000-")),
        "{log:#?}"
    );
    let weights = report
        .files
        .iter()
        .find(|f| f.name == "model.safetensors")
        .expect("weights pulled");
    assert_eq!((weights.bytes, &weights.check), (size, &Check::Sha256));
    let config = report
        .files
        .iter()
        .find(|f| f.name == "config.json")
        .expect("config pulled");
    assert_eq!(config.check, Check::GitSha1);
    // Progress adds up to the announced total.
    let Some(PullEvent::Resolved { total_bytes, .. }) = events.first() else {
        panic!("first event is Resolved")
    };
    let last = events.iter().rev().find_map(|e| match e {
        PullEvent::Progress {
            downloaded, total, ..
        } => Some((*downloaded, *total)),
        _ => None,
    });
    assert_eq!(last, Some((*total_bytes, *total_bytes)));

    // The HF cache layout: refs/main, snapshot symlinks into blobs.
    let cache = HubCache::new(cache_dir.path());
    assert_eq!(cache.commit_of(REPO, "main").as_deref(), Some(COMMIT));
    let pointer = report.snapshot.join("model.safetensors");
    assert!(std::fs::symlink_metadata(&pointer)
        .expect("pointer")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(&pointer).expect("blob"),
        std::fs::read(src.path().join("model.safetensors")).expect("src")
    );
    let listed = cache.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].refs, vec!["main".to_string()]);

    // A second pull transfers nothing.
    let again = client
        .pull(REPO, &PullOptions::default(), &Quiet, &CancelToken::new())
        .expect("pull");
    assert_eq!(again.downloaded_bytes, 0);
    assert!(again.files.iter().all(|f| f.check == Check::Cached));

    // The downloaded model loads by its repo id, offline, and generates.
    let source: ModelSource = REPO.parse().expect("repo id");
    let files = source.resolve(&cache).expect("resolves from the cache");
    let model = LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("loads");
    let ids = model.codec.encode_prompt("hello").expect("ids");
    let out = Engine::new(model)
        .generate(
            &GenerateRequest {
                prompts: vec![ids],
                samples: 1,
                params: SamplingParams::greedy(4),
            },
            &Quiet,
            &CancelToken::new(),
        )
        .expect("generate");
    assert!(!out[0].tokens.is_empty());
}

#[test]
fn a_cancelled_pull_resumes_where_it_stopped_in_the_next_run() {
    let src = fixture();
    let hub = FakeHub::serve(
        src.path(),
        REPO,
        Faults {
            throttle: Some(Duration::from_millis(15)),
            ..Default::default()
        },
    );
    let cache_dir = tempfile::tempdir().expect("tmp");
    let client = Hub::new(&hub.endpoint, None, HubCache::new(cache_dir.path()));
    let cancel = CancelToken::new();
    let sink = |e: PullEvent| {
        if let PullEvent::Progress {
            file, downloaded, ..
        } = e
        {
            if file == "model.safetensors" && downloaded > 0 {
                cancel.cancel();
            }
        }
    };
    let err = client
        .pull(REPO, &PullOptions::default(), &sink, &cancel)
        .expect_err("cancelled");
    assert!(matches!(err, Error::Cancelled), "{err}");
    let blobs = cache_dir
        .path()
        .join(format!("models--{}", REPO.replace('/', "--")))
        .join("blobs");
    let partial = std::fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .expect("a partial file is kept");
    let kept = partial.metadata().expect("meta").len();
    assert!(kept > 0);

    let report = client
        .pull(REPO, &PullOptions::default(), &Quiet, &CancelToken::new())
        .expect("resume");
    assert!(
        hub.log()
            .iter()
            .any(|l| l.ends_with(&format!("bytes={kept}-"))),
        "resumed at {kept}: {:#?}",
        hub.log()
    );
    let total: u64 = report.files.iter().map(|f| f.bytes).sum();
    assert!(
        report.downloaded_bytes < total,
        "only the rest was transferred"
    );
    assert!(!partial.path().exists());
}

#[test]
fn corrupted_bytes_are_rejected_and_never_cached() {
    let src = fixture();
    let hub = FakeHub::serve(
        src.path(),
        REPO,
        Faults {
            corrupt: vec!["model.safetensors".into()],
            ..Default::default()
        },
    );
    let cache_dir = tempfile::tempdir().expect("tmp");
    let client = Hub::new(&hub.endpoint, None, HubCache::new(cache_dir.path()));
    let err = client
        .pull(REPO, &PullOptions::default(), &Quiet, &CancelToken::new())
        .expect_err("bad checksum");
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Integrity { .. })
            && msg.contains("model.safetensors")
            && msg.contains("sha256"),
        "{msg}"
    );
    let cache = HubCache::new(cache_dir.path());
    let source: ModelSource = REPO.parse().expect("repo id");
    assert!(
        source.resolve(&cache).is_err(),
        "a failed pull leaves no loadable snapshot"
    );
    let blobs = cache.repo_dir(REPO).join("blobs");
    let names: Vec<String> = std::fs::read_dir(blobs)
        .expect("blobs")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".incomplete")),
        "{names:?}"
    );
}

#[test]
fn gated_repositories_need_a_token_that_never_leaves_the_hub() {
    let src = fixture();
    let hub = FakeHub::serve(
        src.path(),
        REPO,
        Faults {
            token: Some("hf_secret".into()),
            ..Default::default()
        },
    );
    let cache_dir = tempfile::tempdir().expect("tmp");
    let anonymous = Hub::new(&hub.endpoint, None, HubCache::new(cache_dir.path()));
    let err = anonymous
        .pull(REPO, &PullOptions::default(), &Quiet, &CancelToken::new())
        .expect_err("401");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    let client = Hub::new(
        &hub.endpoint,
        Some("hf_secret".into()),
        HubCache::new(cache_dir.path()),
    );
    client
        .pull(REPO, &PullOptions::default(), &Quiet, &CancelToken::new())
        .expect("pull with token");
    let log = hub.log();
    assert!(log
        .iter()
        .any(|l| l.starts_with("HEAD") && l.ends_with("auth")));
    assert!(
        log.iter()
            .filter(|l| l.contains("/lfs/"))
            .all(|l| !l.ends_with("auth")),
        "{log:#?}"
    );
}

#[test]
fn include_patterns_select_files_and_unknown_revisions_fail_clearly() {
    let src = fixture();
    fixtures::write_gguf(
        src.path(),
        &src.path().join("tiny-q8_0.gguf"),
        fixtures::Quant::Q8_0,
    )
    .expect("gguf");
    let hub = FakeHub::serve(src.path(), REPO, Faults::default());
    let cache_dir = tempfile::tempdir().expect("tmp");
    let client = Hub::new(&hub.endpoint, None, HubCache::new(cache_dir.path()));
    let options = PullOptions {
        include: vec!["*q8_0.gguf".into()],
        ..Default::default()
    };
    let report = client
        .pull(REPO, &options, &Quiet, &CancelToken::new())
        .expect("pull");
    assert_eq!(report.files.len(), 1);
    let source: ModelSource = REPO.parse().expect("repo id");
    let files = source
        .resolve(&HubCache::new(cache_dir.path()))
        .expect("a lone GGUF file is the model");
    LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("loads");
    let bad = PullOptions {
        revision: "v9".into(),
        ..Default::default()
    };
    let err = client
        .pull(REPO, &bad, &Quiet, &CancelToken::new())
        .expect_err("404");
    assert!(
        err.to_string().contains("404") && err.to_string().contains("v9"),
        "{err}"
    );
}
