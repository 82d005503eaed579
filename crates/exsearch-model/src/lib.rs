//! The ExSearch model runtime.
//!
//! - [`hub`]: downloads from the Hugging Face hub into the shared HF cache,
//!   resumable and verified, plus the recommended models.
//! - [`source`]: naming a model (folder, GGUF file, hub id) and finding its
//!   files locally, never touching the network.
//! - [`model`]: our decoder for the Llama family (Qwen2/2.5, Qwen3, Llama 3,
//!   Mistral) from safetensors or GGUF, with LoRA-ready linear layers and two
//!   kernel sets (fused for inference, differentiable for training).
//! - [`text`]: tokenizer, chat template, incremental decoding, stop strings.
//! - [`engine`]: batched sampling with shared prompt prefixes, teacher-forced
//!   scoring, and the thread that owns a loaded model.

pub mod embed;
pub mod engine;
pub mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod hub;
pub mod model;
pub mod source;
pub mod text;

/// Fixes the thread count candle and rayon use, once, before any thread
/// starts: call it first thing in `main`.
///
/// candle asks for the number of physical cores at every matrix product
/// (`get_num_threads`), and without `RAYON_NUM_THREADS` that re-reads
/// `/proc/cpuinfo` each time: 4% of an E-step's samples were the kernel
/// formatting that file, on the thread that drives the model. The count is
/// the one candle would find (physical cores); a `RAYON_NUM_THREADS` the
/// person set is kept.
pub fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // Before any other thread exists (the caller's contract), so no
        // one reads the environment meanwhile.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

pub use engine::{
    Completion, Engine, FinishReason, GenerateEvent, GenerateRequest, ModelHandle, ModelInfo,
    SamplingParams, ScorePair,
};
pub use error::{Error, Result};
pub use model::{parse_device, parse_dtype, LoadedModel};
pub use source::{ModelFiles, ModelSource};
pub use text::{ChatMessage, TextCodec};
