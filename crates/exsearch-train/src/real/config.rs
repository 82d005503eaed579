//! `demo real`'s settings: the split sizes, LoRA, warm-up, rounds, E- and
//! M-step, and how the model searches; the full size and a quick one.

use exsearch_agent::AgentSettings;
use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::estep::EStepOptions;
use crate::lora::LoraConfig;
use crate::trainer::TrainConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RealConfig {
    /// Seed of the split (and of the adapters' initialisation).
    pub seed: u64,
    /// Questions whose planned trajectories train the warm-up (at most; the
    /// rest of the file when it is shorter).
    pub warmup: usize,
    /// Questions the EM rounds sample.
    pub train: usize,
    /// Questions that choose the best warm-up epoch and round.
    pub valid: usize,
    /// Questions every phase is measured on.
    pub test: usize,
    pub lora: LoraConfig,
    pub warmup_train: TrainConfig,
    /// Warm-up epochs without a better validation loss before stopping.
    pub patience: usize,
    pub rounds: usize,
    /// Rounds without a better validation EM before stopping (0: never).
    pub em_patience: usize,
    pub estep: EStepOptions,
    pub mstep: TrainConfig,
    /// Sampling temperature of the E-step (evaluations are greedy).
    pub temperature: f32,
    /// How the model searches while it trains and is measured.
    pub agent: AgentSettings,
}

impl Default for RealConfig {
    /// Sized for a 135M model on two CPU cores. Three passages of at most
    /// 400 characters per search and four searches keep a trajectory near
    /// 1,000 tokens, which bounds the memory of the training graph (its
    /// attention is quadratic in the length); evaluation is greedy. The
    /// split sizes, two warm-up epochs and one round are those of the run
    /// measured on SmolLM2-135M at 75 minutes on two AVX-512 cores (40
    /// test, 40 EM-train, 100 warm-up questions; validation here has 30,
    /// not 20, as one question there was 5 validation points): a default
    /// run must end within the 150 minutes the experiment is given.
    fn default() -> Self {
        let mut agent = AgentSettings {
            k: 3,
            passage_chars: 400,
            max_steps: 4,
            step_tokens: 48,
            answer_tokens: 24,
            ..AgentSettings::default()
        };
        agent.sampling.temperature = 0.0;
        Self {
            seed: 0,
            warmup: 100,
            train: 40,
            valid: 30,
            test: 40,
            lora: LoraConfig::default(),
            warmup_train: TrainConfig {
                lr: 2e-4,
                epochs: 2,
                token_budget: 1024,
                checkpoint_every: 10,
                ..TrainConfig::default()
            },
            patience: 1,
            rounds: 1,
            em_patience: defaults::EM_PATIENCE,
            estep: EStepOptions::default(),
            mstep: TrainConfig {
                lr: 1e-4,
                epochs: defaults::MSTEP_EPOCHS,
                token_budget: 1024,
                ..TrainConfig::default()
            },
            temperature: 0.7,
            agent,
        }
    }
}

impl RealConfig {
    /// A run of about ten minutes on two cores with SmolLM2-135M (8 test,
    /// 6 validation, 6 EM-train and 12 warm-up questions; one warm-up epoch,
    /// one round): it shows every phase and its charts, and is far too small
    /// to measure anything.
    pub fn quick() -> Self {
        let full = Self::default();
        Self {
            warmup: 12,
            train: 6,
            valid: 6,
            test: 8,
            warmup_train: TrainConfig {
                epochs: 1,
                checkpoint_every: 10,
                ..full.warmup_train.clone()
            },
            rounds: 1,
            ..full
        }
    }
}
