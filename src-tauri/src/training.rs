//! The Training page's commands: EM runs on the person's own questions, the
//! built-in synthetic-world demonstration, the real-model demonstration on
//! a QA file, their convergence charts, and the adapters they produce.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exsearch_core::Home;
use exsearch_train::adapters::{AdapterInfo, Adapters};
use exsearch_train::auto::{AutoEstimate, AutoSpec, Compared};
use exsearch_train::defaults::{self, FormDefaults};
use exsearch_train::demo::{Demo, DemoConfig, DemoReport};
use exsearch_train::questions::WriteSummary;
use exsearch_train::real::{RealConfig, RealDemo, RealReport};
use exsearch_train::run::{EmSpec, Run, RunReport, RunSpec, Tuning, WarmupSpec};
use exsearch_train::store::{EvalRow, RoundRow};
use exsearch_train::{LoraConfig, TrainEvent};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;

use crate::commands::{blocking, thinned, ShellState};
use crate::error::{CommandError, CommandResult};
use crate::shell::Shell;

/// Names become folder names (the training crate's rule).
fn check_name(name: &str) -> CommandResult<()> {
    Ok(exsearch_train::files::check_name("run", name)?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A run on the person's data (`exsearch train`).
    Run,
    /// The synthetic-world demonstration (`exsearch demo em`).
    Demo,
    /// The real-model demonstration on a QA file (`exsearch demo real`).
    Real,
}

#[derive(Debug, Serialize)]
pub struct TrainingEntry {
    pub kind: Kind,
    pub name: String,
    pub dir: PathBuf,
    pub finished: bool,
    /// The base model, for runs.
    pub model: Option<String>,
}

/// A run's or demonstration's store, report and charts.
fn detail(home: &Home, kind: Kind, name: &str) -> CommandResult<TrainingDetail> {
    check_name(name)?;
    let mut questions = None;
    let mut before_after = Vec::new();
    let (store, report, charts) = match kind {
        Kind::Run => {
            let run = Run::open(home, name)?;
            if let RunSpec::Auto(_) = run.spec()? {
                let written = run.written_questions()?;
                questions = (!written.is_empty()).then(|| WriteSummary::of(&written));
                before_after = run.before_after(COMPARED)?;
            }
            let report = run.report()?.map(serde_json::to_value).transpose();
            (run.store()?, report, run.charts_dir())
        }
        Kind::Demo => {
            let demo = Demo::open(home, name)?;
            let report = demo.report()?.map(serde_json::to_value).transpose();
            (demo.store()?, report, demo.charts_dir())
        }
        Kind::Real => {
            let demo = RealDemo::open(home, name)?;
            let report = demo.report()?.map(serde_json::to_value).transpose();
            (demo.store()?, report, demo.charts_dir())
        }
    };
    Ok(TrainingDetail {
        evals: store.evals()?,
        rounds: store.rounds()?,
        report: report.map_err(|e| CommandError::new("bad_file", e.to_string()))?,
        charts: read_charts(&charts),
        questions,
        before_after,
    })
}

#[tauri::command]
pub async fn training_list(shell: ShellState<'_>) -> CommandResult<Vec<TrainingEntry>> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let mut out = Vec::new();
        for run in Run::list(shell.home())? {
            let model = run.spec()?.model().to_string();
            out.push(TrainingEntry {
                kind: Kind::Run,
                finished: run.report()?.is_some(),
                name: run.name,
                dir: run.dir,
                model: Some(model),
            });
        }
        for demo in Demo::list(shell.home()) {
            out.push(TrainingEntry {
                kind: Kind::Demo,
                finished: demo.finished(),
                name: demo.name,
                dir: demo.dir,
                model: None,
            });
        }
        for demo in RealDemo::list(shell.home()) {
            out.push(TrainingEntry {
                kind: Kind::Real,
                finished: demo.finished(),
                model: Some(demo.spec()?.model),
                name: demo.name,
                dir: demo.dir,
            });
        }
        Ok(out)
    })
    .await
}

