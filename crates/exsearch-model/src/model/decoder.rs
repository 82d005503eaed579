//! Our decoder-only transformer: one implementation for every supported
//! family, two kernel sets.
//!
//! `Kernels::Fused` uses candle's fused rms-norm, rope and softmax (fast,
//! inference only); `Kernels::Differentiable` builds the same function from
//! ops that have a backward pass, so the training rounds can take gradients
//! through LoRA adapters (on the CPU, attention from `q`, `k`, `v` is one
//! node, `graph_ops::attention_op`, with candle's arithmetic). Both read the
//! same weights, so switching is free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor, D};

use super::config::{Activation, ModelConfig};
use super::cpu_ops;
use super::graph_ops;
use super::kv_cache::{attention_mask, sliding_mask, KvCache};
use super::linear::Linear;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    Fused,
    Differentiable,
}

/// How many times a decoder's weights changed in place, shared by its
/// clones. A trainer updates variables that the engine's decoder shares
/// (`Var::set` writes into the same storage), so nothing the engine can see
/// changes: the trainer counts its updates here, and the engine's prompt
/// cache keeps the keys and values of the current count only.
#[derive(Clone, Debug, Default)]
pub struct WeightsVersion(Arc<AtomicU64>);

impl WeightsVersion {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Records that the weights changed (after the new values are written).
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Root-mean-square normalisation. Gemma's norms multiply by `1 + weight`
/// (`unit_offset`); `weight` is always what the checkpoint stores under its
/// Hugging Face name, `scale` what the normalised values are multiplied by.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub(crate) weight: Tensor,
    eps: f64,
    unit_offset: bool,
    scale: Tensor,
}

impl RmsNorm {
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self {
            scale: weight.clone(),
            weight,
            eps,
            unit_offset: false,
        }
    }

    /// A norm that multiplies by `1 + weight` (Gemma's checkpoints).
    pub fn with_unit_offset(weight: Tensor, eps: f64) -> Result<Self> {
        let mut norm = Self::new(weight, eps);
        norm.unit_offset = true;
        norm.refresh()?;
        Ok(norm)
    }

    /// A norm given by what it multiplies with, as GGUF files store Gemma's
    /// (llama.cpp's converter adds the one).
    pub fn from_scale(scale: Tensor, eps: f64, unit_offset: bool) -> Result<Self> {
        let mut norm = Self::new(scale, eps);
        if unit_offset {
            norm.weight = (&norm.scale - 1.0)?;
            norm.unit_offset = true;
        }
        Ok(norm)
    }

    /// Recomputes `scale` after `weight` was replaced.
    pub(crate) fn refresh(&mut self) -> Result<()> {
        self.scale = if self.unit_offset {
            (&self.weight + 1.0)?
        } else {
            self.weight.clone()
        };
        Ok(())
    }

    fn forward(&self, x: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let eps = self.eps as f32;
        Ok(match kernels {
            Kernels::Fused => candle_nn::ops::rms_norm(&x.contiguous()?, &self.scale, eps)?,
            // Built from the weight each time, so gradients reach a trained one.
            Kernels::Differentiable if self.unit_offset => {
                candle_nn::ops::rms_norm_slow(x, &(&self.weight + 1.0)?, eps)?
            }
            Kernels::Differentiable => candle_nn::ops::rms_norm_slow(x, &self.weight, eps)?,
        })
    }
}

// Fields carry the Hugging Face tensor names (`model.layers.N.self_attn.q_proj`),
// as candle's models do, so a weight is found by the name it has on disk.

#[derive(Clone, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

/// One decoder layer. The norms take Gemma's names, the one family with all
/// four; Llama-style checkpoints have two, `input_layernorm` and the norm
/// before the MLP, which they call `post_attention_layernorm` and which
/// loads here as `pre_feedforward_layernorm`.
#[derive(Clone, Debug)]
pub struct Block {
    /// Before attention.
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    /// Gemma: on the attention's output, before the residual add.
    pub post_attention_layernorm: Option<RmsNorm>,
    /// Before the MLP.
    pub pre_feedforward_layernorm: RmsNorm,
    pub mlp: Mlp,
    /// Gemma: on the MLP's output, before the residual add.
    pub post_feedforward_layernorm: Option<RmsNorm>,
}

/// The token embedding table: dense (safetensors, or trained), or kept in a
/// GGUF file's quantization with each looked-up row dequantized (Gemma 3's
/// 262k-token table is 671 MB as f32 and 176 MB as the file's Q8_0).
#[derive(Clone, Debug)]
pub enum Embedding {
    Dense(Tensor),
    Quantized(std::sync::Arc<QuantizedRows>),
}

/// A quantized `[rows, cols]` table read row by row.
pub struct QuantizedRows {
    data: Vec<u8>,
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    device: Device,
}

