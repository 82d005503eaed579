//! A BERT encoder (the architecture of all-MiniLM-L6-v2 and the other
//! sentence-transformers models): absolute position embeddings, post-norm
//! layers, exact-erf GELU. Inference only; padded batches are masked so a
//! text's vector does not depend on what it was batched with.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{cpu_ops, packed, Linear};

/// The fields of a Hugging Face `config.json` a BERT encoder needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position_type() -> String {
    "absolute".into()
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    pub config: BertConfig,
}

/// Reads named tensors, with or without the `bert.` prefix that
/// `BertForX` checkpoints add.
struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
    file: &'a Path,
    /// Matrices as Q8_0 for our 8-bit kernels (a CPU with AVX512-VNNI).
    quantize: bool,
    device: Device,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .tensors
            .get(&full)
            .ok_or_else(|| Error::bad_file(self.file, format!("no tensor {full}")))?;
        if t.dims() != shape {
            return Err(Error::bad_file(
                self.file,
                format!("{full} has shape {:?}, expected {shape:?}", t.dims()),
            ));
        }
        Ok(t.to_dtype(DType::F32)?)
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear> {
        let weight = self.get(&format!("{name}.weight"), &[out, inp])?;
        let bias = Some(self.get(&format!("{name}.bias"), &[out])?);
        if self.quantize {
            let q = QTensor::quantize(&weight, GgmlDType::Q8_0)?;
            Linear::from_qtensor(q, bias, &self.device)
        } else {
            Linear::dense(weight, bias)
        }
    }

    fn norm(&self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(&format!("{name}.weight"), &[dim])?,
            self.get(&format!("{name}.bias"), &[dim])?,
            eps,
        ))
    }
}

impl Bert {
    /// Loads `model.safetensors` under the shapes `config` gives.
    pub fn load(config: BertConfig, weights: &Path, device: &Device) -> Result<Self> {
        if config.hidden_act != "gelu" {
            return Err(Error::Unsupported(format!(
                "{}: BERT activation {} (supported: gelu)",
                weights.display(),
                config.hidden_act
            )));
        }
        if config.position_embedding_type != "absolute" {
            return Err(Error::Unsupported(format!(
                "{}: position embeddings {} (supported: absolute)",
                weights.display(),
                config.position_embedding_type
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(Error::bad_file(
                weights,
                "hidden size is not a multiple of the head count",
            ));
        }
        let tensors = candle_core::safetensors::load(weights, device)
            .map_err(|e| Error::bad_file(weights, e.to_string()))?;
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let quantize = device.is_cpu()
            && packed::available()
            && config.hidden_size.is_multiple_of(32)
            && config.intermediate_size.is_multiple_of(32);
        let w = Weights {
            tensors,
            prefix,
            file: weights,
            quantize,
            device: device.clone(),
        };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let token_type = w
            .get(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, h],
            )?
            .get(0)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                attention_out: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: w.linear(
                    &format!("{p}.intermediate.dense"),
                    config.intermediate_size,
                    h,
                )?,
                output: w.linear(&format!("{p}.output.dense"), h, config.intermediate_size)?,
                output_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Self {
            word: Embedding::new(
                w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
                h,
            ),
            position: Embedding::new(
                w.get(
                    "embeddings.position_embeddings.weight",
                    &[config.max_position_embeddings, h],
                )?,
                h,
            ),
            token_type,
            embedding_norm: w.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            heads: config.num_attention_heads,
            head_dim: h / config.num_attention_heads,
            config,
        })
    }

    /// Last hidden states `[batch, len, hidden]` of `ids` (`[batch, len]`,
    /// u32), where `mask` (`[batch, len]`, f32) is 1 on real tokens and 0 on
    /// padding.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let hidden = self.config.hidden_size;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        // Token rows stay flat, `[batch * len, hidden]`, so each linear
        // layer is one matrix product over the whole batch.
        let mut x = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .broadcast_add(&self.token_type)?
            .reshape((batch * len, hidden))?;
        x = self.embedding_norm.forward(&x)?;
        // 0 where a key is a real token, a large negative where it is
        // padding; one row per query position, as the fused softmax takes.
        let bias = ((mask - 1.0)? * 1e9)?
            .reshape((batch, 1, 1, len))?
            .broadcast_as((batch, 1, len, len))?
            .contiguous()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((batch, len, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        for layer in &self.layers {
            let q = split(layer.query.forward(&x)?)?;
            let k = split(layer.key.forward(&x)?)?;
            let v = split(layer.value.forward(&x)?)?;
            let scores = q.matmul(&k.t()?)?;
            let probs =
                match cpu_ops::scaled_masked_softmax(&scores, scale as f32, Some(&bias), len)? {
                    Some(probs) => probs,
                    None => {
                        candle_nn::ops::softmax_last_dim(&(scores * scale)?.broadcast_add(&bias)?)?
                    }
                };
            let context = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch * len, hidden))?;
            let attended = layer.attention_out.forward(&context)?;
            x = layer.attention_norm.forward(&(x + attended)?)?;
            let inner = cpu_ops::gelu_erf(&layer.intermediate.forward(&x)?)?;
            let out = layer.output.forward(&inner)?;
            x = layer.output_norm.forward(&(x + out)?)?;
        }
        Ok(x.reshape((batch, len, hidden))?)
    }
}

/// The mean of `hidden` (`[batch, len, dim]`) over real tokens, each row
/// scaled to unit length.
pub fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.unsqueeze(D::Minus1)?;
    let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
    let count = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = sum.broadcast_div(&count)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(mean.broadcast_div(&norm)?)
}
