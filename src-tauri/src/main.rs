// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

/// The same allocator as the CLI: glibc's malloc keeps the indexing arenas
/// tantivy frees, so the app's memory would ratchet up with each sync.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    exsearch_model::fix_thread_count();
    exsearch_desktop::run();
}
