//! `exsearch`: the command line over the ExSearch engine. Each subcommand
//! maps onto one library call (`exsearch_core`, `exsearch_model`,
//! `exsearch_agent`, `exsearch_train`); this crate only parses arguments, draws progress and
//! formats output.

mod adapters;
mod ask;
mod backend;
mod chats;
mod demo;
mod eval;
mod generate;
mod library;
mod model;
mod output;
mod questions;
mod retrieval;
mod search;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use exsearch_core::Home;

/// glibc's malloc keeps raising its mmap threshold as tantivy frees its
/// indexing arenas, so a long indexing run's memory ratchets up with the
/// corpus; mimalloc returns it and keeps memory flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "exsearch",
    version,
    about = "A local-first research assistant over your own documents"
)]
struct Cli {
    /// Data directory holding the catalog and the index [default: the platform data dir]
    #[arg(long, global = true, env = "EXSEARCH_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the document folders that make up the library
    #[command(subcommand)]
    Library(library::LibraryCommand),
    /// Search the library's passages (BM25)
    Search(search::SearchArgs),
    /// Download models from the Hugging Face hub and list local ones
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Generate text with a local model
    Generate(generate::GenerateArgs),
    /// Ask a question: the model searches the library and answers with citations
    Ask(Box<ask::AskArgs>),
    /// List, show and delete conversations
    Chats {
        #[command(subcommand)]
        command: Option<chats::ChatsCommand>,
    },
    /// Score a method on a QA file (EM, F1, Acc, retrieval recall and precision)
    Eval(Box<eval::EvalArgs>),
    /// Self-training: warm-up and EM rounds over the library, their status
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// LoRA adapters: list, choose the active one, merge into the base
    #[command(subcommand)]
    Adapters(adapters::AdaptersCommand),
    /// End-to-end demonstrations of the self-training
    #[command(subcommand)]
    Demo(demo::DemoCommand),
}

fn main() -> ExitCode {
    exsearch_model::fix_thread_count();
    quiet_extractor_panics();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let home = || Home::resolve(cli.home.as_deref());
    match cli.command {
        Command::Library(cmd) => library::run(&home()?, cmd),
        Command::Search(args) => search::run(&home()?, args),
        Command::Model(cmd) => model::run(cmd),
        Command::Generate(args) => generate::run(args),
        Command::Ask(args) => ask::run(&home()?, *args),
        Command::Chats { command } => chats::run(&home()?, command),
        Command::Eval(args) => eval::run(&home()?, *args),
        Command::Train(cmd) => train::run(&home()?, cmd),
        Command::Adapters(cmd) => adapters::run(&home()?, cmd),
        Command::Demo(cmd) => demo::run(&home()?, cmd),
    }
}

/// Installs a Ctrl-C handler that cancels the returned token; a second
/// Ctrl-C quits at once with the shell's convention (130).
pub(crate) fn cancel_on_ctrl_c(message: &'static str) -> Result<exsearch_core::CancelToken> {
    let cancel = exsearch_core::CancelToken::new();
    let on_signal = cancel.clone();
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("\n{message}");
        on_signal.cancel();
    })
    .map_err(|e| anyhow::anyhow!("installing the Ctrl-C handler: {e}"))?;
    Ok(cancel)
}

/// A parser crash inside an extractor thread is caught and listed as that
/// file's skip reason; the default hook would also print it over the
/// progress bar.
fn quiet_extractor_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_extractor = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("exsearch-extract"));
        if !in_extractor {
            default(info);
        }
    }));
}
