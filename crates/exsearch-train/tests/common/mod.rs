//! Helpers shared by the training tests: a random model of a real
//! architecture loaded the way a download is, and a generated world whose
//! corpus is indexed in a real library.

#![allow(dead_code)]

use std::path::Path;

use candle_core::{DType, Device};
use exsearch_core::{CancelToken, Home, Library, Quiet, SyncOptions};
use exsearch_model::fixtures;
use exsearch_model::model::Family;
use exsearch_model::{ChatMessage, LoadedModel, ModelSource};
use exsearch_train::world::{World, WorldConfig, WorldFiles};
use exsearch_train::Example;

pub fn load(dir: &Path) -> LoadedModel {
    let source: ModelSource = dir.to_str().expect("utf-8 path").parse().expect("a folder");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(dir.join("no-cache")))
        .expect("files resolve");
    LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("model loads")
}

pub fn tiny() -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(
        dir.path(),
        &fixtures::tiny_config(Family::Qwen2),
        11,
        DType::F32,
    )
    .expect("fixture");
    let model = load(dir.path());
    (dir, model)
}

/// A world of `train` and `valid` questions written under `dir/world`, its
/// corpus indexed in the library of `dir/home`.
pub fn indexed_world(dir: &Path, seed: u64, train: usize, valid: usize) -> (WorldFiles, Library) {
    let world = World::generate(&WorldConfig {
        seed,
        warmup: 0,
        train,
        valid,
        test: 0,
        ..WorldConfig::default()
    })
    .expect("world");
    let files = world.write(&dir.join("world")).expect("writes");
    let mut library = Library::open(&Home::at(dir.join("home"))).expect("library");
    library
        .add_folders(
            std::slice::from_ref(&files.corpus),
            &SyncOptions::default(),
            &Quiet,
            &CancelToken::new(),
        )
        .expect("indexes");
    (files, library)
}

/// A search trajectory in the agent's wire format.
pub fn trajectory(answer: &str) -> Example {
    Example {
        messages: vec![
            ChatMessage::user(
                "Answer by searching. <USER QUERY> Where was Ada born?  Your Output:",
            ),
            ChatMessage::assistant("<QUERY> Ada birthplace"),
            ChatMessage::user("<SEARCH> [1] Title: Ada. Content: Ada was born in Velm."),
            ChatMessage::assistant("<FACT> Ada was born in Velm\n<FINAL>"),
            ChatMessage::user(
                "please give the final answer to the input question: Where was Ada born?",
            ),
            ChatMessage::assistant(answer),
        ],
        weight: 1.0,
    }
}
