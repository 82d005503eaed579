//! What a command's failure looks like to the frontend: a stable code and
//! a message that names the file, folder or setting at fault (the core's
//! errors already do).

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<exsearch_core::Error> for CommandError {
    fn from(e: exsearch_core::Error) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<exsearch_agent::Error> for CommandError {
    fn from(e: exsearch_agent::Error) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<exsearch_model::Error> for CommandError {
    fn from(e: exsearch_model::Error) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<exsearch_train::Error> for CommandError {
    fn from(e: exsearch_train::Error) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<tauri::Error> for CommandError {
    fn from(e: tauri::Error) -> Self {
        Self::new("shell", e.to_string())
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
