//! `exsearch model init`: a new small model of our architecture (the Qwen2
//! layout, so every tool that reads Qwen2 reads it) with random weights and
//! a byte-level BPE tokenizer trained on a given corpus, written as a
//! Hugging Face folder the runtime loads like a downloaded model.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use exsearch_model::model::random_init::{random_tensors, Normal};
use exsearch_model::model::ModelConfig;
use exsearch_model::text::{byte_chars, byte_level_bpe_json, gguf_vocab_split};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokenizers::models::bpe::BpeTrainerBuilder;
use tokenizers::models::TrainerWrapper;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::lora::save_tensors;

const SPECIAL: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// ChatML, the turn format of Qwen2's tokens, without a default system
/// prompt (as in Qwen3's template): a model trained from scratch has no
/// use for a system turn nobody wrote, and each one costs every sequence
/// dozens of tokens.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InitConfig {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    /// Upper bound on the tokenizer's vocabulary (256 bytes, the special
    /// tokens, then merges learnt from the corpus).
    pub vocab: usize,
    pub max_positions: usize,
    pub seed: u64,
    /// Strings the tokenizer keeps whole, one token each (an agent's tags:
    /// `<QUERY>` would otherwise cost seven byte-level tokens every time).
    pub words: Vec<String>,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            layers: 4,
            heads: 4,
            kv_heads: 2,
            intermediate: 384,
            vocab: 2048,
            max_positions: 4096,
            seed: 0,
            words: Vec::new(),
        }
    }
}

impl InitConfig {
    fn validate(&self) -> Result<()> {
        let ok = self.hidden > 0
            && self.layers > 0
            && self.heads > 0
            && self.kv_heads > 0
            && self.hidden.is_multiple_of(self.heads)
            && self.heads.is_multiple_of(self.kv_heads)
            && (self.hidden / self.heads).is_multiple_of(2)
            && self.vocab >= 256 + SPECIAL.len();
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidSetting(format!(
                "model shape hidden={} heads={} kv_heads={} vocab={}: hidden must split into an \
                 even head size, heads into kv groups, and the vocabulary hold the 256 bytes",
                self.hidden, self.heads, self.kv_heads, self.vocab
            )))
        }
    }
}

/// Trains a byte-level BPE (Qwen2's pre-tokenizer) on `texts`, with each of
/// `words` added as one token of its own (cut out of the texts first, so no
/// merge is spent on them).
pub fn train_tokenizer(
    texts: impl Iterator<Item = String> + Send,
    vocab: usize,
    words: &[String],
) -> Result<Tokenizer> {
    let bytes: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    let empty = byte_level_bpe_json(&bytes, &[], &[], gguf_vocab_split("qwen2"));
    let mut tokenizer = Tokenizer::from_str(&empty)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer skeleton: {e}")))?;
    let special: Vec<AddedToken> = SPECIAL.iter().map(|s| AddedToken::from(*s, true)).collect();
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab)
            .min_frequency(2)
            .special_tokens(special.clone())
            .initial_alphabet(byte_chars().into_iter().collect())
            .show_progress(false)
            .build(),
    );
    let words: Vec<&String> = words.iter().filter(|w| !w.is_empty()).collect();
    let texts = texts.map(|t| words.iter().fold(t, |t, w| t.replace(w.as_str(), " ")));
    tokenizer
        .train(&mut trainer, texts)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer training: {e}")))?;
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer special tokens: {e}")))?;
    let words: Vec<AddedToken> = words
        .iter()
        .map(|w| AddedToken::from(w.to_string(), false))
        .collect();
    tokenizer
        .add_tokens(words)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer words: {e}")))?;
    Ok(tokenizer)
}

/// Writes a new model into `dir`: config.json, tokenizer.json,
/// tokenizer_config.json ([`CHATML_TEMPLATE`]), generation_config.json
/// and model.safetensors. Matrices are N(0, 1/fan_in) (GPT-2's fixed 0.02
/// suits widths near 768; at width 128 it leaves attention logits six times
/// smaller and attention barely learns), the residual projections scaled
/// by `1/sqrt(2 layers)`, norms 1, biases 0.
pub fn init_model(
    dir: &Path,
    config: &InitConfig,
    corpus: impl Iterator<Item = String> + Send,
) -> Result<ModelConfig> {
    config.validate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tokenizer = train_tokenizer(corpus, config.vocab, &config.words)?;
    let id = |s: &str| tokenizer.token_to_id(s).unwrap_or(0);
    let vocab_size = tokenizer.get_vocab_size(true).div_ceil(64) * 64;
    let hf = json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": vocab_size, "hidden_size": config.hidden,
        "intermediate_size": config.intermediate, "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads, "num_key_value_heads": config.kv_heads,
        "max_position_embeddings": config.max_positions, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu",
        "bos_token_id": id("<|endoftext|>"), "eos_token_id": id("<|im_end|>"),
        "torch_dtype": "float32",
    });
    let model_config = ModelConfig::from_hf_json(&hf.to_string()).map_err(Error::InvalidSetting)?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    write_atomic(&dir.join("config.json"), pretty(&hf).as_bytes())?;
    let text = tokenizer
        .to_string(true)
        .map_err(|e| Error::InvalidSetting(format!("tokenizer: {e}")))?;
    write_atomic(&dir.join("tokenizer.json"), text.as_bytes())?;
    let tc = json!({
        "bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "chat_template": CHATML_TEMPLATE, "model_max_length": config.max_positions,
    });
    write_atomic(&dir.join("tokenizer_config.json"), pretty(&tc).as_bytes())?;
    let gen = json!({"eos_token_id": [id("<|im_end|>"), id("<|endoftext|>")]});
    write_atomic(&dir.join("generation_config.json"), pretty(&gen).as_bytes())?;
    let weights = initial_weights(&model_config, config.seed)?;
    save_tensors(&weights, &dir.join("model.safetensors"))?;
    Ok(model_config)
}

fn initial_weights(config: &ModelConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    // The fixture generator knows every tensor's name and shape; values are
    // drawn again here with a training initialisation.
    let shapes = random_tensors(config, seed)?;
    let mut rng = Normal::new(seed);
    let residual = 1.0 / (2.0 * config.num_layers as f64).sqrt();
    let mut out = HashMap::new();
    let mut names: Vec<&String> = shapes.keys().collect();
    names.sort();
    for name in names {
        let dims = shapes[name].dims().to_vec();
        let t = if name.ends_with("norm.weight") {
            Tensor::ones(dims, DType::F32, &Device::Cpu)?
        } else if name.ends_with(".bias") {
            Tensor::zeros(dims, DType::F32, &Device::Cpu)?
        } else {
            // Embedding rows and matrix rows alike: unit-variance outputs
            // for unit-variance inputs (`dims` is [out, in] or [vocab, hidden]).
            let fan_in = *dims.last().unwrap_or(&1) as f64;
            let mut std = 1.0 / fan_in.sqrt();
            if name.ends_with("o_proj.weight") || name.ends_with("down_proj.weight") {
                std *= residual;
            }
            rng.tensor(&dims, 0.0, std as f32)?
        };
        out.insert(name.clone(), t);
    }
    Ok(out)
}
