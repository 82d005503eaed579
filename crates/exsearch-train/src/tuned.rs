//! What a training run trains, LoRA adapters or every weight, and where
//! each phase's result is saved and restored from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use exsearch_agent::generator::Local;
use exsearch_core::Home;
use exsearch_model::model::{Decoder, WeightsVersion};
use exsearch_model::{LoadedModel, ModelFiles, ModelHandle};

use crate::adapters::{write_model_folder, AdapterNote, Adapters};
use crate::error::{Error, Result};
use crate::lora::{Lora, WEIGHTS_FILE};
use crate::phase::Phase;
use crate::run::Tuning;
use crate::trainer::Params;

const MODEL_WEIGHTS: &str = "model.safetensors";

/// The trained variables of a run, and the count of their changes that
/// the decoder generating with them shares.
pub(crate) struct Tuned {
    trained: Trained,
    weights: WeightsVersion,
}

enum Trained {
    Lora(Lora),
    Full(Vec<(String, Var)>),
}

impl Tuned {
    pub(crate) fn create(decoder: &mut Decoder, tuning: &Tuning, seed: u64) -> Result<Self> {
        let trained = match tuning {
            Tuning::Lora(config) => Trained::Lora(Lora::new(decoder, config.clone(), seed)?),
            Tuning::Full => Trained::Full(decoder.make_trainable()?),
        };
        Ok(Self {
            trained,
            weights: decoder.weights().clone(),
        })
    }

    /// Every weight of `decoder`, made trainable already (`vars`).
    pub(crate) fn full(decoder: &Decoder, vars: Vec<(String, Var)>) -> Self {
        Self {
            trained: Trained::Full(vars),
            weights: decoder.weights().clone(),
        }
    }

    pub(crate) fn params(&self) -> Params<'_> {
        match &self.trained {
            Trained::Lora(lora) => Params::Lora(lora),
            Trained::Full(vars) => Params::Full(vars.clone()),
        }
    }

    pub(crate) fn vars(&self) -> Vec<(String, Var)> {
        match &self.trained {
            Trained::Lora(lora) => lora.vars(),
            Trained::Full(vars) => vars.clone(),
        }
    }

    /// Writes `values` (by variable name) into the variables.
    pub(crate) fn set(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars() {
            if let Some(v) = values.get(&name) {
                var.set(v)?;
            }
        }
        self.weights.bump();
        Ok(())
    }

    /// Where phase `phase`'s result is saved.
    pub(crate) fn saved_path(&self, out: &Outputs<'_>, phase: Phase) -> PathBuf {
        match &self.trained {
            Trained::Lora(_) => Adapters::new(out.home)
                .dir()
                .join(adapter_name(out.name, phase)),
            Trained::Full(_) => out.dir.join("checkpoints").join(phase.folder()),
        }
    }

    /// Saves the current weights as phase `phase`'s result.
    pub(crate) fn save(
        &self,
        out: &Outputs<'_>,
        phase: Phase,
        note: &AdapterNote,
    ) -> Result<PathBuf> {
        match &self.trained {
            Trained::Lora(lora) => {
                let note = AdapterNote {
                    run: Some(out.name.to_string()),
                    phase: Some(phase.label()),
                    agent: note.agent.clone().or_else(|| out.agent.cloned()),
                    ..note.clone()
                };
                Adapters::new(out.home).save(&adapter_name(out.name, phase), lora, out.base, &note)
            }
            Trained::Full(vars) => {
                let dir = self.saved_path(out, phase);
                let weights = vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone()));
                write_model_folder(weights.collect(), out.files, &dir)?;
                Ok(dir)
            }
        }
    }

    /// Loads saved weights (an adapter folder, or a model folder for full
    /// tuning) into the variables.
    pub(crate) fn restore(&self, dir: &Path) -> Result<()> {
        let file = match &self.trained {
            Trained::Lora(_) => dir.join(WEIGHTS_FILE),
            Trained::Full(_) => dir.join(MODEL_WEIGHTS),
        };
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .map_err(|e| Error::bad_file(&file, e.to_string()))?;
        // Every tensor is checked before any variable changes.
        let mut values = HashMap::new();
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
            values.insert(name, t.to_dtype(var.dtype())?);
        }
        self.set(&values)
    }

    /// Makes phase `phase`'s adapter the active one (LoRA only).
    pub(crate) fn activate(&self, out: &Outputs<'_>, phase: Phase) -> Result<Option<String>> {
        match &self.trained {
            Trained::Lora(_) => {
                let name = adapter_name(out.name, phase);
                Adapters::new(out.home).set_active(Some(&name))?;
                Ok(Some(name))
            }
            Trained::Full(_) => Ok(None),
        }
    }
}

/// `<run>.warm-up`, `<run>.round-2`.
pub fn adapter_name(run: &str, phase: Phase) -> String {
    format!("{run}.{}", phase.folder())
}

/// Where a run's or a demonstration's results go: LoRA adapters into the
/// home's adapters as `<name>.<phase>`, every weight as a model folder
/// under `<dir>/checkpoints/<phase>`.
pub(crate) struct Outputs<'a> {
    pub home: &'a Home,
    /// The run's or demonstration's name.
    pub name: &'a str,
    pub dir: &'a Path,
    /// The base model's files (a full checkpoint copies its config and tokenizer).
    pub files: &'a ModelFiles,
    /// The base model as the person named it, kept in adapters' notes.
    pub base: &'a str,
    /// The search settings the phases are trained and measured with, kept
    /// in adapters' notes (none for warm-up on written trajectories).
    pub agent: Option<&'a exsearch_agent::AgentSettings>,
}

/// A model loaded for training on its own engine thread, `tuning`'s
/// variables installed: generation and scoring go through the returned
/// `Local`, the trainer through the returned decoder, and both share the
/// variables, so each optimizer step reaches generation at once. The
/// engine batches as many rows as an E-step samples together.
pub(crate) fn spawn_trainable(
    files: &ModelFiles,
    tuning: &Tuning,
    seed: u64,
    estep: &crate::estep::EStepOptions,
) -> Result<(Local, Decoder, Tuned)> {
    let batch = (estep.batch * estep.samples).max(8);
    let load_files = files.clone();
    let handle = Arc::new(ModelHandle::spawn(
        move || LoadedModel::load_trainable(&load_files, &Device::Cpu, DType::F32),
        batch,
    )?);
    let tuning = tuning.clone();
    let (decoder, tuned) = handle.with_engine(move |engine| -> Result<_> {
        let decoder = &mut engine.model_mut().decoder;
        let tuned = Tuned::create(decoder, &tuning, seed)?;
        Ok((decoder.clone(), tuned))
    })??;
    Ok((Local::new(handle), decoder, tuned))
}
