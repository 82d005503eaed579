//! Keeping the library current while it runs: a file-system watcher
//! (`notify`: inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on
//! Windows) on every registered folder. Changes are debounced (a sync
//! starts once the folders have been quiet for a moment, so a copy of a
//! thousand files is one sync, not a thousand), then the library syncs:
//! new, changed and renamed files are read, deleted ones dropped, and
//! unchanged ones only `stat`ed, never read. Between syncs no lock is held,
//! so `sync`, `add` and the app can still run beside it.
//!
//! Ignored, so that a sync never wakes the watcher again: reads (a sync
//! opens every changed file), hidden paths (editors' swap files, `.git`)
//! and anything under the library's own home.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

use super::{Library, LibraryEvent, SyncOptions, SyncReport};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::jobs::{CancelToken, EventSink};
use crate::store::Catalog;

/// What a watch reports between syncs.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// Watching these folders (again after each sync, which may have
    /// found folders another process registered).
    Watching(&'a [PathBuf]),
    /// A folder could not be watched (gone, unreadable, or the system's
    /// limit on watches reached); its files are still synced on changes
    /// elsewhere and at start.
    Unwatched {
        folder: &'a Path,
        reason: String,
    },
    /// The watcher may have dropped events (its queue overflowed); a full
    /// sync follows, which catches up.
    Missed(String),
    /// Files changed under `paths` (the first few); a sync follows.
    Changed {
        paths: &'a [PathBuf],
        more: usize,
    },
    Synced(&'a SyncReport),
    /// A sync failed (another process holds the library, a full disk); the
    /// next change tries again.
    SyncFailed(&'a Error),
}

/// Whether an event's path can matter to the library: not a read, not
/// under the home, and not hidden below the watched folder that holds it
/// (the folder itself may sit under a hidden directory).
fn relevant(kind: &EventKind, path: &Path, home: &Path, folders: &[PathBuf]) -> bool {
    if matches!(kind, EventKind::Access(_)) || path.starts_with(home) {
        return false;
    }
    let inside = folders
        .iter()
        .find_map(|f| path.strip_prefix(f).ok())
        .unwrap_or(path);
    !inside.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with('.') && s.len() > 1)
    })
}

/// A quiet spell ended after these changes.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The first few changed paths.
    pub paths: Vec<PathBuf>,
    /// How many more changed.
    pub more: usize,
    /// The watcher may have dropped events (its queue overflowed): a full
    /// sync is needed to catch up.
    pub missed: Option<String>,
}

/// Watches folders and reports their changes, debounced, without touching
/// the library: whoever holds it decides when to sync (`Library::watch`
/// syncs itself; the desktop app starts its indexing job).
pub struct FolderWatcher {
    watcher: notify::RecommendedWatcher,
    events: mpsc::Receiver<notify::Result<notify::Event>>,
    watched: Vec<PathBuf>,
    home: PathBuf,
}

impl FolderWatcher {
    /// A watcher that ignores the library home `home` (syncs write there).
    pub fn new(home: &Path) -> Result<Self> {
        let home = home.canonicalize().unwrap_or_else(|_| home.to_owned());
        let (tx, events) = mpsc::channel();
        let watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the watch has ended.
            let _ = tx.send(event);
        })
        .map_err(|e| Error::InvalidOption(format!("cannot watch folders: {e}")))?;
        Ok(Self {
            watcher,
            events,
            watched: Vec::new(),
            home,
        })
    }

    /// The folders being watched.
    pub fn watched(&self) -> &[PathBuf] {
        &self.watched
    }

    /// Watches exactly `folders` from now on; returns whether the set
    /// changed, and each folder that could not be watched with the reason
    /// (gone, unreadable, or the system's limit on watches reached).
    pub fn set_folders(&mut self, folders: &[PathBuf]) -> (bool, Vec<(PathBuf, String)>) {
        let mut changed = false;
        let mut failed = Vec::new();
        for folder in folders {
            if self.watched.contains(folder) {
                continue;
            }
            match self.watcher.watch(folder, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.push(folder.clone());
                    changed = true;
                }
                Err(e) => failed.push((folder.clone(), e.to_string())),
            }
        }
        for gone in self.watched.iter().filter(|w| !folders.contains(w)) {
            let _ = self.watcher.unwatch(gone);
            changed = true;
        }
        self.watched.retain(|w| folders.contains(w));
        (changed, failed)
    }

    /// Waits for a relevant change, then for `debounce` of quiet; `None`
    /// when `cancel` fires first, or when `give_up` passes with no change
    /// (so the caller can look for new folders).
    pub fn wait(
        &mut self,
        debounce: Duration,
        give_up: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<Option<Changes>> {
        let started = Instant::now();
        let mut changes = Changes::default();
        let mut last = None::<Instant>;
        loop {
            if cancel.is_cancelled() {
                return Ok(None);
            }
            let wait = match last {
                Some(at) => match debounce.checked_sub(at.elapsed()) {
                    Some(left) => left.min(Duration::from_millis(200)),
                    None => return Ok(Some(changes)),
                },
                None if give_up.is_some_and(|g| started.elapsed() >= g) => return Ok(None),
                None => Duration::from_millis(200),
            };
            match self.events.recv_timeout(wait) {
                Ok(Ok(event)) => {
                    let mut hit = false;
                    for path in &event.paths {
                        if relevant(&event.kind, path, &self.home, &self.watched) {
                            hit = true;
                            if changes.paths.len() < 5 {
                                if !changes.paths.contains(path) {
                                    changes.paths.push(path.clone());
                                }
                            } else {
                                changes.more += 1;
                            }
                        }
                    }
                    // An overflowed queue has no paths: everything may have changed.
                    if event.need_rescan() {
                        changes.missed.get_or_insert_with(|| "rescan needed".into());
                    }
                    if hit || event.need_rescan() {
                        last = Some(Instant::now());
                    }
                }
                Ok(Err(e)) => {
                    // The watcher's own error (e.g. its queue overflowed):
                    // a sync catches up on whatever was missed.
                    changes.missed = Some(e.to_string());
                    last = Some(Instant::now());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::InvalidOption("the folder watcher stopped".into()));
                }
            }
        }
    }
}

