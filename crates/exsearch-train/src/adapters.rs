//! The adapters a person has: LoRA adapters in PEFT folders under
//! `<home>/adapters/<name>/`, which one is active, and merging one into its
//! base model.
//!
//! Each folder holds `adapter_config.json` and `adapter_model.safetensors`
//! (loadable by PEFT and vLLM) plus our `exsearch.json`: where the adapter
//! came from (run, phase) and its validation metrics. A folder copied in from
//! elsewhere without `exsearch.json` is listed too. The active adapter's name
//! is kept in `<home>/adapters/active`; `ask`, `eval` and `generate` apply it
//! when the model they load is its base.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use exsearch_core::Home;
use exsearch_model::{LoadedModel, ModelFiles};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::lora::{Lora, CONFIG_FILE};

const ACTIVE_FILE: &str = "active";
const NOTE_FILE: &str = "exsearch.json";

/// What we record beside an adapter we trained.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdapterNote {
    /// The training run and the phase ("warm-up", "round 2") it ends.
    pub run: Option<String>,
    pub phase: Option<String>,
    /// Validation EM after this phase, when the run had validation data.
    pub valid_em: Option<f64>,
    pub valid_loss: Option<f64>,
    /// The search settings it was trained with (EM rounds and real-model
    /// demonstrations): `ask` and `eval` search with them unless given a
    /// settings file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<exsearch_agent::AgentSettings>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdapterInfo {
    pub name: String,
    pub path: PathBuf,
    /// `base_model_name_or_path` of the adapter's PEFT config.
    pub base_model: String,
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
    pub note: AdapterNote,
    pub active: bool,
}

/// The adapter folders of one home.
pub struct Adapters {
    dir: PathBuf,
}