#[derive(Debug, Serialize)]
pub struct Chart {
    pub name: String,
    pub svg: String,
}

#[derive(Debug, Serialize)]
pub struct TrainingDetail {
    pub evals: Vec<EvalRow>,
    pub rounds: Vec<RoundRow>,
    /// `report.json` once finished.
    pub report: Option<serde_json::Value>,
    /// The plotters SVGs, the combined `convergence` chart first.
    pub charts: Vec<Chart>,
    /// "Teach the model my library": the questions written so far.
    pub questions: Option<WriteSummary>,
    /// "Teach the model my library", once finished: held-out questions
    /// answered before training and after.
    pub before_after: Vec<Compared>,
}

/// Held-out questions the page shows answered before and after training.
const COMPARED: usize = 5;

fn read_charts(dir: &Path) -> Vec<Chart> {
    let mut charts: Vec<Chart> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension()? == "svg").then_some(())?;
            Some(Chart {
                name,
                svg: std::fs::read_to_string(&path).ok()?,
            })
        })
        .collect();
    charts.sort_by_key(|c| (c.name != "convergence", c.name.clone()));
    charts
}

#[tauri::command]
pub async fn training_detail(
    shell: ShellState<'_>,
    kind: Kind,
    name: String,
) -> CommandResult<TrainingDetail> {
    let shell = Arc::clone(&shell);
    blocking(move || detail(shell.home(), kind, &name)).await
}

fn train_sink(channel: Channel<TrainEvent>) -> impl Fn(TrainEvent) + Send + Sync {
    thinned(channel, |e| {
        matches!(
            e,
            TrainEvent::Step { .. } | TrainEvent::Sampled { .. } | TrainEvent::Written { .. }
        )
    })
}

/// The demonstration on a synthetic world generated from `seed`: `quick`
/// takes a minute or two, the full one 8 to 11 minutes on two cores; `config` (any part of
/// the settings, as `exsearch demo em --config` reads them) replaces both.
#[tauri::command]
pub async fn train_demo(
    shell: ShellState<'_>,
    name: String,
    seed: u64,
    quick: bool,
    config: Option<DemoConfig>,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<DemoReport> {
    check_name(&name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let config = match config {
            Some(c) => c,
            None if quick => DemoConfig::quick(),
            None => DemoConfig::default(),
        }
        .seeded(seed);
        let demo = Demo::named(shell.home(), &name)?;
        Ok(demo.run(shell.home(), &config, &train_sink(on_event), &job.cancel)?)
    })
    .await
}

/// The real-model demonstration, as the Training page starts it.
#[derive(Debug, Clone, Deserialize)]
pub struct RealRequest {
    pub name: String,
    /// The base model [default: the model that answers].
    pub model: Option<String>,
    /// Questions with answers and supporting paragraphs (any format
    /// `exsearch eval` reads); its paragraphs become the corpus.
    pub data: PathBuf,
    /// About ten minutes ([`RealConfig::quick`]) instead of the full size.
    pub quick: bool,
    /// Any part of the settings, as `exsearch demo real --config` reads
    /// them; replaces the size.
    pub config: Option<RealConfig>,
}

/// Runs the real-model demonstration `request.name`, or continues it when
/// it was stopped (its folder holds the settings it was started with).
#[tauri::command]
pub async fn train_real(
    shell: ShellState<'_>,
    request: RealRequest,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RealReport> {
    check_name(&request.name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let model = base_model(&shell, request.model)?;
        let config = match request.config {
            Some(c) => c,
            None if request.quick => RealConfig::quick(),
            None => RealConfig::default(),
        };
        let data = absolute(&request.data)?;
        let job = shell.begin_job(&job)?;
        let demo = RealDemo::named(shell.home(), &request.name)?;
        let sink = train_sink(on_event);
        Ok(demo.run(shell.home(), &model, &data, &config, &sink, &job.cancel)?)
    })
    .await
}

