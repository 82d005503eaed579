//! Walks the registered folders and decides, from size and mtime alone,
//! which files need reading. Hidden entries (names starting with '.') are
//! skipped, symbolic links are followed, and loops are reported, not
//! followed forever.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::UNIX_EPOCH;

use walkdir::WalkDir;

use crate::corpus::{DocumentKind, Skip};
use crate::store::{Folder, KnownDocument};

/// Coarse filesystem timestamps (FAT: 2 s) bound how close a write can be
/// to the moment its mtime was recorded and still be missed.
const RACY_WINDOW_SECS: i64 = 2;

/// A file whose content must be read (new, or size/mtime changed).
#[derive(Debug, Clone)]
pub(super) struct Work {
    pub path: String,
    pub folder_id: i64,
    pub kind: DocumentKind,
    pub size: u64,
    pub mtime_ns: i64,
    /// The content hash the catalog has, to skip re-indexing a file that was
    /// only touched.
    pub known_hash: Option<String>,
    pub known_id: Option<i64>,
    /// The catalog has passages for this path from an earlier sync.
    pub known_indexed: bool,
}

/// A path the walk could not get into (a loop, a folder without
/// permission); recorded as failed so the user sees it.
#[derive(Debug, Clone)]
pub(super) struct WalkFailure {
    pub path: String,
    pub folder_id: i64,
    pub skip: Skip,
    /// The catalog's indexed document at this path, whose passages stay.
    pub indexed_id: Option<i64>,
}

#[derive(Debug, Default)]
pub(super) struct Plan {
    pub work: Vec<Work>,
    pub failures: Vec<WalkFailure>,
    pub removed: Vec<i64>,
    pub unchanged: u64,
    /// Files with extensions we do not index.
    pub ignored: u64,
    /// Registered folders that are gone (an unplugged drive): their
    /// documents are kept, not removed.
    pub missing_folders: Vec<String>,
}

impl Plan {
    pub fn bytes_to_read(&self) -> u64 {
        self.work.iter().map(|w| w.size).sum()
    }
}

/// What a sync must do. With `ocr`, image files are read and files skipped
/// for want of OCR are tried again; without it, images not yet in the
/// catalog are passed over as files exsearch does not read.
pub(super) fn plan(folders: &[Folder], known: &HashMap<String, KnownDocument>, ocr: bool) -> Plan {
    let mut plan = Plan::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut walked_folders: HashSet<i64> = HashSet::new();
    for folder in folders {
        if !folder.path.is_dir() {
            plan.missing_folders.push(folder.path.display().to_string());
            continue;
        }
        walked_folders.insert(folder.id);
        walk(folder, known, ocr, &mut seen, &mut plan);
    }
    let registered: HashSet<i64> = folders.iter().map(|f| f.id).collect();
    // Files under a folder the walk could not enter are unknown, not gone.
    let blocked: Vec<&Path> = plan.failures.iter().map(|f| Path::new(&f.path)).collect();
    for (path, doc) in known {
        let orphan = doc.folder_id.is_none_or(|f| !registered.contains(&f));
        let behind_failure = blocked
            .iter()
            .any(|b| Path::new(path).starts_with(b) && Path::new(path) != *b);
        let vanished = doc.folder_id.is_some_and(|f| walked_folders.contains(&f))
            && !seen.contains(path)
            && !behind_failure;
        if orphan || vanished {
            plan.removed.push(doc.id);
        }
    }
    plan
}

fn walk(
    folder: &Folder,
    known: &HashMap<String, KnownDocument>,
    ocr: bool,
    seen: &mut HashSet<String>,
    plan: &mut Plan,
) {
    let entries = WalkDir::new(&folder.path)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !is_hidden(e.file_name()));
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(&folder.path).display().to_string();
                let skip = if let Some(ancestor) = e.loop_ancestor() {
                    Skip::SymlinkLoop(format!("points back to {}", ancestor.display()))
                } else if e
                    .io_error()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
                {
                    Skip::Unreadable("broken symbolic link".into())
                } else {
                    Skip::Unreadable(
                        e.io_error()
                            .map_or_else(|| e.to_string(), ToString::to_string),
                    )
                };
                if seen.insert(path.clone()) {
                    plan.failures.push(failure(known, folder, path, skip));
                }
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(kind) = DocumentKind::detect(entry.path()).filter(|kind| {
            ocr || !kind.needs_ocr() || entry.path().to_str().is_some_and(|p| known.contains_key(p))
        }) else {
            plan.ignored += 1;
            continue;
        };
        let Some(path) = entry.path().to_str().map(str::to_owned) else {
            let path = entry.path().display().to_string();
            if seen.insert(path.clone()) {
                let skip =
                    Skip::Unreadable("the file name is not valid UTF-8; rename the file".into());
                plan.failures.push(failure(known, folder, path, skip));
            }
            continue;
        };
        if !seen.insert(path.clone()) {
            continue;
        }
        let (size, mtime_ns) = match entry.metadata() {
            Ok(m) => (m.len(), mtime_ns(&m)),
            Err(e) => {
                let skip = Skip::Unreadable(e.to_string());
                plan.failures.push(failure(known, folder, path, skip));
                continue;
            }
        };
        let previous = known.get(&path);
        if let Some(doc) = previous {
            // A failure caused outside the file (unreadable, too large...)
            // is retried every sync, even on an indexed document.
            let transient = doc
                .error_code
                .as_deref()
                .is_some_and(|code| Skip::is_transient(code) || (ocr && Skip::wants_ocr(code)));
            let settled = (doc.status == "indexed" || doc.status == "failed") && !transient;
            // "Racy clean", as git calls it: a file written within a
            // timestamp tick of being recorded may have changed again
            // without a new size or mtime, so its content is checked again.
            let racy = mtime_ns / 1_000_000_000 + RACY_WINDOW_SECS >= doc.recorded_at;
            if settled
                && !racy
                && doc.size == Some(size)
                && doc.mtime_ns == Some(mtime_ns)
                && doc.folder_id == Some(folder.id)
            {
                plan.unchanged += 1;
                continue;
            }
        }
        plan.work.push(Work {
            path,
            folder_id: folder.id,
            kind,
            size,
            mtime_ns,
            // A file retried for OCR has the same bytes: read it anyway.
            known_hash: previous
                .filter(|d| !(ocr && d.error_code.as_deref().is_some_and(Skip::wants_ocr)))
                .and_then(|d| (d.status != "pending").then(|| d.hash.clone()).flatten()),
            known_id: previous.map(|d| d.id),
            known_indexed: previous.is_some_and(|d| d.status == "indexed"),
        });
    }
}

fn failure(
    known: &HashMap<String, KnownDocument>,
    folder: &Folder,
    path: String,
    skip: Skip,
) -> WalkFailure {
    let indexed_id = known
        .get(&path)
        .filter(|d| d.status == "indexed")
        .map(|d| d.id);
    WalkFailure {
        path,
        folder_id: folder.id,
        skip,
        indexed_id,
    }
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|s| s.starts_with('.'))
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Whether `inner` is `outer` or lies inside it.
pub(super) fn contains(outer: &Path, inner: &Path) -> bool {
    inner.starts_with(outer)
}