impl Adapters {
    pub fn new(home: &Home) -> Self {
        Self {
            dir: home.root().join("adapters"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every adapter folder, by name.
    pub fn list(&self) -> Result<Vec<AdapterInfo>> {
        let active = self.active()?;
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::io(&self.dir, e))?.path();
            if !path.join(CONFIG_FILE).is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let mut info = describe(&path, &name)?;
            info.active = active.as_deref() == Some(name.as_str());
            out.push(info);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The folder of adapter `spec`: a name under the adapters folder, or a
    /// path to any PEFT adapter folder.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf> {
        let named = self.dir.join(spec);
        if !spec.contains(['/', '\\']) && named.join(CONFIG_FILE).is_file() {
            return Ok(named);
        }
        let path = Path::new(spec);
        if path.join(CONFIG_FILE).is_file() {
            return Ok(path.to_path_buf());
        }
        let known: Vec<String> = self.list()?.into_iter().map(|a| a.name).collect();
        Err(Error::InvalidSetting(format!(
            "no adapter `{spec}`: not a name in {} ({}) nor a folder with {CONFIG_FILE}",
            self.dir.display(),
            if known.is_empty() {
                "there are none yet".to_string()
            } else {
                known.join(", ")
            }
        )))
    }

    /// Saves `lora` as adapter `name` (replacing one of that name).
    pub fn save(
        &self,
        name: &str,
        lora: &Lora,
        base_model: &str,
        note: &AdapterNote,
    ) -> Result<PathBuf> {
        check_name(name)?;
        let dir = self.dir.join(name);
        lora.save_peft(&dir, base_model)?;
        let text = serde_json::to_string_pretty(note).unwrap_or_default();
        write_atomic(&dir.join(NOTE_FILE), text.as_bytes())?;
        Ok(dir)
    }

    /// The active adapter's name, if one is set and still exists.
    pub fn active(&self) -> Result<Option<String>> {
        let path = self.dir.join(ACTIVE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(name) => {
                let name = name.trim().to_string();
                Ok(
                    (!name.is_empty() && self.dir.join(&name).join(CONFIG_FILE).is_file())
                        .then_some(name),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Makes adapter `name` active, or none.
    pub fn set_active(&self, name: Option<&str>) -> Result<()> {
        let path = self.dir.join(ACTIVE_FILE);
        match name {
            Some(name) => {
                self.resolve(name)?;
                check_name(name)?;
                std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
                write_atomic(&path, name.as_bytes())
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
                _ => Ok(()),
            },
        }
    }

    /// The adapter to apply to model `spec`: the active one when `spec` is
    /// its base. `None` when there is no active adapter or it belongs to
    /// another model.
    pub fn active_for(&self, spec: &str) -> Result<Option<AdapterInfo>> {
        let Some(name) = self.active()? else {
            return Ok(None);
        };
        let info = describe(&self.dir.join(&name), &name)?;
        Ok(same_model(&info.base_model, spec).then_some(AdapterInfo {
            active: true,
            ..info
        }))
    }
}

fn check_name(name: &str) -> Result<()> {
    if name == ACTIVE_FILE {
        return Err(Error::InvalidSetting(format!(
            "`{name}` is reserved; choose another adapter name"
        )));
    }
    crate::files::check_name("adapter", name)
}

/// Whether two model specs name the same model: equal strings, or paths
/// to the same folder or file.
fn same_model(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (Path::new(a).canonicalize(), Path::new(b).canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Reads one adapter folder's configs.
pub fn describe(dir: &Path, name: &str) -> Result<AdapterInfo> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&config_path, e.to_string()))?;
    let lora =
        crate::lora::parse_peft_config(&text).map_err(|m| Error::bad_file(&config_path, m))?;
    let note_path = dir.join(NOTE_FILE);
    let note = match std::fs::read_to_string(&note_path) {
        Ok(t) => {
            serde_json::from_str(&t).map_err(|e| Error::bad_file(&note_path, e.to_string()))?
        }
        Err(_) => AdapterNote::default(),
    };
    Ok(AdapterInfo {
        name: name.to_string(),
        path: dir.to_path_buf(),
        base_model: config["base_model_name_or_path"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        rank: lora.rank,
        alpha: lora.alpha,
        targets: lora.targets,
        note,
        active: false,
    })
}

/// Starts the thread that owns model `files` for answering, with the
/// adapter in `adapter` applied: what `exsearch ask` and the desktop app
/// run questions through.
pub fn spawn_answerer(
    files: ModelFiles,
    device: candle_core::Device,
    dtype: candle_core::DType,
    adapter: Option<PathBuf>,
) -> Result<exsearch_model::ModelHandle> {
    let handle = exsearch_model::ModelHandle::spawn(
        move || {
            let mut model = LoadedModel::load(&files, &device, dtype)?;
            if let Some(dir) = &adapter {
                apply(&mut model, dir).map_err(|e| {
                    exsearch_model::Error::InvalidOption(format!("{}: {e}", dir.display()))
                })?;
            }
            Ok(model)
        },
        exsearch_model::engine::DEFAULT_MAX_BATCH,
    )?;
    Ok(handle)
}

impl Adapters {
    /// The adapter for model `spec`: `choice` names one (`none` for none),
    /// else the active one when `spec` is its base.
    pub fn choose(&self, spec: &str, choice: Option<&str>) -> Result<Option<AdapterInfo>> {
        match choice {
            Some("none") => Ok(None),
            Some(name) => {
                let path = self.resolve(name)?;
                describe(&path, name).map(Some)
            }
            None => self.active_for(spec),
        }
    }
}

/// Loads the adapter in `dir` into `model`'s decoder (for inference).
pub fn apply(model: &mut LoadedModel, dir: &Path) -> Result<()> {
    let decoder = &mut model.decoder;
    let lora = Lora::load_peft(dir, decoder.device(), decoder.dtype())?;
    lora.install(decoder, None)
}

/// Merges the adapter in `adapter` into the base model `base` and writes a
/// full model folder to `out` (the base's config and tokenizer files beside
/// the merged `model.safetensors`), loadable with `-m OUT` anywhere.
pub fn merge(base: &ModelFiles, adapter: &Path, out: &Path) -> Result<()> {
    if matches!(base.weights, exsearch_model::source::WeightFiles::Gguf(_)) {
        return Err(Error::InvalidSetting(format!(
            "{}: merging needs the base model's safetensors weights, not a GGUF file",
            base.name
        )));
    }
    let mut model = LoadedModel::load(base, &Device::Cpu, DType::F32)?;
    let lora = Lora::load_peft(adapter, &Device::Cpu, DType::F32)?;
    lora.install(&mut model.decoder, None)?;
    lora.merge_into(&mut model.decoder)?;
    write_model_folder(
        model.decoder.named_weights()?.into_iter().collect(),
        base,
        out,
    )
}

/// Writes `weights` as a model folder `out` with `base`'s config and
/// tokenizer files beside them, loadable with `-m OUT`.
pub(crate) fn write_model_folder(
    weights: HashMap<String, Tensor>,
    base: &ModelFiles,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    for from in [
        &base.config,
        &base.tokenizer,
        &base.tokenizer_config,
        &base.generation_config,
    ]
    .into_iter()
    .flatten()
    {
        let name = from.file_name().unwrap_or_default();
        std::fs::copy(from, out.join(name)).map_err(|e| Error::io(from, e))?;
    }
    crate::lora::save_tensors(&weights, &out.join("model.safetensors"))
}
