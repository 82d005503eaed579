//! LoRA adapters over the frozen decoder, stored in the PEFT layout.
//!
//! An adapter on a projection `W` (`[out, in]`) adds `scale * B A x` with
//! `A: [rank, in]` (Kaiming-uniform, as PEFT initialises it) and
//! `B: [out, rank]` (zeros), so a fresh adapter leaves the model unchanged.
//! `scale` is `alpha / rank` (`alpha / sqrt(rank)` with rsLoRA).
//!
//! On disk: `adapter_config.json` and `adapter_model.safetensors` with PEFT's
//! tensor names (`base_model.model.<module>.lora_A.weight`), so an adapter
//! trained here loads in transformers/PEFT and vLLM, and theirs load here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use exsearch_model::model::graph_ops::TrainingDropout;
use exsearch_model::model::{Decoder, LoraAdapter, PROJECTIONS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::defaults::{LORA_ALPHA_PER_RANK, LORA_DROPOUT, LORA_RANK};
use crate::error::{Error, Result};
use crate::files::write_atomic;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
const PEFT_PREFIX: &str = "base_model.model.";

/// The adapter's shape and which projections it targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Projection kinds (`q_proj`, ..., `down_proj`).
    pub targets: Vec<String>,
    /// rsLoRA scaling (`alpha / sqrt(rank)`).
    #[serde(default)]
    pub rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: LORA_RANK,
            alpha: LORA_ALPHA_PER_RANK * LORA_RANK as f64,
            dropout: LORA_DROPOUT,
            targets: PROJECTIONS.iter().map(|s| s.to_string()).collect(),
            rslora: false,
        }
    }
}

