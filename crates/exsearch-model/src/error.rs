//! Errors of the model runtime. Every variant names the file, repository or
//! input at fault, so the CLI and the desktop app can show it as is.

use std::path::PathBuf;

/// Result alias used throughout the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("{path}: not found ({hint})")]
    Missing { path: PathBuf, hint: String },
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{file}: {message}")]
    Integrity { file: String, message: String },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the model thread has stopped")]
    Stopped,
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

    /// A short stable code for scripts and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::BadFile { .. } => "bad_file",
            Self::Missing { .. } => "missing",
            Self::Unsupported(_) => "unsupported",
            Self::Tensor(_) => "tensor",
            Self::Tokenizer(_) => "tokenizer",
            Self::Template(_) => "template",
            Self::Http { .. } => "http",
            Self::Integrity { .. } => "integrity",
            Self::InvalidOption(_) => "invalid_option",
            Self::Cancelled => "cancelled",
            Self::Stopped => "stopped",
        }
    }
}
