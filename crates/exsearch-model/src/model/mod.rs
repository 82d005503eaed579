//! The transformer and how it is loaded.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod config;
pub mod cpu_ops;
pub mod decoder;
pub mod graph_ops;
pub mod kv_cache;
mod legacy_quants;
pub mod linear;
pub mod loading;
mod low_bits;
pub mod packed;
pub mod params;
pub mod random_init;

use candle_core::{DType, Device};

pub use config::{Family, ModelConfig};
pub use decoder::{Decoder, Kernels, WeightsVersion};
pub use kv_cache::KvCache;
pub use linear::{Linear, LoraAdapter};
pub use params::PROJECTIONS;

use crate::error::{Error, Result};
use crate::source::{ModelFiles, WeightFiles};
use crate::text::TextCodec;

/// The largest absolute difference between two tensors of one shape.
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>())
        .expect("two tensors of one shape")
}

/// `--device auto|cpu|cuda[:N]|metal`.
pub fn parse_device(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k,
            i.parse::<usize>().map_err(|_| {
                Error::InvalidOption(format!("device `{spec}`: `{i}` is not a number"))
            })?,
        ),
        None => (spec, 0),
    };
    let unavailable = |what: &str, feature: &str| {
        Error::InvalidOption(format!(
            "device `{spec}`: this build has no {what} support (rebuild with `--features {feature}`)"
        ))
    };
    match kind {
        "cpu" => Ok(Device::Cpu),
        "cuda" if candle_core::utils::cuda_is_available() => Ok(Device::new_cuda(index)?),
        "cuda" => Err(unavailable("CUDA", "cuda")),
        "metal" if candle_core::utils::metal_is_available() => Ok(Device::new_metal(index)?),
        "metal" => Err(unavailable("Metal", "metal")),
        "auto" if candle_core::utils::cuda_is_available() => {
            Ok(Device::new_cuda(0).unwrap_or(Device::Cpu))
        }
        "auto" if candle_core::utils::metal_is_available() => {
            Ok(Device::new_metal(0).unwrap_or(Device::Cpu))
        }
        "auto" => Ok(Device::Cpu),
        other => Err(Error::InvalidOption(format!(
            "device `{other}`: expected auto, cpu, cuda[:N] or metal"
        ))),
    }
}

/// `--dtype auto|f32|bf16|f16`; auto is f32 on CPU (fastest there) and bf16
/// on accelerators.
pub fn parse_dtype(spec: &str, device: &Device) -> Result<DType> {
    match spec {
        "auto" if device.is_cpu() => Ok(DType::F32),
        "auto" => Ok(DType::BF16),
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        other => Err(Error::InvalidOption(format!(
            "dtype `{other}`: expected auto, f32, bf16 or f16"
        ))),
    }
}

/// A model ready to run: weights on a device plus its text codec.
pub struct LoadedModel {
    pub name: String,
    pub decoder: Decoder,
    pub codec: std::sync::Arc<TextCodec>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Loads `files` onto `device`; `dtype` applies to safetensors weights
    /// (GGUF matrices stay quantized and activations are f32).
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(files, device, dtype, false)
    }

    /// As [`LoadedModel::load`], ready for adapters to be trained over it:
    /// a GGUF model keeps each matrix's file bits for the backward pass
    /// (its quantized weights held twice, never dense).
    pub fn load_trainable(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        Self::load_with(files, device, dtype, true)
    }

    fn load_with(
        files: &ModelFiles,
        device: &Device,
        dtype: DType,
        trainable: bool,
    ) -> Result<Self> {
        let (decoder, codec) = match &files.weights {
            WeightFiles::Safetensors(paths) => {
                let config_path = files.config.as_ref().ok_or_else(|| Error::Missing {
                    path: "config.json".into(),
                    hint: "safetensors weights need their config.json".into(),
                })?;
                let config = ModelConfig::from_hf_file(config_path)?;
                let tokenizer = files.tokenizer.as_ref().ok_or_else(|| Error::Missing {
                    path: "tokenizer.json".into(),
                    hint: "the model's tokenizer is needed".into(),
                })?;
                let codec = TextCodec::from_hf_files(
                    tokenizer,
                    files.tokenizer_config.as_deref(),
                    files.generation_config.as_deref(),
                    &config.eos_token_ids,
                )?;
                check_vocab(&config, &codec, tokenizer)?;
                (
                    loading::load_safetensors(config, paths, device, dtype)?,
                    codec,
                )
            }
            WeightFiles::Gguf(path) => {
                let gguf = loading::Gguf::open(path)?;
                let decoder = gguf.load_with(device, trainable)?;
                let codec = match &files.tokenizer {
                    Some(tokenizer) => TextCodec::from_hf_files(
                        tokenizer,
                        files.tokenizer_config.as_deref(),
                        None,
                        &decoder.config().eos_token_ids,
                    )?,
                    None => TextCodec::from_gguf(&gguf, &decoder.config().eos_token_ids)?,
                };
                (decoder, codec)
            }
        };
        Ok(Self {
            name: files.name.clone(),
            decoder,
            codec: std::sync::Arc::new(codec),
        })
    }
}

fn check_vocab(config: &ModelConfig, codec: &TextCodec, tokenizer: &std::path::Path) -> Result<()> {
    let n = codec.tokenizer().get_vocab_size(true);
    if n > config.vocab_size {
        return Err(Error::bad_file(
            tokenizer,
            format!(
                "{n} tokens, but the model's embedding has only {} rows",
                config.vocab_size
            ),
        ));
    }
    Ok(())
}
