//! The library's error type. Every variant names the file, folder or input at
//! fault, so a message can be shown to a user as it is.

use std::path::PathBuf;

/// Errors from the engine. Per-document problems during indexing are not
/// errors: they are recorded in the catalog and listed by `status`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A SQLite database: `what` says which (catalog, conversation store,
    /// run store).
    #[error("{what} {path}: {source}")]
    Database {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {path} has schema version {found}, newer than this exsearch understands ({supported}); upgrade exsearch")]
    DatabaseTooNew {
        what: &'static str,
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("passage index {path}: {source}")]
    Index {
        path: PathBuf,
        #[source]
        source: tantivy::TantivyError,
    },
    #[error("another exsearch process is updating the library in {0}; wait for it to finish")]
    Busy(PathBuf),
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error("{0} is not in the library (see `exsearch library status`)")]
    UnknownFolder(PathBuf),
    #[error("no data directory: set EXSEARCH_HOME or pass --home")]
    NoHome,
    #[error("cannot start an extractor thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("while indexing {path}: {source}")]
    Document {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    #[error("{0} is outside the library's folders")]
    OutsideLibrary(PathBuf),
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} has no page {page}")]
    NoSuchPage { path: PathBuf, page: u32 },
    #[error("{0}")]
    InvalidOption(String),
    #[error("sentence encoder: {0}")]
    Embedder(String),
}

impl Error {
    /// A stable machine-readable code for the UI and for `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Database { .. } => "database",
            Error::DatabaseTooNew { .. } => "database_too_new",
            Error::Index { .. } => "index",
            Error::Busy(_) => "busy",
            Error::NotAFolder(_) => "not_a_folder",
            Error::UnknownFolder(_) => "unknown_folder",
            Error::NoHome => "no_home",
            Error::Thread(_) => "thread",
            Error::Document { source, .. } => source.code(),
            Error::OutsideLibrary(_) => "outside_library",
            Error::Unreadable { .. } => "unreadable",
            Error::NoSuchPage { .. } => "no_such_page",
            Error::InvalidOption(_) => "invalid_option",
            Error::Embedder(_) => "embedder",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
