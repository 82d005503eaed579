//! Training runs a person starts (`exsearch train warmup|em`, the app's
//! training page): warm-up on trajectories, then EM rounds over their own
//! library, with LoRA adapters (the default) or every weight trained.
//!
//! A run lives in `<home>/training/<name>/`: `run.json` (what was asked),
//! `runs.sqlite` (every step, epoch, evaluation and round), `charts/`, and
//! per phase the trainer's checkpoint, so that `exsearch train resume NAME`
//! after a kill picks up where it stopped: finished rounds are not redone,
//! an E-step keeps the questions it already sampled (written per batch to
//! `round-N/samples.jsonl`), an M-step restarts from its last checkpoint.
//! Each phase's result is an adapter under `<home>/adapters/<run>.<phase>`
//! (full fine-tuning: a model folder under `checkpoints/<phase>`); at the
//! end of the EM rounds the best round's adapter is made active.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use exsearch_agent::eval::{evaluate, EvalOptions, EvalSummary, QaItem};
use exsearch_agent::{Agent, AgentSettings, Method, Trajectory};
use exsearch_core::{CancelToken, EventSink, Home, Library, Quiet};
use exsearch_model::hub::HubCache;
use exsearch_model::{ChatMessage, LoadedModel, ModelFiles, ModelSource};
use serde::{Deserialize, Serialize};

use crate::adapters::AdapterNote;
use crate::defaults;
use crate::em::{Rounds, RoundsConfig};
use crate::error::{Error, Result};
use crate::estep::EStepOptions;
use crate::events::{Recorder, TrainEvent, CHARTS_DIR};
use crate::files::{read_json, write_atomic};
use crate::lora::LoraConfig;
use crate::phase::Phase;
use crate::supervised::{encode, Encoded, Example};
use crate::trainer::{evaluate_loss, TrainConfig, Trainer};
use crate::tuned::{spawn_trainable, Outputs, Tuned};

const SPEC_FILE: &str = "run.json";
const REPORT_FILE: &str = "report.json";

/// What is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tuning {
    /// LoRA adapters over the frozen base.
    Lora(LoraConfig),
    /// Every weight (needs safetensors weights).
    Full,
}

impl Default for Tuning {
    /// LoRA adapters, at the default rank.
    fn default() -> Self {
        Self::Lora(LoraConfig::default())
    }
}

