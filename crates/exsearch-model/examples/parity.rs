//! The Rust half of the parity check (`scripts/parity/run.py` is the other).
//!
//! ```text
//! parity write CONFIG DTYPE DIR     random weights at a real shape into DIR
//!                                   (CONFIG: qwen2.5-0.5b | llama3.2-1b | qwen3-0.6b | tiny-qwen2)
//! parity gguf DIR OUT QUANT         DIR's weights as GGUF (QUANT: f32 | q8_0 | q4_k_m)
//! parity logits MODEL DTYPE TOKENS OUT
//!                                   logits of every position (f32, little endian, [T, V])
//!                                   in one pass, and OUT.cached through the KV cache
//!                                   (half prefilled, then one token per step)
//! parity tokenize MODEL TEXT        the token ids of the file TEXT, as JSON
//! parity greedy MODEL TOKENS N      N greedy tokens after the prompt TOKENS, as JSON
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use exsearch_model::fixtures::{self, Quant};
use exsearch_model::model::{Family, KvCache};
use exsearch_model::{LoadedModel, ModelSource};

fn dtype(s: &str) -> Result<DType> {
    Ok(exsearch_model::parse_dtype(s, &Device::Cpu)?)
}

fn forward(
    model: &LoadedModel,
    tokens: &[u32],
    start: usize,
    cache: Option<&mut KvCache>,
) -> Result<Vec<f32>> {
    let d = &model.decoder;
    let ids = Tensor::new(tokens, d.device())?.unsqueeze(0)?;
    let pos: Vec<u32> = (start as u32..(start + tokens.len()) as u32).collect();
    let pos = Tensor::new(pos, d.device())?.unsqueeze(0)?;
    let hidden = d.forward(&ids, &pos, None, cache)?;
    Ok(d.logits(&hidden.squeeze(0)?)?.flatten_all()?.to_vec1()?)
}

fn load(model: &str, dt: &str) -> Result<LoadedModel> {
    let source: ModelSource = model.parse()?;
    let files = source.resolve(&exsearch_model::hub::HubCache::from_env())?;
    Ok(LoadedModel::load(&files, &Device::Cpu, dtype(dt)?)?)
}

fn save(path: &Path, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["write", config, dt, dir] => {
            let json = match *config {
                "qwen2.5-0.5b" => fixtures::qwen25_05b_config(),
                "llama3.2-1b" => fixtures::llama32_1b_config(),
                "qwen3-0.6b" => fixtures::qwen3_06b_config(),
                "tiny-qwen2" => fixtures::tiny_config(Family::Qwen2),
                other => bail!("unknown config {other}"),
            };
            fixtures::write_hf_model(Path::new(dir), &json, 1234, dtype(dt)?)?;
        }
        ["gguf", dir, out, quant] => {
            let quant = match *quant {
                "f32" => Quant::F32,
                "q8_0" => Quant::Q8_0,
                "q4_k_m" => Quant::Q4KM,
                other => bail!("unknown quantization {other}"),
            };
            fixtures::write_gguf(Path::new(dir), Path::new(out), quant)?;
        }
        ["logits", model, dt, tokens, out] => {
            let model = load(model, dt)?;
            let tokens: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(tokens)?)?;
            save(Path::new(out), &forward(&model, &tokens, 0, None)?)?;
            let mut cache = KvCache::new(model.decoder.config().num_layers);
            let half = tokens.len() / 2;
            let mut cached = forward(&model, &tokens[..half], 0, Some(&mut cache))?;
            for i in half..tokens.len() {
                cached.extend(forward(&model, &tokens[i..i + 1], i, Some(&mut cache))?);
            }
            save(&PathBuf::from(format!("{out}.cached")), &cached)?;
        }
        ["tokenize", model, text] => {
            let model = load(model, "f32")?;
            let text = std::fs::read_to_string(text)?;
            println!("{}", serde_json::to_string(&model.codec.encode_prompt(&text)?)?);
        }
        ["greedy", model, tokens, n] => {
            let model = load(model, "f32")?;
            let mut tokens: Vec<u32> = serde_json::from_str(&std::fs::read_to_string(tokens)?)?;
            let mut cache = KvCache::new(model.decoder.config().num_layers);
            let vocab = model.decoder.config().vocab_size;
            let mut logits = forward(&model, &tokens, 0, Some(&mut cache))?;
            let mut out = Vec::new();
            for _ in 0..n.parse::<usize>()? {
                let last = &logits[logits.len() - vocab..];
                let next = exsearch_model::engine::sampling::argmax(last);
                out.push(next);
                tokens.push(next);
                logits = forward(&model, &[next], tokens.len() - 1, Some(&mut cache))?;
            }
            println!("{}", serde_json::to_string(&out)?);
        }
        _ => bail!("usage: parity write CONFIG DTYPE DIR | gguf DIR OUT QUANT | logits MODEL DTYPE TOKENS OUT | tokenize MODEL TEXT | greedy MODEL TOKENS N"),
    }
    Ok(())
}
