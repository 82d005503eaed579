//! `exsearch train warmup|em|questions|resume|status`: self-training runs over the
//! person's own library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use exsearch_core::Home;
use exsearch_train::adapters::Adapters;
use exsearch_train::auto::AutoSpec;
use exsearch_train::defaults;
use exsearch_train::estep::EStepOptions;
use exsearch_train::run::{EmSpec, Run, RunReport, RunSpec, Tuning, WarmupSpec};
use exsearch_train::{LoraConfig, Phase, TrainConfig, WeightRule};

use crate::output;

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Supervised warm-up on trajectories (JSONL: our trajectories or chats)
    Warmup(WarmupArgs),
    /// EM rounds: sample trajectories over the library, weight them by the
    /// gold answer's likelihood, train on them; validate each round
    Em(Box<EmArgs>),
    /// Write questions from the library (one- and two-hop, each with its
    /// answer, passages and the search that built it), filtered, for a
    /// person to read and train on
    Questions(Box<crate::questions::QuestionsArgs>),
    /// Teach the model the library with no labels: write questions from
    /// it, warm up on the searches that built them, run EM rounds on them,
    /// validate on held-out ones, make the best adapter active
    Auto(Box<AutoArgs>),
    /// Continue a run that was stopped or killed
    Resume {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// The runs, or one run's steps, rounds, evaluations and charts
    Status {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// What is trained and how.
#[derive(Args)]
pub struct TuningArgs {
    /// Train every weight instead of LoRA adapters (needs safetensors)
    #[arg(long)]
    full: bool,
    /// LoRA rank
    #[arg(long, default_value_t = defaults::LORA_RANK)]
    rank: usize,
    /// LoRA alpha (scale = alpha / rank) [default: twice the rank]
    #[arg(long)]
    alpha: Option<f64>,
    #[arg(long, default_value_t = defaults::LORA_DROPOUT)]
    lora_dropout: f32,
    /// Projections with adapters, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    targets: Vec<String>,
    /// Peak learning rate [default: 1e-4 with LoRA, 2e-5 full]
    #[arg(long)]
    lr: Option<f64>,
    /// Padded tokens per micro-batch
    #[arg(long, default_value_t = defaults::TOKEN_BUDGET)]
    token_budget: usize,
    /// Micro-batches per optimizer step
    #[arg(long, default_value_t = 1)]
    accumulation: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl TuningArgs {
    fn tuning(&self) -> Tuning {
        if self.full {
            Tuning::Full
        } else {
            let mut config = LoraConfig::with_rank(self.rank);
            config.alpha = self.alpha.unwrap_or(config.alpha);
            config.dropout = self.lora_dropout;
            config.targets = self.targets.clone();
            Tuning::Lora(config)
        }
    }

    fn train(&self, epochs: usize) -> TrainConfig {
        TrainConfig {
            lr: self.lr.unwrap_or_else(|| self.tuning().default_lr()),
            epochs,
            token_budget: self.token_budget,
            accumulation: self.accumulation,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

#[derive(Args)]
pub struct AutoArgs {
    /// Base model: a folder, a .gguf file, or a hub id
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    model: String,
    /// Questions to write and keep (a fifth are held out for validation)
    #[arg(long, default_value_t = 100)]
    questions: usize,
    /// Train on these questions instead of writing them (`train
    /// questions --out FILE`, perhaps by a stronger model or edited; any
    /// QA file over this library)
    #[arg(long)]
    questions_file: Option<PathBuf>,
    /// Share of written candidates tried as two-hop questions
    #[arg(long, default_value_t = 0.5)]
    two_hop: f64,
    /// Share of the questions held out to validate each phase
    #[arg(long, default_value_t = 0.2)]
    valid_share: f64,
    /// EM rounds (each an E-step over the training questions and an M-step)
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Any other setting, as JSON over the defaults (e.g. {"warmup":
    /// {"epochs": 3}, "estep": {"samples": 2}}; see ARCHITECTURE.md)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run name [default: auto-<date>-<time>]
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    json: bool,
}

/// `spec` with the settings of the JSON object in `path` laid over it.
fn with_overrides(spec: &AutoSpec, path: &std::path::Path) -> Result<AutoSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let over: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let mut base = serde_json::to_value(spec)?;
    merge(&mut base, over);
    serde_json::from_value(base).with_context(|| format!("{}", path.display()))
}

fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

#[derive(Args)]
pub struct WarmupArgs {
    /// Base model: a folder, a .gguf file, or a hub id
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    model: String,
    /// Trajectories, one JSON object per line
    #[arg(long)]
    data: PathBuf,
    /// Trajectories for the validation loss (early stopping)
    #[arg(long)]
    valid: Option<PathBuf>,
    #[arg(long, default_value_t = defaults::WARMUP_EPOCHS)]
    epochs: usize,
    /// Epochs without a better validation loss before stopping
    #[arg(long, default_value_t = defaults::WARMUP_PATIENCE)]
    patience: usize,
    /// Run name [default: warmup-<date>-<time>]
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    tuning: TuningArgs,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct EmArgs {
    /// Base model: a folder, a .gguf file, or a hub id
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    model: String,
    /// Adapter to start from (e.g. a warm-up run's), or with --full a model folder
    #[arg(long)]
    adapter: Option<String>,
    /// Training questions with gold answers (any format `exsearch eval` reads)
    #[arg(long)]
    data: PathBuf,
    /// Validation questions: evaluated after each round, pick the best round
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Training questions from the start of the file at most
    #[arg(long)]
    limit: Option<usize>,
    /// Search the questions' own paragraphs instead of the library
    #[arg(long)]
    corpus_from_contexts: bool,
    #[arg(long, default_value_t = defaults::EM_ROUNDS)]
    rounds: usize,
    /// Trajectories sampled per question (K)
    #[arg(long = "samples", short = 'K', default_value_t = defaults::ESTEP_SAMPLES)]
    samples: usize,
    /// self-normalized, or reference (the reference code's c * exp(mean log p), c = 4)
    #[arg(long, default_value = "self-normalized")]
    weights: String,
    /// Sampling temperature of the E-step
    #[arg(long, default_value_t = defaults::ESTEP_TEMPERATURE)]
    temperature: f32,
    /// Leave out of the M-step the questions none of whose samples gives
    /// the whole gold answer at least this probability (0: none)
    #[arg(long, default_value_t = 0.0)]
    min_answer_prob: f64,
    /// Questions sampled together
    #[arg(long, default_value_t = defaults::ESTEP_BATCH)]
    batch: usize,
    /// M-step epochs per round
    #[arg(long, default_value_t = defaults::MSTEP_EPOCHS)]
    epochs: usize,
    /// Rounds without a better validation EM before stopping
    #[arg(long, default_value_t = defaults::EM_PATIENCE)]
    patience: usize,
    /// Run name [default: em-<date>-<time>]
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    tuning: TuningArgs,
    #[command(flatten)]
    search: crate::backend::SearchArgs,
    #[arg(long)]
    json: bool,
}

fn default_name(kind: &str) -> String {
    format!(
        "{kind}-{}",
        exsearch_model::text::template::strftime_now("%Y%m%d-%H%M%S")
    )
}

pub fn run(home: &Home, cmd: TrainCommand) -> Result<ExitCode> {
    match cmd {
        TrainCommand::Warmup(args) => {
            let spec = RunSpec::Warmup(WarmupSpec {
                model: args.model.clone(),
                data: absolute(&args.data)?,
                valid: args.valid.as_deref().map(absolute).transpose()?,
                tuning: args.tuning.tuning(),
                train: args.tuning.train(args.epochs),
                patience: args.patience,
            });
            let name = args.name.unwrap_or_else(|| default_name("warmup"));
            execute(home, Run::create(home, &name, &spec)?, args.json)
        }
        TrainCommand::Em(args) => {
            let rule = match args.weights.as_str() {
                "self-normalized" => WeightRule::SelfNormalized,
                "reference" => WeightRule::Reference { c: 4.0 },
                other => bail!("--weights {other}: expected self-normalized or reference"),
            };
            let start = match &args.adapter {
                Some(a) if args.tuning.full => Some(absolute(std::path::Path::new(a))?),
                Some(a) => Some(Adapters::new(home).resolve(a)?),
                None => None,
            };
            let agent = args.search.settings()?;
            let spec = RunSpec::Em(EmSpec {
                model: args.model.clone(),
                start,
                data: absolute(&args.data)?,
                valid: args.valid.as_deref().map(absolute).transpose()?,
                limit: args.limit,
                corpus_from_contexts: args.corpus_from_contexts,
                tuning: args.tuning.tuning(),
                rounds: args.rounds,
                patience: args.patience,
                estep: EStepOptions {
                    samples: args.samples,
                    rule,
                    batch: args.batch,
                    min_answer_prob: args.min_answer_prob,
                    ..EStepOptions::default()
                },
                mstep: args.tuning.train(args.epochs),
                temperature: args.temperature,
                agent,
            });
            let name = args.name.unwrap_or_else(|| default_name("em"));
            execute(home, Run::create(home, &name, &spec)?, args.json)
        }
        TrainCommand::Questions(args) => crate::questions::run(home, *args),
        TrainCommand::Auto(args) => {
            let mut spec = AutoSpec::new(args.model.clone());
            spec.questions_file = args.questions_file.as_deref().map(absolute).transpose()?;
            spec.write.count = args.questions;
            spec.write.two_hop = args.two_hop;
            spec.write.seed = args.seed;
            spec.warmup.seed = args.seed;
            spec.mstep.seed = args.seed;
            spec.valid_share = args.valid_share;
            spec.rounds = args.rounds;
            if let Some(path) = &args.config {
                spec = with_overrides(&spec, path)?;
            }
            let name = args.name.unwrap_or_else(|| default_name("auto"));
            execute(
                home,
                Run::create(home, &name, &RunSpec::Auto(spec))?,
                args.json,
            )
        }
        TrainCommand::Resume { name, json } => execute(home, Run::open(home, &name)?, json),
        TrainCommand::Status { name, json } => status(home, name.as_deref(), json),
    }
}

fn absolute(path: &std::path::Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))
}

fn execute(home: &Home, run: Run, json: bool) -> Result<ExitCode> {
    eprintln!("run {} ({})", run.name, run.dir.display());
    let cancel = crate::cancel_on_ctrl_c(
        "stopping; `exsearch train resume` continues from the last checkpoint",
    )?;
    let progress = output::Progress::counting();
    let sink = output::event_printer(&progress);
    let report = run.execute(home, &sink, &cancel);
    progress.bar.finish_and_clear();
    let report = match report {
        Err(exsearch_train::Error::Cancelled) => {
            eprintln!("stopped; resume with `exsearch train resume {}`", run.name);
            return Ok(ExitCode::from(130));
        }
        r => r.with_context(|| format!("run {}", run.name))?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&run, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(run: &Run, r: &RunReport) {
    let opt =
        |x: Option<f64>, digits: usize| x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"));
    println!(
        "  {:<10} {:>6} {:>10} {:>10} {:>9}  saved",
        "phase", "steps", "last loss", "valid loss", "valid EM"
    );
    for p in &r.phases {
        println!(
            "  {:<10} {:>6} {:>10} {:>10} {:>9}  {}",
            p.phase,
            p.steps,
            opt(p.last_loss, 3),
            opt(p.valid_loss, 3),
            opt(p.valid_em, 1),
            p.saved.display()
        );
    }
    if let Some(q) = &r.questions {
        if let Some(w) = &q.written {
            println!(
                "questions: {} kept of {} written ({} one-hop, {} two-hop); every one and its \
                 fate in {}",
                w.kept,
                w.candidates,
                w.kept_one_hop,
                w.kept_two_hop,
                run.dir.join("questions.jsonl").display()
            );
        }
        println!(
            "{} to train, {} held out; validation EM before training {}",
            q.train,
            q.valid,
            opt(q.start_em, 1)
        );
    }
    if let Some(best) = &r.best {
        println!("best: {best}");
    }
    if let Some(a) = &r.active_adapter {
        println!("active adapter: {a} (ask and eval use it with this base model)");
    }
    println!("charts: {}", run.charts_dir().display());
}

/// Held-out questions `train status` shows answered before and after.
const COMPARED: usize = 5;

fn status(home: &Home, name: Option<&str>, json: bool) -> Result<ExitCode> {
    let Some(name) = name else {
        let runs = Run::list(home)?;
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| -> Result<serde_json::Value> {
                let spec = r.spec()?;
                let (kind, model) = (spec.kind(), spec.model().to_string());
                let steps = r.store()?.steps(None)?.len();
                Ok(serde_json::json!({
                    "name": r.name, "kind": kind, "model": model, "steps": steps,
                    "finished": r.report()?.is_some(),
                }))
            })
            .collect::<Result<_>>()?;
        if json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else if rows.is_empty() {
            println!("no training runs yet (start one with `exsearch train warmup` or `train em`)");
        } else {
            for r in &rows {
                println!(
                    "{:<28} {:<7} {:>6} steps  {:<9} {}",
                    r["name"].as_str().unwrap_or_default(),
                    r["kind"].as_str().unwrap_or_default(),
                    r["steps"],
                    if r["finished"].as_bool() == Some(true) {
                        "finished"
                    } else {
                        "stopped"
                    },
                    r["model"].as_str().unwrap_or_default()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let run = Run::open(home, name)?;
    let store = run.store()?;
    let steps = store.steps(None)?;
    let rounds = store.rounds()?;
    let evals = store.evals()?;
    let report = run.report()?;
    if json {
        let value = serde_json::json!({
            "name": run.name,
            "spec": run.spec()?,
            "steps": steps.iter().map(|(phase, r)| serde_json::json!({
                "phase": phase, "step": r.step, "epoch": r.epoch, "loss": r.loss,
                "lr": r.lr, "grad_norm": r.grad_norm, "tokens": r.tokens,
            })).collect::<Vec<_>>(),
            "rounds": rounds,
            "evals": evals,
            "report": report,
            "before_after": run.before_after(COMPARED)?,
            "charts": run.charts_dir(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("run {} ({})", run.name, run.dir.display());
    let mut phases: Vec<Phase> = Vec::new();
    for (phase, _) in &steps {
        if phases.last() != Some(phase) {
            phases.push(*phase);
        }
    }
    for phase in phases {
        let of: Vec<_> = steps.iter().filter(|(p, _)| *p == phase).collect();
        if let Some((_, last)) = of.last() {
            println!(
                "  {phase}: {} steps, last loss {:.3}, epoch {}",
                of.len(),
                last.loss,
                last.epoch
            );
        }
    }
    for r in &rounds {
        let s = &r.summary;
        println!(
            "  round {} E-step: samples EM {:.1}, bound {:.3}, ESS {:.2}, {}/{} questions used, {}",
            r.round,
            100.0 * s.sample_em,
            s.bound,
            s.ess,
            s.used,
            s.questions,
            output::duration(s.seconds)
        );
    }
    for e in &evals {
        println!(
            "  {} {}: EM {:.1}, F1 {:.1}, recall {} ({} questions)",
            e.phase,
            e.split,
            e.em,
            e.f1,
            e.recall.map_or_else(|| "-".into(), |r| format!("{r:.1}")),
            e.questions
        );
    }
    let compared = run.before_after(COMPARED)?;
    if !compared.is_empty() {
        println!("  held-out questions, before training -> now:");
        for c in &compared {
            println!(
                "    {} [{}]\n      {} -> {}",
                c.question, c.answer, c.before, c.after
            );
        }
    }
    match report {
        Some(r) => println!(
            "  finished; best {}; active adapter {}",
            r.best.map_or_else(|| "-".into(), Phase::label),
            r.active_adapter.as_deref().unwrap_or("-")
        ),
        None => println!(
            "  not finished: `exsearch train resume {}` continues it",
            run.name
        ),
    }
    println!("  charts: {}", run.charts_dir().display());
    Ok(ExitCode::SUCCESS)
}
