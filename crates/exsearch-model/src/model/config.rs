//! The architecture description shared by every weight format.
//!
//! One struct covers the Llama family layouts: Qwen2/Qwen2.5 (bias on q/k/v),
//! Qwen3 (RMS norm on q and k per head), Llama 3.x (llama3 rope scaling),
//! Mistral, and Gemma 3 (sliding-window layers with their own rope base
//! interleaved with global ones, QK-norm, a gated GELU MLP, scaled
//! embeddings, norms before and after each sublayer). It is parsed from a
//! Hugging Face `config.json` or from GGUF metadata, and every later shape
//! check is made against it.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The families we know how to run; they differ only in the flags below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Qwen2,
    Qwen3,
    Llama,
    Mistral,
    Gemma3,
}

/// The activation of the MLP's gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`, llama.cpp's GELU).
    GeluTanh,
}

/// Local attention: layers that see only the last `window` positions, with
/// their own rope base (Gemma 3 interleaves five of them with one global layer).
#[derive(Clone, Debug, PartialEq)]
pub struct SlidingWindow {
    /// A query at position `p` sees keys at positions `p - window + 1 ..= p`.
    pub window: usize,
    /// `layers[i]`: layer `i` is local.
    pub layers: Vec<bool>,
    /// The rope base of the local layers (the global ones use `rope_theta`).
    pub rope_theta: f64,
}

/// Llama 3 frequency-dependent rope scaling.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub llama3_scaling: Option<Llama3Scaling>,
    /// Per-frequency divisors read from a GGUF `rope_freqs` tensor.
    pub rope_freq_factors: Option<Vec<f32>>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub qk_norm: bool,
    pub activation: Activation,
    /// Gemma: the embedding is multiplied by `sqrt(hidden_size)`.
    pub scale_embeddings: bool,
    /// Gemma: each sublayer's output is normalised before the residual add
    /// (`post_attention_layernorm` / `post_feedforward_layernorm`).
    pub sandwich_norms: bool,
    /// Gemma: norms multiply by `1 + weight` (the checkpoint stores the offset).
    pub norm_unit_offset: bool,
    /// The factor applied to queries before `q·k`; `1/sqrt(head_dim)` unless
    /// the model says otherwise (Gemma's `query_pre_attn_scalar`).
    pub attention_scale: f64,
    /// Linear rope scaling of the global layers (positions divided by it).
    pub rope_linear_factor: Option<f64>,
    pub sliding_window: Option<SlidingWindow>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// The subset of `config.json` we read; unknown keys are ignored.
#[derive(Deserialize)]
struct HfConfig {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
    hidden_act: Option<String>,
    /// Gemma's name for `hidden_act`.
    hidden_activation: Option<String>,
    query_pre_attn_scalar: Option<f64>,
    sliding_window: Option<usize>,
    /// `sliding_attention` / `full_attention` per layer (Gemma 3).
    layer_types: Option<Vec<String>>,
    /// Every n-th layer is global (older Gemma 3 configs).
    sliding_window_pattern: Option<usize>,
    rope_local_base_freq: Option<f64>,
    final_logit_softcapping: Option<f64>,
    attn_logit_softcapping: Option<f64>,
}

/// Gemma 3's layout when a config names only the window: every sixth layer
/// is global (llama.cpp's default pattern for gemma3).
pub const GEMMA3_PATTERN: usize = 6;

/// Which layers are local when every `pattern`-th layer is global.
pub fn sliding_layers(num_layers: usize, pattern: usize) -> Vec<bool> {
    (0..num_layers)
        .map(|i| pattern != 0 && i % pattern < pattern - 1)
        .collect()
}

/// Token ids may be given as one number or a list.
pub(crate) fn token_ids(value: Option<&serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|n| vec![n as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64().map(|n| n as u32))
            .collect(),
        _ => Vec::new(),
    }
}

