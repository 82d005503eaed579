//! Generates the app's permissions: with an app manifest, each command
//! needs an `allow-<command>` permission in a capability before any window
//! may call it (src-tauri/capabilities/).

const COMMANDS: &[&str] = &[
    "app_info",
    "settings_get",
    "settings_set",
    "library_status",
    "library_documents",
    "library_add",
    "library_sync",
    "library_remove",
    "library_search",
    "library_set_retrieval",
    "library_set_ocr",
    "library_set_watch",
    "library_watch",
    "passage_context",
    "open_document",
    "pick_folder",
    "pick_file",
    "job_cancel",
    "chats_list",
    "chat_get",
    "chat_delete",
    "ask",
    "models_list",
    "model_pull",
    "model_starter",
    "training_list",
    "training_detail",
    "training_defaults",
    "train_demo",
    "train_em",
    "train_auto",
    "train_auto_estimate",
    "train_warmup",
    "train_resume",
    "train_real",
    "train_real_resume",
    "adapters_list",
    "adapter_use",
    "demo_use",
];

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/*.json")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri build step: {e:#}");
    }
}
