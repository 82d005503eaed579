//! The library: registered folders, their documents and passages. It owns
//! the catalog and the passage index and keeps them in agreement; every
//! user-facing operation on the collection (`add`, `sync`, `remove`,
//! `status`, `search`, `check`) goes through it.

mod scan;
mod settings;
mod sync;
mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

pub use sync::{SyncProgress, SyncReport};
pub use watch::{Changes, FolderWatcher, WatchEvent};

use crate::corpus::{self, DocumentKind, Ocr};
use crate::dense::{self, EmbedReport, Embedder, Retrieval, VectorStore};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::index::{Hit, PassageId, PassageIndex, PassageWriter};
use crate::jobs::{CancelToken, EventSink};
use crate::store::{Catalog, DocumentEntry, FailedDocument, Folder};
use settings::{max_file_bytes, MAX_FILE_SETTING, OCR_SETTING, RETRIEVAL_SETTING, WATCH_SETTING};

/// Files above this size are listed as skipped unless the limit is raised.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Passages per encoder call and per vector-store transaction.
const EMBED_BATCH: usize = 128;

/// Events of an `add` or `sync`, in order: `Started`, then `Progress`,
/// `Skipped` and `Committed` as work proceeds, and a final `Progress`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LibraryEvent {
    /// Folders were walked; `files_total` files need reading.
    Started(SyncProgress),
    Progress(SyncProgress),
    Skipped {
        path: String,
        reason: String,
    },
    /// A batch is durable: a crash or cancel from here on keeps it.
    Committed {
        files_done: u64,
        passages: u64,
    },
    /// Passages given their sentence vector so far, of `total` that lacked
    /// one; each batch is durable when reported.
    Embedding {
        done: u64,
        total: u64,
    },
    /// The sentence encoder is being downloaded before the sync (sent by
    /// callers that fetch it, once per machine).
    Fetching {
        what: String,
        bytes_done: u64,
        bytes_total: u64,
    },
    /// A page of `path` is being read by OCR (seconds a page): `page` of
    /// the file's `pages`.
    Ocr {
        path: String,
        page: u32,
        pages: u32,
    },
    /// Something the person should know that does not stop the job.
    Warning {
        message: String,
    },
}

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Overrides (and saves) the library's file size limit.
    pub max_file_bytes: Option<u64>,
    /// Extractor threads.
    pub threads: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
        }
    }
}

/// What `exsearch library status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryStatus {
    pub home: PathBuf,
    pub folders: Vec<Folder>,
    /// Documents indexed.
    pub documents: u64,
    pub passages: u64,
    /// Documents whose half-written index entries a crash repair dropped;
    /// the next sync reads them again. (Files a cancelled sync never reached
    /// have no row yet: `sync` finds them as new.)
    pub pending: u64,
    pub failed: Vec<FailedDocument>,
    /// Total size of the indexed files.
    pub bytes: u64,
    pub max_file_bytes: u64,
    pub schema_version: i64,
    /// How searches rank passages.
    pub retrieval: Retrieval,
    /// The sentence encoder the stored vectors come from, if any.
    pub encoder: Option<String>,
    /// Passages with a sentence vector (of `passages`).
    pub vectors: u64,
    /// Whether syncs read images and scanned pages (the setting).
    pub ocr: bool,
    /// Why OCR cannot run although it is on (Tesseract missing).
    pub ocr_unavailable: Option<String>,
    /// Whether the desktop app keeps the index current as files change.
    pub watch: bool,
}

/// A passage in its surroundings, as a citation shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PassageContext {
    /// The file, canonical.
    pub path: String,
    pub title: Option<String>,
    pub page: Option<u32>,
    /// Pages in the file, for paged formats.
    pub pages: Option<u32>,
    pub before: String,
    pub passage: String,
    pub after: String,
    /// Whether `before` reaches the start of the page or file...
    pub starts_document: bool,
    /// ...and `after` its end.
    pub ends_document: bool,
}

/// Whether the catalog and the passage index hold the same passages.
#[derive(Debug, Clone, Serialize)]
pub struct Consistency {
    pub catalog_passages: u64,
    pub index_passages: u64,
    pub missing_from_index: u64,
    pub missing_from_catalog: u64,
    /// Documents awaiting crash repair (zero once any writer has opened).
    pub dirty_documents: u64,
    pub consistent: bool,
}

