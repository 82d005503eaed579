//! Retrieval quality on HotpotQA (dev, 500 questions): all 4,858 distinct
//! paragraphs pooled into one library, one document per paragraph (a
//! Markdown file headed by its title, as `exsearch eval
//! --corpus-from-contexts` writes them), each question used as the
//! query. Reports recall@2/5/10 of the gold supporting paragraphs for
//! exsearch (the real pipeline: files on disk, `Library::add_folders`,
//! `Library::search`) with BM25 alone and hybrid (BM25 fused with the real
//! all-MiniLM-L6-v2, fetched from the package index into the cache), and,
//! side by side, for SQLite FTS5's BM25 over the same paragraphs; then the
//! time embedding took, and query latencies.
//!
//! Run: `cargo bench -p exsearch-core --bench retrieval`

mod common;

use std::collections::{HashMap, HashSet};

use std::sync::Arc;
use std::time::Instant;

use common::{hotpotqa, Encoder, Fts5};
use exsearch_core::{CancelToken, Home, Library, Quiet, Retrieval, SyncOptions};

const KS: [usize; 3] = [2, 5, 10];

fn main() {
    let questions = hotpotqa();
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("paragraphs");
    std::fs::create_dir(&docs).expect("mkdir");
    let mut paragraphs: HashMap<String, String> = HashMap::new();
    for q in &questions {
        for c in &q.contexts {
            paragraphs
                .entry(c.title.clone())
                .or_insert_with(|| c.text.clone());
        }
    }
    // Files are numbered (titles may hold '/' or start with '.'), and each
    // is a Markdown page headed by its title, as eval's corpus is and as a
    // person's notes are: the title is the document's, so every passage of
    // it carries the title, as FTS5's rows below (title and paragraph) do.
    let titles: Vec<&String> = paragraphs.keys().collect();
    let mut title_of_path: HashMap<String, &str> = HashMap::new();
    for (i, title) in titles.iter().enumerate() {
        let path = docs.join(format!("{i:05}.md"));
        std::fs::write(&path, format!("# {title}\n\n{}", paragraphs[*title]))
            .expect("write paragraph");
        let path = path.canonicalize().expect("canonical");
        title_of_path.insert(path.display().to_string(), title.as_str());
    }
    println!(
        "corpus: {} paragraphs, {} questions",
        paragraphs.len(),
        questions.len()
    );

    let mut library = Library::open(&Home::at(tmp.path().join("home"))).expect("open library");
    let report = library
        .add_folders(
            std::slice::from_ref(&docs),
            &SyncOptions::default(),
            &Quiet,
            &CancelToken::new(),
        )
        .expect("index");
    assert_eq!(
        report.indexed as usize,
        paragraphs.len(),
        "every paragraph indexed"
    );

    let mut fts = Fts5::create(&tmp.path().join("fts5.sqlite"));
    let rows: Vec<(i64, String)> = titles
        .iter()
        .enumerate()
        .map(|(i, t)| (i as i64, format!("{t} {}", paragraphs[*t])))
        .collect();
    fts.insert_all(rows.iter().map(|(i, body)| (*i, "", body.as_str())));

    let bytes: u64 = paragraphs
        .iter()
        .map(|(t, p)| (t.len() + p.len() + 2) as u64)
        .sum();
    library.set_embedder(Arc::new(Encoder::real()));
    let t = Instant::now();
    let embedded = library
        .embed(&Quiet, &CancelToken::new())
        .expect("embedding");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "embedded {} passages in {secs:.1} s: {:.0} passages/s, {:.2} MB/s of text",
        embedded.embedded,
        embedded.embedded as f64 / secs,
        bytes as f64 / 1e6 / secs
    );

    let gold_of = |q: &common::Question| -> HashSet<String> {
        q.contexts
            .iter()
            .filter(|c| c.supporting)
            .map(|c| c.title.clone())
            .collect()
    };
    let gold_total: f64 = questions.iter().map(|q| gold_of(q).len() as f64).sum();
    let recall = |rank: &dyn Fn(&str) -> Vec<String>| -> ([f64; 3], Vec<f64>) {
        let mut found = [0.0f64; KS.len()];
        let mut millis = Vec::new();
        for q in &questions {
            let gold = gold_of(q);
            let t = Instant::now();
            let ranked = rank(&q.question);
            millis.push(t.elapsed().as_secs_f64() * 1e3);
            for (i, &k) in KS.iter().enumerate() {
                found[i] += ranked.iter().take(k).filter(|t| gold.contains(*t)).count() as f64;
            }
        }
        millis.sort_by(f64::total_cmp);
        (found, millis)
    };
    // Documents in rank order (a long paragraph may yield several passages).
    let ours = |retrieval: Retrieval| {
        let library = &library;
        let title_of_path = &title_of_path;
        move |query: &str| -> Vec<String> {
            let mut ranked: Vec<String> = Vec::new();
            for hit in library.search_with(query, 40, retrieval).expect("search") {
                let title = title_of_path[&hit.path].to_string();
                if !ranked.contains(&title) {
                    ranked.push(title);
                }
            }
            ranked
        }
    };
    let peer = |query: &str| -> Vec<String> {
        fts.search(query, 10)
            .into_iter()
            .map(|(id, _)| titles[id as usize].clone())
            .collect()
    };
    let bm25 = recall(&ours(Retrieval::Bm25));
    let hybrid = recall(&ours(Retrieval::Hybrid));
    let fts5 = recall(&peer);

    println!("\nrecall of supporting paragraphs (HotpotQA dev 500, {gold_total} gold)");
    println!(
        "{:<28}{:>8}{:>8}{:>8}{:>12}{:>12}",
        "", "@2", "@5", "@10", "p50 ms", "p99 ms"
    );
    let row = |name: &str, (r, ms): &([f64; 3], Vec<f64>)| {
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:<28}{:>8.3}{:>8.3}{:>8.3}{:>12.2}{:>12.2}",
            r[0] / gold_total,
            r[1] / gold_total,
            r[2] / gold_total,
            pct(0.5),
            pct(0.99)
        );
    };
    row("exsearch hybrid (MiniLM)", &hybrid);
    row("exsearch bm25 (tantivy)", &bm25);
    row("SQLite FTS5 bm25", &fts5);
    println!(
        "{:<28}{:>8.3}{:>8.3}{:>8.3}",
        "ratio hybrid / FTS5",
        hybrid.0[0] / fts5.0[0],
        hybrid.0[1] / fts5.0[1],
        hybrid.0[2] / fts5.0[2]
    );
    println!("reference plain BM25          0.57    0.75    0.92");
}
