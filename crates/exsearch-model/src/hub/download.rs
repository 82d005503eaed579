//! Downloading a model repository from the Hugging Face hub (or any server
//! that speaks its protocol, such as a mirror set with `HF_ENDPOINT`).
//!
//! For each file: `HEAD /{repo}/resolve/{commit}/{file}` gives its size and
//! checksum (`X-Linked-Size`/`X-Linked-Etag` for LFS files, which answer with
//! a redirect to their storage; `Content-Length`/`ETag` otherwise). The body
//! streams into `blobs/<etag>.incomplete`; an interrupted transfer resumes with
//! a `Range` request, within a run (retries) and across runs. The blob gets
//! its final name only after its size and sha256 (LFS) or git sha1 (small
//! files) match, so the cache never holds a wrong file under a right name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use exsearch_jobs::{CancelToken, EventSink};
use serde::Serialize;

use super::hf_cache::{is_commit_hash, HubCache};
use super::integrity::{hash_prefix, Hasher};
use super::meter::Meter;
use crate::error::{Error, Result};

/// Files fetched when no `--include` pattern is given: everything the loader
/// reads for a safetensors model.
pub const DEFAULT_INCLUDE: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "model.safetensors.index.json",
    "*.safetensors",
];

const RETRIES: u32 = 5;

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// sha256 of an LFS file.
    Sha256,
    /// git blob sha1 of a small file.
    GitSha1,
    /// The server gave no checksum; only the size was checked.
    Size,
    /// Already in the cache from an earlier pull.
    Cached,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    Resolved {
        repo: String,
        commit: String,
        files: usize,
        total_bytes: u64,
    },
    Progress {
        file: String,
        downloaded: u64,
        total: u64,
        bytes_per_sec: f64,
        eta_secs: Option<f64>,
    },
    Retry {
        file: String,
        attempt: u32,
        error: String,
    },
    FileDone {
        file: String,
        bytes: u64,
        check: Check,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct PulledFile {
    pub name: String,
    pub bytes: u64,
    pub check: Check,
}

#[derive(Clone, Debug, Serialize)]
pub struct PullReport {
    pub repo: String,
    pub commit: String,
    pub snapshot: PathBuf,
    pub files: Vec<PulledFile>,
    /// Bytes transferred by this run (resumed parts count once).
    pub downloaded_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub revision: String,
    /// Glob patterns (`*`, `?`) of files to fetch; empty means the defaults.
    pub include: Vec<String>,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            revision: "main".into(),
            include: Vec::new(),
        }
    }
}

/// Talks to one hub endpoint.
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    agent: ureq::Agent,
    cache: HubCache,
}

/// What `HEAD` says about one file (or a package index about a wheel): its
/// name, checksum (sha256, or a git blob sha1) and size.
pub(super) struct Remote {
    pub(super) name: String,
    pub(super) etag: String,
    pub(super) size: u64,
}

/// `true` when `HF_HUB_OFFLINE` or `EXSEARCH_OFFLINE` is set to a true value.
pub fn offline_mode() -> bool {
    ["HF_HUB_OFFLINE", "EXSEARCH_OFFLINE"].iter().any(|k| {
        std::env::var(k)
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    })
}

/// Shell-style match with `*` and `?` (`*` also crosses `/`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

