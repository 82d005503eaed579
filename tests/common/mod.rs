//! Helpers shared by the end-to-end tests: run the real `exsearch` binary
//! against a temporary home, and write fixture documents.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

pub fn exsearch(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_exsearch"));
    cmd.env("EXSEARCH_HOME", home)
        .env("NO_COLOR", "1")
        .env_remove("EXSEARCH_CRASH_AT");
    cmd
}

/// Runs `exsearch ARGS` and returns its output, failing the test with
/// stderr if it did not succeed.
pub fn ok(home: &Path, args: &[&str]) -> Output {
    let out = exsearch(home).args(args).output().expect("run exsearch");
    assert!(
        out.status.success(),
        "exsearch {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn json(home: &Path, args: &[&str]) -> Value {
    let out = ok(home, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exsearch {args:?} printed invalid JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn status(home: &Path) -> Value {
    json(home, &["library", "status", "--json"])
}

/// BM25 hits: what the index holds, word for word (hybrid search also
/// returns passages near in meaning, so it can never come back empty).
pub fn search(home: &Path, query: &str) -> Vec<Value> {
    match json(
        home,
        &["search", query, "-k", "10", "--json", "--retrieval", "bm25"],
    ) {
        Value::Array(hits) => hits,
        other => panic!("search printed {other}"),
    }
}

/// The reasons `status` lists, keyed by file name.
pub fn failed_reasons(status: &Value) -> Vec<(String, String)> {
    status["failed"]
        .as_array()
        .expect("failed is a list")
        .iter()
        .map(|f| {
            let path = f["path"].as_str().expect("path");
            let name = Path::new(path)
                .file_name()
                .map_or(path.to_owned(), |n| n.to_string_lossy().into_owned());
            (name, f["reason"].as_str().expect("reason").to_owned())
        })
        .collect()
}

/// Writes a fixture file dated a minute ago: files written within a
/// timestamp tick of a sync are re-checked by content ("racy clean"), and
/// these tests want to see the size-and-mtime fast path.
pub fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, content).expect("write fixture");
    let minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(minute_ago))
        .expect("set mtime");
}

/// A minimal but valid DOCX with the given paragraphs.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        let body: String = paragraphs
            .iter()
            .map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>"))
            .collect();
        zip.start_file("word/document.xml", opts).expect("zip");
        write!(
            zip,
            r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        )
        .expect("zip");
        zip.finish().expect("zip");
    }
    buf.into_inner()
}

/// `../shared/datasets/NAME` beside the repository: the project's shared
/// test data (CI has it; see README).
pub fn shared_dataset(name: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared/datasets").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: the tests need the project's shared datasets beside the repository",
        dir.display()
    );
    dir.canonicalize().expect("canonical")
}

/// Deterministic English-like prose: `files` files of about `words` words,
/// each with a unique marker word `markerN` so tests can find every file.
pub fn prose_corpus(dir: &Path, files: usize, words: usize) {
    const VOCAB: &[&str] = &[
        "river", "mountain", "library", "engine", "history", "theory", "garden", "signal",
        "market", "winter", "harbor", "physics", "novel", "castle", "protein", "energy", "village",
        "orbit", "language", "network", "painting", "forest", "island", "treaty", "battle",
        "symphony",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for f in 0..files {
        let mut text = format!("Document marker{f} begins here. ");
        for w in 0..words {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(VOCAB[(state % VOCAB.len() as u64) as usize]);
            text.push(if w % 17 == 16 { '.' } else { ' ' });
            if w % 17 == 16 {
                text.push_str(" The ");
            }
        }
        write(&dir.join(format!("doc{f:05}.txt")), text);
    }
}

/// `n` moments to kill a run at, as shares of an unbroken run (of its
/// length, or of its recorded progress): one drawn at random in each of
/// `n` equal slices of `from..to`, so every run of the suite tries new
/// moments and together they span the run. The seed comes from
/// `EXSEARCH_KILL_SEED` or the clock; failures print it, and setting it
/// replays the same moments.
pub fn kill_moments(n: usize, from: f64, to: f64) -> (u64, Vec<f64>) {
    let seed = std::env::var("EXSEARCH_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    // SplitMix64: enough randomness for choosing moments.
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    };
    let slice = (to - from) / n as f64;
    let moments = (0..n).map(|i| from + slice * (i as f64 + next())).collect();
    (seed, moments)
}