impl LoraConfig {
    /// The default adapter at rank `rank` (its scale unchanged).
    pub fn with_rank(rank: usize) -> Self {
        Self {
            rank,
            alpha: LORA_ALPHA_PER_RANK * rank as f64,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::InvalidSetting("LoRA rank must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::InvalidSetting(format!(
                "LoRA dropout {} is not in [0, 1)",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::InvalidSetting(
                "LoRA needs at least one target module".into(),
            ));
        }
        for t in &self.targets {
            if !PROJECTIONS.contains(&t.as_str()) {
                return Err(Error::InvalidSetting(format!(
                    "LoRA target `{t}` is not one of {}",
                    PROJECTIONS.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    fn targets(&self, module: &str) -> bool {
        let kind = module.rsplit('.').next().unwrap_or(module);
        self.targets.iter().any(|t| t == kind)
    }
}

/// One adapted projection.
#[derive(Clone, Debug)]
struct Layer {
    /// HF module name, `model.layers.3.mlp.up_proj`.
    module: String,
    a: Var,
    b: Var,
}

/// A set of adapters, one per targeted projection.
#[derive(Clone, Debug)]
pub struct Lora {
    config: LoraConfig,
    layers: Vec<Layer>,
}

impl Lora {
    /// Fresh adapters for `decoder` (A random with `seed`, B zero).
    pub fn new(decoder: &mut Decoder, config: LoraConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let (device, dtype) = (decoder.device().clone(), decoder.dtype());
        let mut layers = Vec::new();
        for (module, linear) in decoder.projections_mut() {
            if !config.targets(&module) {
                continue;
            }
            let (out, inp) = (linear.out_features(), linear.in_features());
            // PEFT: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)).
            let bound = 1.0 / (inp as f32).sqrt();
            let a: Vec<f32> = (0..config.rank * inp)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let a = Tensor::from_vec(a, (config.rank, inp), &device)?.to_dtype(dtype)?;
            let b = Tensor::zeros((out, config.rank), dtype, &device)?;
            layers.push(Layer {
                module,
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
            });
        }
        let lora = Self { config, layers };
        lora.install(decoder, None)?;
        Ok(lora)
    }

    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// Attaches the adapters to `decoder`'s projections (replacing any), with
    /// `dropout` on their input: the training dropout while training, `None`
    /// for inference. The decoder reads the variables, so later optimizer
    /// steps show through without installing again.
    pub fn install(&self, decoder: &mut Decoder, dropout: Option<TrainingDropout>) -> Result<()> {
        let mut by_name: HashMap<&str, &Layer> =
            self.layers.iter().map(|l| (l.module.as_str(), l)).collect();
        for (module, linear) in decoder.projections_mut() {
            if let Some(l) = by_name.remove(module.as_str()) {
                linear.set_lora(Some(LoraAdapter {
                    a: l.a.as_tensor().clone(),
                    b: l.b.as_tensor().clone(),
                    scale: self.config.scale(),
                    dropout: dropout.clone(),
                }))?;
            }
        }
        if let Some(name) = by_name.keys().next() {
            return Err(Error::InvalidSetting(format!(
                "the adapter has a module `{name}` this model does not have"
            )));
        }
        Ok(())
    }

    /// Removes every adapter from `decoder`.
    pub fn uninstall(decoder: &mut Decoder) -> Result<()> {
        for (_, linear) in decoder.projections_mut() {
            linear.set_lora(None)?;
        }
        Ok(())
    }

    /// The trainable variables under their PEFT names.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|l| {
                [
                    (peft_name(&l.module, "lora_A"), l.a.clone()),
                    (peft_name(&l.module, "lora_B"), l.b.clone()),
                ]
            })
            .collect()
    }

    /// Adds `scale * B A` to each targeted weight and removes the adapters:
    /// the decoder then computes the same function without them.
    pub fn merge_into(&self, decoder: &mut Decoder) -> Result<()> {
        let scale = self.config.scale();
        let mut deltas: HashMap<String, Tensor> = HashMap::new();
        for l in &self.layers {
            let delta = (l.b.as_tensor().matmul(l.a.as_tensor())? * scale)?;
            deltas.insert(format!("{}.weight", l.module), delta);
        }
        let mut merged = HashMap::new();
        for (name, w) in decoder.named_weights()? {
            if let Some(d) = deltas.get(&name) {
                let d = d.to_dtype(w.dtype())?;
                merged.insert(name, (w + d)?);
            }
        }
        decoder.replace_weights(&merged)?;
        Self::uninstall(decoder)
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `dir`.
    pub fn save_peft(&self, dir: &Path, base_model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tensors: HashMap<String, Tensor> = self
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect();
        save_tensors(&tensors, &dir.join(WEIGHTS_FILE))?;
        let c = &self.config;
        let config = json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": c.rank,
            "lora_alpha": c.alpha,
            "lora_dropout": c.dropout,
            "target_modules": c.targets,
            "use_rslora": c.rslora,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
        });
        let text = serde_json::to_string_pretty(&config).unwrap_or_default();
        write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
    }

    /// Reads a PEFT LoRA adapter folder (ours or one saved by PEFT).
    pub fn load_peft(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config = parse_peft_config(&text).map_err(|m| Error::bad_file(&config_path, m))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.exists() {
            return Err(Error::bad_file(
                &weights_path,
                "missing (PEFT's older adapter_model.bin is not supported; re-save with \
                 safe_serialization=True)",
            ));
        }
        let tensors = candle_core::safetensors::load(&weights_path, device)
            .map_err(|e| Error::bad_file(&weights_path, e.to_string()))?;
        let mut modules: Vec<String> = tensors
            .keys()
            .filter_map(|k| module_of(k, "lora_A"))
            .collect();
        modules.sort_by_key(|m| module_order(m));
        let mut layers = Vec::new();
        for module in modules {
            let get = |which: &str| -> Result<Var> {
                let name = peft_name(&module, which);
                let t = tensors.get(&name).ok_or_else(|| {
                    Error::bad_file(&weights_path, format!("tensor `{name}` is missing"))
                })?;
                Ok(Var::from_tensor(&t.to_dtype(dtype)?)?)
            };
            let (a, b) = (get("lora_A")?, get("lora_B")?);
            if a.dim(0)? != config.rank || b.dim(1)? != config.rank {
                return Err(Error::bad_file(
                    &weights_path,
                    format!(
                        "`{module}` has rank {}, the config says r={}",
                        a.dim(0)?,
                        config.rank
                    ),
                ));
            }
            layers.push(Layer { module, a, b });
        }
        if layers.is_empty() {
            return Err(Error::bad_file(&weights_path, "no lora_A/lora_B tensors"));
        }
        Ok(Self { config, layers })
    }
}

fn peft_name(module: &str, which: &str) -> String {
    format!("{PEFT_PREFIX}{module}.{which}.weight")
}

/// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` →
/// `model.layers.0.self_attn.q_proj` (PEFT's adapter-name infix tolerated).
fn module_of(name: &str, which: &str) -> Option<String> {
    let rest = name.strip_prefix(PEFT_PREFIX)?;
    let rest = rest
        .strip_suffix(&format!(".{which}.weight"))
        .or_else(|| rest.strip_suffix(&format!(".{which}.default.weight")))?;
    Some(rest.to_string())
}

/// Layer number, then projection order: the order [`Decoder::projections_mut`] uses.
fn module_order(module: &str) -> (usize, usize) {
    let layer = module
        .split('.')
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let kind = module.rsplit('.').next().unwrap_or("");
    let pos = PROJECTIONS
        .iter()
        .position(|p| *p == kind)
        .unwrap_or(usize::MAX);
    (layer, pos)
}

pub(crate) fn parse_peft_config(text: &str) -> Result<LoraConfig, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let peft_type = v["peft_type"].as_str().unwrap_or("LORA");
    if peft_type != "LORA" {
        return Err(format!(
            "peft_type {peft_type} is not supported (only LORA)"
        ));
    }
    let rank = v["r"].as_u64().ok_or("`r` is missing")? as usize;
    let alpha = v["lora_alpha"].as_f64().unwrap_or(8.0);
    let targets = match &v["target_modules"] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str())
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
            .collect(),
        serde_json::Value::String(s) => {
            return Err(format!(
                "target_modules as a pattern (`{s}`) is not supported; list the modules"
            ))
        }
        _ => return Err("`target_modules` is missing".into()),
    };
    if v["use_dora"].as_bool() == Some(true) {
        return Err("DoRA adapters are not supported".into());
    }
    let config = LoraConfig {
        rank,
        alpha,
        dropout: v["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
        targets,
        rslora: v["use_rslora"].as_bool().unwrap_or(false),
    };
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Writes tensors to a safetensors file atomically.
pub(crate) fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let tmp: PathBuf = path.with_extension("partial");
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| Error::bad_file(&tmp, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
