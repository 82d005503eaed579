//! ExSearch Desktop: the Tauri 2 shell. It translates between the web
//! frontend in `ui/` and the engine crates; every command is in
//! [`commands`], the state they share in [`shell`].

pub mod commands;
pub mod error;
pub mod shell;
pub mod training;

use std::sync::Arc;

use exsearch_core::Home;
use tauri::{Builder, Runtime};

pub use error::{CommandError, CommandResult};
pub use shell::{DesktopSettings, Shell};

/// The app's commands, state and plugins on any runtime: the real one in
/// [`run`], the mock runtime in the shell tests.
pub fn builder<R: Runtime>(shell: Shell) -> Builder<R> {
    Builder::<R>::new()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .manage(Arc::new(shell))
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::settings_get,
            commands::settings_set,
            commands::library_status,
            commands::library_documents,
            commands::library_add,
            commands::library_sync,
            commands::library_remove,
            commands::library_search,
            commands::library_set_retrieval,
            commands::library_set_ocr,
            commands::library_set_watch,
            commands::library_watch,
            commands::passage_context,
            commands::open_document,
            commands::pick_folder,
            commands::pick_file,
            commands::job_cancel,
            commands::chats_list,
            commands::chat_get,
            commands::chat_delete,
            commands::ask,
            commands::models_list,
            commands::model_pull,
            commands::model_starter,
            training::training_list,
            training::training_detail,
            training::training_defaults,
            training::train_demo,
            training::train_real,
            training::train_real_resume,
            training::train_em,
            training::train_auto,
            training::train_auto_estimate,
            training::train_warmup,
            training::train_resume,
            training::adapters_list,
            training::adapter_use,
            training::demo_use,
        ])
}

/// Starts the app on the data directory `EXSEARCH_HOME` (or the platform's).
pub fn run() {
    let home = match Home::resolve(None) {
        Ok(home) => home,
        Err(e) => {
            eprintln!("exsearch-desktop: {e}");
            std::process::exit(1);
        }
    };
    builder::<tauri::Wry>(Shell::new(home))
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("exsearch-desktop: {e}");
            std::process::exit(1);
        });
}