impl std::fmt::Debug for QuantizedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QuantizedRows({:?}, {}x{})",
            self.dtype, self.rows, self.cols
        )
    }
}

impl QuantizedRows {
    /// `None` when rows do not hold whole blocks (the table is then dense).
    pub fn new(t: &QTensor, device: &Device) -> Result<Option<Self>> {
        let (rows, cols) = t.shape().dims2()?;
        let dtype = t.dtype();
        if matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
            || !cols.is_multiple_of(dtype.block_size())
        {
            return Ok(None);
        }
        Ok(Some(Self {
            data: t.data()?.into_owned(),
            dtype,
            rows,
            cols,
            device: device.clone(),
        }))
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.dtype.block_size() * self.dtype.type_size()
    }

    /// The rows of `ids`, dequantized to f32: `[ids.len(), cols]`.
    fn lookup(&self, ids: &[u32]) -> Result<Tensor> {
        let size = self.row_bytes();
        let mut bytes = Vec::with_capacity(ids.len() * size);
        for &id in ids {
            let at = id as usize;
            if at >= self.rows {
                return Err(Error::InvalidOption(format!(
                    "token id {id} is outside the vocabulary of {} tokens",
                    self.rows
                )));
            }
            bytes.extend_from_slice(&self.data[at * size..(at + 1) * size]);
        }
        let storage =
            QStorage::from_data(std::borrow::Cow::Owned(bytes), &Device::Cpu, self.dtype)?;
        Ok(QTensor::new(storage, (ids.len(), self.cols))?.dequantize(&self.device)?)
    }
}

impl Embedding {
    pub fn device(&self) -> &Device {
        match self {
            Embedding::Dense(t) => t.device(),
            Embedding::Quantized(q) => &q.device,
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Embedding::Dense(t) => t.dtype(),
            Embedding::Quantized(_) => DType::F32,
        }
    }

    /// The dense table, which training and checkpoints need.
    pub(crate) fn dense_mut(&mut self) -> Option<&mut Tensor> {
        match self {
            Embedding::Dense(t) => Some(t),
            Embedding::Quantized(_) => None,
        }
    }

    /// The rows of `tokens` (`[n]`, u32): `[n, hidden]`.
    fn lookup(&self, tokens: &Tensor) -> Result<Tensor> {
        match self {
            Embedding::Dense(t) => Ok(t.index_select(tokens, 0)?),
            Embedding::Quantized(q) => q.lookup(&tokens.to_vec1::<u32>()?),
        }
    }
}

/// The whole model. Weights are loaded by [`crate::model::loading`].
#[derive(Clone, Debug)]
pub struct Decoder {
    pub(crate) config: ModelConfig,
    pub(crate) embed_tokens: Embedding,
    pub(crate) layers: Vec<Block>,
    pub(crate) norm: RmsNorm,
    pub(crate) lm_head: Linear,
    inv_freq: Tensor,
    /// The rope frequencies of sliding-window layers, when they have their own.
    local_inv_freq: Option<Tensor>,
    kernels: Kernels,
    weights: WeightsVersion,
}

