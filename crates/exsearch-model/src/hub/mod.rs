//! Models from the Hugging Face hub: downloads into the shared HF cache,
//! listing what is local, and a curated catalog of recommended models.

mod cache;
pub mod catalog;
mod download;
mod integrity;
mod meter;
mod starter;

pub use cache::{CachedSnapshot, HubCache};
pub use download::{
    glob_match, offline_mode, Check, Hub, PullEvent, PullOptions, PullReport, PulledFile,
    DEFAULT_INCLUDE,
};
pub use starter::{
    fetch_starter, package_index, starter_dir, StarterModel, StarterReport, StarterSource, STARTER,
};
