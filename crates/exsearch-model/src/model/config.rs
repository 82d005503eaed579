//! The architecture description shared by every weight format.
//!
//! One struct covers the Llama family layouts: Qwen2/Qwen2.5 (bias on q/k/v),
//! Qwen3 (RMS norm on q and k per head), Llama 3.x (llama3 rope scaling) and
//! Mistral. It is parsed from a Hugging Face `config.json` or from GGUF
//! metadata, and every later shape check is made against it.

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
}

/// How a rotary embedding pairs the features of one head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Feature `i` with `i + d/2` (Hugging Face `rotate_half`, llama.cpp NEOX).
    Half,
    /// Feature `2i` with `2i + 1` (llama.cpp's layout for converted Llama weights).
    Interleaved,
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
    pub rope_style: RopeStyle,
    pub llama3_scaling: Option<Llama3Scaling>,
    /// Per-frequency divisors read from a GGUF `rope_freqs` tensor.
    pub rope_freq_factors: Option<Vec<f32>>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub qkv_bias: bool,
    pub qk_norm: bool,
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
    #[serde(default)]
    tie_word_embeddings: bool,
    attention_bias: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
    hidden_act: Option<String>,
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
            other => {
                return Err(format!(
                    "model_type `{other}` ({}) is not supported; supported: qwen2, qwen3, llama, mistral",
                    raw.architectures.join(", ")
                ))
            }
        };
        if let Some(act) = &raw.hidden_act {
            if act != "silu" {
                return Err(format!("hidden_act `{act}` is not supported (only silu)"));
            }
        }
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
                    other => return Err(format!("rope_scaling type `{other}` is not supported")),
                }
            }
        };
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads.max(1));
        let config = Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta: raw.rope_theta.unwrap_or(10_000.0),
            rope_style: RopeStyle::Half,
            llama3_scaling,
            rope_freq_factors: None,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(4096),
            tie_word_embeddings: raw.tie_word_embeddings,
            qkv_bias: raw
                .attention_bias
                .unwrap_or(matches!(family, Family::Qwen2)),
            qk_norm: matches!(family, Family::Qwen3),
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
        if self.vocab_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err("vocab_size, hidden_size and num_hidden_layers must be positive".into());
        }
        Ok(())
    }

    /// The rotary inverse frequencies, in f32 as Hugging Face computes them.
    pub fn inv_freq(&self) -> Vec<f32> {
        let dim = self.head_dim;
        let mut freqs: Vec<f32> = (0..dim / 2)
            .map(|i| 1.0 / (self.rope_theta as f32).powf((2 * i) as f32 / dim as f32))
            .collect();
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
    pub fn parameter_count(&self) -> u64 {
        let (h, q, kv, ff) = self.matrix_dims();
        let (h, q, kv, ff) = (h as u64, q as u64, kv as u64, ff as u64);
        let per_layer = h * q * 2 + h * kv * 2 + 3 * h * ff + 2 * h;
        let embed = self.vocab_size as u64 * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + head + per_layer * self.num_layers as u64 + h
    }
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
