//! Indexing throughput, peak memory and query latency, exsearch against
//! SQLite FTS5 (bundled rusqlite, Porter stemmer: a peer app's choice) on
//! the same generated corpus, side by side in one run.
//!
//! 1. Indexing: a corpus of `EXSEARCH_BENCH_MB` MB (default 200) of
//!    English-like text (words drawn from the HotpotQA paragraphs' word
//!    distribution, in sentences and paragraphs, ~1 MB files). Each engine
//!    runs in its own child process that reads the files, splits them into
//!    the same ~100-word passages and indexes them; we report MB/s,
//!    passages/s and the child's peak RSS.
//! 2. Memory bound: exsearch's peak RSS indexing the bigger query corpus
//!    (below) against the 200 MB one.
//! 3. Query latency: a corpus of at least `EXSEARCH_BENCH_PASSAGES` passages
//!    (default 1,000,000) indexed by both; HotpotQA questions, top 10 with
//!    passage text, alternating engines query by query (see `query_phase`).
//!
//! `EXSEARCH_BENCH_PHASES=index` or `=query` runs one phase (query reuses
//! the indexes a previous run left).
//!
//! Run: `cargo bench -p exsearch-core --bench throughput`
//! Corpora and indexes are kept under target/ between runs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{hotpotqa, peak_rss_mib, percentile, AnonPeak, Fts5};
use exsearch_core::corpus::passages;
use exsearch_core::{CancelToken, Home, Library, Quiet, SyncOptions};
use serde::{Deserialize, Serialize};

/// The allocator the `exsearch` binary uses, so memory figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FILE_BYTES: usize = 1 << 20;
/// Our splitter's average passage is ~600 bytes of this text; a part is
/// sized so the parts together reach the passage target.
const BYTES_PER_PASSAGE_ESTIMATE: u64 = 640;

#[derive(Serialize, Deserialize, Debug)]
struct IndexRun {
    secs: f64,
    bytes: u64,
    passages: u64,
    peak_rss_mib: f64,
    peak_anon_mib: f64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let run = match args[i + 1].as_str() {
            "ours" => index_ours(Path::new(&args[i + 2]), Path::new(&args[i + 3])),
            "fts5" => index_fts5(Path::new(&args[i + 2]), Path::new(&args[i + 3])),
            other => panic!("unknown child {other}"),
        };
        println!("{}", serde_json::to_string(&run).expect("json"));
        return;
    }
    let mb = env_u64("EXSEARCH_BENCH_MB", 200);
    let min_passages = env_u64("EXSEARCH_BENCH_PASSAGES", 1_000_000);
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-throughput");
    std::fs::create_dir_all(&data).expect("mkdir");

    // Part 0 is the indexing corpus; parts 1.. top it up to the query size.
    let small = generate(&data.join(format!("corpus-{mb}mb/part0")), mb << 20, 0);
    let big_bytes = (min_passages * BYTES_PER_PASSAGE_ESTIMATE).max(mb << 20);
    let rest = generate(
        &data.join(format!("corpus-{mb}mb/part1")),
        big_bytes - (mb << 20),
        1,
    );
    let big_root = small.parent().expect("parent").to_owned();
    println!(
        "corpora: {} and {} (generated once, kept)",
        small.display(),
        big_root.display()
    );

    let phases = std::env::var("EXSEARCH_BENCH_PHASES").unwrap_or_else(|_| "index,query".into());
    if phases.contains("index") {
        index_phase(&data, &small, &big_root, &rest, mb, min_passages);
    }
    if phases.contains("query") {
        query_phase(&data);
    }
}