impl Hub {
    /// `HF_ENDPOINT` (default `https://huggingface.co`), `HF_TOKEN` (or the
    /// token file `huggingface-cli login` writes) and the cache from the
    /// environment.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "https://huggingface.co".into());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                let home = std::env::var_os("HF_HOME").map(PathBuf::from).or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
                })?;
                std::fs::read_to_string(home.join("token"))
                    .ok()
                    .map(|t| t.trim().to_string())
            });
        Self::new(&endpoint, token, HubCache::from_env())
    }

    pub fn new(endpoint: &str, token: Option<String>, cache: HubCache) -> Self {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("exsearch/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            agent,
            cache,
        }
    }

    pub fn cache(&self) -> &HubCache {
        &self.cache
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let mut req = self.agent.request(method, url);
        // Credentials go to the hub only, never to the storage it redirects to.
        if let Some(token) = &self.token {
            if url.starts_with(&self.endpoint) {
                req = req.set("Authorization", &format!("Bearer {token}"));
            }
        }
        req
    }

    /// Sends a request, following up to five redirects by hand so relative
    /// locations and `Range` headers are handled the same everywhere.
    pub(super) fn call(
        &self,
        method: &str,
        url: &str,
        range: Option<u64>,
        follow: bool,
    ) -> Result<ureq::Response> {
        let mut url = url.to_string();
        for _ in 0..6 {
            let mut req = self.request(method, &url);
            if let Some(start) = range {
                req = req.set("Range", &format!("bytes={start}-"));
            }
            let response = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(code, r)) => return Err(http_error(&url, code, r)),
                Err(e) => {
                    return Err(Error::Http {
                        url,
                        message: e.to_string(),
                    })
                }
            };
            let redirect = (300..400).contains(&response.status());
            if !(redirect && follow) {
                return Ok(response);
            }
            let location = response.header("location").ok_or_else(|| Error::Http {
                url: url.clone(),
                message: format!("redirect {} without a Location", response.status()),
            })?;
            url = join_url(&url, location);
        }
        Err(Error::Http {
            url,
            message: "too many redirects".into(),
        })
    }

    /// The commit and file list of `repo` at `revision`.
    fn revision_info(&self, repo: &str, revision: &str) -> Result<(String, Vec<String>)> {
        let url = format!("{}/api/models/{repo}/revision/{revision}", self.endpoint);
        let body: serde_json::Value =
            self.call("GET", &url, None, true)?
                .into_json()
                .map_err(|e| Error::Http {
                    url: url.clone(),
                    message: format!("unreadable answer: {e}"),
                })?;
        let commit = body
            .get("sha")
            .and_then(|v| v.as_str())
            .filter(|s| is_commit_hash(s))
            .ok_or_else(|| Error::Http {
                url: url.clone(),
                message: "the answer has no commit `sha`".into(),
            })?
            .to_string();
        let files = body
            .get("siblings")
            .and_then(|v| v.as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|f| f.get("rfilename")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((commit, files))
    }

    fn head(&self, repo: &str, commit: &str, file: &str) -> Result<Remote> {
        let url = format!("{}/{repo}/resolve/{commit}/{file}", self.endpoint);
        let mut current = url.clone();
        // Follow only relative redirects (renamed repos); an absolute one is
        // the LFS storage, whose metadata is already on this answer.
        let response = loop {
            let r = self.call("HEAD", &current, None, false)?;
            match r.header("location") {
                Some(loc)
                    if (300..400).contains(&r.status())
                        && loc.starts_with('/')
                        && r.header("x-linked-etag").is_none() =>
                {
                    current = join_url(&current, loc);
                }
                _ => break r,
            }
        };
        let header = |k: &str| response.header(k).map(str::to_string);
        let etag = header("x-linked-etag")
            .or_else(|| header("etag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .ok_or_else(|| Error::Http {
                url: url.clone(),
                message: "no ETag: not a hub file".into(),
            })?;
        let size = header("x-linked-size")
            .or_else(|| header("content-length"))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Http {
                url: url.clone(),
                message: "no size given".into(),
            })?;
        Ok(Remote {
            name: file.to_string(),
            etag,
            size,
        })
    }

    /// Downloads the selected files of `repo` into the cache.
    pub fn pull(
        &self,
        repo: &str,
        options: &PullOptions,
        events: &dyn EventSink<PullEvent>,
        cancel: &CancelToken,
    ) -> Result<PullReport> {
        if offline_mode() {
            return Err(Error::InvalidOption(format!(
                "offline mode is on (HF_HUB_OFFLINE / EXSEARCH_OFFLINE); not downloading {repo}"
            )));
        }
        let (commit, listing) = self.revision_info(repo, &options.revision)?;
        let patterns: Vec<&str> = if options.include.is_empty() {
            DEFAULT_INCLUDE.to_vec()
        } else {
            options.include.iter().map(String::as_str).collect()
        };
        let wanted: Vec<&String> = listing
            .iter()
            .filter(|f| patterns.iter().any(|p| glob_match(p, f)))
            .collect();
        if wanted.is_empty() {
            let ggufs: Vec<&str> = listing
                .iter()
                .filter(|f| f.ends_with(".gguf"))
                .map(String::as_str)
                .collect();
            let hint = if ggufs.is_empty() {
                String::new()
            } else {
                format!(
                    "; this repository holds GGUF files, pick one with --include (e.g. {})",
                    ggufs[0]
                )
            };
            return Err(Error::InvalidOption(format!(
                "{repo}@{}: no file matches {}{hint}",
                options.revision,
                patterns.join(", ")
            )));
        }
        let mut remotes = Vec::with_capacity(wanted.len());
        for file in wanted {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            remotes.push(self.head(repo, &commit, file)?);
        }
        let total: u64 = remotes.iter().map(|r| r.size).sum();
        events.emit(PullEvent::Resolved {
            repo: repo.to_string(),
            commit: commit.clone(),
            files: remotes.len(),
            total_bytes: total,
        });
        let blobs = self.cache.repo_dir(repo).join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let mut meter = Meter::new(total);
        let mut files = Vec::new();
        let mut downloaded = 0;
        for remote in &remotes {
            let blob = self.cache.blob(repo, &remote.etag);
            let check = if std::fs::metadata(&blob).is_ok_and(|m| m.len() == remote.size) {
                meter.skip(remote.size);
                Check::Cached
            } else {
                let (check, bytes) =
                    self.fetch(repo, &commit, remote, &mut meter, events, cancel)?;
                downloaded += bytes;
                check
            };
            self.cache.link(repo, &commit, &remote.name, &remote.etag)?;
            events.emit(PullEvent::FileDone {
                file: remote.name.clone(),
                bytes: remote.size,
                check: check.clone(),
            });
            files.push(PulledFile {
                name: remote.name.clone(),
                bytes: remote.size,
                check,
            });
        }
        self.cache.write_ref(repo, &options.revision, &commit)?;
        Ok(PullReport {
            repo: repo.to_string(),
            snapshot: self.cache.snapshot_dir(repo, &commit),
            commit,
            files,
            downloaded_bytes: downloaded,
        })
    }

    /// Fetches one file with resume and retries; returns its check and the
    /// bytes this run transferred.
    fn fetch(
        &self,
        repo: &str,
        commit: &str,
        remote: &Remote,
        meter: &mut Meter,
        events: &dyn EventSink<PullEvent>,
        cancel: &CancelToken,
    ) -> Result<(Check, u64)> {
        let url = format!("{}/{repo}/resolve/{commit}/{}", self.endpoint, remote.name);
        let to = Destination {
            part: self.cache.incomplete(repo, &remote.etag),
            done: self.cache.blob(repo, &remote.etag),
            label: format!("{repo}/{}", remote.name),
        };
        self.download(&url, remote, &to, meter, events, cancel)
    }

    /// Downloads `url` (which holds `remote`) into `to.part`, resuming what
    /// an earlier run left there and retrying transient failures; renames it
    /// to `to.done` once its size and checksum match, and deletes it if they
    /// do not. Returns the check made and the bytes this run transferred.
    pub(super) fn download(
        &self,
        url: &str,
        remote: &Remote,
        to: &Destination,
        meter: &mut Meter,
        events: &dyn EventSink<PullEvent>,
        cancel: &CancelToken,
    ) -> Result<(Check, u64)> {
        let part = &to.part;
        let mut hasher = Hasher::for_etag(&remote.etag, remote.size);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(part)
            .map_err(|e| Error::io(part, e))?;
        // Resume: hash what an earlier run left, then ask for the rest.
        let have =
            hash_prefix(&mut file, &mut hasher, remote.size).map_err(|e| Error::io(part, e))?;
        meter.skip(have);
        let mut partial = Partial {
            path: part.clone(),
            file,
            hasher,
            have,
        };
        let mut transferred = 0;
        let mut attempt = 0;
        while partial.have < remote.size {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            match self.transfer(url, remote, &mut partial, meter, events, cancel) {
                Ok(n) => transferred += n,
                // Cancelling, a wrong byte count and a local disk error are
                // not helped by asking again.
                Err(e @ (Error::Cancelled | Error::Integrity { .. } | Error::Io { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    attempt += 1;
                    if attempt > RETRIES {
                        return Err(e);
                    }
                    events.emit(PullEvent::Retry {
                        file: remote.name.clone(),
                        attempt,
                        error: e.to_string(),
                    });
                    std::thread::sleep(Duration::from_millis(250 << attempt.min(4)));
                }
            }
        }
        let Partial { file, hasher, .. } = partial;
        file.sync_all().map_err(|e| Error::io(part, e))?;
        drop(file);
        let check = match hasher.verify() {
            Ok(check) => check,
            Err(message) => {
                let _ = std::fs::remove_file(part);
                return Err(Error::Integrity {
                    file: to.label.clone(),
                    message,
                });
            }
        };
        std::fs::rename(part, &to.done).map_err(|e| Error::io(&to.done, e))?;
        Ok((check, transferred))
    }

    fn transfer(
        &self,
        url: &str,
        remote: &Remote,
        partial: &mut Partial,
        meter: &mut Meter,
        events: &dyn EventSink<PullEvent>,
        cancel: &CancelToken,
    ) -> Result<u64> {
        let response = self.call("GET", url, (partial.have > 0).then_some(partial.have), true)?;
        let io = |e| Error::io(&partial.path, e);
        if partial.have > 0 && response.status() != 206 {
            // The server ignored the range: start over.
            partial.file.set_len(0).map_err(io)?;
            meter.skip_back(partial.have);
            partial.have = 0;
            partial.hasher = Hasher::for_etag(&remote.etag, remote.size);
        }
        partial
            .file
            .seek(SeekFrom::Start(partial.have))
            .map_err(io)?;
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut transferred = 0;
        loop {
            if cancel.is_cancelled() {
                partial.file.flush().map_err(io)?;
                return Err(Error::Cancelled);
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Http {
                        url: url.to_string(),
                        message: format!("transfer interrupted after {} bytes: {e}", partial.have),
                    })
                }
            };
            if partial.have + n as u64 > remote.size {
                return Err(Error::Integrity {
                    file: remote.name.clone(),
                    message: format!(
                        "the server sent more than the announced {} bytes",
                        remote.size
                    ),
                });
            }
            partial.file.write_all(&buf[..n]).map_err(io)?;
            partial.hasher.update(&buf[..n]);
            partial.have += n as u64;
            transferred += n as u64;
            if let Some(event) = meter.advance(n as u64, &remote.name) {
                events.emit(event);
            }
        }
        if partial.have < remote.size {
            return Err(Error::Http {
                url: url.to_string(),
                message: format!(
                    "connection closed at {} of {} bytes",
                    partial.have, remote.size
                ),
            });
        }
        if let Some(event) = meter.flush(&remote.name) {
            events.emit(event);
        }
        Ok(transferred)
    }
}

