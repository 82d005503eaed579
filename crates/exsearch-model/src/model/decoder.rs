//! Our decoder-only transformer: one implementation for every supported
//! family, two kernel sets.
//!
//! `Kernels::Fused` uses candle's fused rms-norm, rope and softmax (fast,
//! inference only); `Kernels::Differentiable` builds the same function from
//! ops that have a backward pass, so the training rounds can take gradients
//! through LoRA adapters. Both read the same weights, so switching is free.

use candle_core::{DType, Device, Tensor, D};

use super::cache::{attention_mask, KvCache};
use super::config::{ModelConfig, RopeStyle};
use super::cpu_ops;
use super::linear::Linear;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    Fused,
    Differentiable,
}

#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub(crate) weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }

    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        Ok(match kernels {
            Kernels::Fused => {
                candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)?
            }
            Kernels::Differentiable => {
                candle_nn::ops::rms_norm_slow(x, &self.weight, self.eps as f32)?
            }
        })
    }
}

#[derive(Clone, Debug)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub input_norm: RmsNorm,
    pub attn: Attention,
    pub post_norm: RmsNorm,
    pub mlp: Mlp,
}

/// The whole model. Weights are loaded by [`crate::model::weights`].
#[derive(Clone, Debug)]
pub struct Decoder {
    pub(crate) config: ModelConfig,
    pub(crate) embed: Tensor,
    pub(crate) blocks: Vec<Block>,
    pub(crate) norm: RmsNorm,
    pub(crate) lm_head: Linear,
    inv_freq: Tensor,
    kernels: Kernels,
}

