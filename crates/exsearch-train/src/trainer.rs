//! The optimisation loop shared by warm-up and the M-step: weighted
//! next-token cross-entropy over the trained tokens, micro-batches packed by
//! token budget, gradient accumulation, clipping, AdamW on a cosine schedule,
//! and checkpoints that let a killed run resume at the next unfinished step.
//!
//! The loss of one optimizer step is
//! `sum_examples weight * sum_trained_tokens -log p(token) / trained tokens`,
//! so with all weights 1 it is the mean token cross-entropy.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor, Var, D};
use exsearch_core::CancelToken;
use exsearch_model::model::graph_ops::{DropoutSeeds, TrainingDropout};
use exsearch_model::model::{Decoder, Kernels};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lora::Lora;
use crate::loss::target_log_probs;
use crate::memory::HeldMemory;
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig, Schedule};
use crate::supervised::{pack, Encoded};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// The schedule decays to `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Share of the steps spent warming the rate up.
    pub warmup_ratio: f64,
    pub epochs: usize,
    /// Padded tokens per micro-batch.
    pub token_budget: usize,
    /// Micro-batches per optimizer step.
    pub accumulation: usize,
    /// Global gradient-norm limit (0 = none).
    pub clip: f64,
    pub seed: u64,
    pub adamw: AdamWConfig,
    /// Optimizer steps between checkpoints (0: only when done).
    pub checkpoint_every: usize,
    /// Stop after this many optimizer steps (0: run every epoch); the
    /// schedule spans the steps actually run.
    pub max_steps: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: crate::defaults::LORA_LR,
            min_lr_ratio: 0.1,
            warmup_ratio: 0.1,
            epochs: 2,
            token_budget: crate::defaults::TOKEN_BUDGET,
            accumulation: 1,
            clip: 1.0,
            seed: 0,
            adamw: AdamWConfig::default(),
            checkpoint_every: 20,
            max_steps: 0,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidSetting(m));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate {} must be positive", self.lr));
        }
        if self.epochs == 0 || self.accumulation == 0 || self.token_budget == 0 {
            return bad("epochs, accumulation and token budget must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) || !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("warm-up and minimum learning-rate ratios must be in [0, 1]".into());
        }
        Ok(())
    }
}

/// What is trained.
pub enum Params<'a> {
    /// Adapters over a frozen base.
    Lora(&'a Lora),
    /// Every weight (from [`Decoder::make_trainable`]).
    Full(Vec<(String, Var)>),
}

/// One optimizer step, as the run records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    pub total_steps: usize,
    /// 1-based.
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    /// Trained tokens in this step.
    pub tokens: usize,
}

/// The fixed plan of a run: each optimizer step's micro-batches.
struct Plan {
    steps: Vec<(usize, Vec<Vec<usize>>)>,
}

impl Plan {
    fn new(data: &[Encoded], config: &TrainConfig) -> Self {
        let mut steps = Vec::new();
        for epoch in 0..config.epochs {
            let mut batches = pack(data, config.token_budget);
            batches.shuffle(&mut StdRng::seed_from_u64(config.seed ^ epoch as u64));
            for chunk in batches.chunks(config.accumulation) {
                steps.push((epoch + 1, chunk.to_vec()));
            }
        }
        if config.max_steps > 0 {
            steps.truncate(config.max_steps);
        }
        Self { steps }
    }
}

pub struct Trainer {
    decoder: Decoder,
    optimizer: AdamW,
    config: TrainConfig,
    checkpoint: Option<PathBuf>,
    /// LoRA dropout's masks, started again from the run's seed and the step
    /// before each batch.
    dropout_seeds: DropoutSeeds,
}

impl Trainer {
    /// A trainer over a clone of `decoder` (sharing its variables), with
    /// LoRA dropout switched on in the clone only. With `checkpoint`, a
    /// previous run's state found there is restored.
    pub fn new(
        decoder: &Decoder,
        params: Params<'_>,
        config: TrainConfig,
        checkpoint: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        let mut decoder = decoder.clone();
        decoder.set_kernels(Kernels::Differentiable);
        let dropout_seeds = DropoutSeeds::default();
        let vars = match params {
            Params::Lora(lora) => {
                let dropout = TrainingDropout {
                    p: lora.config().dropout,
                    seeds: dropout_seeds.clone(),
                };
                lora.install(&mut decoder, Some(dropout))?;
                lora.vars()
            }
            Params::Full(vars) => vars,
        };
        let mut optimizer = AdamW::new(vars, config.adamw.clone())?;
        if let Some(dir) = checkpoint {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            if dir.join(STATE).exists() {
                optimizer.load(&dir.join(STATE))?;
                decoder.weights().bump();
            }
        }
        Ok(Self {
            decoder,
            optimizer,
            config,
            checkpoint: checkpoint.map(Path::to_path_buf),
            dropout_seeds,
        })
    }

    /// Optimizer steps taken so far, including those of a resumed run.
    pub fn steps_taken(&self) -> usize {
        self.optimizer.steps_taken()
    }

    /// Optimizer steps this run will take over `data`.
    pub fn total_steps(&self, data: &[Encoded]) -> usize {
        Plan::new(data, &self.config).steps.len()
    }

    /// Runs (or resumes) the plan over `data`, reporting every step.
    /// Returns the records of the steps run now.
    pub fn run(
        &mut self,
        data: &[Encoded],
        on_step: &mut dyn FnMut(&StepRecord),
        cancel: &CancelToken,
    ) -> Result<Vec<StepRecord>> {
        self.run_until(data, on_step, &mut |_| Ok(true), cancel)
    }

