//! Errors of the agent, its backends, the conversation store and the
//! evaluation harness. Every variant names the file, endpoint or setting at
//! fault, so the CLI and the desktop app can show it as is.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Library(#[from] exsearch_core::Error),
    #[error(transparent)]
    Model(exsearch_model::Error),
    #[error("{url}: {message}")]
    Endpoint { url: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Data {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no conversation {0} (see `exsearch chats`)")]
    UnknownConversation(i64),
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("the conversation needs {needed} tokens with every passage cut to its title, more than the model's context of {context}")]
    ContextFull { needed: usize, context: usize },
    #[error("cancelled")]
    Cancelled,
    /// One failure shared by several runs (the samples of a prompt).
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
}

impl From<exsearch_model::Error> for Error {
    fn from(e: exsearch_model::Error) -> Self {
        match e {
            exsearch_model::Error::Cancelled => Error::Cancelled,
            e => Error::Model(e),
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A short stable code for scripts and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Library(e) => e.code(),
            Self::Model(e) => e.code(),
            Self::Endpoint { .. } => "endpoint",
            Self::Io { .. } => "io",
            Self::Data { .. } => "data",
            Self::UnknownConversation(_) => "unknown_conversation",
            Self::InvalidSetting(_) => "invalid_setting",
            Self::ContextFull { .. } => "context_full",
            Self::Cancelled => "cancelled",
            Self::Shared(e) => e.code(),
        }
    }
}