fn index_phase(
    data: &Path,
    small: &Path,
    big_root: &Path,
    rest: &Path,
    mb: u64,
    min_passages: u64,
) {
    println!(
        "\n== indexing {mb} MB ({} files), each engine in its own process",
        count_files(small)
    );
    let ours = child("ours", small, &data.join("ours-small"));
    let fts = child("fts5", small, &data.join("fts5-small.sqlite"));
    let mbs = |r: &IndexRun| r.bytes as f64 / (1 << 20) as f64 / r.secs;
    let pps = |r: &IndexRun| r.passages as f64 / r.secs;
    println!(
        "{:<22}{:>10}{:>12}{:>12}{:>14}{:>15}",
        "", "MB/s", "passages/s", "passages", "peak RSS MiB", "peak anon MiB"
    );
    for (name, r) in [("exsearch", &ours), ("SQLite FTS5", &fts)] {
        println!(
            "{name:<22}{:>10.1}{:>12.0}{:>12}{:>14.0}{:>15.0}",
            mbs(r),
            pps(r),
            r.passages,
            r.peak_rss_mib,
            r.peak_anon_mib
        );
    }
    println!(
        "{:<22}{:>10.2}{:>12.2}",
        "ratio exsearch/FTS5",
        mbs(&ours) / mbs(&fts),
        pps(&ours) / pps(&fts)
    );

    println!(
        "\n== query corpus: {} + {}",
        small.display(),
        rest.display()
    );
    let ours_big = child("ours", big_root, &data.join("ours-big"));
    let fts_big = child("fts5", big_root, &data.join("fts5-big.sqlite"));
    let gib = |r: &IndexRun| r.bytes as f64 / (1 << 20) as f64;
    for (name, r) in [("exsearch", &ours_big), ("SQLite FTS5", &fts_big)] {
        println!(
            "{name:<12} {} passages, {:.0} MiB in {:.0}s ({:.1} MB/s), peak RSS {:.0} MiB, peak anon {:.0} MiB",
            r.passages,
            gib(r),
            r.secs,
            mbs(r),
            r.peak_rss_mib,
            r.peak_anon_mib
        );
    }
    println!(
        "exsearch memory, {:.0} MiB corpus vs {mb} MB corpus: peak anon x{:.2}, peak RSS x{:.2}",
        gib(&ours_big),
        ours_big.peak_anon_mib / ours.peak_anon_mib,
        ours_big.peak_rss_mib / ours.peak_rss_mib
    );
    assert!(
        ours_big.passages >= min_passages,
        "query corpus below {min_passages} passages"
    );
}

/// FTS5 needs about a second per question at 1M passages, so the peer
/// answers the first `EXSEARCH_BENCH_PEER_QUERIES` questions (default 100),
/// alternating with exsearch on the same ones; exsearch then also answers
/// all 500 twice for its own distribution.
fn query_phase(data: &Path) {
    let peer_queries = env_u64("EXSEARCH_BENCH_PEER_QUERIES", 100) as usize;
    let library = Library::open(&Home::at(data.join("ours-big"))).expect("open");
    let fts = Fts5::open(&data.join("fts5-big.sqlite"));
    let questions: Vec<String> = hotpotqa().into_iter().map(|q| q.question).collect();
    for q in questions.iter().take(20) {
        library.search(q, 10).expect("warm");
        fts.search(q, 10);
    }
    let (mut ours_ms, mut fts_ms) = (Vec::new(), Vec::new());
    for q in questions.iter().take(peer_queries) {
        let t = Instant::now();
        let hits = library.search(q, 10).expect("search");
        ours_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let rows = fts.search(q, 10);
        fts_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!hits.is_empty() && !rows.is_empty());
    }
    let mut ours_all = Vec::new();
    for q in questions.iter().chain(questions.iter()) {
        let t = Instant::now();
        library.search(q, 10).expect("search");
        ours_all.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for v in [&mut ours_ms, &mut fts_ms, &mut ours_all] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "\n== query latency over {} passages, top 10 with text, HotpotQA questions",
        library.status().map(|s| s.passages).unwrap_or_default()
    );
    println!(
        "{:<34}{:>10}{:>10}{:>10}",
        "", "p50 ms", "p99 ms", "mean ms"
    );
    let row = |name: &str, v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{name:<34}{:>10.2}{:>10.2}{:>10.2}",
            percentile(v, 0.5),
            percentile(v, 0.99),
            mean
        );
    };
    row(
        &format!("exsearch, first {peer_queries} questions"),
        &ours_ms,
    );
    row(&format!("SQLite FTS5, first {peer_queries}"), &fts_ms);
    row("exsearch, all 500 questions x2", &ours_all);
    println!(
        "{:<34}{:>10.1}{:>10.1}",
        "speedup vs FTS5 (same questions)",
        percentile(&fts_ms, 0.5) / percentile(&ours_ms, 0.5),
        percentile(&fts_ms, 0.99) / percentile(&ours_ms, 0.99)
    );
    hybrid_latency(
        data,
        &questions[..peer_queries.min(questions.len())],
        &fts_ms,
    );
}