pub struct Library {
    home: Home,
    catalog: Catalog,
    index: PassageIndex,
    vectors: VectorStore,
    embedder: Option<Arc<dyn Embedder>>,
    retrieval: Retrieval,
    ocr: bool,
}

impl Library {
    /// Opens the library under `home`, creating it on first use, and repairs
    /// what a crash left half-written unless another process is writing.
    pub fn open(home: &Home) -> Result<Self> {
        home.create()?;
        let catalog = Catalog::open(&home.catalog_path())?;
        let index = PassageIndex::open(&home.index_dir())?;
        let vectors = VectorStore::open(&home.vectors_path())?;
        let retrieval = match catalog.setting(RETRIEVAL_SETTING)? {
            Some(value) => value.parse().map_err(Error::InvalidOption)?,
            None => Retrieval::default(),
        };
        let ocr = catalog.setting(OCR_SETTING)?.is_none_or(|v| v != "off");
        let mut library = Self {
            home: home.clone(),
            catalog,
            index,
            vectors,
            embedder: None,
            retrieval,
            ocr,
        };
        if !library.catalog.dirty_documents()?.is_empty() {
            match library.index.writer(1) {
                Ok(mut writer) => Self::recover(&mut library.catalog, &mut writer)?,
                Err(Error::Busy(_)) => {} // the writer in the other process owns them
                Err(e) => return Err(e),
            }
        }
        Ok(library)
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Attaches the sentence encoder. With hybrid retrieval, syncs then give
    /// new passages their vectors and searches fuse its ranking with BM25's.
    pub fn set_embedder(&mut self, embedder: Arc<dyn Embedder>) {
        self.embedder = Some(embedder);
    }

    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedder.as_ref()
    }

    /// Drops from the index every passage of a dirty document, then resets
    /// those documents to pending so the next sync reads them again.
    fn recover(catalog: &mut Catalog, writer: &mut PassageWriter<'_>) -> Result<()> {
        let dirty = catalog.dirty_documents()?;
        if dirty.is_empty() {
            return Ok(());
        }
        for id in dirty {
            writer.delete_document(id as u64);
        }
        writer.commit()?;
        catalog.reset_dirty()
    }