/// Cosine and sine of every (row, position, frequency), `[b, t, d/2]`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Decoder {
    pub(crate) fn new(
        config: ModelConfig,
        embed: Tensor,
        blocks: Vec<Block>,
        norm: RmsNorm,
        lm_head: Linear,
    ) -> Result<Self> {
        let inv_freq = config.inv_freq();
        let n = inv_freq.len();
        let inv_freq = Tensor::from_vec(inv_freq, (1, 1, n), embed.device())?;
        Ok(Self {
            config,
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq,
            kernels: Kernels::Fused,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// The activation dtype (the dense weights' dtype; f32 for GGUF).
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    pub fn blocks_mut(&mut self) -> &mut [Block] {
        &mut self.blocks
    }

    /// Runs `tokens` (`[b, t]`, u32) at `positions` (`[b, t]`, u32) through the
    /// model and returns the final normalised hidden states `[b, t, hidden]`.
    ///
    /// With a cache, the new keys and values are appended after its columns and
    /// the cache is advanced. `mask` is the additive mask over `past + t` key
    /// columns; without one a causal mask is used (rows unpadded).
    pub fn forward(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        let built;
        let mask = match mask {
            Some(m) => Some(m),
            None if t > 1 => {
                built = attention_mask(&vec![0; b], past, t, self.dtype(), self.device())?;
                Some(&built)
            }
            None => None,
        };
        let rotary = self.rotary(positions)?;
        let mut x = self
            .embed
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, self.config.hidden_size))?;
        for (i, block) in self.blocks.iter().enumerate() {
            let h = block.input_norm.forward(&x, self.kernels)?;
            let h = self.attention(&block.attn, &h, &rotary, mask, i, cache.as_deref_mut())?;
            x = (x + h)?;
            let h = block.post_norm.forward(&x, self.kernels)?;
            let gate_up = Linear::forward_shared(&[&block.mlp.gate, &block.mlp.up], &h)?;
            let fused = self.kernels == Kernels::Fused;
            let h = block
                .mlp
                .down
                .forward(&cpu_ops::silu_mul(&gate_up[0], &gate_up[1], fused)?)?;
            x = (x + h)?;
        }
        if let Some(cache) = cache {
            cache.advance(t);
        }
        self.norm.forward(&x, self.kernels)
    }

    /// Logits (f32) for hidden states `[.., hidden]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?.to_dtype(DType::F32)?)
    }

    /// Logits of hidden states `[rows, hidden]` into `out` (`rows *
    /// vocab`), reusing its memory from step to step where it can.
    pub fn logits_into(&self, hidden: &Tensor, out: &mut Vec<f32>) -> Result<()> {
        self.lm_head.forward_into(hidden, out)
    }

    fn rotary(&self, positions: &Tensor) -> Result<Rotary> {
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_mul(&self.inv_freq)?;
        Ok(Rotary {
            cos: angles.cos()?.to_dtype(self.dtype())?.contiguous()?,
            sin: angles.sin()?.to_dtype(self.dtype())?.contiguous()?,
        })
    }

    fn rope(&self, x: &Tensor, r: &Rotary) -> Result<Tensor> {
        Ok(match (self.kernels, self.config.rope_style) {
            (Kernels::Fused, RopeStyle::Half) => candle_nn::rotary_emb::rope(x, &r.cos, &r.sin)?,
            (Kernels::Fused, RopeStyle::Interleaved) => {
                candle_nn::rotary_emb::rope_i(x, &r.cos, &r.sin)?
            }
            (Kernels::Differentiable, RopeStyle::Half) => {
                let cos = Tensor::cat(&[&r.cos, &r.cos], D::Minus1)?.unsqueeze(1)?;
                let sin = Tensor::cat(&[&r.sin, &r.sin], D::Minus1)?.unsqueeze(1)?;
                let half = x.dim(D::Minus1)? / 2;
                let rotated = Tensor::cat(
                    &[
                        &x.narrow(D::Minus1, half, half)?.neg()?,
                        &x.narrow(D::Minus1, 0, half)?,
                    ],
                    D::Minus1,
                )?;
                (x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?
            }
            (Kernels::Differentiable, RopeStyle::Interleaved) => return Err(Error::Unsupported(
                "training through interleaved rope (GGUF Llama weights); train from safetensors"
                    .into(),
            )),
        })
    }

    fn attention(
        &self,
        attn: &Attention,
        x: &Tensor,
        rotary: &Rotary,
        mask: Option<&Tensor>,
        layer: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t, _) = x.dims3()?;
        let (hq, hkv, d) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let heads = |y: &Tensor, n: usize, norm: Option<&RmsNorm>| -> Result<Tensor> {
            let mut y = y.reshape((b, t, n, d))?;
            if let Some(norm) = norm {
                y = norm.forward(&y, self.kernels)?;
            }
            Ok(y.transpose(1, 2)?.contiguous()?)
        };
        let qkv = Linear::forward_shared(&[&attn.q, &attn.k, &attn.v], x)?;
        let q = self.rope(&heads(&qkv[0], hq, attn.q_norm.as_ref())?, rotary)?;
        let k = self.rope(&heads(&qkv[1], hkv, attn.k_norm.as_ref())?, rotary)?;
        let v = heads(&qkv[2], hkv, None)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let scale = 1.0 / (d as f64).sqrt();
        if self.kernels == Kernels::Fused {
            if let Some(out) = cpu_ops::decode_attention(&q, &k, &v, mask, scale as f32)? {
                return attn.o.forward(&out);
            }
        }
        let tk = k.dim(2)?;
        let groups = hq / hkv;
        // Grouped-query attention without copying K/V: the query heads that
        // share a K/V head are adjacent, so they fold into the row dimension.
        let q = q.reshape((b, hkv, groups * t, d))?;
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(mask) = mask {
            scores = scores
                .reshape((b, hkv, groups, t, tk))?
                .broadcast_add(&mask.unsqueeze(2)?)?
                .reshape((b, hkv, groups * t, tk))?;
        }
        let wide = scores.dtype() != DType::F32;
        if wide {
            scores = scores.to_dtype(DType::F32)?;
        }
        let mut probs = match self.kernels {
            Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores)?,
            Kernels::Differentiable => candle_nn::ops::softmax(&scores, D::Minus1)?,
        };
        if wide {
            probs = probs.to_dtype(v.dtype())?;
        }
        let out = probs
            .matmul(&v)?
            .reshape((b, hq, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, hq * d))?;
        attn.o.forward(&out)
    }
}
