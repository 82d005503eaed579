//! What a training run trains, LoRA adapters or every weight, and where
//! each phase's result is saved and restored from.

use std::path::{Path, PathBuf};

use candle_core::{Device, Var};
use exsearch_core::Home;
use exsearch_model::model::Decoder;
use exsearch_model::ModelFiles;

use crate::adapters::{write_model_folder, AdapterNote, Adapters};
use crate::error::{Error, Result};
use crate::lora::{Lora, WEIGHTS_FILE};
use crate::run::{Run, Tuning};
use crate::trainer::Params;

const MODEL_WEIGHTS: &str = "model.safetensors";

/// The trained variables of a run.
pub(crate) enum Tuned {
    Lora(Lora),
    Full(Vec<(String, Var)>),
}

impl Tuned {
    pub(crate) fn create(decoder: &mut Decoder, tuning: &Tuning, seed: u64) -> Result<Self> {
        Ok(match tuning {
            Tuning::Lora(config) => Self::Lora(Lora::new(decoder, config.clone(), seed)?),
            Tuning::Full => Self::Full(decoder.make_trainable()?),
        })
    }

    pub(crate) fn params(&self) -> Params<'_> {
        match self {
            Self::Lora(lora) => Params::Lora(lora),
            Self::Full(vars) => Params::Full(vars.clone()),
        }
    }

    pub(crate) fn vars(&self) -> Vec<(String, Var)> {
        match self {
            Self::Lora(lora) => lora.vars(),
            Self::Full(vars) => vars.clone(),
        }
    }

    /// Where phase `phase` of `run` is saved.
    pub(crate) fn saved_path(&self, run: &Run, home: &Home, phase: &str) -> PathBuf {
        match self {
            Self::Lora(_) => Adapters::new(home)
                .dir()
                .join(adapter_name(&run.name, phase)),
            Self::Full(_) => run.dir.join("checkpoints").join(phase.replace(' ', "-")),
        }
    }

    /// Saves the current weights as phase `phase`'s result.
    pub(crate) fn save(
        &self,
        run: &Run,
        home: &Home,
        files: &ModelFiles,
        base: &str,
        phase: &str,
        note: &AdapterNote,
    ) -> Result<PathBuf> {
        match self {
            Self::Lora(lora) => {
                let note = AdapterNote {
                    run: Some(run.name.clone()),
                    phase: Some(phase.to_string()),
                    ..note.clone()
                };
                Adapters::new(home).save(&adapter_name(&run.name, phase), lora, base, &note)
            }
            Self::Full(vars) => {
                let out = self.saved_path(run, home, phase);
                let weights = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone()));
                write_model_folder(weights.collect(), files, &out)?;
                Ok(out)
            }
        }
    }

    /// Loads saved weights (an adapter folder, or a model folder for full
    /// tuning) into the variables.
    pub(crate) fn restore(&self, dir: &Path) -> Result<()> {
        let file = match self {
            Self::Lora(_) => dir.join(WEIGHTS_FILE),
            Self::Full(_) => dir.join(MODEL_WEIGHTS),
        };
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::bad_file(&file, e.to_string()))?;
        for (name, var) in self.vars() {
            let t = tensors
                .get(&name)
                .ok_or_else(|| Error::bad_file(&file, format!("no tensor `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(Error::bad_file(
                    &file,
                    format!(
                        "`{name}` has shape {:?}, the model needs {:?}",
                        t.dims(),
                        var.dims()
                    ),
                ));
            }
            var.set(&t.to_dtype(var.dtype())?)?;
        }
        Ok(())
    }

    /// Makes phase `phase`'s adapter the active one (LoRA only).
    pub(crate) fn activate(&self, run: &Run, home: &Home, phase: &str) -> Result<Option<String>> {
        match self {
            Self::Lora(_) => {
                let name = adapter_name(&run.name, phase);
                Adapters::new(home).set_active(Some(&name))?;
                Ok(Some(name))
            }
            Self::Full(_) => Ok(None),
        }
    }
}

/// `<run>.warm-up`, `<run>.round-2`.
pub fn adapter_name(run: &str, phase: &str) -> String {
    format!("{run}.{}", phase.replace(' ', "-"))
}
