//! Building a [`Decoder`] from weight files: Hugging Face safetensors (f32,
//! f16, bf16; one file or shards with an index) by their HF tensor names, or a
//! GGUF file (any quantization candle reads, Q8_0 and Q4_K_M included).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, QTensor};
use candle_core::{DType, Device, Tensor};

use super::config::{
    sliding_layers, Activation, Family, ModelConfig, SlidingWindow, GEMMA3_PATTERN,
};
use super::decoder::{Attention, Block, Decoder, Embedding, Mlp, QuantizedRows, RmsNorm};
use super::linear::Linear;
use crate::error::{Error, Result};

/// Tensors from one or more safetensors files, looked up by name.
struct SafeTensors {
    files: candle_core::safetensors::MmapedSafetensors,
    names: std::collections::HashSet<String>,
    /// The file (or, for shards, the folder) named in errors.
    origin: PathBuf,
    device: Device,
    dtype: DType,
}

impl SafeTensors {
    fn open(paths: &[PathBuf], device: &Device, dtype: DType) -> Result<Self> {
        let origin = match paths {
            [one] => one.clone(),
            [first, ..] => first.parent().map(Path::to_path_buf).unwrap_or_default(),
            [] => return Err(Error::Unsupported("no safetensors files were given".into())),
        };
        for path in paths {
            std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        }
        // SAFETY: the files are memory-mapped read-only. The runtime never
        // writes to them and the hub code only renames complete blobs into
        // place, so a mapped file does not change while it is loaded.
        #[allow(unsafe_code)]
        let files =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(paths) }.map_err(|e| {
                Error::bad_file(&origin, format!("not a readable safetensors file: {e}"))
            })?;
        let names = files.tensors().into_iter().map(|(name, _)| name).collect();
        Ok(Self {
            files,
            names,
            origin,
            device: device.clone(),
            dtype,
        })
    }

    fn where_(&self) -> PathBuf {
        self.origin.clone()
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        if !self.has(name) {
            return Err(Error::bad_file(
                self.where_(),
                format!("tensor `{name}` is missing"),
            ));
        }
        let t = self.files.load(name, &self.device)?;
        if t.dims() != shape {
            return Err(Error::bad_file(
                self.where_(),
                format!(
                    "tensor `{name}` has shape {:?}, the config implies {shape:?}",
                    t.dims()
                ),
            ));
        }
        Ok(t.to_dtype(self.dtype)?)
    }

    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let w = self.get(&format!("{prefix}.weight"), &[out, inp])?;
        let b = if bias {
            Some(self.get(&format!("{prefix}.bias"), &[out])?)
        } else {
            None
        };
        Linear::dense(w, b)
    }
}

