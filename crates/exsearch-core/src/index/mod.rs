//! The passage index: a tantivy index on disk with BM25 over an English
//! analyzer. It owns the tantivy schema and the query-side analysis; which
//! passages should be in it is the catalog's business (see `library`).
//!
//! Invariants: every passage is one tantivy document keyed by its
//! `passage_id` and tagged with its catalog `doc_id`, so a document's
//! passages are replaced or removed with one `delete_term`.

mod search;
mod stem_cache;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tantivy::directory::error::LockError;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter,
    TextAnalyzer,
};
use tantivy::{
    doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term,
};

pub use search::Hit;

use crate::error::{Error, Result};

/// The name the English analyzer is registered under in the index.
const ANALYZER: &str = "exsearch_en";
/// Tokens longer than this are hashes, base64 or URLs, never query words.
const MAX_TOKEN_BYTES: usize = 40;
/// Indexing memory, split among writer threads. tantivy flushes a segment
/// when a thread's share fills, so this bounds the writer's memory.
pub const WRITER_MEMORY_BYTES: usize = 96 * 1024 * 1024;
const MIN_THREAD_MEMORY_BYTES: usize = 16 * 1024 * 1024;
/// Segments are not merged past this many passages: a merge's memory grows
/// with its size, and ten such segments still search fast.
const MAX_DOCS_BEFORE_MERGE: usize = 250_000;

/// A passage's stable identity: a hash of its document path, page, offsets
/// and text, shown as 16 hex digits (JSON numbers lose precision past 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PassageId(pub u64);

impl PassageId {
    pub fn derive(path: &str, page: Option<u32>, char_start: usize, text: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(path.as_bytes());
        h.update(&page.unwrap_or(0).to_le_bytes());
        h.update(&(char_start as u64).to_le_bytes());
        h.update(text.as_bytes());
        let bytes = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&bytes.as_bytes()[..8]);
        // 63 bits, so the id also fits SQLite's signed INTEGER.
        PassageId(u64::from_le_bytes(first) >> 1)
    }
}

impl fmt::Display for PassageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for PassageId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(PassageId)
    }
}

impl Serialize for PassageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PassageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A passage as the index stores it.
#[derive(Debug, Clone)]
pub struct IndexedPassage<'a> {
    pub id: PassageId,
    pub doc_id: u64,
    pub path: &'a str,
    pub title: &'a str,
    pub page: Option<u32>,
    pub char_start: usize,
    pub char_end: usize,
    pub text: &'a str,
}

#[derive(Clone, Copy)]
struct Fields {
    passage_id: Field,
    doc_id: Field,
    path: Field,
    title: Field,
    page: Field,
    char_start: Field,
    char_end: Field,
    text: Field,
    /// Title and text together: the one field BM25 ranks on.
    content: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let analyzed = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        passage_id: b.add_u64_field("passage_id", INDEXED | STORED | FAST),
        doc_id: b.add_u64_field("doc_id", INDEXED),
        path: b.add_text_field("path", STORED),
        title: b.add_text_field("title", STORED),
        page: b.add_u64_field("page", STORED),
        char_start: b.add_u64_field("char_start", STORED),
        char_end: b.add_u64_field("char_end", STORED),
        text: b.add_text_field("text", STORED),
        content: b.add_text_field("content", analyzed),
    };
    (b.build(), fields)
}

/// Lower-cased, ASCII-folded, English stop words removed, Snowball-stemmed
/// (through a cache: the same stems as tantivy's `Stemmer`).
pub fn english_analyzer() -> TextAnalyzer {
    // tantivy is built with its `stopwords` feature, so the list is there.
    let stop_words = StopWordFilter::new(Language::English)
        .unwrap_or_else(|| StopWordFilter::remove(Vec::<String>::new()));
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(stop_words)
        .filter(stem_cache::CachedEnglishStemmer)
        .build()
}

