//! `exsearch search`: the library's passages for a query (hybrid: BM25
//! fused with the sentence encoder, or BM25 alone).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use exsearch_core::{Home, Library, Retrieval};

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
    /// Rank with `hybrid` (BM25 fused with the sentence encoder) or `bm25`
    /// alone, for this search [default: the library's setting]
    #[arg(long)]
    retrieval: Option<Retrieval>,
}

pub fn run(home: &Home, args: SearchArgs) -> Result<ExitCode> {
    let SearchArgs {
        query,
        k,
        json,
        retrieval,
    } = args;
    let query = query.join(" ");
    let query = query.as_str();
    let mut library = Library::open(home)?;
    crate::retrieval::prepare_for_search(&mut library, retrieval)?;
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
