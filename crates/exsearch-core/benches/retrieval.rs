//! Retrieval quality on HotpotQA (dev, 500 questions): all 4,858 distinct
//! paragraphs pooled into one library, one document per paragraph (a file
//! holding its title, a blank line, its text), each question used as the query. Reports recall@2/5/10 of the
//! gold supporting paragraphs for exsearch (the real pipeline: files on
//! disk, `Library::add_folders`, `Library::search`) and, side by side, for
//! SQLite FTS5's BM25 over the same paragraphs.
//!
//! Run: `cargo bench -p exsearch-core --bench retrieval`

mod common;

use std::collections::{HashMap, HashSet};

use common::{hotpotqa, Fts5};
use exsearch_core::{CancelToken, Home, Library, Quiet, SyncOptions};

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
    // Files are numbered: titles may hold '/' or start with '.'.
    let titles: Vec<&String> = paragraphs.keys().collect();
    let mut title_of_path: HashMap<String, &str> = HashMap::new();
    for (i, title) in titles.iter().enumerate() {
        let path = docs.join(format!("{i:05}.txt"));
        std::fs::write(&path, format!("{title}\n\n{}", paragraphs[*title]))
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

    let mut ours = [0.0f64; KS.len()];
    let mut peer = [0.0f64; KS.len()];
    let mut gold_total = 0.0;
    for q in &questions {
        let gold: HashSet<&str> = q
            .contexts
            .iter()
            .filter(|c| c.supporting)
            .map(|c| c.title.as_str())
            .collect();
        gold_total += gold.len() as f64;
        // Documents in rank order (a long paragraph may yield several passages).
        let mut ranked: Vec<&str> = Vec::new();
        for hit in library.search(&q.question, 40).expect("search") {
            let title = title_of_path[&hit.path];
            if !ranked.contains(&title) {
                ranked.push(title);
            }
        }
        let peer_ranked: Vec<&str> = fts
            .search(&q.question, 10)
            .into_iter()
            .map(|(id, _)| titles[id as usize].as_str())
            .collect();
        for (i, &k) in KS.iter().enumerate() {
            ours[i] += ranked.iter().take(k).filter(|t| gold.contains(*t)).count() as f64;
            peer[i] += peer_ranked
                .iter()
                .take(k)
                .filter(|t| gold.contains(*t))
                .count() as f64;
        }
    }
    println!(
        "\nrecall of supporting paragraphs (HotpotQA dev 500, {} gold)",
        gold_total
    );
    println!("{:<24}{:>10}{:>10}{:>10}", "", "@2", "@5", "@10");
    let row = |name: &str, r: &[f64; 3]| {
        println!(
            "{name:<24}{:>10.3}{:>10.3}{:>10.3}",
            r[0] / gold_total,
            r[1] / gold_total,
            r[2] / gold_total
        );
    };
    row("exsearch (tantivy)", &ours);
    row("SQLite FTS5 bm25", &peer);
    println!(
        "{:<24}{:>10.3}{:>10.3}{:>10.3}",
        "ratio",
        ours[0] / peer[0],
        ours[1] / peer[1],
        ours[2] / peer[2]
    );
    println!("reference plain BM25      0.57      0.75      0.92");
}
