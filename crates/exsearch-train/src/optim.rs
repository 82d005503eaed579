//! AdamW with decoupled weight decay, a cosine schedule with linear warm-up,
//! and gradient clipping by global norm.
//!
//! Our own AdamW (not candle-nn's) because a run must resume after a kill:
//! its moments and step count are saved and restored with the weights.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lora::save_tensors;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    /// Optimizer steps taken.
    step: usize,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                let v = m.clone();
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            slots,
            step: 0,
        })
    }

    pub fn steps_taken(&self) -> usize {
        self.step
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.slots.iter().map(|s| (s.name.as_str(), &s.var))
    }

    /// One update with learning rate `lr`. Variables without a gradient
    /// (unused by the loss) are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let (scale_m, scale_v) = (1.0 / (1.0 - c.beta1.powi(t)), 1.0 / (1.0 - c.beta2.powi(t)));
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(s.m.dtype())?;
            s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&s.m * scale_m)? / ((&s.v * scale_v)?.sqrt()? + c.eps)?)?;
            let theta = s.var.as_tensor();
            let next = ((theta * (1.0 - lr * c.weight_decay))? - (update * lr)?)?;
            s.var.set(&next.detach())?;
        }
        Ok(())
    }

    /// Saves the moments, the step count and the variables themselves.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut tensors = HashMap::new();
        for s in &self.slots {
            tensors.insert(format!("param.{}", s.name), s.var.as_tensor().clone());
            tensors.insert(format!("m.{}", s.name), s.m.clone());
            tensors.insert(format!("v.{}", s.name), s.v.clone());
        }
        tensors.insert(
            "step".into(),
            Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?,
        );
        save_tensors(&tensors, path)
    }

    /// Restores what [`AdamW::save`] wrote into these variables.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let device = self
            .slots
            .first()
            .map(|s| s.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device)
            .map_err(|e| Error::bad_file(path, e.to_string()))?;
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| Error::bad_file(path, format!("tensor `{name}` is missing")))
        };
        for s in &mut self.slots {
            let param = get(&format!("param.{}", s.name))?;
            if param.dims() != s.var.dims() {
                return Err(Error::bad_file(
                    path,
                    format!("`{}` has another shape than the model's", s.name),
                ));
            }
            s.var.set(&param.to_dtype(s.var.dtype())?)?;
            s.m = get(&format!("m.{}", s.name))?.clone();
            s.v = get(&format!("v.{}", s.name))?.clone();
        }
        self.step = get("step")?.to_vec1::<u32>()?[0] as usize;
        Ok(())
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[&Var], max_norm: f64) -> Result<f64> {
    let mut sum = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += g
                .to_dtype(candle_core::DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()? as f64;
        }
    }
    let norm = sum.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}

/// Learning rate: linear warm-up to `peak`, then cosine decay to `min`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak: f64,
    pub min: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// The rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}
