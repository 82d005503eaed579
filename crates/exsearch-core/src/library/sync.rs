//! The indexing pipeline: extractor threads read, hash, extract and split
//! files; the calling thread writes each result to the catalog (one open
//! transaction) and the passage index, and commits both every
//! [`BATCH_BYTES`] / [`BATCH_DOCUMENTS`] / [`BATCH_INTERVAL`].
//!
//! Commit order, per batch: catalog (rows marked dirty) -> passage index ->
//! catalog settle (dirty cleared). A crash anywhere leaves dirty rows that
//! `Library::recover` repairs, so catalog and index always agree.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use serde::Serialize;

use super::scan::{Plan, Work};
use super::{LibraryEvent, SyncOptions};
use crate::corpus::{self, passages, DocumentKind, Ocr, Skip};
use crate::error::{Error, Result};
use crate::failpoint::{crash_point, write_fault};
use crate::index::{IndexedPassage, PassageId, PassageWriter};
use crate::jobs::{CancelToken, EventSink};
use crate::store::{Catalog, DocumentRow, PassageRow};

/// Text read since the last commit that triggers the next one: bounds the
/// work a crash can lose. Larger batches mean fewer segment merges (64 MiB
/// indexed 1.5x faster than 16 MiB here).
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
const BATCH_DOCUMENTS: usize = 20_000;
/// A slow batch (large PDFs) still commits this often, so progress survives.
const BATCH_INTERVAL: Duration = Duration::from_secs(5);
/// Progress events are throttled to this period.
const PROGRESS_PERIOD: Duration = Duration::from_millis(100);
/// Extractor threads get a large stack: PDF object graphs recurse deeply.
const EXTRACTOR_STACK_BYTES: usize = 64 * 1024 * 1024;
/// More extractors than this only add contention on the single writer.
const MAX_EXTRACTORS: usize = 32;

/// Counts, rate and ETA for progress bars.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncProgress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub passages: u64,
    pub failed: u64,
    pub elapsed_secs: f64,
    pub bytes_per_sec: f64,
    pub eta_secs: Option<f64>,
}

/// What one `add` or `sync` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub indexed: u64,
    pub unchanged: u64,
    /// Files whose mtime changed but whose content hash did not.
    pub touched: u64,
    pub removed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub passages_added: u64,
    pub bytes_read: u64,
    pub elapsed_secs: f64,
    pub missing_folders: Vec<String>,
    /// True when the job was cancelled; what was committed stays.
    pub cancelled: bool,
    /// The sentence vectors given to new passages (hybrid retrieval with
    /// an encoder attached).
    pub embedding: Option<crate::dense::EmbedReport>,
}

struct ReadyPassage {
    id: PassageId,
    page: Option<u32>,
    char_start: usize,
    char_end: usize,
    words: usize,
    text: String,
    /// Read by OCR from a scanned page or an image.
    ocr: bool,
}

enum Outcome {
    Indexed {
        title: String,
        pages: Option<u32>,
        hash: String,
        passages: Vec<ReadyPassage>,
    },
    /// Same content hash as the catalog has: only size/mtime are updated.
    Touched,
    Failed {
        skip: Skip,
        hash: Option<String>,
    },
}

struct Processed {
    work: Work,
    outcome: Outcome,
}