impl Library {
    /// The registered folders, read from the catalog alone (cheap enough
    /// for a watcher to ask every few seconds).
    pub fn registered_folders(home: &Home) -> Result<Vec<PathBuf>> {
        Ok(Catalog::open(&home.catalog_path())?
            .folders()?
            .into_iter()
            .map(|f| f.path)
            .collect())
    }

    /// Syncs once, then after every quiet spell of `debounce` following a
    /// change in a registered folder, until `cancel`.
    pub fn watch(
        &mut self,
        options: &SyncOptions,
        debounce: Duration,
        sink: &dyn EventSink<LibraryEvent>,
        report: &mut dyn FnMut(WatchEvent<'_>),
        cancel: &CancelToken,
    ) -> Result<()> {
        let mut watcher = FolderWatcher::new(self.home.root())?;
        let sync = |library: &mut Library, report: &mut dyn FnMut(WatchEvent<'_>)| match library
            .sync(options, sink, cancel)
        {
            Ok(done) => report(WatchEvent::Synced(&done)),
            Err(e) => report(WatchEvent::SyncFailed(&e)),
        };
        sync(self, report);
        while !cancel.is_cancelled() {
            // Folders registered since the last sync (here or elsewhere).
            let folders: Vec<PathBuf> = self
                .catalog
                .folders()?
                .into_iter()
                .map(|f| f.path)
                .collect();
            let (changed_set, failed) = watcher.set_folders(&folders);
            for (folder, reason) in &failed {
                report(WatchEvent::Unwatched {
                    folder,
                    reason: reason.clone(),
                });
            }
            if changed_set {
                report(WatchEvent::Watching(watcher.watched()));
            }
            let Some(changes) = watcher.wait(debounce, None, cancel)? else {
                return Ok(());
            };
            if let Some(missed) = &changes.missed {
                report(WatchEvent::Missed(missed.clone()));
            }
            report(WatchEvent::Changed {
                paths: &changes.paths,
                more: changes.more,
            });
            sync(self, report);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hidden_paths_and_the_home_do_not_wake_the_watcher() {
        let home = Path::new("/data/exsearch");
        let folders = [PathBuf::from("/docs"), PathBuf::from("/tmp/.cache/notes")];
        let modify = EventKind::Modify(notify::event::ModifyKind::Any);
        let read = EventKind::Access(notify::event::AccessKind::Any);
        let wakes = |kind: &EventKind, path: &str| relevant(kind, Path::new(path), home, &folders);
        assert!(wakes(&modify, "/docs/notes.md"));
        assert!(!wakes(&read, "/docs/notes.md"));
        assert!(!wakes(&modify, "/docs/.notes.md.swp"));
        assert!(!wakes(&modify, "/docs/.git/index"));
        assert!(!wakes(&modify, "/data/exsearch/index/meta.json"));
        // A watched folder under a hidden directory still counts.
        assert!(wakes(&modify, "/tmp/.cache/notes/todo.md"));
        assert!(!wakes(&modify, "/tmp/.cache/notes/.todo.md~"));
    }
}
