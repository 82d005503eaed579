//! Models from the Hugging Face hub: downloads into the shared HF cache,
//! listing what is local, the recommended models and the starter model.

mod download;
mod hf_cache;
mod integrity;
mod meter;
pub mod recommended;
mod starter;

pub use download::{
    glob_match, offline_mode, Check, Hub, PullEvent, PullOptions, PullReport, PulledFile,
    DEFAULT_INCLUDE,
};
pub use hf_cache::{CachedSnapshot, HubCache};
pub use starter::{
    fetch_starter, hub_cached, package_index, starter_dir, Companion, StarterModel, StarterReport,
    StarterSource, EMBEDDER, STARTER,
};
