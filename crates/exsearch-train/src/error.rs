//! Errors of the training code. Each names the file or setting at fault.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Library(exsearch_core::Error),
    #[error(transparent)]
    Model(exsearch_model::Error),
    #[error(transparent)]
    Agent(exsearch_agent::Error),
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    /// No run or demonstration of that name.
    #[error("no {what} `{name}` in {}", dir.display())]
    UnknownTraining {
        what: &'static str,
        name: String,
        dir: PathBuf,
    },
    /// A run or demonstration asked for a result it has not produced yet.
    #[error("{}: {what} has not finished", dir.display())]
    Unfinished { what: String, dir: PathBuf },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("cancelled")]
    Cancelled,
}

impl From<exsearch_model::Error> for Error {
    fn from(e: exsearch_model::Error) -> Self {
        match e {
            exsearch_model::Error::Cancelled => Error::Cancelled,
            e => Error::Model(e),
        }
    }
}

impl From<exsearch_agent::Error> for Error {
    fn from(e: exsearch_agent::Error) -> Self {
        match e {
            exsearch_agent::Error::Cancelled => Error::Cancelled,
            e => Error::Agent(e),
        }
    }
}

impl From<exsearch_core::Error> for Error {
    fn from(e: exsearch_core::Error) -> Self {
        Error::Library(e)
    }
}

impl Error {
    /// A short stable code for scripts and the UI, like the other crates'.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Library(e) => e.code(),
            Self::Model(e) => e.code(),
            Self::Agent(e) => e.code(),
            Self::Tensor(_) => "training",
            Self::Io { .. } => "io",
            Self::BadFile { .. } => "bad_file",
            Self::UnknownTraining { .. } => "unknown_training",
            Self::Unfinished { .. } => "unfinished",
            Self::InvalidSetting(_) => "invalid_setting",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
