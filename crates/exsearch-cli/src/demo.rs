//! `exsearch demo em|real`: the EM demonstrations, on a generated world
//! with a model trained from scratch, or on a QA file with a real
//! pretrained model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use exsearch_train::demo::{Demo, DemoConfig, DemoReport};
use exsearch_train::real::{RealConfig, RealDemo, RealReport};

use crate::output;

#[derive(Subcommand)]
pub enum DemoCommand {
    /// Prove the EM rounds teach a model to search: a generated world, a
    /// model trained from scratch, warm-up, a control, EM rounds, held-out EM
    Em(DemoArgs),
    /// The paper's experiment at small scale on a real pretrained model: a
    /// QA file's paragraphs as the corpus, its questions split into
    /// warm-up, EM-train, validation and test; zero-shot baselines,
    /// warm-up, EM rounds and a control measured on the test split; the
    /// best adapter made active. Run it again to continue after a stop
    Real(RealArgs),
}

#[derive(Args)]
pub struct RealArgs {
    /// Base model: a .gguf file, a folder or a hub id
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    model: String,
    /// Questions with answers and supporting paragraphs (any format `exsearch eval` reads)
    #[arg(long)]
    data: PathBuf,
    /// Where everything goes [default: <home>/demos/real-<seed>]; its name
    /// prefixes the adapters' names
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A JSON file overriding any part of the settings (split sizes,
    /// LoRA, warm-up, rounds, E- and M-step, search settings)
    #[arg(long)]
    config: Option<PathBuf>,
    /// About ten minutes with SmolLM2-135M on two cores: every phase on a
    /// few questions, to see the loop and its charts; too small to measure
    #[arg(long, conflicts_with = "config")]
    quick: bool,
    /// Seed of the split and the adapters [default: the config's, 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Seed of the world and the model
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the world, the model, the trajectories and the report go
    /// [default: <home>/demos/em-<seed>, where the app lists it]
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

pub fn run(home: &exsearch_core::Home, cmd: DemoCommand) -> Result<ExitCode> {
    match cmd {
        DemoCommand::Em(args) => em(home, args),
        DemoCommand::Real(args) => real(home, args),
    }
}

fn read_config<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

fn real(home: &exsearch_core::Home, args: RealArgs) -> Result<ExitCode> {
    let mut config: RealConfig = match &args.config {
        Some(path) => read_config(path)?,
        None if args.quick => RealConfig::quick(),
        None => RealConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let demo = match args.dir {
        Some(dir) => RealDemo::in_dir(dir)?,
        None => RealDemo::named(home, &format!("real-{}", config.seed))?,
    };
    eprintln!(
        "demonstration {} ({}); run the same command again to continue it after a stop",
        demo.name,
        demo.dir.display()
    );
    let cancel = crate::cancel_on_ctrl_c("stopping; the same command continues the demonstration")?;
    let progress = output::Progress::counting();
    let sink = output::event_printer(&progress);
    let report = demo.run(home, &args.model, &args.data, &config, &sink, &cancel);
    progress.bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_real_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_real_report(r: &RealReport) {
    let recall = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    let q = &r.questions;
    println!(
        "{} on {} ({} test questions; {} warm-up, {} EM-train, {} validation):",
        r.model,
        r.data.display(),
        q.test,
        q.warmup,
        q.train,
        q.valid
    );
    println!(
        "  {:<24} {:>6} {:>6} {:>6} {:>8}",
        "", "EM", "F1", "Acc", "recall"
    );
    let row = |name: String, s: &exsearch_train::real::Scores| {
        println!(
            "  {:<24} {:>6.1} {:>6.1} {:>6.1} {:>8}",
            name,
            s.em,
            s.f1,
            s.acc,
            recall(s.recall)
        );
    };
    for (method, s) in &r.zero_shot {
        row(format!("zero-shot {method}"), s);
    }
    row("warm-up".into(), &r.warmup);
    for (i, s) in r.rounds.iter().enumerate() {
        row(format!("EM round {}", i + 1), s);
    }
    row(format!("control (+{} steps)", r.control_steps), &r.control);
    let best_zero = r.zero_shot.values().map(|s| s.em).fold(0.0, f64::max);
    println!(
        "final ({} by validation EM): EM {:.1}, {:+.1} over the best zero-shot method, {:+.1} over \
         the control; {}",
        r.best,
        r.final_em,
        r.final_em - best_zero,
        r.final_em - r.control_em,
        output::duration(r.seconds)
    );
    if let Some(a) = &r.active_adapter {
        println!(
            "active adapter: {a} (ask and eval with -m {} use it)",
            r.model
        );
    }
}

fn em(home: &exsearch_core::Home, args: DemoArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(path) => read_config::<DemoConfig>(path)?,
        None if args.quick => DemoConfig::quick(),
        None => DemoConfig::default(),
    }
    .seeded(args.seed);
    let demo = match args.dir {
        Some(dir) => Demo::in_dir(dir),
        None => Demo::named(home, &format!("em-{}", args.seed))?,
    };
    let cancel = crate::cancel_on_ctrl_c("stopping the demo")?;
    let progress = output::Progress::counting();
    let bar = &progress.bar;
    let sink = output::event_printer(&progress);
    let report = demo.run(home, &config, &sink, &cancel);
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