/// Continues a stopped real-model demonstration with the model, questions
/// and settings it was started with.
#[tauri::command]
pub async fn train_real_resume(
    shell: ShellState<'_>,
    name: String,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RealReport> {
    check_name(&name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let demo = RealDemo::open(shell.home(), &name)?;
        let spec = demo.spec()?;
        let job = shell.begin_job(&job)?;
        let sink = train_sink(on_event);
        Ok(demo.run(
            shell.home(),
            &spec.model,
            &spec.data,
            &spec.config,
            &sink,
            &job.cancel,
        )?)
    })
    .await
}

#[derive(Debug, Serialize)]
pub struct DemoUse {
    /// The checkpoint that now answers.
    pub model: PathBuf,
    /// The synthetic world's documents, for the library.
    pub corpus: PathBuf,
}

/// Makes a finished demonstration's best model (the round validation
/// chose, else the warm-up) the answering model, with the agent settings
/// it was trained with; returns it and the world's documents folder.
#[tauri::command]
pub async fn demo_use(shell: ShellState<'_>, name: String) -> CommandResult<DemoUse> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let demo = Demo::open(shell.home(), &name)?;
        let model = demo.best_checkpoint()?;
        let mut settings = shell.settings()?;
        settings.model = Some(model.to_string_lossy().into_owned());
        settings.adapter = Some("none".into());
        settings.agent = demo.agent_settings()?;
        shell.save_settings(&settings)?;
        Ok(DemoUse {
            model,
            corpus: demo.corpus(),
        })
    })
    .await
}

/// An EM run on the person's questions, as the Training page sets it up.
#[derive(Debug, Clone, Deserialize)]
pub struct EmRequest {
    pub name: String,
    /// The base model [default: the model that answers].
    pub model: Option<String>,
    /// An adapter to start from, e.g. a warm-up's.
    pub adapter: Option<String>,
    /// Questions with gold answers (any format `exsearch eval` reads).
    pub data: PathBuf,
    pub valid: Option<PathBuf>,
    pub rounds: usize,
    /// Trajectories per question (K).
    pub samples: usize,
    pub lora_rank: usize,
    pub lr: f64,
}

#[tauri::command]
pub async fn train_em(
    shell: ShellState<'_>,
    request: EmRequest,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RunReport> {
    check_name(&request.name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let model = base_model(&shell, request.model)?;
        let start = match &request.adapter {
            Some(a) => Some(Adapters::new(shell.home()).resolve(a)?),
            None => None,
        };
        let mut spec = EmSpec::new(model, absolute(&request.data)?, shell.settings()?.agent);
        spec.start = start;
        spec.valid = request.valid.as_deref().map(absolute).transpose()?;
        spec.tuning = Tuning::Lora(LoraConfig::with_rank(request.lora_rank));
        spec.rounds = request.rounds;
        spec.estep.samples = request.samples;
        spec.mstep.lr = request.lr;
        let spec = RunSpec::Em(spec);
        start_run(&shell, &request.name, &spec, &job, on_event)
    })
    .await
}

/// "Teach the model my library": questions written from the library,
/// warm-up and EM rounds on them (`exsearch train auto`).
#[derive(Debug, Clone, Deserialize)]
pub struct AutoRequest {
    pub name: String,
    /// The base model [default: the model that answers].
    pub model: Option<String>,
    /// Questions to write and keep.
    pub questions: usize,
    /// Questions written before (`exsearch train questions`, perhaps by a
    /// stronger model, perhaps edited) instead of writing them.
    #[serde(default)]
    pub questions_file: Option<PathBuf>,
}

fn auto_spec(shell: &Shell, model: Option<String>, questions: usize) -> CommandResult<AutoSpec> {
    if questions < 5 {
        return Err(CommandError::new(
            "invalid_setting",
            "ask for at least 5 questions: some are held out to measure the model",
        ));
    }
    let mut spec = AutoSpec::new(base_model(shell, model)?);
    spec.write.count = questions;
    Ok(spec)
}