/// Loads a model from safetensors files named by the HF layout.
pub fn load_safetensors(
    config: ModelConfig,
    files: &[PathBuf],
    device: &Device,
    dtype: DType,
) -> Result<Decoder> {
    let st = SafeTensors::open(files, device, dtype)?;
    let c = &config;
    let (h, q, kv, ff) = c.matrix_dims();
    // Gemma's checkpoints store norms as offsets from one.
    let norm = |name: &str, n: usize| -> Result<RmsNorm> {
        let w = st.get(name, &[n])?;
        if c.norm_unit_offset {
            RmsNorm::with_unit_offset(w, c.rms_norm_eps)
        } else {
            Ok(RmsNorm::new(w, c.rms_norm_eps))
        }
    };
    let embed = st.get("model.embed_tokens.weight", &[c.vocab_size, h])?;
    let mut blocks = Vec::with_capacity(c.num_layers);
    for i in 0..c.num_layers {
        let p = format!("model.layers.{i}");
        let qk_norm = |which: &str| -> Result<Option<RmsNorm>> {
            if c.qk_norm {
                Ok(Some(norm(
                    &format!("{p}.self_attn.{which}.weight"),
                    c.head_dim,
                )?))
            } else {
                Ok(None)
            }
        };
        let sandwich = |name: &str| -> Result<Option<RmsNorm>> {
            c.sandwich_norms
                .then(|| norm(&format!("{p}.{name}.weight"), h))
                .transpose()
        };
        let (attn_output_norm, pre_mlp, mlp_output_norm) = if c.sandwich_norms {
            (
                sandwich("post_attention_layernorm")?,
                norm(&format!("{p}.pre_feedforward_layernorm.weight"), h)?,
                sandwich("post_feedforward_layernorm")?,
            )
        } else {
            (
                None,
                norm(&format!("{p}.post_attention_layernorm.weight"), h)?,
                None,
            )
        };
        blocks.push(Block {
            input_layernorm: norm(&format!("{p}.input_layernorm.weight"), h)?,
            self_attn: Attention {
                q_proj: st.linear(&format!("{p}.self_attn.q_proj"), q, h, c.qkv_bias)?,
                k_proj: st.linear(&format!("{p}.self_attn.k_proj"), kv, h, c.qkv_bias)?,
                v_proj: st.linear(&format!("{p}.self_attn.v_proj"), kv, h, c.qkv_bias)?,
                o_proj: st.linear(&format!("{p}.self_attn.o_proj"), h, q, false)?,
                q_norm: qk_norm("q_norm")?,
                k_norm: qk_norm("k_norm")?,
            },
            post_attention_layernorm: attn_output_norm,
            pre_feedforward_layernorm: pre_mlp,
            mlp: Mlp {
                gate_proj: st.linear(&format!("{p}.mlp.gate_proj"), ff, h, false)?,
                up_proj: st.linear(&format!("{p}.mlp.up_proj"), ff, h, false)?,
                down_proj: st.linear(&format!("{p}.mlp.down_proj"), h, ff, false)?,
            },
            post_feedforward_layernorm: mlp_output_norm,
        });
    }
    let lm_head = if c.tie_word_embeddings || !st.has("lm_head.weight") {
        Linear::dense(embed.clone(), None)?
    } else {
        st.linear("lm_head", c.vocab_size, h, false)?
    };
    let final_norm = norm("model.norm.weight", h)?;
    Decoder::new(config, Embedding::Dense(embed), blocks, final_norm, lm_head)
}

