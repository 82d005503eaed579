//! `exsearch model init` and `exsearch demo em`: a new small model with a
//! tokenizer trained on a corpus, and the end-to-end EM demonstration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use exsearch_train::demo::{run_demo, DemoConfig, DemoReport};
use exsearch_train::init::{init_model, InitConfig};
use exsearch_train::TrainEvent;

use crate::output;

#[derive(Args)]
pub struct InitArgs {
    /// The folder to create (config.json, tokenizer.json, model.safetensors, ...)
    dir: PathBuf,
    /// Text the tokenizer is trained on: files or folders (their .md, .txt
    /// and .jsonl files, recursively); repeatable
    #[arg(long, required = true)]
    corpus: Vec<PathBuf>,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    #[arg(long, default_value_t = 384)]
    intermediate: usize,
    /// Largest tokenizer vocabulary (bytes, special tokens, learnt merges)
    #[arg(long, default_value_t = 8192)]
    vocab: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A string the tokenizer keeps whole as one token (an agent's tag such
    /// as `<QUERY>`); repeatable
    #[arg(long = "word")]
    words: Vec<String>,
    /// Replace an existing model in DIR
    #[arg(long)]
    force: bool,
}

pub fn init(args: InitArgs) -> Result<ExitCode> {
    if args.dir.join("model.safetensors").exists() && !args.force {
        bail!(
            "{} already holds a model (pass --force to replace it)",
            args.dir.display()
        );
    }
    let mut texts = Vec::new();
    for path in &args.corpus {
        read_corpus(path, &mut texts)?;
    }
    if texts.is_empty() {
        bail!("the corpus has no .md, .txt or .jsonl files");
    }
    let config = InitConfig {
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        vocab: args.vocab,
        seed: args.seed,
        words: args.words,
        ..InitConfig::default()
    };
    let files = texts.len();
    let model = init_model(&args.dir, &config, texts.into_iter())?;
    println!(
        "{}: {} parameters, {} layers, hidden {}, vocabulary {} (tokenizer trained on {files} files)",
        args.dir.display(),
        model.parameter_count(),
        model.num_layers,
        model.hidden_size,
        model.vocab_size,
    );
    Ok(ExitCode::SUCCESS)
}

fn read_corpus(path: &Path, out: &mut Vec<String>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let wanted = p.is_dir()
                || p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "md" | "txt" | "jsonl"));
            if wanted {
                read_corpus(&p, out)?;
            }
        }
    } else {
        out.push(std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?);
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DemoCommand {
    /// Prove the EM rounds teach a model to search: a generated world, a
    /// model trained from scratch, warm-up, a control, EM rounds, held-out EM
    Em(DemoArgs),
}

#[derive(Args)]
pub struct DemoArgs {
    /// Seed of the world and the model
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the world, the model, the trajectories and the report go
    /// [default: <home>/demo-em-<seed>]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A JSON file overriding any part of the demo's settings
    #[arg(long)]
    config: Option<PathBuf>,
    /// A run of a minute or two on a small world: shows the loop and its
    /// charts, too short to show the EM gain
    #[arg(long, conflicts_with = "config")]
    quick: bool,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

pub fn demo(home: &exsearch_core::Home, cmd: DemoCommand) -> Result<ExitCode> {
    let DemoCommand::Em(args) = cmd;
    let config = match &args.config {
        Some(path) => serde_json::from_str::<DemoConfig>(
            &std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
        )
        .with_context(|| format!("{}", path.display()))?,
        None if args.quick => DemoConfig::quick(),
        None => DemoConfig::default(),
    }
    .seeded(args.seed);
    let dir = args
        .dir
        .unwrap_or_else(|| home.root().join(format!("demo-em-{}", args.seed)));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    }
    let cancel = crate::cancel_on_ctrl_c("stopping the demo")?;
    let progress = output::Progress::counting();
    let bar = &progress.bar;
    let sink = event_printer(&progress);
    let report = run_demo(&dir, &config, &sink, &cancel);
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &DemoReport) {
    let recall = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    println!("held-out questions, seed {} ({}):", r.seed, r.dir.display());
    println!("  {:<28} {:>6} {:>8}", "", "EM", "recall");
    println!(
        "  {:<28} {:>6.1} {:>8}",
        format!("warm-up ({} epochs)", r.warmup_epochs),
        r.warmup_em,
        recall(r.warmup_recall)
    );
    println!(
        "  {:<28} {:>6.1} {:>8}",
        format!("control (+{} steps)", r.control_steps),
        r.control_em,
        recall(r.control_recall)
    );
    for round in &r.rounds {
        println!(
            "  {:<28} {:>6.1} {:>8}   (samples EM {:.1}, bound {:.3}, ESS {:.2})",
            format!("EM round {}", round.round),
            round.test_em,
            recall(round.test_recall),
            100.0 * round.estep.sample_em,
            round.estep.bound,
            round.estep.ess
        );
    }
    println!(
        "final (round {} by validation EM): EM {:.1}, {:+.1} over warm-up, {:+.1} over the control; {}",
        r.best_round,
        r.final_em,
        r.final_em - r.warmup_em,
        r.final_em - r.control_em,
        output::duration(r.seconds)
    );
}

/// Prints training events: a progress bar for steps and sampling, a line
/// per epoch, evaluation, round, save and chart update.
pub(crate) fn event_printer(progress: &output::Progress) -> impl Fn(TrainEvent) + Sync + '_ {
    let bar = &progress.bar;
    move |event: TrainEvent| {
        match event {
        TrainEvent::Phase { name } => {
            bar.set_length(0);
            bar.set_position(0);
            bar.set_message(name.clone());
            bar.suspend(|| eprintln!("== {name}"));
        }
        TrainEvent::Step { phase, record } => {
            bar.set_length(record.total_steps as u64);
            bar.set_position(record.step as u64);
            bar.set_message(format!("{phase}: loss {:.3}", record.loss));
            progress.plain_line(|| {
                format!(
                    "{phase} step {}/{} loss {:.3}",
                    record.step, record.total_steps, record.loss
                )
            });
        }
        TrainEvent::Epoch {
            phase,
            epoch,
            valid_loss,
        } => {
            bar.suspend(|| eprintln!("   {phase} epoch {epoch}: validation loss {valid_loss:.3}"));
        }
        TrainEvent::Resumed { what } => bar.suspend(|| eprintln!("   resumed: {what}")),
        TrainEvent::Saved { phase, path } => {
            bar.suspend(|| eprintln!("   {phase}: saved {}", path.display()))
        }
        TrainEvent::Sampled { round, done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(format!("round {round}: sampling"));
            progress.plain_line(|| format!("round {round} E-step {done}/{total}"));
        }
        TrainEvent::Evaluated {
            phase,
            split,
            em,
            f1,
            recall,
            ..
        } => {
            let recall = recall.map_or_else(|| "-".into(), |r| format!("{r:.1}"));
            let split = if split == "test" { "held-out" } else { "validation" };
            bar.suspend(|| eprintln!("   {phase}: {split} EM {em:.1}, F1 {f1:.1}, recall {recall}"));
        }
        TrainEvent::Round { round, estep } => bar.suspend(|| {
            eprintln!(
                "   round {round} E-step: samples EM {:.1}, bound {:.3}, ESS {:.2}, {}/{} questions used",
                100.0 * estep.sample_em,
                estep.bound,
                estep.ess,
                estep.used,
                estep.questions
            )
        }),
        TrainEvent::Charts { files } => {
            if let Some(dir) = files.first().and_then(|f| f.parent()) {
                bar.suspend(|| eprintln!("   charts: {}", dir.display()));
            }
        }
        }
    }
}
