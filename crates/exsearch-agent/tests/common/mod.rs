//! A real library on disk for the agent's tests.

#![allow(dead_code)]

use std::path::Path;

use exsearch_core::{CancelToken, Home, Library, Quiet, SyncOptions};

/// Writes `docs` (file name, content) into `dir/docs` and indexes them into
/// a library under `dir/home`.
pub fn library(dir: &Path, docs: &[(&str, &str)]) -> Library {
    let folder = dir.join("docs");
    std::fs::create_dir_all(&folder).expect("docs");
    for (name, text) in docs {
        std::fs::write(folder.join(name), text).expect("write");
    }
    let mut library = Library::open(&Home::at(dir.join("home"))).expect("library");
    library
        .add_folders(
            &[folder],
            &SyncOptions::default(),
            &Quiet,
            &CancelToken::new(),
        )
        .expect("indexed");
    library
}
