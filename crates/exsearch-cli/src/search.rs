//! `exsearch search`: the library's passages for a query (BM25).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use exsearch_core::{Home, Library};

use crate::output;

#[derive(Args)]
pub struct SearchArgs {
    /// What to look for, in plain words
    #[arg(required = true)]
    query: Vec<String>,
    /// Number of passages to show
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// Print a JSON list instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(home: &Home, args: SearchArgs) -> Result<ExitCode> {
    let SearchArgs { query, k, json } = args;
    let query = query.join(" ");
    let query = query.as_str();
    let library = Library::open(home)?;
    let hits = library.search(query, k)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else if hits.is_empty() && library.status()?.documents == 0 {
        println!("the library is empty: add a folder with `exsearch library add DIR`");
    } else {
        output::print_hits(&hits);
    }
    Ok(ExitCode::SUCCESS)
}
