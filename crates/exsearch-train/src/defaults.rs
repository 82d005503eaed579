//! Every training default, in one place: the specs' constructors, the
//! CLI's flags, the app's commands and the Training page's forms (through
//! the shell's `training_defaults`) read them here.

use serde::Serialize;

pub const LORA_RANK: usize = 16;
/// LoRA's alpha per unit of rank: the adapter's scale, alpha / rank.
pub const LORA_ALPHA_PER_RANK: f64 = 2.0;
pub const LORA_DROPOUT: f32 = 0.05;
/// Peak learning rate with LoRA adapters.
pub const LORA_LR: f64 = 1e-4;
/// Peak learning rate when every weight trains.
pub const FULL_LR: f64 = 2e-5;
/// Padded tokens per micro-batch.
pub const TOKEN_BUDGET: usize = 4096;

pub const WARMUP_EPOCHS: usize = 3;
/// Warm-up epochs without a better validation loss before stopping.
pub const WARMUP_PATIENCE: usize = 2;

pub const EM_ROUNDS: usize = 3;
/// EM rounds without a better validation EM before stopping.
pub const EM_PATIENCE: usize = 1;
/// Trajectories sampled per question (K).
pub const ESTEP_SAMPLES: usize = 4;
/// Questions sampled together.
pub const ESTEP_BATCH: usize = 8;
pub const ESTEP_TEMPERATURE: f32 = 1.0;
pub const MSTEP_EPOCHS: usize = 1;

/// What the Training page's forms start with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FormDefaults {
    pub warmup_epochs: usize,
    pub rounds: usize,
    pub samples: usize,
    pub lora_rank: usize,
    pub lr: f64,
}

pub fn form() -> FormDefaults {
    FormDefaults {
        warmup_epochs: WARMUP_EPOCHS,
        rounds: EM_ROUNDS,
        samples: ESTEP_SAMPLES,
        lora_rank: LORA_RANK,
        lr: LORA_LR,
    }
}