    /// Registers folders, then syncs the whole library.
    pub fn add_folders(
        &mut self,
        dirs: &[PathBuf],
        options: &SyncOptions,
        sink: &dyn EventSink<LibraryEvent>,
        cancel: &CancelToken,
    ) -> Result<SyncReport> {
        let mut resolved = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let path = dir.canonicalize().map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            if !path.is_dir() {
                return Err(Error::NotAFolder(dir.clone()));
            }
            resolved.push(path);
        }
        // The writer lock first: no catalog change while another process syncs.
        let mut writer = self.index.writer(options.threads)?;
        for path in resolved {
            let folders = self.catalog.folders()?;
            if folders.iter().any(|f| scan::contains(&f.path, &path)) {
                continue; // already covered by a registered folder
            }
            let folder = self.catalog.add_folder(&path)?;
            // A registered subfolder is now covered by the new parent: its
            // documents move to the parent, nothing is re-read.
            for child in folders.iter().filter(|f| scan::contains(&path, &f.path)) {
                self.catalog.absorb_folder(folder.id, child.id)?;
            }
        }
        let ocr = self.ocr_for_sync(sink);
        let mut report =
            Self::sync_locked(&mut self.catalog, &mut writer, options, ocr, sink, cancel)?;
        writer.finish()?;
        self.embed_after_sync(&mut report, sink, cancel)?;
        Ok(report)
    }

    /// Rescans every folder: new and changed files are indexed, deleted ones
    /// removed, unchanged ones (same size and mtime, or same content hash)
    /// not re-read.
    pub fn sync(
        &mut self,
        options: &SyncOptions,
        sink: &dyn EventSink<LibraryEvent>,
        cancel: &CancelToken,
    ) -> Result<SyncReport> {
        let mut writer = self.index.writer(options.threads)?;
        let ocr = self.ocr_for_sync(sink);
        let mut report =
            Self::sync_locked(&mut self.catalog, &mut writer, options, ocr, sink, cancel)?;
        writer.finish()?;
        self.embed_after_sync(&mut report, sink, cancel)?;
        Ok(report)
    }

    /// After a sync's passages are committed: vectors for the new ones,
    /// when retrieval is hybrid and an encoder is attached.
    fn embed_after_sync(
        &mut self,
        report: &mut SyncReport,
        sink: &dyn EventSink<LibraryEvent>,
        cancel: &CancelToken,
    ) -> Result<()> {
        if self.retrieval != Retrieval::Hybrid || self.embedder.is_none() || report.cancelled {
            return Ok(());
        }
        let started = Instant::now();
        let embedding = self.embed(sink, cancel)?;
        report.cancelled |= embedding.cancelled;
        report.elapsed_secs += started.elapsed().as_secs_f64();
        report.embedding = Some(embedding);
        Ok(())
    }

    /// Gives every passage without a sentence vector its vector, in
    /// batches (each one SQLite transaction, reported as it lands), and
    /// drops the vectors of passages no longer in the index. Cancel stops
    /// after the batch in flight; what was stored stays.
    pub fn embed(
        &mut self,
        sink: &dyn EventSink<LibraryEvent>,
        cancel: &CancelToken,
    ) -> Result<EmbedReport> {
        let started = Instant::now();
        let embedder = self.embedder.clone().ok_or_else(|| {
            Error::InvalidOption("no sentence encoder is attached to the library".into())
        })?;
        self.vectors.use_encoder(embedder.name(), embedder.dim())?;
        self.index.refresh()?;
        let live: HashSet<u64> = self
            .index
            .passage_ids()?
            .into_iter()
            .map(|id| id.0)
            .collect();
        let have = self.vectors.ids()?;
        let mut gone: Vec<u64> = have.difference(&live).copied().collect();
        gone.sort_unstable();
        self.vectors.delete(&gone)?;
        let mut missing: Vec<PassageId> = live.difference(&have).map(|id| PassageId(*id)).collect();
        missing.sort_unstable();
        let total = missing.len() as u64;
        let mut report = EmbedReport {
            encoder: Some(embedder.name().to_string()),
            dropped: gone.len() as u64,
            ..EmbedReport::default()
        };
        if total > 0 {
            sink.emit(LibraryEvent::Embedding { done: 0, total });
        }
        for batch in missing.chunks(EMBED_BATCH) {
            if cancel.is_cancelled() {
                report.cancelled = true;
                break;
            }
            let passages = self.index.passage_texts(batch)?;
            let texts: Vec<String> = passages
                .iter()
                .map(|(_, title, text)| encoder_text(title, text))
                .collect();
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&texts).map_err(Error::Embedder)?;
            if vectors.len() != texts.len() {
                return Err(Error::Embedder(format!(
                    "{} vectors for {} texts",
                    vectors.len(),
                    texts.len()
                )));
            }
            let ids: Vec<u64> = passages.iter().map(|(id, _, _)| id.0).collect();
            self.vectors.insert(&ids, &vectors)?;
            report.embedded += ids.len() as u64;
            sink.emit(LibraryEvent::Embedding {
                done: report.embedded,
                total,
            });
        }
        report.vectors = self.vectors.count()?;
        report.elapsed_secs = started.elapsed().as_secs_f64();
        Ok(report)
    }

    fn sync_locked(
        catalog: &mut Catalog,
        writer: &mut PassageWriter<'_>,
        options: &SyncOptions,
        ocr: Option<&Ocr>,
        sink: &dyn EventSink<LibraryEvent>,
        cancel: &CancelToken,
    ) -> Result<SyncReport> {
        if let Some(limit) = options.max_file_bytes {
            if limit == 0 {
                return Err(Error::InvalidOption(
                    "the file size limit must be above 0".into(),
                ));
            }
            catalog.set_setting(MAX_FILE_SETTING, &limit.to_string())?;
        }
        let options = SyncOptions {
            max_file_bytes: Some(max_file_bytes(catalog)?),
            ..options.clone()
        };
        Self::recover(catalog, writer)?;
        let plan = scan::plan(
            &catalog.folders()?,
            &catalog.known_documents()?,
            ocr.is_some(),
        );
        sync::run(catalog, writer, plan, &options, ocr, sink, cancel)
    }

    /// Unregisters a folder and removes its documents from the index.
    pub fn remove_folder(&mut self, dir: &Path) -> Result<u64> {
        let wanted = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        let folder = self
            .catalog
            .folders()?
            .into_iter()
            .find(|f| f.path == wanted || f.path == dir)
            .ok_or_else(|| Error::UnknownFolder(dir.to_owned()))?;
        let mut writer = self.index.writer(1)?;
        Self::recover(&mut self.catalog, &mut writer)?;
        self.catalog.remove_folder(folder.id)?;
        let removed = self.catalog.dirty_documents()?;
        for &id in &removed {
            writer.delete_document(id as u64);
        }
        writer.commit()?;
        self.catalog.settle()?;
        writer.finish()?;
        Ok(removed.len() as u64)
    }

    pub fn status(&self) -> Result<LibraryStatus> {
        let s = self.catalog.summary()?;
        Ok(LibraryStatus {
            home: self.home.root().to_owned(),
            folders: s.folders,
            documents: s.documents,
            passages: s.passages,
            pending: s.pending,
            failed: s.failed,
            bytes: s.bytes,
            max_file_bytes: max_file_bytes(&self.catalog)?,
            schema_version: self.catalog.schema_version()?,
            retrieval: self.retrieval,
            encoder: self.vectors.encoder()?.map(|(name, _)| name),
            vectors: self.vectors.count()?,
            ocr: self.ocr,
            ocr_unavailable: self.ocr_engine().err(),
            watch: self
                .catalog
                .setting(WATCH_SETTING)?
                .is_none_or(|v| v != "off"),
        })
    }

    /// The `k` best passages for `query`, best first, ranked the library's
    /// way ([`Self::retrieval`]).
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        self.search_with(query, k, self.retrieval)
    }

    /// The `k` best passages for `query` under `retrieval`. Hybrid fuses
    /// BM25's ranking with the encoder's (normalized scores, equal weights,
    /// each read 50 deep); it falls back to BM25 when no encoder is attached
    /// or no passage has a vector of it yet. A hybrid hit's score is its
    /// fused score, in [0, 1].
    pub fn search_with(&self, query: &str, k: usize, retrieval: Retrieval) -> Result<Vec<Hit>> {
        let mut hits = self.ranked(query, k, retrieval)?;
        let ids: Vec<i64> = hits.iter().map(|h| h.passage_id.0 as i64).collect();
        let ocr = self.catalog.ocr_passages(&ids)?;
        for hit in &mut hits {
            hit.ocr = ocr.contains(&(hit.passage_id.0 as i64));
        }
        Ok(hits)
    }

    fn ranked(&self, query: &str, k: usize, retrieval: Retrieval) -> Result<Vec<Hit>> {
        let embedder = match (&self.embedder, retrieval) {
            (Some(embedder), Retrieval::Hybrid) => embedder,
            _ => return self.index.search(query, k),
        };
        let ours = (embedder.name().to_string(), embedder.dim());
        if k == 0 || self.vectors.encoder()?.as_ref() != Some(&ours) {
            return self.index.search(query, k);
        }
        let matrix = self.vectors.matrix()?;
        if matrix.is_empty() {
            return self.index.search(query, k);
        }
        let depth = dense::FUSION_DEPTH.max(k);
        let lexical: Vec<(u64, f32)> = self
            .index
            .ranked_ids(query, depth)?
            .into_iter()
            .map(|(id, score)| (id.0, score))
            .collect();
        let vector = embedder
            .embed(&[query])
            .map_err(Error::Embedder)?
            .pop()
            .ok_or_else(|| Error::Embedder("no vector for the query".into()))?;
        let semantic = matrix.top_k(&vector, depth);
        // Only the fused top k are read from the index's stored text.
        let fused: Vec<(PassageId, f32)> = dense::fuse(&lexical, &semantic, k)
            .into_iter()
            .map(|(id, score)| (PassageId(id), score))
            .collect();
        self.index.hits_by_id(&fused, query)
    }

    /// Every passage's id, title (its document's) and text, in id order:
    /// what questions are written from.
    pub fn passages(&self) -> Result<Vec<(PassageId, String, String)>> {
        let mut ids = self.index.passage_ids()?;
        ids.sort();
        self.index.passage_texts(&ids)
    }

    /// Every document with its status, ordered by path.
    pub fn documents(&self) -> Result<Vec<DocumentEntry>> {
        self.catalog.documents()
    }

    /// `path` made canonical, if it lies inside one of the library's
    /// folders; anything else is refused. The desktop app reads and opens
    /// files only through this check.
    pub fn resolve_inside(&self, path: &Path) -> Result<PathBuf> {
        let canonical = path.canonicalize().map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let folders = self.catalog.folders()?;
        if folders.iter().any(|f| scan::contains(&f.path, &canonical)) {
            Ok(canonical)
        } else {
            Err(Error::OutsideLibrary(path.to_owned()))
        }
    }

    /// A passage with up to `radius` characters of the text around it, read
    /// again from the file (its page, for PDFs): what a citation opens.
    pub fn passage_context(
        &self,
        path: &Path,
        page: Option<u32>,
        chars: std::ops::Range<usize>,
        radius: usize,
    ) -> Result<PassageContext> {
        let file = self.resolve_inside(path)?;
        let unreadable = |reason: String| Error::Unreadable {
            path: path.to_owned(),
            reason,
        };
        let kind = DocumentKind::detect(&file)
            .ok_or_else(|| unreadable("not a document type exsearch reads".into()))?;
        let bytes = std::fs::read(&file).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        // A scanned page is read again the way it was indexed.
        let ocr = self.ocr_engine().ok().flatten();
        let document = corpus::extract_page_with(kind, &bytes, ocr, page)
            .map_err(|skip| unreadable(skip.to_string()))?;
        let pages = document.sections.len();
        let section = document
            .sections
            .into_iter()
            .find(|s| s.page == page)
            .ok_or_else(|| Error::NoSuchPage {
                path: path.to_owned(),
                page: page.unwrap_or(0),
            })?;
        let text: Vec<char> = section.text.chars().collect();
        let end = chars.end.min(text.len());
        let start = chars.start.min(end);
        let from = start.saturating_sub(radius);
        let to = (end + radius).min(text.len());
        let collect = |r: std::ops::Range<usize>| text[r].iter().collect::<String>();
        Ok(PassageContext {
            path: file.to_string_lossy().into_owned(),
            title: document.title,
            page,
            pages: page.map(|_| pages as u32),
            before: collect(from..start),
            passage: collect(start..end),
            after: collect(end..to),
            starts_document: from == 0,
            ends_document: to == text.len(),
        })
    }

    /// Compares the passage ids of the catalog and the index.
    pub fn check(&self) -> Result<Consistency> {
        self.index.refresh()?;
        let catalog: HashSet<u64> = self
            .catalog
            .passage_ids()?
            .into_iter()
            .map(|id| id as u64)
            .collect();
        let index: HashSet<u64> = self
            .index
            .passage_ids()?
            .into_iter()
            .map(|id| id.0)
            .collect();
        let missing_from_index = catalog.difference(&index).count() as u64;
        let missing_from_catalog = index.difference(&catalog).count() as u64;
        let dirty_documents = self.catalog.dirty_documents()?.len() as u64;
        Ok(Consistency {
            catalog_passages: catalog.len() as u64,
            index_passages: self.index.num_passages(),
            missing_from_index,
            missing_from_catalog,
            dirty_documents,
            consistent: missing_from_index == 0
                && missing_from_catalog == 0
                && dirty_documents == 0
                && index.len() as u64 == self.index.num_passages(),
        })
    }
}

/// What the encoder reads for a passage: its document's title, then its
/// text (unless the text already starts with the title).
fn encoder_text(title: &str, text: &str) -> String {
    let title = title.trim();
    if title.is_empty() || text.trim_start().starts_with(title) {
        text.to_string()
    } else {
        format!("{title}\n{text}")
    }
}
