//! The synthetic demonstration's settings: the world, the model trained
//! from scratch, reading, warm-up, and the EM rounds.

use exsearch_agent::AgentSettings;
use serde::{Deserialize, Serialize};

use crate::estep::EStepOptions;
use crate::init::InitConfig;
use crate::trainer::TrainConfig;
use crate::world::WorldConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoConfig {
    pub world: WorldConfig,
    pub model: InitConfig,
    pub agent: AgentSettings,
    /// Reading before warm-up: language modelling on the documents of
    /// another world from the same generator (other entities), so the new
    /// model learns to read and repeat names before it learns to search.
    pub reading: ReadingConfig,
    /// Warm-up: one epoch per `epochs`, stopped when the loss on held-out
    /// trajectories of the same teacher (5% of them) has not improved for
    /// `patience` epochs.
    pub warmup: TrainConfig,
    pub patience: usize,
    pub rounds: usize,
    pub estep: EStepOptions,
    pub mstep: TrainConfig,
    /// Sampling temperature of the E-step (evaluation is greedy).
    pub estep_temperature: f32,
}

impl Default for DemoConfig {
    /// Small enough to run on two CPU cores: a 2-layer model with a
    /// 512-token vocabulary (names are several syllable tokens, so a name
    /// never seen in training is still made of known tokens), one passage
    /// per search (the world's documents are short and BM25 finds each by
    /// its name), short instructions, greedy evaluation. The warm-up teacher
    /// slips on 60% of its trajectories (`teacher_error`), so a warmed-up
    /// model makes its mistakes more often than not; the EM rounds learn
    /// from gold answers alone.
    fn default() -> Self {
        let mut agent = AgentSettings {
            instructions: "Search with {query}, read {search}, note {fact}, end with {finish}."
                .into(),
            final_request: "Answer: {question}".into(),
            k: 1,
            max_steps: 3,
            step_tokens: 32,
            answer_tokens: 10,
            ..AgentSettings::default()
        };
        agent.sampling.temperature = 0.0;
        agent.sampling.top_p = 1.0;
        Self {
            world: WorldConfig {
                warmup: 1500,
                train: 400,
                valid: 40,
                test: 100,
                teacher_error: 0.6,
                ..WorldConfig::default()
            },
            model: InitConfig {
                hidden: 64,
                layers: 2,
                heads: 4,
                kv_heads: 2,
                intermediate: 256,
                vocab: 512,
                ..InitConfig::default()
            },
            agent,
            reading: ReadingConfig::default(),
            warmup: TrainConfig {
                lr: 3e-3,
                epochs: 16,
                warmup_ratio: 0.02,
                token_budget: 2048,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            patience: 2,
            rounds: 3,
            estep: EStepOptions {
                batch: 16,
                min_answer_prob: 0.5,
                ..EStepOptions::default()
            },
            mstep: TrainConfig {
                lr: 1e-3,
                epochs: 1,
                warmup_ratio: 0.1,
                token_budget: 2048,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            estep_temperature: 0.7,
        }
    }
}

impl DemoConfig {
    /// The same settings with the world and the model drawn from `seed`.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.world.seed = seed;
        self.model.seed = seed;
        self
    }

    /// A run of a minute or two on two cores: the same pipeline on a small
    /// world (300 warm-up trajectories, 60 EM questions), three warm-up
    /// epochs and one EM round. It shows the loop and its charts; it is too
    /// short to show the EM gain the full demonstration measures.
    pub fn quick() -> Self {
        let full = Self::default();
        Self {
            world: WorldConfig {
                warmup: 300,
                train: 60,
                valid: 10,
                test: 20,
                ..full.world
            },
            reading: ReadingConfig {
                questions: 200,
                train: TrainConfig {
                    epochs: 1,
                    ..full.reading.train.clone()
                },
                ..full.reading.clone()
            },
            warmup: TrainConfig {
                epochs: 3,
                ..full.warmup.clone()
            },
            patience: 1,
            rounds: 1,
            ..full
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadingConfig {
    /// Questions of the other world whose documents are read (0: no reading).
    pub questions: usize,
    /// Documents concatenated into one training sequence.
    pub documents_per_sequence: usize,
    pub train: TrainConfig,
}

impl Default for ReadingConfig {
    fn default() -> Self {
        Self {
            questions: 1500,
            documents_per_sequence: 8,
            train: TrainConfig {
                lr: 5e-3,
                epochs: 5,
                warmup_ratio: 0.05,
                token_budget: 4096,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
        }
    }
}
