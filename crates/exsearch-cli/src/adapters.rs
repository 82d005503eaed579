//! `exsearch adapters list|use|merge`: the LoRA adapters training
//! produced, and which one `ask` and `eval` apply.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use exsearch_core::Home;
use exsearch_model::hub::HubCache;
use exsearch_model::ModelSource;
use exsearch_train::adapters::{self, Adapters};

#[derive(Subcommand)]
pub enum AdaptersCommand {
    /// The adapters under <home>/adapters, the active one marked
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make an adapter active (ask and eval apply it to its base model)
    Use {
        /// Adapter name
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        /// No adapter
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Merge an adapter into its base model and write a full model folder
    Merge {
        /// Adapter name or PEFT folder
        name: String,
        /// The model folder to write
        #[arg(long)]
        out: PathBuf,
        /// Base model [default: the adapter's base_model_name_or_path]
        #[arg(long, short = 'm')]
        model: Option<String>,
    },
}

pub fn run(home: &Home, cmd: AdaptersCommand) -> Result<ExitCode> {
    let store = Adapters::new(home);
    match cmd {
        AdaptersCommand::List { json } => {
            let list = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no adapters in {} yet", store.dir().display());
            } else {
                for a in &list {
                    let em = a
                        .note
                        .valid_em
                        .map_or_else(String::new, |em| format!(", validation EM {em:.1}"));
                    println!(
                        "{} {:<32} rank {:<3} base {}{em}",
                        if a.active { "*" } else { " " },
                        a.name,
                        a.rank,
                        a.base_model
                    );
                }
            }
        }
        AdaptersCommand::Use { name, none } => {
            let name = if none { None } else { name };
            store.set_active(name.as_deref())?;
            match name {
                Some(n) => println!("active adapter: {n}"),
                None => println!("no active adapter"),
            }
        }
        AdaptersCommand::Merge { name, out, model } => {
            let dir = store.resolve(&name)?;
            let info = adapters::describe(&dir, &name)?;
            let base = model.unwrap_or(info.base_model);
            if base.is_empty() {
                bail!(
                    "{}: the adapter names no base model; pass --model",
                    dir.display()
                );
            }
            let source: ModelSource = base.parse()?;
            let files = source.resolve(&HubCache::from_env())?;
            adapters::merge(&files, &dir, &out)?;
            println!("{}: {base} with {name} merged in", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The adapter `ask` and `eval` apply to model `spec`: the one named by
/// `--adapter` (`none` for none), else the active one when `spec` is its base.
pub fn adapter_for(home: &Home, spec: &str, choice: Option<&str>) -> Result<Option<PathBuf>> {
    let chosen = Adapters::new(home).choose(spec, choice)?;
    if let Some(a) = chosen.as_ref().filter(|a| a.active && choice.is_none()) {
        eprintln!(
            "adapter: {} (active; --adapter none to leave it off)",
            a.name
        );
    }
    Ok(chosen.map(|a| a.path))
}
