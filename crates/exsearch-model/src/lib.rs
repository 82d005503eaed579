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

pub use engine::{
    Completion, Engine, FinishReason, GenerateEvent, GenerateRequest, ModelHandle, ModelInfo,
    SamplingParams, ScorePair,
};
pub use error::{Error, Result};
pub use model::{parse_device, parse_dtype, LoadedModel};
pub use source::{ModelFiles, ModelSource};
pub use text::{ChatMessage, TextCodec};