    /// [`Trainer::run`] with a call after each epoch that returns whether to
    /// go on (early stopping on a validation loss).
    pub fn run_until(
        &mut self,
        data: &[Encoded],
        on_step: &mut dyn FnMut(&StepRecord),
        on_epoch: &mut dyn FnMut(usize) -> Result<bool>,
        cancel: &CancelToken,
    ) -> Result<Vec<StepRecord>> {
        let _memory = HeldMemory::new();
        let plan = Plan::new(data, &self.config);
        let total = plan.steps.len();
        let schedule = Schedule {
            peak: self.config.lr,
            min: self.config.lr * self.config.min_lr_ratio,
            warmup_steps: (total as f64 * self.config.warmup_ratio).round() as usize,
            total_steps: total,
        };
        let mut records = Vec::new();
        let vars: Vec<Var> = self.optimizer.vars().map(|(_, v)| v.clone()).collect();
        let var_refs: Vec<&Var> = vars.iter().collect();
        for (i, (epoch, batches)) in plan.steps.iter().enumerate() {
            if i < self.optimizer.steps_taken() {
                continue;
            }
            if cancel.is_cancelled() {
                self.save()?;
                return Err(Error::Cancelled);
            }
            let rows = |b: &Vec<usize>| b.iter().map(|&j| &data[j]).collect::<Vec<_>>();
            let tokens: usize = batches.iter().flatten().map(|&j| data[j].targets()).sum();
            let normalizer = tokens.max(1) as f64;
            let mut grads = candle_core::backprop::GradStore::default();
            let mut loss = 0.0;
            for (b, batch) in batches.iter().enumerate() {
                let keys = [self.config.seed, i as u64, b as u64];
                self.dropout_seeds.restart(&keys);
                let l = weighted_loss(&self.decoder, &rows(batch), normalizer)?;
                loss += l.to_scalar::<f32>()? as f64;
                grads.extend(l.backward()?)?;
            }
            let grad_norm = clip_grad_norm(&mut grads, &var_refs, self.config.clip)?;
            let lr = schedule.lr(i);
            self.optimizer.step(&grads, lr)?;
            self.decoder.weights().bump();
            let record = StepRecord {
                step: i + 1,
                total_steps: total,
                epoch: *epoch,
                loss,
                lr,
                grad_norm,
                tokens,
            };
            on_step(&record);
            records.push(record);
            let every = self.config.checkpoint_every;
            if every > 0 && (i + 1) % every == 0 {
                self.save()?;
            }
            let epoch_ends = plan.steps.get(i + 1).is_none_or(|(next, _)| next != epoch);
            if epoch_ends && !on_epoch(*epoch)? {
                break;
            }
        }
        self.save()?;
        Ok(records)
    }

    /// Writes the optimizer state (weights and step count included) to the
    /// checkpoint folder; the step count is where a resumed run starts.
    pub fn save(&self) -> Result<()> {
        if let Some(dir) = &self.checkpoint {
            exsearch_core::failpoint::write_fault("checkpoint")
                .map_err(|e| Error::io(dir.join(STATE), e))?;
            self.optimizer.save(&dir.join(STATE))?;
        }
        Ok(())
    }
}

const STATE: &str = "optimizer.safetensors";

/// The weighted cross-entropy of `rows` divided by `normalizer`, as a scalar
/// tensor whose graph reaches the trained variables. Only the positions in
/// the loss go through the language-model head.
pub fn weighted_loss(decoder: &Decoder, rows: &[&Encoded], normalizer: f64) -> Result<Tensor> {
    let device = decoder.device().clone();
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    if width < 2 {
        return Ok(Tensor::zeros((), DType::F32, &device)?);
    }
    let w = width - 1;
    let mut inputs = vec![0u32; rows.len() * w];
    let mut picked = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let n = row.len() - 1;
        inputs[r * w..r * w + n].copy_from_slice(&row.ids[..n]);
        for i in 0..n {
            if row.trained[i + 1] && row.weight > 0.0 {
                picked.push((r * w + i) as u32);
                targets.push(row.ids[i + 1]);
                weights.push(row.weight);
            }
        }
    }
    if picked.is_empty() {
        return Ok(Tensor::zeros((), DType::F32, &device)?);
    }
    let positions: Vec<u32> = (0..rows.len()).flat_map(|_| 0..w as u32).collect();
    let inputs = Tensor::from_vec(inputs, (rows.len(), w), &device)?;
    let positions = Tensor::from_vec(positions, (rows.len(), w), &device)?;
    let hidden = decoder.forward(&inputs, &positions, None, None)?;
    let h = hidden.dim(D::Minus1)?;
    let n = picked.len();
    let hidden = hidden
        .reshape((rows.len() * w, h))?
        .index_select(&Tensor::from_vec(picked, n, &device)?, 0)?;
    let token_logp = target_log_probs(&decoder.logits(&hidden)?, &targets)?;
    let weights = Tensor::from_vec(weights, n, &device)?;
    Ok(((token_logp * weights)?.sum_all()? * (-1.0 / normalizer))?)
}

/// Mean token cross-entropy over `data` without training (validation).
pub fn evaluate_loss(decoder: &Decoder, data: &[Encoded], token_budget: usize) -> Result<f64> {
    let tokens: usize = data.iter().map(|e| e.targets()).sum();
    let mut total = 0.0;
    for batch in pack(data, token_budget) {
        let rows: Vec<&Encoded> = batch.iter().map(|&i| &data[i]).collect();
        let l = weighted_loss(decoder, &rows, tokens.max(1) as f64)?;
        total += l.detach().to_scalar::<f32>()? as f64;
    }
    Ok(total)
}
