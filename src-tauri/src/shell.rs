//! The shell's state: the data directory, the desktop settings, the jobs
//! that can be cancelled, and the loaded answering model. Everything it
//! does is a call into the engine crates; it holds no domain logic.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use exsearch_agent::AgentSettings;
use exsearch_core::{CancelToken, Home};
use exsearch_model::hub::HubCache;
use exsearch_model::{parse_device, parse_dtype, ModelHandle, ModelSource};
use exsearch_train::adapters::{spawn_answerer, Adapters};
use serde::{Deserialize, Serialize};

use crate::error::{CommandError, CommandResult};

/// The settings file in the data directory.
pub const SETTINGS_FILE: &str = "desktop.json";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Light or dark as the system is.
    #[default]
    System,
    Light,
    Dark,
}

/// What the settings page edits, stored as `desktop.json` in the data
/// directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DesktopSettings {
    /// The model that answers: a folder, a .gguf file or a hub id
    /// (`ORG/NAME[@REV][:FILE.gguf]`); none until the person picks one.
    pub model: Option<String>,
    /// `auto`, `cpu`, `cuda[:N]` or `metal`.
    pub device: String,
    /// A LoRA adapter by name, `none`, or unset for the model's active one.
    pub adapter: Option<String>,
    /// Search and decoding settings of the agent.
    pub agent: AgentSettings,
    pub theme: Theme,
}

impl Default for DesktopSettings {
    fn default() -> Self {
        Self {
            model: None,
            device: "auto".into(),
            adapter: None,
            agent: AgentSettings::default(),
            theme: Theme::System,
        }
    }
}

impl DesktopSettings {
    /// Rejects settings the engine would refuse later, naming the field.
    pub fn validate(&self) -> CommandResult<()> {
        self.agent.validate()?;
        parse_device(&self.device)
            .map_err(|e| CommandError::new("invalid_setting", format!("device: {e}")))?;
        if let Some(spec) = &self.model {
            spec.parse::<ModelSource>()
                .map_err(|e| CommandError::new("invalid_setting", format!("model: {e}")))?;
        }
        Ok(())
    }
}

/// A loaded model, kept while the settings that chose it stay the same.
struct Answerer {
    key: String,
    handle: Arc<ModelHandle>,
}

pub struct Shell {
    home: Home,
    jobs: Arc<Mutex<HashMap<String, CancelToken>>>,
    /// The loaded model; locked only to read or swap it, never while a
    /// model loads, so status calls answer during a load.
    answerer: Mutex<Option<Answerer>>,
    /// Held while a model loads: one load at a time.
    loading: Mutex<()>,
}

/// A running job's cancel token, registered under the id the frontend
/// chose; dropping it unregisters the job.
pub struct Job {
    id: String,
    jobs: Arc<Mutex<HashMap<String, CancelToken>>>,
    pub cancel: CancelToken,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        lock(&self.jobs).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shell {
    pub fn new(home: Home) -> Self {
        Self {
            home,
            jobs: Arc::default(),
            answerer: Mutex::new(None),
            loading: Mutex::new(()),
        }
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    fn settings_path(&self) -> PathBuf {
        self.home.root().join(SETTINGS_FILE)
    }

    /// The saved settings, or the defaults before the first save.
    pub fn settings(&self) -> CommandResult<DesktopSettings> {
        let path = self.settings_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                CommandError::new("invalid_setting", format!("{}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DesktopSettings::default()),
            Err(e) => Err(CommandError::new("io", format!("{}: {e}", path.display()))),
        }
    }

    /// Validates and saves `settings` (written whole, then renamed into
    /// place, so a crash never leaves half a file).
    pub fn save_settings(&self, settings: &DesktopSettings) -> CommandResult<()> {
        settings.validate()?;
        let io = |path: &std::path::Path, e: std::io::Error| {
            CommandError::new("io", format!("{}: {e}", path.display()))
        };
        std::fs::create_dir_all(self.home.root()).map_err(|e| io(self.home.root(), e))?;
        let path = self.settings_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(settings)
            .map_err(|e| CommandError::new("invalid_setting", e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    /// Registers a job under `id`; fails if one with that id is running.
    pub fn begin_job(&self, id: &str) -> CommandResult<Job> {
        let mut jobs = lock(&self.jobs);
        if jobs.contains_key(id) {
            return Err(CommandError::new(
                "busy",
                format!("job {id} is already running"),
            ));
        }
        let cancel = CancelToken::new();
        jobs.insert(id.to_owned(), cancel.clone());
        Ok(Job {
            id: id.to_owned(),
            jobs: Arc::clone(&self.jobs),
            cancel,
        })
    }

    /// Cancels job `id`; false when no such job is running.
    pub fn cancel(&self, id: &str) -> bool {
        match lock(&self.jobs).get(id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// The model the settings choose, loaded on first use and kept until
    /// the model, device or adapter setting changes.
    pub fn answerer(&self, settings: &DesktopSettings) -> CommandResult<Arc<ModelHandle>> {
        let Some(spec) = settings.model.as_deref() else {
            return Err(CommandError::new(
                "no_model",
                "no model chosen: pick one on the Models page (search works without one)",
            ));
        };
        let adapter = Adapters::new(&self.home).choose(spec, settings.adapter.as_deref())?;
        let key = format!(
            "{spec}\u{0}{}\u{0}{:?}",
            settings.device,
            adapter.as_ref().map(|a| &a.path)
        );
        let cached = |slot: &Option<Answerer>| {
            slot.as_ref()
                .filter(|a| a.key == key)
                .map(|a| Arc::clone(&a.handle))
        };
        if let Some(handle) = cached(&lock(&self.answerer)) {
            return Ok(handle);
        }
        let _loading = lock(&self.loading);
        // Another call may have loaded this model while we waited.
        if let Some(handle) = cached(&lock(&self.answerer)) {
            return Ok(handle);
        }
        // The old model's memory goes before the new one loads.
        drop(lock(&self.answerer).take());
        let source: ModelSource = spec.parse()?;
        let files = source.resolve(&HubCache::from_env())?;
        let device = parse_device(&settings.device)?;
        let dtype = parse_dtype("auto", &device)?;
        let handle = Arc::new(spawn_answerer(
            files,
            device,
            dtype,
            adapter.map(|a| a.path),
        )?);
        *lock(&self.answerer) = Some(Answerer {
            key,
            handle: Arc::clone(&handle),
        });
        Ok(handle)
    }

    /// The file that marks an indexing job in progress.
    pub fn indexing_marker(&self) -> PathBuf {
        self.home.root().join("indexing.running")
    }

    /// Whether a model is loaded now.
    pub fn model_loaded(&self) -> bool {
        lock(&self.answerer).is_some()
    }
}