/// Hybrid search latency at the same size: every passage gets a vector
/// (the real encoder's vectors of a sample of the corpus's passages, reused
/// round the ids: embedding a million passages on this machine's two
/// cores would take hours, and exact search costs the same whatever the
/// vectors say), then BM25 + encoder(query) + a scan of every vector +
/// fusion + fetching the fused hits, question by question.
fn hybrid_latency(data: &Path, questions: &[String], fts_ms: &[f64]) {
    use exsearch_core::dense::VectorStore;
    use exsearch_core::{Embedder, PassageId, Retrieval};
    let home = Home::at(data.join("ours-big"));
    let mut library = Library::open(&home).expect("open");
    let encoder = std::sync::Arc::new(common::Encoder::real());
    let ids = library.check().expect("ids").index_passages;
    let mut store = VectorStore::open(&home.vectors_path()).expect("vector store");
    if store.count().expect("count") != ids {
        store
            .use_encoder(encoder.name(), encoder.dim())
            .expect("encoder");
        let index = exsearch_core::index::PassageIndex::open(&home.index_dir()).expect("index");
        let mut all = index.passage_ids().expect("ids");
        all.sort_unstable();
        let sample: Vec<PassageId> = all.iter().step_by(all.len() / 2000 + 1).copied().collect();
        let texts = index.passage_texts(&sample).expect("texts");
        let texts: Vec<&str> = texts.iter().map(|(_, _, t)| t.as_str()).collect();
        let t = Instant::now();
        let vectors = encoder.embed(&texts).expect("embed");
        eprintln!(
            "embedded {} sample passages in {:.1} s",
            texts.len(),
            t.elapsed().as_secs_f64()
        );
        for chunk in all.chunks(10_000) {
            let ids: Vec<u64> = chunk.iter().map(|id| id.0).collect();
            let rows: Vec<Vec<f32>> = ids
                .iter()
                .map(|id| vectors[*id as usize % vectors.len()].clone())
                .collect();
            store.insert(&ids, &rows).expect("insert");
        }
    }
    library.set_embedder(encoder);
    for q in questions.iter().take(5) {
        library.search_with(q, 10, Retrieval::Hybrid).expect("warm");
    }
    let mut hybrid_ms = Vec::new();
    for q in questions {
        let t = Instant::now();
        let hits = library
            .search_with(q, 10, Retrieval::Hybrid)
            .expect("search");
        hybrid_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(hits.len(), 10);
    }
    hybrid_ms.sort_by(f64::total_cmp);
    println!(
        "{:<34}{:>10.2}{:>10.2}{:>10.2}",
        format!("exsearch hybrid, first {}", questions.len()),
        percentile(&hybrid_ms, 0.5),
        percentile(&hybrid_ms, 0.99),
        hybrid_ms.iter().sum::<f64>() / hybrid_ms.len() as f64
    );
    println!(
        "{:<34}{:>10.1}{:>10.1}",
        "hybrid speedup vs FTS5",
        percentile(fts_ms, 0.5) / percentile(&hybrid_ms, 0.5),
        percentile(fts_ms, 0.99) / percentile(&hybrid_ms, 0.99)
    );
}