#[tauri::command]
pub async fn train_auto(
    shell: ShellState<'_>,
    request: AutoRequest,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RunReport> {
    check_name(&request.name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let mut spec = auto_spec(&shell, request.model, request.questions)?;
        spec.questions_file = request
            .questions_file
            .as_deref()
            .map(absolute)
            .transpose()?;
        start_run(&shell, &request.name, &RunSpec::Auto(spec), &job, on_event)
    })
    .await
}

/// How long "Teach the model my library" would take with `model`.
#[tauri::command]
pub async fn train_auto_estimate(
    shell: ShellState<'_>,
    model: Option<String>,
    questions: usize,
) -> CommandResult<AutoEstimate> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(auto_spec(&shell, model, questions)?.estimate()?)).await
}

/// A warm-up run: supervised fine-tuning on written trajectories, whose
/// adapter an EM run can start from.
#[derive(Debug, Clone, Deserialize)]
pub struct WarmupRequest {
    pub name: String,
    /// The base model [default: the model that answers].
    pub model: Option<String>,
    /// Trajectories, one JSON object per line.
    pub data: PathBuf,
    pub valid: Option<PathBuf>,
    pub epochs: usize,
    pub lora_rank: usize,
    pub lr: f64,
}

#[tauri::command]
pub async fn train_warmup(
    shell: ShellState<'_>,
    request: WarmupRequest,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RunReport> {
    check_name(&request.name)?;
    let shell = Arc::clone(&shell);
    blocking(move || {
        let model = base_model(&shell, request.model)?;
        let mut spec = WarmupSpec::new(model, absolute(&request.data)?);
        spec.valid = request.valid.as_deref().map(absolute).transpose()?;
        spec.tuning = Tuning::Lora(LoraConfig::with_rank(request.lora_rank));
        spec.train.lr = request.lr;
        spec.train.epochs = request.epochs;
        let spec = RunSpec::Warmup(spec);
        start_run(&shell, &request.name, &spec, &job, on_event)
    })
    .await
}

/// Creates run `name` from `spec` and runs it as job `job`.
fn start_run(
    shell: &Shell,
    name: &str,
    spec: &RunSpec,
    job: &str,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RunReport> {
    let job = shell.begin_job(job)?;
    let run = Run::create(shell.home(), name, spec)?;
    Ok(run.execute(shell.home(), &train_sink(on_event), &job.cancel)?)
}

fn base_model(shell: &Shell, model: Option<String>) -> CommandResult<String> {
    model
        .or(shell.settings()?.model)
        .ok_or_else(|| CommandError::new("no_model", "no base model: pick one on the Models page"))
}

fn absolute(path: &Path) -> CommandResult<PathBuf> {
    path.canonicalize()
        .map_err(|e| CommandError::new("io", format!("{}: {e}", path.display())))
}

/// What the Training page's forms start with.
#[tauri::command]
pub async fn training_defaults() -> CommandResult<FormDefaults> {
    Ok(defaults::form())
}

/// Continues a stopped or killed run from its last checkpoint.
#[tauri::command]
pub async fn train_resume(
    shell: ShellState<'_>,
    name: String,
    job: String,
    on_event: Channel<TrainEvent>,
) -> CommandResult<RunReport> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let run = Run::open(shell.home(), &name)?;
        Ok(run.execute(shell.home(), &train_sink(on_event), &job.cancel)?)
    })
    .await
}

#[tauri::command]
pub async fn adapters_list(shell: ShellState<'_>) -> CommandResult<Vec<AdapterInfo>> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(Adapters::new(shell.home()).list()?)).await
}

/// Makes adapter `name` the one answers use with its base model (`None`:
/// no adapter).
#[tauri::command]
pub async fn adapter_use(shell: ShellState<'_>, name: Option<String>) -> CommandResult<()> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(Adapters::new(shell.home()).set_active(name.as_deref())?)).await
}
