//! Training runs as a person starts them (`exsearch train`): a run killed
//! mid-way resumes without redoing or redrawing finished work.

mod common;

use std::sync::Mutex;

use common::tiny;
use exsearch_agent::AgentSettings;
use exsearch_core::{CancelToken, Home};
use exsearch_train::estep::EStepOptions;
use exsearch_train::run::{EmSpec, Run, RunSpec, Tuning};
use exsearch_train::{Error, LoraConfig, TrainConfig, TrainEvent};

#[test]
fn a_killed_em_run_resumes_keeping_the_questions_it_had_sampled() {
    let (dir, _) = tiny();
    let (files, _) = common::indexed_world(dir.path(), 4, 6, 2);
    let home = Home::at(dir.path().join("home"));
    let mut agent = AgentSettings {
        k: 1,
        max_steps: 2,
        step_tokens: 6,
        answer_tokens: 3,
        ..AgentSettings::default()
    };
    agent.sampling.temperature = 1.0;
    let spec = RunSpec::Em(EmSpec {
        model: dir.path().to_str().expect("utf-8").to_string(),
        start: None,
        data: files.train.clone(),
        valid: Some(files.valid.clone()),
        limit: None,
        corpus_from_contexts: false,
        tuning: Tuning::Lora(LoraConfig {
            rank: 2,
            ..LoraConfig::default()
        }),
        rounds: 1,
        patience: 0,
        estep: EStepOptions {
            samples: 2,
            batch: 2,
            // A random model writes no evidence; keep every sample.
            max_empty_evidence: usize::MAX,
            ..EStepOptions::default()
        },
        mstep: TrainConfig {
            lr: 1e-3,
            epochs: 1,
            token_budget: 1024,
            ..TrainConfig::default()
        },
        temperature: 1.0,
        agent,
    });
    let run = Run::create(&home, "r", &spec).expect("run");
    let samples_file = run.dir.join("round-1/samples.jsonl");

    // Killed after the first batch of questions is sampled.
    let cancel = CancelToken::new();
    let first = |e: TrainEvent| {
        if matches!(e, TrainEvent::Sampled { .. }) {
            cancel.cancel();
        }
    };
    assert!(matches!(
        run.execute(&home, &first, &cancel),
        Err(Error::Cancelled)
    ));
    let kept = std::fs::read_to_string(&samples_file).expect("samples kept");
    assert_eq!(kept.lines().count(), 2, "one batch of two questions");

    // Another settings for the same name is refused; the same resumes.
    let mut other = spec.clone();
    if let RunSpec::Em(s) = &mut other {
        s.rounds = 2;
    }
    assert!(Run::create(&home, "r", &other).is_err());
    let run = Run::create(&home, "r", &spec).expect("same settings reopen");
    let events = Mutex::new(Vec::new());
    let record = |e: TrainEvent| events.lock().expect("lock").push(e);
    let report = run
        .execute(&home, &record, &CancelToken::new())
        .expect("resumes to the end");
    let events = events.into_inner().expect("events");
    assert!(events.iter().any(|e| matches!(e,
        TrainEvent::Resumed { what } if what.contains("after 2 sampled questions"))));
    let sampled: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Sampled { done, .. } => Some(*done),
            _ => None,
        })
        .collect();
    assert_eq!(sampled, [4, 6], "only the questions not sampled before");
    let all = std::fs::read_to_string(&samples_file).expect("samples");
    assert_eq!(all.lines().count(), 6);
    assert!(
        all.starts_with(&kept),
        "the first batch is the one kept, not redrawn"
    );
    // The round finished: an adapter, validated, made active.
    assert_eq!(report.phases.len(), 1);
    assert!(report.phases[0].valid_em.is_some());
    assert_eq!(report.active_adapter.as_deref(), Some("r.round-1"));
    assert!(home
        .root()
        .join("adapters/r.round-1/adapter_model.safetensors")
        .is_file());
}