fn child(engine: &str, corpus: &Path, out: &Path) -> IndexRun {
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_file(out);
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .args(["--child", engine])
        .arg(corpus)
        .arg(out)
        .output()
        .expect("spawn child");
    assert!(
        output.status.success(),
        "{engine} child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(line.trim()).expect("child json")
}

fn index_ours(corpus: &Path, home: &Path) -> IndexRun {
    let anon = AnonPeak::start();
    let started = Instant::now();
    let mut library = Library::open(&Home::at(home)).expect("open");
    let report = library
        .add_folders(
            &[corpus.to_owned()],
            &SyncOptions::default(),
            &Quiet,
            &CancelToken::new(),
        )
        .expect("index");
    IndexRun {
        secs: started.elapsed().as_secs_f64(),
        bytes: report.bytes_read,
        passages: report.passages_added,
        peak_rss_mib: peak_rss_mib(),
        peak_anon_mib: anon.peak_mib(),
    }
}

/// The peer: read each file, split it with the same splitter, insert every
/// passage into FTS5 in one transaction.
fn index_fts5(corpus: &Path, db: &Path) -> IndexRun {
    let anon = AnonPeak::start();
    let started = Instant::now();
    let mut fts = Fts5::create(db);
    let mut files: Vec<PathBuf> = walk(corpus);
    files.sort();
    let (mut bytes, mut passages) = (0u64, 0u64);
    let tx = fts.conn.transaction().expect("tx");
    {
        let mut stmt = tx
            .prepare("INSERT INTO passages (title, body) VALUES (?1, ?2)")
            .expect("prepare");
        for f in &files {
            let text = std::fs::read_to_string(f).expect("read");
            bytes += text.len() as u64;
            let title = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for chunk in passages::split(&text) {
                stmt.execute(rusqlite::params![title, chunk.text])
                    .expect("insert");
                passages += 1;
            }
        }
    }
    tx.commit().expect("commit");
    IndexRun {
        secs: started.elapsed().as_secs_f64(),
        bytes,
        passages,
        peak_rss_mib: peak_rss_mib(),
        peak_anon_mib: anon.peak_mib(),
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn count_files(dir: &Path) -> usize {
    walk(dir).len()
}

/// Writes `bytes` of English-like text as ~1 MB files under `dir`, unless a
/// previous run already did. Words follow HotpotQA's unigram distribution.
fn generate(dir: &Path, bytes: u64, seed: u64) -> PathBuf {
    let done = dir.join(".complete");
    if done.exists() {
        return dir.to_owned();
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut bag: Vec<String> = Vec::new();
    for q in hotpotqa() {
        for c in q.contexts {
            bag.extend(
                c.text
                    .split_whitespace()
                    .map(|w| w.trim_matches(|ch: char| !ch.is_alphanumeric()).to_owned())
                    .filter(|w| !w.is_empty()),
            );
        }
    }
    let mut rng = 0x2545_F491_4F6C_DD1D ^ (seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let (mut written, mut file_no) = (0u64, 0usize);
    while written < bytes {
        let mut text = String::with_capacity(FILE_BYTES + 1024);
        while text.len() < FILE_BYTES {
            for _ in 0..3 + next(5) {
                let words = 8 + next(17);
                for w in 0..words {
                    let word = &bag[next(bag.len())];
                    if w == 0 {
                        let mut chars = word.chars();
                        if let Some(first) = chars.next() {
                            text.extend(first.to_uppercase());
                            text.push_str(chars.as_str());
                        }
                    } else {
                        text.push_str(word);
                    }
                    text.push(if w + 1 == words { '.' } else { ' ' });
                }
                text.push(' ');
            }
            text.push_str("\n\n");
        }
        let mut f =
            std::fs::File::create(dir.join(format!("doc{file_no:05}.txt"))).expect("create");
        f.write_all(text.as_bytes()).expect("write");
        written += text.len() as u64;
        file_no += 1;
    }
    std::fs::write(&done, b"").expect("mark complete");
    dir.to_owned()
}
