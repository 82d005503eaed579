//! ExSearch's engine: a personal document library (folders of PDF, Markdown,
//! HTML, DOCX, text and code) split into ~100-word passages, kept in a BM25
//! passage index (tantivy) and a catalog (SQLite) that always agree.
//!
//! ```no_run
//! use exsearch_core::{Home, Library, SyncOptions, CancelToken, Quiet};
//! # fn main() -> exsearch_core::Result<()> {
//! let mut library = Library::open(&Home::at("/tmp/exsearch-home"))?;
//! library.add_folders(&["/home/me/papers".into()], &SyncOptions::default(), &Quiet, &CancelToken::new())?;
//! for hit in library.search("who proved the four colour theorem", 5)? {
//!     println!("{:.2} {} p.{:?}: {}", hit.score, hit.path, hit.page, hit.text);
//! }
//! # Ok(()) }
//! ```

pub mod corpus;
pub mod dense;
mod error;
#[doc(hidden)]
pub mod failpoint;
pub mod home;
pub mod index;
/// The cancel token and event sinks every long job shares (their own crate,
/// so the model runtime has them without the library's dependencies).
pub use exsearch_jobs as jobs;
pub mod library;
pub mod sqlite;
pub mod store;

pub use dense::{EmbedReport, Embedder, Retrieval};
pub use error::{Error, Result};
pub use home::Home;
pub use index::{Hit, PassageId};
pub use jobs::{CancelToken, EventSink, Quiet};
pub use library::{
    Changes, FolderWatcher, Library, LibraryEvent, LibraryStatus, PassageContext, SyncOptions,
    SyncProgress, SyncReport, WatchEvent,
};
pub use store::DocumentEntry;
