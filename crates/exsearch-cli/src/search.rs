//! `exsearch search`: the library's passages for a query (BM25).

use std::process::ExitCode;

use anyhow::Result;
use exsearch_core::{Home, Library};

use crate::output;

pub fn run(home: &Home, query: &str, k: usize, json: bool) -> Result<ExitCode> {
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
