//! Hybrid retrieval in the CLI: jobs that index (`library add`, `sync`,
//! `watch`, `eval --corpus-from-contexts`) fetch the sentence encoder when
//! it is missing and embed new passages; jobs that only search use it when
//! it is on this machine.

use std::sync::Arc;

use anyhow::Result;
use exsearch_agent::encoder;
use exsearch_core::{CancelToken, Embedder, Library, Retrieval};

use crate::output;

/// The encoder, fetched into the cache if missing, with the download's
/// progress on stderr. A failed fetch is not fatal: the library stays
/// searchable with BM25, and the warning says so.
pub fn encoder_for_indexing(cancel: &CancelToken) -> Option<Arc<dyn Embedder>> {
    if let Ok(Some(found)) = encoder::local() {
        return Some(found);
    }
    let progress = output::Progress::new();
    let what = exsearch_model::hub::EMBEDDER.name;
    let sink = crate::model::show_pull(&progress, what);
    eprintln!("fetching the sentence encoder {what} for hybrid search (once)");
    let fetched = encoder::fetch(&sink, cancel);
    progress.bar.finish_and_clear();
    match fetched {
        Ok((found, _)) => Some(found),
        Err(e) => {
            eprintln!(
                "warning: hybrid search is off until the sentence encoder can be fetched ({e}); \
                 searching with BM25"
            );
            None
        }
    }
}

/// Applies `--retrieval` (saved with the library) and, when the library is
/// hybrid, attaches the encoder for indexing.
pub fn prepare_for_indexing(
    library: &mut Library,
    choice: Option<Retrieval>,
    cancel: &CancelToken,
) -> exsearch_core::Result<()> {
    if let Some(choice) = choice {
        library.set_retrieval(choice)?;
    }
    if library.retrieval() == Retrieval::Hybrid {
        if let Some(found) = encoder_for_indexing(cancel) {
            library.set_embedder(found);
        }
    }
    Ok(())
}

/// Ranks this run's searches by `choice` (else the library's setting) and
/// attaches the encoder for hybrid, if it is on this machine.
pub fn prepare_for_search(library: &mut Library, choice: Option<Retrieval>) -> Result<()> {
    if let Some(choice) = choice {
        library.use_retrieval(choice);
    }
    encoder::attach_local(library)?;
    Ok(())
}

/// The encoder for a library built for one job (`eval`'s corpus), unless
/// the job asked for BM25.
pub fn encoder_for(choice: Option<Retrieval>, cancel: &CancelToken) -> Option<Arc<dyn Embedder>> {
    match choice.unwrap_or_default() {
        Retrieval::Hybrid => encoder_for_indexing(cancel),
        Retrieval::Bm25 => None,
    }
}