/// The metadata of a GGUF file, read once and shared by the config parser,
/// the tokenizer builder and the weight loader.
pub struct Gguf {
    pub path: PathBuf,
    pub content: gguf_file::Content,
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| Error::bad_file(path, format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    pub fn get(&self, key: &str) -> Option<&gguf_file::Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.to_string().ok()).cloned()
    }

    fn number(&self, key: &str) -> Option<f64> {
        use gguf_file::Value as V;
        Some(match self.get(key)? {
            V::U8(x) => *x as f64,
            V::I8(x) => *x as f64,
            V::U16(x) => *x as f64,
            V::I16(x) => *x as f64,
            V::U32(x) => *x as f64,
            V::I32(x) => *x as f64,
            V::U64(x) => *x as f64,
            V::I64(x) => *x as f64,
            V::F32(x) => *x as f64,
            V::F64(x) => *x,
            _ => return None,
        })
    }

    fn required(&self, key: &str) -> Result<f64> {
        self.number(key)
            .ok_or_else(|| Error::bad_file(&self.path, format!("metadata `{key}` is missing")))
    }

    /// The architecture description from `general.architecture` and friends.
    pub fn config(&self) -> Result<ModelConfig> {
        let arch = self.string("general.architecture").ok_or_else(|| {
            Error::bad_file(&self.path, "metadata `general.architecture` is missing")
        })?;
        let family = match arch.as_str() {
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "gemma3" => Family::Gemma3,
            other => {
                return Err(Error::Unsupported(format!(
                "{}: GGUF architecture `{other}` (supported: qwen2, qwen3, llama, mistral, gemma3)",
                self.path.display()
            )))
            }
        };
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = self.required(&key("embedding_length"))? as usize;
        let heads = self.required(&key("attention.head_count"))? as usize;
        let layers = self.required(&key("block_count"))? as usize;
        let head_dim = self
            .number(&key("attention.key_length"))
            .map_or(hidden / heads.max(1), |v| v as usize);
        let gemma = family == Family::Gemma3;
        for cap in ["final_logit_softcapping", "attn_logit_softcapping"] {
            if self.number(&key(cap)).is_some_and(|v| v != 0.0) {
                return Err(Error::Unsupported(format!(
                    "{}: `{}` (logit soft-capping) is not supported",
                    self.path.display(),
                    key(cap)
                )));
            }
        }
        let sliding_window = match self.number(&key("attention.sliding_window")) {
            Some(window) if gemma && window > 0.0 => {
                let pattern = key("attention.sliding_window_pattern");
                let layers = match self.get(&pattern).map(|v| v.to_vec()) {
                    Some(Ok(flags)) => flags
                        .iter()
                        .map(|f| {
                            f.to_bool()
                                .map_err(|e| Error::bad_file(&self.path, format!("{pattern}: {e}")))
                        })
                        .collect::<Result<Vec<bool>>>()?,
                    _ => sliding_layers(
                        layers,
                        self.number(&pattern).map_or(GEMMA3_PATTERN, |v| v as usize),
                    ),
                };
                Some(SlidingWindow {
                    window: window as usize,
                    layers,
                    rope_theta: self.number(&key("rope.freq_base_swa")).unwrap_or(10_000.0),
                })
            }
            _ => None,
        };
        let rope_linear_factor = match self.string(&key("rope.scaling.type")).as_deref() {
            Some("linear") => self.number(&key("rope.scaling.factor")),
            _ => self.number(&key("rope.scale_linear")),
        }
        .filter(|&f| f != 1.0);
        // llama.cpp's rule: Gemma 3 27B scales queries by its hidden size per
        // head, the others by their head size (gemma_pytorch's config).
        let attention_scale = if gemma && layers == 62 {
            1.0 / ((hidden / heads.max(1)) as f64).sqrt()
        } else {
            1.0 / (head_dim as f64).sqrt()
        };
        let vocab_size = match self.get("tokenizer.ggml.tokens") {
            Some(v) => v.to_vec().map(|v| v.len()).unwrap_or(0),
            None => 0,
        };
        let embed_rows = self
            .content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .unwrap_or(vocab_size);
        let config = ModelConfig {
            family,
            vocab_size: embed_rows,
            hidden_size: hidden,
            intermediate_size: self.required(&key("feed_forward_length"))? as usize,
            num_layers: layers,
            num_heads: heads,
            num_kv_heads: self
                .number(&key("attention.head_count_kv"))
                .map_or(heads, |v| v as usize),
            head_dim,
            rms_norm_eps: self.required(&key("attention.layer_norm_rms_epsilon"))?,
            rope_theta: self.number(&key("rope.freq_base")).unwrap_or(10_000.0),
            llama3_scaling: None,
            rope_freq_factors: None,
            max_position_embeddings: self
                .number(&key("context_length"))
                .map_or(4096, |v| v as usize),
            tie_word_embeddings: !self.content.tensor_infos.contains_key("output.weight"),
            qkv_bias: self.content.tensor_infos.contains_key("blk.0.attn_q.bias"),
            qk_norm: self
                .content
                .tensor_infos
                .contains_key("blk.0.attn_q_norm.weight"),
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            scale_embeddings: gemma,
            sandwich_norms: gemma,
            norm_unit_offset: gemma,
            attention_scale,
            rope_linear_factor,
            sliding_window,
            bos_token_id: self.number("tokenizer.ggml.bos_token_id").map(|v| v as u32),
            eos_token_ids: self
                .number("tokenizer.ggml.eos_token_id")
                .map(|v| vec![v as u32])
                .unwrap_or_default(),
        };
        config
            .validate()
            .map_err(|message| Error::bad_file(&self.path, message))?;
        Ok(config)
    }

    /// Loads the weights: matrices stay quantized, norms and the embedding
    /// table are dequantized to f32.
    pub fn load(&self, device: &Device) -> Result<Decoder> {
        self.load_with(device, false)
    }

    /// Loads the model; `trainable` keeps each matrix's file bits for the
    /// backward pass of adapters trained over it (see [`Linear`]).
    pub fn load_with(&self, device: &Device, trainable: bool) -> Result<Decoder> {
        let mut config = self.config()?;
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut qtensor = |name: &str| {
            self.content
                .tensor(&mut file, name, device)
                .map_err(|e| Error::bad_file(&self.path, format!("tensor `{name}`: {e}")))
        };
        if self.content.tensor_infos.contains_key("rope_freqs.weight") {
            let factors = qtensor("rope_freqs.weight")?.dequantize(device)?;
            config.rope_freq_factors = Some(factors.to_dtype(DType::F32)?.to_vec1()?);
        }
        let c = &config;
        let (h, q, kv, ff) = c.matrix_dims();
        let mut dense = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = qtensor(name)?.dequantize(device)?;
            if t.dims() != shape {
                return Err(Error::bad_file(
                    &self.path,
                    format!(
                        "tensor `{name}` has shape {:?}, the metadata implies {shape:?}",
                        t.dims()
                    ),
                ));
            }
            Ok(t.to_dtype(DType::F32)?)
        };
        let embed_q = {
            let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
            self.content
                .tensor(&mut file, "token_embd.weight", device)
                .map_err(|e| {
                    Error::bad_file(&self.path, format!("tensor `token_embd.weight`: {e}"))
                })?
        };
        if embed_q.shape().dims() != [c.vocab_size, h] {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "tensor `token_embd.weight` has shape {:?}, the metadata implies {:?}",
                    embed_q.shape().dims(),
                    [c.vocab_size, h]
                ),
            ));
        }
        let embed = match QuantizedRows::new(&embed_q, device)? {
            Some(rows) => Embedding::Quantized(std::sync::Arc::new(rows)),
            None => Embedding::Dense(embed_q.dequantize(device)?.to_dtype(DType::F32)?),
        };
        // A tied head is the same matrix: kept rather than read again.
        let tied_head = c.tie_word_embeddings.then_some(embed_q);
        let mut norms = HashMap::new();
        let mut biases = HashMap::new();
        let sandwich: &[&str] = if c.sandwich_norms {
            &["post_attention_norm", "post_ffw_norm"]
        } else {
            &[]
        };
        for i in 0..c.num_layers {
            for name in ["attn_norm", "ffn_norm"].iter().chain(sandwich) {
                let full = format!("blk.{i}.{name}.weight");
                norms.insert(full.clone(), dense(&full, &[h])?);
            }
            if c.qk_norm {
                for name in ["attn_q_norm", "attn_k_norm"] {
                    let full = format!("blk.{i}.{name}.weight");
                    norms.insert(full.clone(), dense(&full, &[c.head_dim])?);
                }
            }
            if c.qkv_bias {
                for (name, n) in [("attn_q", q), ("attn_k", kv), ("attn_v", kv)] {
                    let full = format!("blk.{i}.{name}.bias");
                    biases.insert(full.clone(), dense(&full, &[n])?);
                }
            }
        }
        let final_norm = dense("output_norm.weight", &[h])?;
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let mut matrix =
            |name: &str, out: usize, inp: usize, bias: Option<Tensor>| -> Result<Linear> {
                let t = self
                    .content
                    .tensor(&mut file, name, device)
                    .map_err(|e| Error::bad_file(&self.path, format!("tensor `{name}`: {e}")))?;
                if t.shape().dims() != [out, inp] {
                    return Err(Error::bad_file(
                        &self.path,
                        format!(
                            "tensor `{name}` has shape {:?}, the metadata implies [{out}, {inp}]",
                            t.shape().dims()
                        ),
                    ));
                }
                let t = match permuted_heads(c, name) {
                    Some(heads) => unpermute_heads(t, heads, device)?,
                    None => t,
                };
                if trainable {
                    Linear::trainable_from_qtensor(t, bias, device)
                } else {
                    Linear::from_qtensor(t, bias, device)
                }
            };
        // Gemma's norms multiply by 1 + w; llama.cpp's converter stored the sum.
        let rms = |norms: &mut HashMap<String, Tensor>, name: String| -> Result<RmsNorm> {
            let scale = norms.remove(&name).expect("loaded above");
            RmsNorm::from_scale(scale, c.rms_norm_eps, c.norm_unit_offset)
        };
        let optional =
            |norms: &mut HashMap<String, Tensor>, name: String| -> Result<Option<RmsNorm>> {
                norms
                    .contains_key(&name)
                    .then(|| rms(norms, name))
                    .transpose()
            };
        let mut blocks = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("blk.{i}");
            let mut bias = |n: &str| biases.remove(&format!("{p}.{n}.bias"));
            let (qb, kb, vb) = (bias("attn_q"), bias("attn_k"), bias("attn_v"));
            blocks.push(Block {
                input_layernorm: rms(&mut norms, format!("{p}.attn_norm.weight"))?,
                self_attn: Attention {
                    q_proj: matrix(&format!("{p}.attn_q.weight"), q, h, qb)?,
                    k_proj: matrix(&format!("{p}.attn_k.weight"), kv, h, kb)?,
                    v_proj: matrix(&format!("{p}.attn_v.weight"), kv, h, vb)?,
                    o_proj: matrix(&format!("{p}.attn_output.weight"), h, q, None)?,
                    q_norm: optional(&mut norms, format!("{p}.attn_q_norm.weight"))?,
                    k_norm: optional(&mut norms, format!("{p}.attn_k_norm.weight"))?,
                },
                post_attention_layernorm: optional(
                    &mut norms,
                    format!("{p}.post_attention_norm.weight"),
                )?,
                pre_feedforward_layernorm: rms(&mut norms, format!("{p}.ffn_norm.weight"))?,
                mlp: Mlp {
                    gate_proj: matrix(&format!("{p}.ffn_gate.weight"), ff, h, None)?,
                    up_proj: matrix(&format!("{p}.ffn_up.weight"), ff, h, None)?,
                    down_proj: matrix(&format!("{p}.ffn_down.weight"), h, ff, None)?,
                },
                post_feedforward_layernorm: optional(
                    &mut norms,
                    format!("{p}.post_ffw_norm.weight"),
                )?,
            });
        }
        let lm_head = match tied_head {
            Some(embed_q) if trainable => Linear::trainable_from_qtensor(embed_q, None, device)?,
            Some(embed_q) => Linear::from_qtensor(embed_q, None, device)?,
            None => matrix("output.weight", c.vocab_size, h, None)?,
        };
        let final_norm = RmsNorm::from_scale(final_norm, c.rms_norm_eps, c.norm_unit_offset)?;
        Decoder::new(config, embed, blocks, final_norm, lm_head)
    }
}

