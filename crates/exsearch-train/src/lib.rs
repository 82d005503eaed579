//! Self-training for the ExSearch agent (METHOD.md, section 2).
//!
//! - [`supervised`]: conversations rendered once with the chat template, the
//!   assistant tokens marked as the only ones in the loss, packed into
//!   micro-batches by token budget.
//! - [`trainer`]: the optimisation loop shared by warm-up and the M-step
//!   (weighted cross-entropy, accumulation, clipping, AdamW, cosine
//!   schedule, resumable checkpoints).
//! - [`optim`]: AdamW with saveable state, the schedule, clipping.
//! - [`lora`]: LoRA adapters in the PEFT layout: create, save, load, merge.
//! - [`estep`]: K trajectories per question, gold-answer scores, weights,
//!   and the M-step's weighted examples.
//! - [`importance`]: the E-step's importance weights, bound term and ESS.
//! - [`store`]: every step, evaluation and round of a run in SQLite.
//! - [`charts`]: the convergence charts (plotters, SVG and PNG).
//! - [`adapters`]: the person's adapters under `<home>/adapters`, the active
//!   one, merging into a base model.
//! - [`em`]: the EM rounds, one loop for runs and demonstrations.
//! - [`plan`]: warm-up trajectories planned from known supporting passages.
//! - [`questions`]: questions written from the library, filtered, with the
//!   search that built each.
//! - [`phase`]: the phases (warm-up, round n, control) by one name each.
//! - [`defaults`]: every training default, once.
//! - [`auto`]: `train auto`, questions written from the library, warm-up
//!   and EM rounds on them.
//! - [`run`]: training runs a person starts (`exsearch train`): warm-up and
//!   EM rounds over their own library, resumable after a kill.
//! - [`real`]: the real-model demonstration (`exsearch demo real`).
//! - [`world`]: synthetic multi-hop worlds for the end-to-end proof.
//! - [`init`]: a new small model with a tokenizer trained on a corpus.
//! - [`files`]: whole-file writes and names safe as folder names.

pub mod adapters;
pub mod auto;
pub mod charts;
pub mod defaults;
pub mod demo;
mod em;
pub mod error;
pub mod estep;
pub mod events;
pub mod files;
pub mod importance;
pub mod init;
pub mod lora;
mod loss;
pub mod memory;
pub mod optim;
pub mod phase;
pub mod plan;
pub mod questions;
pub mod real;
pub mod run;
pub mod store;
pub mod supervised;
pub mod trainer;
mod tuned;
pub mod world;

pub use error::{Error, Result};
pub use events::TrainEvent;
pub use importance::{importance_weights, AnswerScore, WeightRule, Weighted};
pub use lora::{Lora, LoraConfig};
pub use phase::Phase;
pub use supervised::{encode, pack, Encoded, Example};
pub use trainer::{evaluate_loss, weighted_loss, Params, StepRecord, TrainConfig, Trainer};