impl ModelConfig {
    /// Reads a Hugging Face `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json(&text).map_err(|message| Error::bad_file(path, message))
    }

    pub fn from_hf_json(text: &str) -> Result<Self, String> {
        let raw: HfConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let model_type = raw.model_type.clone().unwrap_or_default();
        let family = match model_type.as_str() {
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            "llama" => Family::Llama,
            "mistral" => Family::Mistral,
            "gemma3_text" => Family::Gemma3,
            "gemma3" => {
                return Err(
                    "model_type `gemma3` is the multimodal checkpoint; use its text-only \
                     GGUF file or a `gemma3_text` checkpoint"
                        .into(),
                )
            }
            other => {
                return Err(format!(
                    "model_type `{other}` ({}) is not supported; supported: qwen2, qwen3, llama, mistral, gemma3_text",
                    raw.architectures.join(", ")
                ))
            }
        };
        let gemma = family == Family::Gemma3;
        let activation = match raw.hidden_activation.as_ref().or(raw.hidden_act.as_ref()) {
            None if gemma => Activation::GeluTanh,
            None => Activation::Silu,
            Some(act) => match act.as_str() {
                "silu" => Activation::Silu,
                "gelu_pytorch_tanh" | "gelu_tanh" => Activation::GeluTanh,
                other => {
                    return Err(format!(
                        "hidden activation `{other}` is not supported (silu, gelu_pytorch_tanh)"
                    ))
                }
            },
        };
        for (name, cap) in [
            ("final_logit_softcapping", raw.final_logit_softcapping),
            ("attn_logit_softcapping", raw.attn_logit_softcapping),
        ] {
            if cap.is_some() {
                return Err(format!("{name} is not supported (a Gemma 2 feature)"));
            }
        }
        let mut rope_linear_factor = None;
        let llama3_scaling = match &raw.rope_scaling {
            None | Some(serde_json::Value::Null) => None,
            Some(value) => {
                let kind = value
                    .get("rope_type")
                    .or_else(|| value.get("type"))
                    .and_then(|v| v.as_str())
                    .unwrap_or("default");
                match kind {
                    "llama3" => Some(
                        serde_json::from_value::<Llama3Scaling>(value.clone())
                            .map_err(|e| format!("rope_scaling: {e}"))?,
                    ),
                    "default" => None,
                    "linear" => {
                        rope_linear_factor = value.get("factor").and_then(|f| f.as_f64());
                        None
                    }
                    other => return Err(format!("rope_scaling type `{other}` is not supported")),
                }
            }
        };
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
        let layers = raw.num_hidden_layers;
        let sliding_window = match (raw.sliding_window, &raw.layer_types) {
            (Some(window), Some(types)) => Some(SlidingWindow {
                window,
                layers: types.iter().map(|t| t == "sliding_attention").collect(),
                rope_theta: raw.rope_local_base_freq.unwrap_or(10_000.0),
            }),
            (Some(window), None) if gemma => Some(SlidingWindow {
                window,
                layers: sliding_layers(
                    layers,
                    raw.sliding_window_pattern.unwrap_or(GEMMA3_PATTERN),
                ),
                rope_theta: raw.rope_local_base_freq.unwrap_or(10_000.0),
            }),
            // Mistral's window is the whole context in the checkpoints we run.
            _ => None,
        }
        .filter(|sw| sw.layers.iter().any(|&local| local));
        let config = Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta: raw.rope_theta.unwrap_or(10_000.0),
            llama3_scaling,
            rope_freq_factors: None,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            // transformers' default: tied for Gemma, untied for the others.
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(gemma),
            qkv_bias: raw
                .attention_bias
                .unwrap_or(matches!(family, Family::Qwen2)),
            qk_norm: matches!(family, Family::Qwen3 | Family::Gemma3),
            activation,
            scale_embeddings: gemma,
            sandwich_norms: gemma,
            norm_unit_offset: gemma,
            attention_scale: 1.0 / raw.query_pre_attn_scalar.unwrap_or(head_dim as f64).sqrt(),
            rope_linear_factor,
            sliding_window,
            bos_token_id: token_ids(raw.bos_token_id.as_ref()).first().copied(),
            eos_token_ids: token_ids(raw.eos_token_id.as_ref()),
        };
        config.validate()?;
        Ok(config)
    }

    /// Shape rules every layout must satisfy.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return Err(format!(
                "{} attention heads cannot be grouped over {} key/value heads",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even for rotary embeddings",
                self.head_dim
            ));
        }
        if let Some(sw) = &self.sliding_window {
            if sw.layers.len() != self.num_layers {
                return Err(format!(
                    "the sliding-window pattern lists {} layers, the model has {}",
                    sw.layers.len(),
                    self.num_layers
                ));
            }
        }
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err("vocab_size, hidden_size and num_hidden_layers must be positive".into());
        }
        Ok(())
    }

    /// Whether layer `i` attends within a sliding window (and its size).
    pub fn window_of(&self, layer: usize) -> Option<usize> {
        let sw = self.sliding_window.as_ref()?;
        sw.layers
            .get(layer)
            .copied()
            .unwrap_or(false)
            .then_some(sw.window)
    }

    /// The rotary inverse frequencies of the local (sliding-window) layers.
    pub fn local_inv_freq(&self) -> Option<Vec<f32>> {
        let sw = self.sliding_window.as_ref()?;
        Some(base_inv_freq(sw.rope_theta, self.head_dim))
    }

    /// The rotary inverse frequencies, in f32 as Hugging Face computes them.
    pub fn inv_freq(&self) -> Vec<f32> {
        let mut freqs = base_inv_freq(self.rope_theta, self.head_dim);
        if let Some(factor) = self.rope_linear_factor {
            for f in &mut freqs {
                *f /= factor as f32;
            }
        }
        if let Some(s) = &self.llama3_scaling {
            let old = s.original_max_position_embeddings as f32;
            let low_wavelen = old / s.low_freq_factor as f32;
            let high_wavelen = old / s.high_freq_factor as f32;
            let factor = s.factor as f32;
            for f in &mut freqs {
                let wavelen = 2.0 * std::f32::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (old / wavelen - s.low_freq_factor as f32)
                        / (s.high_freq_factor - s.low_freq_factor) as f32;
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        if let Some(factors) = &self.rope_freq_factors {
            for (f, d) in freqs.iter_mut().zip(factors) {
                *f /= d;
            }
        }
        freqs
    }

    /// (hidden, query width, key/value width, MLP width): the sides of every
    /// weight matrix.
    pub fn matrix_dims(&self) -> (usize, usize, usize, usize) {
        (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
            self.intermediate_size,
        )
    }

    /// Number of parameters, for memory estimates.
    ///
    /// Counts the matrices, the embedding and the hidden-size norms; the
    /// per-head QK norms are too small to matter.
    pub fn parameter_count(&self) -> u64 {
        let (h, q, kv, ff) = self.matrix_dims();
        let (h, q, kv, ff) = (h as u64, q as u64, kv as u64, ff as u64);
        let norms = if self.sandwich_norms { 4 } else { 2 };
        let per_layer = h * q * 2 + h * kv * 2 + 3 * h * ff + norms * h;
        let embed = self.vocab_size as u64 * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + per_layer * self.num_layers as u64 + h
    }
}

/// `1 / theta^(2i/d)` for every rotated pair, in f32 as Hugging Face computes it.
fn base_inv_freq(theta: f64, dim: usize) -> Vec<f32> {
    (0..dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / dim as f32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_qwen2_config_and_rejects_unknown_families() {
        let qwen = r#"{"model_type":"qwen2","vocab_size":151936,"hidden_size":896,
            "intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
            "num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
            "tie_word_embeddings":true,"eos_token_id":151645}"#;
        let c = ModelConfig::from_hf_json(qwen).expect("qwen2 parses");
        assert_eq!(
            (c.family, c.head_dim, c.qkv_bias, c.qk_norm),
            (Family::Qwen2, 64, true, false)
        );
        assert_eq!(c.eos_token_ids, vec![151645]);
        // Qwen2.5-0.5B has about 494M parameters.
        assert!((490_000_000..500_000_000).contains(&c.parameter_count()));
        let gpt = qwen.replace("qwen2", "gpt_neox");
        let err = ModelConfig::from_hf_json(&gpt).expect_err("unknown family");
        assert!(err.contains("gpt_neox"), "{err}");
    }

    /// google/gemma-3-270m's published config.json.
    pub(crate) const GEMMA3_270M: &str = r#"{"architectures":["Gemma3ForCausalLM"],
        "attention_bias":false,"attn_logit_softcapping":null,"bos_token_id":2,"eos_token_id":1,
        "final_logit_softcapping":null,"head_dim":256,"hidden_activation":"gelu_pytorch_tanh",
        "hidden_size":640,"intermediate_size":2048,"layer_types":["sliding_attention",
        "sliding_attention","sliding_attention","sliding_attention","sliding_attention",
        "full_attention","sliding_attention","sliding_attention","sliding_attention",
        "sliding_attention","sliding_attention","full_attention","sliding_attention",
        "sliding_attention","sliding_attention","sliding_attention","sliding_attention",
        "full_attention"],"max_position_embeddings":32768,"model_type":"gemma3_text",
        "num_attention_heads":4,"num_hidden_layers":18,"num_key_value_heads":1,"pad_token_id":0,
        "query_pre_attn_scalar":256,"rms_norm_eps":1e-06,"rope_local_base_freq":10000.0,
        "rope_scaling":null,"rope_theta":1000000.0,"sliding_window":512,"vocab_size":262144}"#;

    #[test]
    fn parses_gemma3_with_its_local_and_global_layers() {
        let c = ModelConfig::from_hf_json(GEMMA3_270M).expect("gemma3 parses");
        assert_eq!(c.family, Family::Gemma3);
        assert_eq!(c.activation, Activation::GeluTanh);
        assert!(c.qk_norm && c.sandwich_norms && c.scale_embeddings);
        assert_eq!((c.head_dim, c.num_kv_heads), (256, 1));
        assert_eq!(c.attention_scale, 1.0 / 16.0);
        let local: Vec<usize> = (0..18).filter(|&i| c.window_of(i).is_some()).collect();
        assert_eq!(local.len(), 15);
        assert_eq!(
            (c.window_of(5), c.window_of(11), c.window_of(17)),
            (None, None, None)
        );
        assert_eq!(c.window_of(0), Some(512));
        // The same layout follows from the window alone (older configs).
        let implied = GEMMA3_270M.replace("\"layer_types\"", "\"unused\"");
        let d = ModelConfig::from_hf_json(&implied).expect("parses");
        assert_eq!(d.sliding_window, c.sliding_window);
        // Local layers rotate with base 10k, global ones with 1M.
        let (global, local) = (c.inv_freq(), c.local_inv_freq().expect("local rope"));
        assert_eq!(global[0], local[0]);
        assert!(
            (local[64] / global[64] - 10.0).abs() < 1e-3,
            "half-way: 10x slower"
        );
        // About 268M parameters (170M of them the 262k-token embedding).
        assert!((260_000_000..275_000_000).contains(&c.parameter_count()));
        let capped = GEMMA3_270M.replace(
            "\"final_logit_softcapping\":null",
            "\"final_logit_softcapping\":30.0",
        );
        let err = ModelConfig::from_hf_json(&capped).expect_err("softcapping");
        assert!(err.contains("final_logit_softcapping"), "{err}");
    }

    #[test]
    fn llama3_scaling_slows_only_low_frequencies() {
        let json = r#"{"model_type":"llama","vocab_size":128256,"hidden_size":2048,
            "intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,
            "num_key_value_heads":8,"rms_norm_eps":1e-5,"rope_theta":500000.0,
            "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
            "original_max_position_embeddings":8192,"rope_type":"llama3"},
            "eos_token_id":[128001,128008,128009]}"#;
        let c = ModelConfig::from_hf_json(json).expect("llama parses");
        let mut plain = c.clone();
        plain.llama3_scaling = None;
        let (scaled, base) = (c.inv_freq(), plain.inv_freq());
        assert_eq!(scaled[0], base[0], "the highest frequency is untouched");
        let last = base.len() - 1;
        assert!(
            (scaled[last] * 32.0 - base[last]).abs() < 1e-9,
            "the lowest is divided by the factor"
        );
        assert_eq!(c.eos_token_ids.len(), 3);
    }
}