/// The heads of `name` when llama.cpp's converter reordered its rows: for
/// Llama and Mistral it stores each head's query and key rows so that rope
/// rotates adjacent pairs.
fn permuted_heads(c: &ModelConfig, name: &str) -> Option<usize> {
    if !matches!(c.family, Family::Llama | Family::Mistral) {
        return None;
    }
    if name.ends_with(".attn_q.weight") {
        Some(c.num_heads)
    } else if name.ends_with(".attn_k.weight") {
        Some(c.num_kv_heads)
    } else {
        None
    }
}

/// Puts a query or key matrix's rows back in Hugging Face's order (rope
/// over the two halves of each head), moving whole quantized rows: the
/// model is then the original one, so adapters trained on either line up
/// with the other. Row `h*d + s*d/2 + i` is the file's row `h*d + 2i + s`.
fn unpermute_heads(t: QTensor, heads: usize, device: &Device) -> Result<QTensor> {
    let (rows, cols) = t.shape().dims2()?;
    let dtype = t.dtype();
    let (d, row_bytes) = (rows / heads, cols / dtype.block_size() * dtype.type_size());
    let data = t.data()?;
    let mut out = Vec::with_capacity(data.len());
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..d / 2 {
                let src = h * d + 2 * i + s;
                out.extend_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    Ok(candle_core::quantized::ggml_file::qtensor_from_ggml(
        dtype,
        &out,
        vec![rows, cols],
        device,
    )?)
}
