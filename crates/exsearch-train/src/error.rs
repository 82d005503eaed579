//! Errors of the training code. Each names the file or setting at fault.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
        Error::Agent(e.into())
    }
}

impl Error {
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

/// Writes `bytes` to `path` through a temporary file and a rename, so a kill
/// never leaves a half-written file under the final name.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// A name that becomes a folder (a run, an adapter, a demonstration):
/// letters, digits, `-`, `_` and `.`, not starting with a dot.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSetting(format!(
            "`{name}` is not a valid {kind} name (letters, digits, '-', '_', '.')"
        )))
    }
}