/// Cosine and sine of every (row, position, frequency), `[b, t, d/2]`.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Decoder {
    pub(crate) fn new(
        config: ModelConfig,
        embed: Embedding,
        blocks: Vec<Block>,
        norm: RmsNorm,
        lm_head: Linear,
    ) -> Result<Self> {
        let as_tensor = |freqs: Vec<f32>| {
            let n = freqs.len();
            Tensor::from_vec(freqs, (1, 1, n), embed.device())
        };
        let inv_freq = as_tensor(config.inv_freq())?;
        let local_inv_freq = config.local_inv_freq().map(as_tensor).transpose()?;
        Ok(Self {
            config,
            embed_tokens: embed,
            layers: blocks,
            norm,
            lm_head,
            inv_freq,
            local_inv_freq,
            kernels: Kernels::Fused,
            weights: WeightsVersion::default(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    /// The activation dtype (the dense weights' dtype; f32 for GGUF).
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// The count of in-place weight changes, shared with every clone: whoever
    /// writes into the variables of a decoder that generates calls
    /// [`WeightsVersion::bump`] afterwards.
    pub fn weights(&self) -> &WeightsVersion {
        &self.weights
    }

    pub fn layers_mut(&mut self) -> &mut [Block] {
        &mut self.layers
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
        let rotary = self.rotary(positions, &self.inv_freq)?;
        let local_rotary = match &self.local_inv_freq {
            Some(freqs) => Some(self.rotary(positions, freqs)?),
            None => None,
        };
        // Sliding-window layers hide keys more than `window` positions back;
        // every row's columns are consecutive positions, so that is a band
        // over column indices whatever the row's padding.
        let local_mask = match self.config.sliding_window.as_ref() {
            Some(sw) if past + t > sw.window => Some(sliding_mask(
                mask,
                b,
                past,
                t,
                sw.window,
                self.dtype(),
                self.device(),
            )?),
            _ => None,
        };
        let c = &self.config;
        let mut x =
            self.embed_tokens
                .lookup(&tokens.flatten_all()?)?
                .reshape((b, t, c.hidden_size))?;
        if c.scale_embeddings {
            x = (x * (c.hidden_size as f64).sqrt())?;
        }
        let kernels = self.kernels;
        for (i, block) in self.layers.iter().enumerate() {
            let local = c.window_of(i).is_some();
            let (rotary, mask) = match (local, &local_rotary) {
                (true, Some(r)) => (r, local_mask.as_ref().or(mask)),
                (true, None) => (&rotary, local_mask.as_ref().or(mask)),
                (false, _) => (&rotary, mask),
            };
            let h = block.input_layernorm.forward(&x, kernels)?;
            let mut h =
                self.attention(&block.self_attn, &h, rotary, mask, i, cache.as_deref_mut())?;
            if let Some(norm) = &block.post_attention_layernorm {
                h = norm.forward(&h, kernels)?;
            }
            x = (x + h)?;
            let h = block.pre_feedforward_layernorm.forward(&x, kernels)?;
            let gate_up = Linear::forward_shared(&[&block.mlp.gate_proj, &block.mlp.up_proj], &h)?;
            let gated = match c.activation {
                Activation::Silu => {
                    cpu_ops::silu_mul(&gate_up[0], &gate_up[1], kernels == Kernels::Fused)?
                }
                Activation::GeluTanh => {
                    cpu_ops::gelu_tanh_mul(&gate_up[0], &gate_up[1], kernels == Kernels::Fused)?
                }
            };
            let mut h = block.mlp.down_proj.forward(&gated)?;
            if let Some(norm) = &block.post_feedforward_layernorm {
                h = norm.forward(&h, kernels)?;
            }
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

    fn rotary(&self, positions: &Tensor, inv_freq: &Tensor) -> Result<Rotary> {
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_mul(inv_freq)?;
        Ok(Rotary {
            cos: angles.cos()?.to_dtype(self.dtype())?.contiguous()?,
            sin: angles.sin()?.to_dtype(self.dtype())?.contiguous()?,
        })
    }

    /// Rotary embedding over the two halves of each head (Hugging Face's
    /// `rotate_half`; GGUF Llama weights are put in that order at load).
    fn rope(&self, x: &Tensor, r: &Rotary) -> Result<Tensor> {
        Ok(match self.kernels {
            Kernels::Fused => candle_nn::rotary_emb::rope(x, &r.cos, &r.sin)?,
            Kernels::Differentiable => {
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
        let qkv = Linear::forward_shared(&[&attn.q_proj, &attn.k_proj, &attn.v_proj], x)?;
        let q = self.rope(&heads(&qkv[0], hq, attn.q_norm.as_ref())?, rotary)?;
        let k = self.rope(&heads(&qkv[1], hkv, attn.k_norm.as_ref())?, rotary)?;
        let v = heads(&qkv[2], hkv, None)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(layer, &k, &v)?,
            None => (k, v),
        };
        let scale = c.attention_scale;
        if self.kernels == Kernels::Fused {
            if let Some(out) = cpu_ops::decode_attention(&q, &k, &v, mask, scale as f32)? {
                return attn.o_proj.forward(&out);
            }
        }
        let tk = k.dim(2)?;
        let groups = hq / hkv;
        // Grouped-query attention without copying K/V: the query heads that
        // share a K/V head are adjacent, so they fold into the row dimension.
        let q = q.reshape((b, hkv, groups * t, d))?;
        let merge_heads = |out: Tensor| -> Result<Tensor> {
            Ok(out
                .reshape((b, hq, t, d))?
                .transpose(1, 2)?
                .reshape((b, t, hq * d))?)
        };
        if self.kernels == Kernels::Differentiable {
            // Its own graph node: the scores and probabilities are not kept.
            if let Some(out) = graph_ops::attention_op(&q, &k, &v, scale, mask, t)? {
                return attn.o_proj.forward(&merge_heads(out)?);
            }
        }
        let raw = q.matmul(&k.t()?)?;
        if self.kernels == Kernels::Fused {
            if let Some(probs) = cpu_ops::scaled_masked_softmax(&raw, scale as f32, mask, t)? {
                return attn.o_proj.forward(&merge_heads(probs.matmul(&v)?)?);
            }
        }
        let mut scores = (raw * scale)?;
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
        attn.o_proj.forward(&merge_heads(probs.matmul(&v)?)?)
    }
}