/// Where a download goes: the partial file, the final name it gets once
/// checked, and how errors name it.
pub(super) struct Destination {
    pub(super) part: PathBuf,
    pub(super) done: PathBuf,
    pub(super) label: String,
}

/// A blob being downloaded: its `.incomplete` file, the hash of what it
/// holds, and its length.
struct Partial {
    path: PathBuf,
    file: File,
    hasher: Hasher,
    have: u64,
}

fn http_error(url: &str, code: u16, response: ureq::Response) -> Error {
    let hint = match code {
        401 | 403 => {
            " (the repository is gated or private: accept its license on the hub and set HF_TOKEN)"
        }
        404 => " (no such repository, revision or file)",
        _ => "",
    };
    let body = response.into_string().unwrap_or_default();
    let detail = body.trim().chars().take(200).collect::<String>();
    Error::Http {
        url: url.to_string(),
        message: format!(
            "HTTP {code}{hint}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        ),
    }
}

pub(super) fn join_url(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[origin_end..]
        .find('/')
        .map_or(base.len(), |i| origin_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &base[..host_end])
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|&i| i >= host_end)
            .unwrap_or(host_end);
        format!("{}/{location}", &base[..dir_end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_urls() {
        assert!(glob_match(
            "*.safetensors",
            "model-00001-of-00002.safetensors"
        ));
        assert!(glob_match("*q8_0.gguf", "qwen2.5-0.5b-instruct-q8_0.gguf"));
        assert!(!glob_match("*.safetensors", "model.safetensors.index.json"));
        assert_eq!(
            join_url("http://h:1/a/resolve/x/f", "/cdn/abc"),
            "http://h:1/cdn/abc"
        );
        assert_eq!(join_url("http://h:1/a/b", "https://cdn/x"), "https://cdn/x");
    }
}
