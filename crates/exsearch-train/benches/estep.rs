//! E-step sampling speed on the demo's world: trajectories per minute with
//! K = 1, 4 and 8 samples per question, side by side in one process. The K
//! samples of a question share their first prompt (computed once) and every
//! step is one batched model call across questions and samples.
//!
//! ```text
//! cargo bench -p exsearch-train --bench estep
//! ```
//!
//! The model is the demo's shape, newly initialised (`EXSEARCH_BENCH_MODEL`
//! names a trained folder instead, e.g. a demo checkpoint); a fresh model
//! writes until each step's token budget, the costliest case. Environment:
//! `EXSEARCH_BENCH_QUESTIONS` (32), `EXSEARCH_BENCH_K` (`1,4,8`).

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};
use exsearch_agent::generator::Local;
use exsearch_agent::Agent;
use exsearch_core::{CancelToken, Home, Library, Quiet, SyncOptions};
use exsearch_model::{LoadedModel, ModelHandle, ModelSource};
use exsearch_train::demo::{init_demo_model, DemoConfig};
use exsearch_train::estep::{e_step, EStepOptions};
use exsearch_train::world::{World, WorldConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let questions: usize = std::env::var("EXSEARCH_BENCH_QUESTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let ks: Vec<usize> = std::env::var("EXSEARCH_BENCH_K")
        .unwrap_or_else(|_| "1,4,8".into())
        .split(',')
        .filter_map(|k| k.trim().parse().ok())
        .collect();
    let demo = DemoConfig::default();
    let tmp = tempfile::tempdir().expect("tmp");
    let world = World::generate(&WorldConfig {
        seed: 1,
        warmup: 0,
        train: questions,
        valid: 0,
        test: 0,
        ..demo.world.clone()
    })
    .expect("world");
    let files = world.write(&tmp.path().join("world")).expect("writes");
    let mut library = Library::open(&Home::at(tmp.path().join("home"))).expect("library");
    library
        .add_folders(
            std::slice::from_ref(&files.corpus),
            &SyncOptions::default(),
            &Quiet,
            &CancelToken::new(),
        )
        .expect("indexes");
    let model_dir = match std::env::var("EXSEARCH_BENCH_MODEL") {
        Ok(dir) => dir.into(),
        Err(_) => {
            let dir = tmp.path().join("model");
            init_demo_model(&dir, &demo, &world).expect("model init");
            dir
        }
    };
    let source: ModelSource = model_dir.to_str().expect("utf-8").parse().expect("folder");
    let model_files = source
        .resolve(&exsearch_model::hub::HubCache::new(model_dir.join(".none")))
        .expect("files");
    let max_k = ks.iter().copied().max().unwrap_or(1);
    let handle = Arc::new(
        ModelHandle::spawn(
            move || LoadedModel::load(&model_files, &Device::Cpu, DType::F32),
            demo.estep.batch * max_k,
        )
        .expect("model"),
    );
    let local = Local::new(handle);
    let mut settings = demo.agent.clone();
    settings.sampling.temperature = demo.estep_temperature;
    let agent = Agent {
        generator: &local,
        retriever: &library,
        settings: &settings,
    };
    let items = exsearch_agent::eval::load(&files.train).expect("questions");
    println!(
        "E-step on the demo world: {questions} questions, {} per batch, model {}",
        demo.estep.batch,
        model_dir.display()
    );
    println!(
        "{:>3} {:>13} {:>11} {:>16} {:>10}",
        "K", "trajectories", "seconds", "trajectories/min", "vs K=1"
    );
    let mut base = None;
    for k in ks {
        let options = EStepOptions {
            samples: k,
            ..demo.estep.clone()
        };
        let started = Instant::now();
        let (out, _) = e_step(
            &agent,
            &local,
            &items,
            &options,
            &mut |_, _| {},
            &CancelToken::new(),
        )
        .expect("e-step");
        let seconds = started.elapsed().as_secs_f64();
        let n: usize = out.iter().map(|q| q.samples.len()).sum();
        let per_min = n as f64 / seconds * 60.0;
        let base = *base.get_or_insert(per_min);
        println!(
            "{k:>3} {n:>13} {seconds:>11.1} {per_min:>16.0} {:>9.2}x",
            per_min / base
        );
    }
}
