//! The Hugging Face cache layout, shared with Python tools:
//!
//! ```text
//! $HF_HUB_CACHE (default $HF_HOME/hub, default ~/.cache/huggingface/hub)
//! └── models--Qwen--Qwen2.5-0.5B-Instruct/
//!     ├── blobs/<etag>               file contents, named by sha256 (LFS) or git sha1
//!     ├── refs/main                  the commit a branch pointed to when pulled
//!     └── snapshots/<commit>/<file>  relative symlinks into blobs/
//! ```
//!
//! A blob only appears under its final name once its size and checksum were
//! verified; partial downloads live in `blobs/<etag>.incomplete`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct HubCache {
    root: PathBuf,
}

/// One snapshot of one repository found in the cache.
#[derive(Clone, Debug, Serialize)]
pub struct CachedSnapshot {
    pub repo: String,
    pub commit: String,
    /// Branch or tag names whose ref points at this commit.
    pub refs: Vec<String>,
    pub files: Vec<String>,
    pub bytes: u64,
    pub path: PathBuf,
}

pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl HubCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
    /// else `~/.cache/huggingface/hub`, as `huggingface_hub` resolves it.
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let root = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    pub(crate) fn blob(&self, repo: &str, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(etag)
    }

    pub(crate) fn incomplete(&self, repo: &str, etag: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("blobs")
            .join(format!("{etag}.incomplete"))
    }

    /// The commit a revision (branch, tag or commit hash) resolves to locally.
    pub fn commit_of(&self, repo: &str, revision: &str) -> Option<String> {
        let dir = self.repo_dir(repo);
        if is_commit_hash(revision) && dir.join("snapshots").join(revision).is_dir() {
            return Some(revision.to_string());
        }
        let commit = std::fs::read_to_string(dir.join("refs").join(revision)).ok()?;
        let commit = commit.trim().to_string();
        dir.join("snapshots")
            .join(&commit)
            .is_dir()
            .then_some(commit)
    }

    pub fn snapshot_dir(&self, repo: &str, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }

    /// Records that `revision` pointed to `commit`.
    pub(crate) fn write_ref(&self, repo: &str, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.repo_dir(repo).join("refs").join(revision);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, commit).map_err(|e| Error::io(&path, e))
    }

    /// Links `snapshots/<commit>/<file>` to `blobs/<etag>` with a relative
    /// symlink, as huggingface_hub does (a copy where symlinks are refused).
    pub(crate) fn link(&self, repo: &str, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.snapshot_dir(repo, commit).join(file);
        let parent = pointer.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let depth = file.split('/').count() + 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        if std::fs::symlink_metadata(&pointer).is_ok() {
            std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
        }
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&target, &pointer);
        #[cfg(not(unix))]
        let linked = std::fs::copy(self.blob(repo, etag), &pointer).map(|_| ());
        linked.map_err(|e| Error::io(&pointer, e))?;
        Ok(pointer)
    }

    /// Every snapshot of every model in the cache.
    pub fn list(&self) -> Vec<CachedSnapshot> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return out;
        };
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs {
            let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(repo) = name.strip_prefix("models--") else {
                continue;
            };
            let repo = repo.replacen("--", "/", 1);
            let refs: Vec<(String, String)> = walkdir::WalkDir::new(dir.join("refs"))
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| {
                    let name = e
                        .path()
                        .strip_prefix(dir.join("refs"))
                        .ok()?
                        .to_string_lossy()
                        .into_owned();
                    let commit = std::fs::read_to_string(e.path()).ok()?.trim().to_string();
                    Some((name, commit))
                })
                .collect();
            let Ok(snaps) = std::fs::read_dir(dir.join("snapshots")) else {
                continue;
            };
            for snap in snaps.flatten() {
                let commit = snap.file_name().to_string_lossy().into_owned();
                let (mut files, mut bytes) = (Vec::new(), 0);
                for e in walkdir::WalkDir::new(snap.path())
                    .follow_links(true)
                    .into_iter()
                    .flatten()
                {
                    if e.file_type().is_file() {
                        bytes += e.metadata().map_or(0, |m| m.len());
                        if let Ok(rel) = e.path().strip_prefix(snap.path()) {
                            files.push(rel.to_string_lossy().into_owned());
                        }
                    }
                }
                files.sort();
                out.push(CachedSnapshot {
                    repo: repo.clone(),
                    refs: refs
                        .iter()
                        .filter(|(_, c)| *c == commit)
                        .map(|(n, _)| n.clone())
                        .collect(),
                    commit,
                    files,
                    bytes,
                    path: snap.path(),
                });
            }
        }
        out
    }
}