impl Tuning {
    /// The default peak learning rate for what is trained.
    pub fn default_lr(&self) -> f64 {
        match self {
            Self::Lora(_) => defaults::LORA_LR,
            Self::Full => defaults::FULL_LR,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmupSpec {
    /// The base model: a folder, a GGUF file or a hub id.
    pub model: String,
    /// Trajectories, one JSON object per line: our `Trajectory` (as `exsearch
    /// ask --json` and the demo write them) or `{"messages": [...]}`.
    pub data: PathBuf,
    /// Trajectories for the validation loss (early stopping).
    pub valid: Option<PathBuf>,
    pub tuning: Tuning,
    pub train: TrainConfig,
    /// Epochs without a better validation loss before stopping (0: never).
    pub patience: usize,
}

impl WarmupSpec {
    /// A warm-up of `model` on the trajectories in `data`, every other
    /// setting at its default.
    pub fn new(model: String, data: PathBuf) -> Self {
        let tuning = Tuning::default();
        Self {
            model,
            data,
            valid: None,
            train: TrainConfig {
                lr: tuning.default_lr(),
                epochs: defaults::WARMUP_EPOCHS,
                ..TrainConfig::default()
            },
            tuning,
            patience: defaults::WARMUP_PATIENCE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmSpec {
    pub model: String,
    /// Adapter (folder) or, with full tuning, model folder to start from.
    pub start: Option<PathBuf>,
    /// Questions with gold answers (any format `exsearch eval` reads).
    pub data: PathBuf,
    /// Questions for the per-round validation (early stopping, best round).
    pub valid: Option<PathBuf>,
    pub limit: Option<usize>,
    /// Search the questions' own paragraphs instead of the library.
    pub corpus_from_contexts: bool,
    pub tuning: Tuning,
    pub rounds: usize,
    /// Rounds without a better validation EM before stopping (0: never).
    pub patience: usize,
    pub estep: EStepOptions,
    pub mstep: TrainConfig,
    /// Sampling temperature of the E-step (validation is greedy).
    pub temperature: f32,
    pub agent: AgentSettings,
}

impl EmSpec {
    /// EM rounds for `model` on the questions in `data`, searched with
    /// `agent`'s settings, every other setting at its default.
    pub fn new(model: String, data: PathBuf, agent: AgentSettings) -> Self {
        let tuning = Tuning::default();
        Self {
            model,
            start: None,
            data,
            valid: None,
            limit: None,
            corpus_from_contexts: false,
            rounds: defaults::EM_ROUNDS,
            patience: defaults::EM_PATIENCE,
            estep: EStepOptions::default(),
            mstep: TrainConfig {
                lr: tuning.default_lr(),
                epochs: defaults::MSTEP_EPOCHS,
                ..TrainConfig::default()
            },
            tuning,
            temperature: defaults::ESTEP_TEMPERATURE,
            agent,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Built once per run and read from `run.json`; its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RunSpec {
    Warmup(WarmupSpec),
    Em(EmSpec),
    /// Questions written from the library, warm-up, EM rounds.
    Auto(crate::auto::AutoSpec),
}

impl RunSpec {
    /// The base model the run trains.
    pub fn model(&self) -> &str {
        match self {
            Self::Warmup(s) => &s.model,
            Self::Em(s) => &s.model,
            Self::Auto(s) => &s.model,
        }
    }

    /// What kind of run it is, as `train status` lists it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Warmup(_) => "warmup",
            Self::Em(_) => "em",
            Self::Auto(_) => "auto",
        }
    }
}

/// One phase's outcome, as `report.json` and `status` show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub phase: Phase,
    pub steps: usize,
    pub last_loss: Option<f64>,
    pub valid_loss: Option<f64>,
    pub valid_em: Option<f64>,
    /// The adapter folder or model folder written.
    pub saved: PathBuf,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub name: String,
    pub phases: Vec<PhaseResult>,
    /// The phase whose result is kept (best validation), if any.
    pub best: Option<Phase>,
    /// The adapter made active.
    pub active_adapter: Option<String>,
    /// `train auto`: the questions written and how they were split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<crate::auto::AutoQuestions>,
}

/// A run's folder.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub dir: PathBuf,
}

impl Run {
    /// The folder of every run under `home`.
    pub fn root(home: &Home) -> PathBuf {
        home.root().join("training")
    }

    /// Creates run `name` with `spec`. An existing run of that name must
    /// have been started with the same settings (it is then resumed).
    pub fn create(home: &Home, name: &str, spec: &RunSpec) -> Result<Self> {
        crate::files::check_name("run", name)?;
        let run = Self {
            name: name.to_string(),
            dir: Self::root(home).join(name),
        };
        match run.spec() {
            Ok(existing) if &existing != spec => {
                return Err(Error::InvalidSetting(format!(
                    "run `{name}` already exists with other settings; resume it with \
                     `exsearch train resume {name}` or choose another --name"
                )))
            }
            Ok(_) => {}
            Err(_) => {
                std::fs::create_dir_all(&run.dir).map_err(|e| Error::io(&run.dir, e))?;
                let text = serde_json::to_string_pretty(spec).unwrap_or_default();
                write_atomic(&run.dir.join(SPEC_FILE), text.as_bytes())?;
            }
        }
        Ok(run)
    }

    /// An existing run.
    pub fn open(home: &Home, name: &str) -> Result<Self> {
        let run = Self {
            name: name.to_string(),
            dir: Self::root(home).join(name),
        };
        run.spec()?;
        Ok(run)
    }

    /// Every run under `home`, oldest first.
    pub fn list(home: &Home) -> Result<Vec<Self>> {
        let root = Self::root(home);
        let mut runs: Vec<(std::time::SystemTime, Self)> = Vec::new();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&root, e)),
        };
        for entry in entries.flatten() {
            let spec = entry.path().join(SPEC_FILE);
            if let (Ok(meta), Some(name)) = (spec.metadata(), entry.file_name().to_str()) {
                let created = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                runs.push((
                    created,
                    Self {
                        name: name.to_string(),
                        dir: entry.path(),
                    },
                ));
            }
        }
        runs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.name.cmp(&b.1.name)));
        Ok(runs.into_iter().map(|(_, r)| r).collect())
    }

