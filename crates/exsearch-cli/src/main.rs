//! `exsearch`: the command line over the ExSearch engine. Each subcommand
//! maps onto one `exsearch_core` call; this crate only parses arguments,
//! draws progress and formats output.

mod library;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use exsearch_core::{Home, Library};

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
    Search {
        /// What to look for, in plain words
        #[arg(required = true)]
        query: Vec<String>,
        /// Number of passages to show
        #[arg(short = 'k', long, default_value_t = 10)]
        k: usize,
        /// Print a JSON list instead of text
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
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
    let home = Home::resolve(cli.home.as_deref())?;
    match cli.command {
        Command::Library(cmd) => library::run(&home, cmd),
        Command::Search { query, k, json } => {
            let library = Library::open(&home)?;
            let hits = library.search(&query.join(" "), k)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() && library.status()?.documents == 0 {
                println!("the library is empty: add a folder with `exsearch library add DIR`");
            } else {
                output::print_hits(&hits);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
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
