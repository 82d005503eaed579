//! The data directory: every piece of state (catalog, passage index) lives
//! under one folder, chosen by `--home`, else `EXSEARCH_HOME`, else the
//! platform's data directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable that chooses the data directory.
pub const HOME_ENV: &str = "EXSEARCH_HOME";

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// `explicit` if given, else `$EXSEARCH_HOME`, else e.g.
    /// `~/.local/share/exsearch` on Linux.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self> {
        let root = match explicit {
            Some(p) => p.to_owned(),
            None => match std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
                Some(v) => PathBuf::from(v),
                None => directories::ProjectDirs::from("", "", "exsearch")
                    .ok_or(Error::NoHome)?
                    .data_dir()
                    .to_owned(),
            },
        };
        Ok(Self::at(root))
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }

    /// The passages' sentence vectors (hybrid retrieval).
    pub fn vectors_path(&self) -> PathBuf {
        self.root.join("vectors.sqlite")
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    pub(crate) fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|source| Error::Io {
            path: self.root.clone(),
            source,
        })
    }
}