/// Reads and processes one file; never panics.
fn process(
    work: &Work,
    max_file_bytes: u64,
    ocr: Option<&Ocr>,
    sink: &dyn EventSink<LibraryEvent>,
) -> Outcome {
    if work.size > max_file_bytes {
        return Outcome::Failed {
            skip: Skip::TooLarge {
                size: work.size,
                limit: max_file_bytes,
            },
            hash: None,
        };
    }
    let bytes = match std::fs::read(&work.path) {
        Ok(b) => b,
        Err(e) => {
            return Outcome::Failed {
                skip: Skip::Unreadable(e.to_string()),
                hash: None,
            }
        }
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if work.known_hash.as_deref() == Some(hash.as_str()) {
        return Outcome::Touched;
    }
    let kind = work.kind;
    match catch_unwind(AssertUnwindSafe(|| {
        let on_ocr = |page, pages| {
            sink.emit(LibraryEvent::Ocr {
                path: work.path.clone(),
                page,
                pages,
            });
        };
        extract_passages(&work.path, kind, &bytes, ocr, &on_ocr)
    })) {
        Ok(Ok((title, pages, passages))) => Outcome::Indexed {
            title,
            pages,
            hash,
            passages,
        },
        Ok(Err(skip)) => Outcome::Failed {
            skip,
            hash: Some(hash),
        },
        Err(panic) => Outcome::Failed {
            skip: Skip::ParserCrashed {
                kind: kind.as_str(),
                detail: corpus::panic_message(panic.as_ref()),
            },
            hash: Some(hash),
        },
    }
}

fn extract_passages(
    path: &str,
    kind: DocumentKind,
    bytes: &[u8],
    ocr: Option<&Ocr>,
    on_ocr: &dyn Fn(u32, u32),
) -> Result<(String, Option<u32>, Vec<ReadyPassage>), Skip> {
    let doc = corpus::extract_reporting(kind, bytes, ocr, on_ocr)?;
    let title = doc.title.unwrap_or_else(|| {
        Path::new(path)
            .file_stem()
            .map_or_else(|| path.to_owned(), |s| s.to_string_lossy().into_owned())
    });
    let pages = match kind {
        DocumentKind::Pdf => Some(doc.sections.len() as u32),
        DocumentKind::Image => doc.sections.iter().filter_map(|s| s.page).max(),
        // Empty slides leave no section: the last slide's number counts them.
        DocumentKind::Odp | DocumentKind::Pptx => doc.sections.iter().filter_map(|s| s.page).max(),
        _ => None,
    };
    let mut out = Vec::new();
    for section in &doc.sections {
        for chunk in passages::split(&section.text) {
            out.push(ReadyPassage {
                id: PassageId::derive(path, section.page, chunk.char_start, &chunk.text),
                page: section.page,
                char_start: chunk.char_start,
                char_end: chunk.char_end,
                words: chunk.words,
                text: chunk.text,
                ocr: section.ocr,
            });
        }
    }
    Ok((title, pages, out))
}

/// Runs `plan` to completion or cancellation; `ocr` reads images and
/// scanned pages.
pub(super) fn run(
    catalog: &mut Catalog,
    writer: &mut PassageWriter<'_>,
    plan: Plan,
    options: &SyncOptions,
    ocr: Option<&Ocr>,
    sink: &dyn EventSink<LibraryEvent>,
    cancel: &CancelToken,
) -> Result<SyncReport> {
    let started = Instant::now();
    let mut report = SyncReport {
        unchanged: plan.unchanged,
        ignored: plan.ignored,
        missing_folders: plan.missing_folders.clone(),
        ..SyncReport::default()
    };
    let mut progress = SyncProgress {
        files_done: 0,
        files_total: plan.work.len() as u64,
        bytes_done: 0,
        bytes_total: plan.bytes_to_read(),
        passages: 0,
        failed: 0,
        elapsed_secs: 0.0,
        bytes_per_sec: 0.0,
        eta_secs: None,
    };
    sink.emit(LibraryEvent::Started(progress.clone()));

    let threads = options.threads.clamp(1, MAX_EXTRACTORS);
    let max_file_bytes = options
        .max_file_bytes
        .unwrap_or(super::DEFAULT_MAX_FILE_BYTES);
    let (work_tx, work_rx) = unbounded::<Work>();
    for w in plan.work {
        // Cannot fail: the receiver is alive.
        let _ = work_tx.send(w);
    }
    drop(work_tx);

    catalog.begin_batch()?;
    let outcome = (|| -> Result<()> {
        // Removals and walk failures go in the first batch.
        for &id in &plan.removed {
            catalog.mark_removed(id)?;
            writer.delete_document(id as u64);
            report.removed += 1;
        }
        for failure in &plan.failures {
            let reason = failure.skip.to_string();
            if let Some(id) = failure.indexed_id {
                // Unreachable for now (a broken link to an unplugged drive):
                // the indexed version stays searchable.
                catalog.mark_stale(id, failure.skip.code(), &reason)?;
            } else {
                let row = DocumentRow {
                    folder_id: failure.folder_id,
                    path: &failure.path,
                    kind: "unknown",
                    title: None,
                    size: 0,
                    mtime_ns: 0,
                    hash: None,
                    pages: None,
                    error: Some((failure.skip.code(), reason.clone())),
                };
                let id = catalog.put_document(&row, &[])?;
                writer.delete_document(id as u64);
            }
            report.failed += 1;
            sink.emit(LibraryEvent::Skipped {
                path: failure.path.clone(),
                reason,
            });
        }
        let (done_tx, done_rx) = bounded::<Processed>(threads * 2);
        let mut batch_bytes = 0u64;
        let mut batch_docs = 0usize;
        let mut last_commit = Instant::now();
        // The first processed file reports at once.
        let mut last_event = Instant::now()
            .checked_sub(PROGRESS_PERIOD)
            .unwrap_or_else(Instant::now);
        std::thread::scope(|scope| -> Result<()> {
            // Owned here, so an early return drops it: extractors blocked
            // on a full channel then see a closed one and exit.
            let done_rx = done_rx;
            for i in 0..threads {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                std::thread::Builder::new()
                    .name(format!("exsearch-extract-{i}"))
                    .stack_size(EXTRACTOR_STACK_BYTES)
                    .spawn_scoped(scope, move || {
                        extractor(work_rx, done_tx, max_file_bytes, ocr, sink, cancel)
                    })
                    .map_err(Error::Thread)?;
            }
            drop(done_tx);
            for done in &done_rx {
                let bytes = done.work.size;
                apply(catalog, writer, &done, &mut report, sink).map_err(|source| {
                    Error::Document {
                        path: done.work.path.clone().into(),
                        source: Box::new(source),
                    }
                })?;
                progress.files_done += 1;
                progress.bytes_done += bytes;
                batch_bytes += bytes;
                batch_docs += 1;
                progress.passages = report.passages_added;
                progress.failed = report.failed;
                if batch_bytes >= BATCH_BYTES
                    || batch_docs >= BATCH_DOCUMENTS
                    || last_commit.elapsed() >= BATCH_INTERVAL
                {
                    commit(writer, catalog)?;
                    sink.emit(LibraryEvent::Committed {
                        files_done: progress.files_done,
                        passages: report.passages_added,
                    });
                    catalog.begin_batch()?;
                    (batch_bytes, batch_docs, last_commit) = (0, 0, Instant::now());
                }
                if last_event.elapsed() >= PROGRESS_PERIOD {
                    update_rates(&mut progress, started);
                    sink.emit(LibraryEvent::Progress(progress.clone()));
                    last_event = Instant::now();
                }
            }
            commit(writer, catalog)
        })
    })();
    if outcome.is_err() {
        catalog.rollback_batch();
    }
    outcome?;
    report.bytes_read = progress.bytes_done;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    report.cancelled = cancel.is_cancelled();
    update_rates(&mut progress, started);
    sink.emit(LibraryEvent::Progress(progress));
    Ok(report)
}

fn extractor(
    work: Receiver<Work>,
    done: Sender<Processed>,
    max_file_bytes: u64,
    ocr: Option<&Ocr>,
    sink: &dyn EventSink<LibraryEvent>,
    cancel: &CancelToken,
) {
    for w in work {
        if cancel.is_cancelled() {
            return;
        }
        let outcome = process(&w, max_file_bytes, ocr, sink);
        if done.send(Processed { work: w, outcome }).is_err() {
            return; // the writer stopped on an error
        }
    }
}

/// Writes one processed file to the catalog's open batch and the index.
fn apply(
    catalog: &Catalog,
    writer: &PassageWriter<'_>,
    done: &Processed,
    report: &mut SyncReport,
    sink: &dyn EventSink<LibraryEvent>,
) -> Result<()> {
    let Processed { work, outcome } = done;
    let mut row = DocumentRow {
        folder_id: work.folder_id,
        path: &work.path,
        kind: work.kind.as_str(),
        title: None,
        size: work.size,
        mtime_ns: work.mtime_ns,
        hash: None,
        pages: None,
        error: None,
    };
    match outcome {
        Outcome::Touched => {
            if let Some(id) = work.known_id {
                catalog.touch(id, work.size, work.mtime_ns)?;
            }
            report.touched += 1;
        }
        // A passing problem (the file is locked, say) keeps what was
        // indexed before; its row keeps the old size and mtime, so the next
        // sync tries again.
        Outcome::Failed { skip, .. } if work.known_indexed && Skip::is_transient(skip.code()) => {
            if let Some(id) = work.known_id {
                catalog.mark_stale(id, skip.code(), &skip.to_string())?;
            }
            report.failed += 1;
            sink.emit(LibraryEvent::Skipped {
                path: work.path.clone(),
                reason: format!("{skip} (the indexed version is kept)"),
            });
        }
        Outcome::Failed { skip, hash } => {
            row.hash = hash.as_deref();
            row.error = Some((skip.code(), skip.to_string()));
            let id = catalog.put_document(&row, &[])?;
            writer.delete_document(id as u64);
            report.failed += 1;
            sink.emit(LibraryEvent::Skipped {
                path: work.path.clone(),
                reason: skip.to_string(),
            });
        }
        Outcome::Indexed {
            title,
            pages,
            hash,
            passages,
        } => {
            row.title = Some(title);
            row.hash = Some(hash);
            row.pages = *pages;
            let rows: Vec<PassageRow> = passages
                .iter()
                .enumerate()
                .map(|(i, p)| PassageRow {
                    id: p.id.0 as i64,
                    ordinal: i as u32,
                    page: p.page,
                    char_start: p.char_start,
                    char_end: p.char_end,
                    words: p.words,
                    ocr: p.ocr,
                })
                .collect();
            let id = catalog.put_document(&row, &rows)?;
            writer.delete_document(id as u64);
            for p in passages {
                writer.add(&IndexedPassage {
                    id: p.id,
                    doc_id: id as u64,
                    path: &work.path,
                    title,
                    page: p.page,
                    char_start: p.char_start,
                    char_end: p.char_end,
                    text: &p.text,
                })?;
            }
            report.indexed += 1;
            report.passages_added += passages.len() as u64;
        }
    }
    Ok(())
}

/// Catalog first (rows dirty), then the index, then the dirty marks go.
fn commit(writer: &mut PassageWriter<'_>, catalog: &mut Catalog) -> Result<()> {
    catalog.commit_batch()?;
    crash_point("after_catalog_commit");
    write_fault("index_commit").map_err(|source| Error::Io {
        path: writer.path().to_owned(),
        source,
    })?;
    writer.commit()?;
    crash_point("after_index_commit");
    catalog.settle()
}

fn update_rates(p: &mut SyncProgress, started: Instant) {
    p.elapsed_secs = started.elapsed().as_secs_f64();
    p.bytes_per_sec = if p.elapsed_secs > 0.0 {
        p.bytes_done as f64 / p.elapsed_secs
    } else {
        0.0
    };
    p.eta_secs = (p.bytes_per_sec > 0.0)
        .then(|| p.bytes_total.saturating_sub(p.bytes_done) as f64 / p.bytes_per_sec);
}
