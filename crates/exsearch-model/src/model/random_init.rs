//! Random weights under their Hugging Face names: how `exsearch model init`
//! starts a model that is trained from scratch, and how the test fixtures
//! make models in the real formats.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::model::config::ModelConfig;

/// Seeded normal samples (Box-Muller), for random weights.
pub struct Normal(StdRng);

impl Normal {
    pub fn new(seed: u64) -> Self {
        Self(StdRng::seed_from_u64(seed))
    }

    fn fill(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // Box-Muller: two independent normals per pair of uniforms.
            let u1: f32 = self.0.random::<f32>().max(1e-12);
            let u2: f32 = self.0.random::<f32>();
            let r = (-2.0 * u1.ln()).sqrt();
            let a = 2.0 * std::f32::consts::PI * u2;
            out.push(mean + std * r * a.cos());
            if out.len() < n {
                out.push(mean + std * r * a.sin());
            }
        }
        out
    }

    /// A CPU f32 tensor of `shape` drawn from N(mean, std^2).
    pub fn tensor(&mut self, shape: &[usize], mean: f32, std: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::from_vec(
            self.fill(n, mean, std),
            shape,
            &Device::Cpu,
        )?)
    }
}

/// Random weights for `config` under their Hugging Face names. Matrices are
/// N(0, 1/in), the embedding N(0, 4/hidden), norms N(1, 0.1), biases N(0, 0.1):
/// activations stay O(1) and logits spread over a few units.
pub fn random_tensors(config: &ModelConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let c = config;
    let mut rng = Normal::new(seed);
    let mut t = HashMap::new();
    let (h, q, kv, ff) = c.matrix_dims();
    // Gemma stores norms as offsets from one.
    let norm_mean = if c.norm_unit_offset { 0.0 } else { 1.0 };
    let matrix = |rng: &mut Normal,
                  t: &mut HashMap<String, Tensor>,
                  name: String,
                  out: usize,
                  inp: usize|
     -> Result<()> {
        t.insert(
            name,
            rng.tensor(&[out, inp], 0.0, 1.0 / (inp as f32).sqrt())?,
        );
        Ok(())
    };
    // Small enough that a token's own embedding does not dominate the
    // residual stream (tied heads would just repeat the last token), large
    // enough that logits spread over a few units.
    t.insert(
        "model.embed_tokens.weight".into(),
        rng.tensor(&[c.vocab_size, h], 0.0, 2.0 / (h as f32).sqrt())?,
    );
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        for (name, out, inp) in [
            ("self_attn.q_proj", q, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, q),
            ("mlp.gate_proj", ff, h),
            ("mlp.up_proj", ff, h),
            ("mlp.down_proj", h, ff),
        ] {
            matrix(&mut rng, &mut t, format!("{p}.{name}.weight"), out, inp)?;
        }
        if c.qkv_bias {
            for (name, n) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
                t.insert(
                    format!("{p}.self_attn.{name}.bias"),
                    rng.tensor(&[n], 0.0, 0.1)?,
                );
            }
        }
        if c.qk_norm {
            for name in ["q_norm", "k_norm"] {
                t.insert(
                    format!("{p}.self_attn.{name}.weight"),
                    rng.tensor(&[c.head_dim], norm_mean, 0.1)?,
                );
            }
        }
        let norms: &[&str] = if c.sandwich_norms {
            &[
                "input_layernorm",
                "post_attention_layernorm",
                "pre_feedforward_layernorm",
                "post_feedforward_layernorm",
            ]
        } else {
            &["input_layernorm", "post_attention_layernorm"]
        };
        for name in norms {
            t.insert(
                format!("{p}.{name}.weight"),
                rng.tensor(&[h], norm_mean, 0.1)?,
            );
        }
    }
    t.insert(
        "model.norm.weight".into(),
        rng.tensor(&[h], norm_mean, 0.1)?,
    );
    if !c.tie_word_embeddings {
        matrix(&mut rng, &mut t, "lm_head.weight".into(), c.vocab_size, h)?;
    }
    Ok(t)
}