    pub fn spec(&self) -> Result<RunSpec> {
        let path = self.dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
    }

    /// The final report, once the run has finished.
    pub fn report(&self) -> Result<Option<RunReport>> {
        read_json(&self.dir.join(REPORT_FILE))
    }

    pub fn store(&self) -> Result<crate::store::RunStore> {
        crate::store::RunStore::open(&self.dir)
    }

    pub fn charts_dir(&self) -> PathBuf {
        self.dir.join(CHARTS_DIR)
    }

    /// Where an EM run that searches its questions' own paragraphs indexes them.
    pub fn corpus_dir(&self) -> PathBuf {
        self.dir.join("corpus")
    }

    pub(crate) fn outputs<'a>(
        &'a self,
        home: &'a Home,
        files: &'a ModelFiles,
        base: &'a str,
        agent: Option<&'a AgentSettings>,
    ) -> Outputs<'a> {
        Outputs {
            home,
            name: &self.name,
            dir: &self.dir,
            files,
            base,
            agent,
        }
    }

    /// Runs (or resumes) the run to its end.
    pub fn execute(
        &self,
        home: &Home,
        events: &dyn EventSink<TrainEvent>,
        cancel: &CancelToken,
    ) -> Result<RunReport> {
        let recorder = Recorder::open(&self.dir, events)?;
        let report = match self.spec()? {
            RunSpec::Warmup(spec) => self.warmup(home, &spec, &recorder, cancel)?,
            RunSpec::Em(spec) => self.em(home, &spec, &recorder, cancel)?,
            RunSpec::Auto(spec) => self.auto(home, &spec, &recorder, cancel)?,
        };
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        write_atomic(&self.dir.join(REPORT_FILE), text.as_bytes())?;
        Ok(report)
    }

    fn warmup(
        &self,
        home: &Home,
        spec: &WarmupSpec,
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<RunReport> {
        let phase = Phase::Warmup;
        recorder.emit(TrainEvent::Phase {
            name: "loading".into(),
        });
        let files = resolve(&spec.model)?;
        let outputs = self.outputs(home, &files, &spec.model, None);
        let mut model = LoadedModel::load_trainable(&files, &Device::Cpu, DType::F32)?;
        let tuned = Tuned::create(&mut model.decoder, &spec.tuning, spec.train.seed)?;
        let codec = model.codec.clone();
        let encode_file = |path: &Path| -> Result<Vec<Encoded>> {
            read_examples(path)?
                .iter()
                .map(|e| encode(&codec, e))
                .collect()
        };
        let data = encode_file(&spec.data)?;
        let valid = spec.valid.as_deref().map(encode_file).transpose()?;
        let mut trainer = Trainer::new(
            &model.decoder,
            tuned.params(),
            spec.train.clone(),
            Some(&self.dir.join(phase.folder()).join("trainer")),
        )?;
        if trainer.steps_taken() > 0 {
            recorder.emit(TrainEvent::Resumed {
                what: format!("{phase} from step {}", trainer.steps_taken() + 1),
            });
        }
        recorder.emit(TrainEvent::Phase {
            name: phase.label(),
        });
        // The best epoch so far, including those of a killed earlier attempt.
        let mut best = recorder.with_store(|s| s.epochs(phase))?.into_iter().fold(
            (f64::INFINITY, 0usize),
            |b, (epoch, loss)| if loss < b.0 { (loss, epoch) } else { b },
        );
        let mut saved = None;
        let save = |tuned: &Tuned| tuned.save(&outputs, phase, &AdapterNote::default());
        let records = trainer.run_until(
            &data,
            &mut |r| {
                recorder.emit(TrainEvent::Step {
                    phase,
                    record: r.clone(),
                })
            },
            &mut |epoch| {
                let Some(valid) = &valid else {
                    return Ok(true);
                };
                let loss = evaluate_loss(&model.decoder, valid, spec.train.token_budget)?;
                recorder.emit(TrainEvent::Epoch {
                    phase,
                    epoch,
                    valid_loss: loss,
                });
                if loss < best.0 - 1e-4 {
                    best = (loss, epoch);
                    saved = Some(save(&tuned)?);
                }
                Ok(spec.patience == 0 || epoch - best.1 < spec.patience)
            },
            cancel,
        )?;
        // Without validation data (or if no epoch ended in this attempt but
        // the best one was saved before), the result is the last state.
        let saved = match saved {
            Some(path) => path,
            None if valid.is_some() && best.1 > 0 => tuned.saved_path(&outputs, phase),
            None => save(&tuned)?,
        };
        recorder.emit(TrainEvent::Saved {
            phase,
            path: saved.clone(),
        });
        recorder.charts()?;
        let active = tuned.activate(&outputs, phase)?;
        Ok(RunReport {
            name: self.name.clone(),
            phases: vec![PhaseResult {
                phase,
                steps: trainer.steps_taken(),
                last_loss: records.last().map(|r| r.loss),
                valid_loss: best.0.is_finite().then_some(best.0),
                valid_em: None,
                saved,
            }],
            best: Some(phase),
            active_adapter: active,
            questions: None,
        })
    }

    fn em(
        &self,
        home: &Home,
        spec: &EmSpec,
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<RunReport> {
        if spec.rounds == 0 {
            return Err(Error::InvalidSetting("--rounds must be at least 1".into()));
        }
        recorder.emit(TrainEvent::Phase {
            name: "loading".into(),
        });
        let mut items = exsearch_agent::eval::load(&spec.data)?;
        if let Some(limit) = spec.limit {
            items.truncate(limit);
        }
        let valid = spec
            .valid
            .as_deref()
            .map(exsearch_agent::eval::load)
            .transpose()?;
        let library = if spec.corpus_from_contexts {
            let all: Vec<QaItem> = items
                .iter()
                .chain(valid.iter().flatten())
                .cloned()
                .collect();
            exsearch_agent::eval::corpus_from_contexts(
                &all,
                &self.corpus_dir(),
                None,
                &Quiet,
                cancel,
            )?
        } else {
            Library::open(home)?
        };
        let files = resolve(&spec.model)?;
        let outputs = self.outputs(home, &files, &spec.model, Some(&spec.agent));
        let (local, decoder, tuned) =
            spawn_trainable(&files, &spec.tuning, spec.mstep.seed, &spec.estep)?;
        if let Some(start) = &spec.start {
            tuned.restore(start)?;
        }
        let mut greedy = spec.agent.clone();
        greedy.sampling.temperature = 0.0;
        let mut sampling = spec.agent.clone();
        sampling.sampling.temperature = spec.temperature;
        let greedy_agent = Agent {
            generator: &local,
            retriever: &library,
            settings: &greedy,
        };
        let sampler = Agent {
            generator: &local,
            retriever: &library,
            settings: &sampling,
        };
        let mut validate = |phase: Phase| -> Result<Option<f64>> {
            valid
                .as_deref()
                .map(|items| self.validated(phase, &greedy_agent, items, recorder, cancel))
                .transpose()
        };
        let start_em = validate(Phase::Start)?;
        let rounds = Rounds {
            dir: &self.dir,
            sampler: &sampler,
            local: &local,
            decoder: &decoder,
            tuned: &tuned,
            outputs: &outputs,
            recorder,
            cancel,
        };
        let outcome = rounds.run(
            &RoundsConfig {
                questions: &items,
                rounds: spec.rounds,
                patience: spec.patience,
                estep: &spec.estep,
                mstep: &spec.mstep,
            },
            start_em,
            &mut validate,
        )?;
        let best = outcome.best.map(Phase::Round);
        let active = match best {
            Some(phase) => tuned.activate(&outputs, phase)?,
            None => None,
        };
        Ok(RunReport {
            name: self.name.clone(),
            phases: outcome.rounds,
            best,
            active_adapter: active,
            questions: None,
        })
    }
}

impl Run {
    /// The validation EM of the model as it is after `phase`: read back
    /// when the store has it, else measured on `items` with `agent`, its
    /// answers written to `evals/<phase>.jsonl` and the figures recorded.
    pub(crate) fn validated(
        &self,
        phase: Phase,
        agent: &Agent<'_>,
        items: &[QaItem],
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<f64> {
        if let Some(row) = recorder.with_store(|s| s.eval(phase, "valid"))? {
            return Ok(row.em);
        }
        recorder.emit(TrainEvent::Phase {
            name: format!("{phase}: validation questions"),
        });
        let out = self
            .dir
            .join("evals")
            .join(format!("{}.jsonl", phase.folder()));
        let s = evaluate_into(agent, items, out, cancel)?;
        recorder.emit(evaluated(phase, "valid", &s));
        Ok(s.em)
    }
}

pub(crate) fn resolve(spec: &str) -> Result<ModelFiles> {
    let source: ModelSource = spec.parse()?;
    Ok(source.resolve(&HubCache::from_env())?)
}

/// The evaluation event of `summary`.
pub(crate) fn evaluated(phase: Phase, split: &str, s: &EvalSummary) -> TrainEvent {
    TrainEvent::Evaluated {
        phase,
        split: split.to_string(),
        em: s.em,
        f1: s.f1,
        acc: s.acc,
        recall: s.recall,
        questions: s.questions,
    }
}

/// Evaluates `agent` on `items` with the agent's harness (ExSearch),
/// writing the per-question results to `out`.
pub(crate) fn evaluate_into(
    agent: &Agent<'_>,
    items: &[QaItem],
    out: PathBuf,
    cancel: &CancelToken,
) -> Result<EvalSummary> {
    evaluate_method(agent, items, Method::Exsearch, out, cancel)
}

/// Evaluates `agent` answering by `method` on `items`, writing the
/// per-question results to `out`.
pub(crate) fn evaluate_method(
    agent: &Agent<'_>,
    items: &[QaItem],
    method: Method,
    out: PathBuf,
    cancel: &CancelToken,
) -> Result<EvalSummary> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let options = EvalOptions {
        method,
        limit: None,
        batch: 32,
        out: Some(out),
    };
    Ok(evaluate(agent, items, &options, &Quiet, cancel)?.0)
}

/// Reads warm-up examples: one JSON object per line, our `Trajectory` or a
/// chat `{"messages": [...]}`. Errors name the file and line.
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::bad_file(path, format!("line {}: {m}", i + 1));
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let messages: Vec<ChatMessage> = if value.get("transcript").is_some() {
            let t: Trajectory = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
            t.transcript
        } else if let Some(m) = value.get("messages") {
            serde_json::from_value(m.clone()).map_err(|e| bad(e.to_string()))?
        } else {
            return Err(bad(
                "neither a trajectory (`transcript`) nor a chat (`messages`)".into(),
            ));
        };
        if !messages.iter().any(|m| m.role == "assistant") {
            return Err(bad("no assistant message: nothing to learn".into()));
        }
        out.push(Example {
            messages,
            weight: 1.0,
        });
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "no examples"));
    }
    Ok(out)
}
