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
use crate::jobs::{CancelToken, EventSink};

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

impl Library {
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
        let home = self
            .home
            .root()
            .canonicalize()
            .unwrap_or_else(|_| self.home.root().to_owned());
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the watch has ended.
            let _ = tx.send(event);
        })
        .map_err(|e| Error::InvalidOption(format!("cannot watch folders: {e}")))?;
        let mut watched: Vec<PathBuf> = Vec::new();
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
            let mut changed_set = false;
            for folder in &folders {
                if watched.contains(folder) {
                    continue;
                }
                match watcher.watch(folder, RecursiveMode::Recursive) {
                    Ok(()) => {
                        watched.push(folder.clone());
                        changed_set = true;
                    }
                    Err(e) => report(WatchEvent::Unwatched {
                        folder,
                        reason: e.to_string(),
                    }),
                }
            }
            for gone in watched.iter().filter(|w| !folders.contains(w)) {
                let _ = watcher.unwatch(gone);
                changed_set = true;
            }
            watched.retain(|w| folders.contains(w));
            if changed_set {
                report(WatchEvent::Watching(&watched));
            }
            // Wait for a relevant change, then for a quiet spell.
            let mut paths: Vec<PathBuf> = Vec::new();
            let mut more = 0usize;
            let mut last = None::<Instant>;
            loop {
                if cancel.is_cancelled() {
                    return Ok(());
                }
                let wait = match last {
                    Some(at) => match debounce.checked_sub(at.elapsed()) {
                        Some(left) => left.min(Duration::from_millis(200)),
                        None => break,
                    },
                    None => Duration::from_millis(200),
                };
                match rx.recv_timeout(wait) {
                    Ok(Ok(event)) => {
                        let mut hit = false;
                        for path in &event.paths {
                            if relevant(&event.kind, path, &home, &watched) {
                                hit = true;
                                if paths.len() < 5 {
                                    if !paths.contains(path) {
                                        paths.push(path.clone());
                                    }
                                } else {
                                    more += 1;
                                }
                            }
                        }
                        // An overflowed queue has no paths: everything may have changed.
                        if hit || event.need_rescan() {
                            last = Some(Instant::now());
                        }
                    }
                    Ok(Err(e)) => {
                        // The watcher's own error (e.g. its queue overflowed):
                        // a sync catches up on whatever was missed.
                        report(WatchEvent::Missed(e.to_string()));
                        last = Some(Instant::now());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Error::InvalidOption("the folder watcher stopped".into()));
                    }
                }
            }
            report(WatchEvent::Changed {
                paths: &paths,
                more,
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