pub struct PassageIndex {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl PassageIndex {
    /// Opens the index in `dir`, creating it if absent.
    pub fn open(dir: &Path) -> Result<Self> {
        let ctx = |source| Error::Index {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| ctx(e.into()))?;
        let index = Index::open_or_create(directory, schema).map_err(ctx)?;
        index.tokenizers().register(ANALYZER, english_analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(ctx)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            reader,
            fields,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn error(&self, source: TantivyError) -> Error {
        Error::Index {
            path: self.dir.clone(),
            source,
        }
    }

    /// Takes the index's single writer lock. Fails with [`Error::Busy`] when
    /// another process holds it.
    pub fn writer(&self, threads: usize) -> Result<PassageWriter<'_>> {
        // tantivy refuses a per-thread share below ~15 MB.
        let threads = threads.clamp(1, WRITER_MEMORY_BYTES / MIN_THREAD_MEMORY_BYTES);
        match self
            .index
            .writer_with_num_threads(threads, WRITER_MEMORY_BYTES)
        {
            Ok(writer) => {
                let mut policy = LogMergePolicy::default();
                policy.set_max_docs_before_merge(MAX_DOCS_BEFORE_MERGE);
                writer.set_merge_policy(Box::new(policy));
                Ok(PassageWriter {
                    index: self,
                    writer,
                })
            }
            Err(TantivyError::LockFailure(LockError::LockBusy, _)) => {
                Err(Error::Busy(self.dir.clone()))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Makes the latest commit visible to searches from this process now,
    /// rather than after the reload delay.
    pub fn refresh(&self) -> Result<()> {
        self.reader.reload().map_err(|e| self.error(e))
    }

    /// Number of live passages.
    pub fn num_passages(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Every live passage id, for consistency checks against the catalog.
    pub fn passage_ids(&self) -> Result<Vec<PassageId>> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::with_capacity(searcher.num_docs() as usize);
        for segment in searcher.segment_readers() {
            let column = segment
                .fast_fields()
                .u64("passage_id")
                .map_err(|e| self.error(e))?;
            for doc in segment.doc_ids_alive() {
                if let Some(id) = column.first(doc) {
                    ids.push(PassageId(id));
                }
            }
        }
        Ok(ids)
    }
}

/// Holds the writer lock while a job adds and deletes passages. Changes are
/// invisible until [`commit`](Self::commit); dropping without committing
/// discards them.
pub struct PassageWriter<'a> {
    index: &'a PassageIndex,
    writer: IndexWriter,
}

impl PassageWriter<'_> {
    /// The index folder.
    pub fn path(&self) -> &Path {
        self.index.path()
    }

    pub fn delete_document(&self, doc_id: u64) {
        self.writer
            .delete_term(Term::from_field_u64(self.index.fields.doc_id, doc_id));
    }

    pub fn add(&self, p: &IndexedPassage<'_>) -> Result<()> {
        let f = &self.index.fields;
        let mut document: TantivyDocument = doc!(
            f.passage_id => p.id.0,
            f.doc_id => p.doc_id,
            f.path => p.path,
            f.title => p.title,
            f.char_start => p.char_start as u64,
            f.char_end => p.char_end as u64,
            f.text => p.text,
            f.content => p.title,
            f.content => p.text,
        );
        if let Some(page) = p.page {
            document.add_u64(f.page, u64::from(page));
        }
        self.writer
            .add_document(document)
            .map(drop)
            .map_err(|e| self.index.error(e))
    }

    /// Makes every change since the last commit durable and visible.
    pub fn commit(&mut self) -> Result<()> {
        self.writer.commit().map_err(|e| self.index.error(e))?;
        self.index.refresh()
    }

    /// Waits for background merges, so the process can exit with a tidy index.
    pub fn finish(self) -> Result<()> {
        let PassageWriter { index, writer } = self;
        writer.wait_merging_threads().map_err(|e| index.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passage_ids_are_stable_hex_and_round_trip() {
        let a = PassageId::derive("/a.txt", None, 0, "hello");
        assert_eq!(a, PassageId::derive("/a.txt", None, 0, "hello"));
        assert_ne!(a, PassageId::derive("/a.txt", Some(1), 0, "hello"));
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert_eq!(s.parse::<PassageId>(), Ok(a));
        assert!(a.0 < (1 << 63));
    }

    #[test]
    fn analyzer_stems_folds_and_drops_stop_words() {
        let mut a = english_analyzer();
        let mut stream = a.token_stream("The Running CAFÉS of Zürich");
        let mut tokens = Vec::new();
        while stream.advance() {
            tokens.push(stream.token().text.clone());
        }
        assert_eq!(tokens, ["run", "cafe", "zurich"]);
    }
}
