//! `exsearch demo em`: the end-to-end EM demonstration on a generated world.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use exsearch_train::demo::{run_demo, DemoConfig, DemoReport};

use crate::output;

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

pub fn run(home: &exsearch_core::Home, cmd: DemoCommand) -> Result<ExitCode> {
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
    let sink = output::event_printer(&progress);
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
