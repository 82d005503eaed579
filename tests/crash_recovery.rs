//! `kill -9` at any moment of indexing leaves a catalog and index that open
//! cleanly and agree; the next sync finishes the work. Also Ctrl-C (SIGINT):
//! what was committed stays, and a rerun continues.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const FILES: usize = 1500;

/// `library add DOCS` with BM25 alone: the passage index is what is
/// crashed here, and embedding 1,500 files would add minutes per run.
fn add(home: &Path, docs: &Path) -> Command {
    let mut cmd = exsearch(home);
    cmd.args([
        "library",
        "add",
        docs.to_str().expect("utf8"),
        "--retrieval",
        "bm25",
    ]);
    cmd
}

fn spawn_add(home: &Path, docs: &Path) -> Child {
    add(home, docs)
        .args(["--threads", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exsearch")
}

/// After a crash: opening repairs, `check` finds catalog and index in
/// agreement, and running the command again (an `add` of a registered
/// folder is a sync; a kill in the first milliseconds may come before the
/// folder was registered) keeps what was committed (not re-read) and
/// indexes every other file.
fn assert_recovers(home: &Path, docs: &Path, label: &str) {
    let check = json(home, &["library", "check", "--json"]);
    assert_eq!(check["consistent"], true, "{label}: {check}");
    let settled = status(home)["documents"].as_u64().expect("documents");
    assert!(
        settled < FILES as u64,
        "{label}: the crash came after the work was done"
    );
    let docs = docs.to_str().expect("utf8");
    let report = json(
        home,
        &["library", "add", docs, "--json", "--retrieval", "bm25"],
    );
    assert_eq!(
        report["unchanged"].as_u64(),
        Some(settled),
        "{label}: {report}"
    );
    let check = json(home, &["library", "check", "--json"]);
    assert_eq!(check["consistent"], true, "{label}: {check}");
    let status = status(home);
    assert_eq!(status["documents"], FILES, "{label}: {status}");
    assert_eq!(status["pending"], 0, "{label}: {status}");
    for marker in [0, FILES / 2, FILES - 1] {
        let hits = search(home, &format!("marker{marker}"));
        assert_eq!(
            hits.len(),
            1,
            "{label}: marker{marker} found {} times",
            hits.len()
        );
    }
}

#[test]
fn kill_9_at_any_moment_then_sync_completes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    prose_corpus(&docs, FILES, 3000);
    for (i, delay_ms) in [30u64, 150, 400, 900, 1600].into_iter().enumerate() {
        let home = tmp.path().join(format!("home{i}"));
        let mut child = spawn_add(&home, &docs);
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
        let exit = child.wait().expect("reap");
        assert_eq!(
            exit.signal(),
            Some(9),
            "finished before the kill at {delay_ms} ms"
        );
        assert_recovers(&home, &docs, &format!("killed after {delay_ms} ms"));
    }
}

#[test]
fn crash_between_the_two_commits_is_repaired() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    prose_corpus(&docs, FILES, 3000);
    for point in ["after_catalog_commit", "after_index_commit"] {
        let home = tmp.path().join(point);
        let out = add(&home, &docs)
            .env("EXSEARCH_CRASH_AT", point)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("EXSEARCH_CRASH_AT={point}: aborting")),
            "{point}: the crash point was not reached: {stderr}"
        );
        // Before any exsearch opens it again: the crash left rows marked
        // dirty, which is what recovery keys on.
        let catalog = rusqlite::Connection::open(home.join("catalog.sqlite")).expect("catalog");
        let dirty: i64 = catalog
            .query_row("SELECT COUNT(*) FROM documents WHERE dirty = 1", [], |r| {
                r.get(0)
            })
            .expect("count dirty");
        drop(catalog);
        assert!(dirty > 0, "{point}: no dirty rows");
        assert_recovers(&home, &docs, point);
    }
}

#[test]
fn a_full_disk_at_the_index_commit_is_named_and_the_next_sync_completes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    prose_corpus(&docs, FILES, 3000);
    let home = tmp.path().join("home");
    let out = add(&home, &docs)
        .env("EXSEARCH_FAIL_AT", "index_commit")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("index") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_recovers(&home, &docs, "a full disk at the index commit");
}

#[test]
fn ctrl_c_keeps_committed_work_and_a_rerun_continues() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    prose_corpus(&docs, FILES, 3000);
    let mut child = spawn_add(&home, &docs);
    // Interrupt once progress lines show files processed.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            panic!("exsearch ended before any progress:\n{log}");
        }
        log.push_str(&line);
        if line.starts_with("progress: ") && !line.starts_with("progress: 0/") {
            break;
        }
    }
    assert_eq!(send_signal(child.id() as i32, "INT"), 0);
    stderr.read_to_string(&mut log).expect("read stderr");
    let exit = child.wait().expect("wait");
    assert_eq!(exit.code(), Some(130), "{log}");
    assert!(log.contains("cancelling"), "{log}");
    let status = status(&home);
    let indexed = status["documents"].as_u64().expect("documents");
    assert!(indexed > 0 && indexed < FILES as u64, "{status}");
    assert_eq!(
        json(&home, &["library", "check", "--json"])["consistent"],
        true
    );

    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(
        report["unchanged"].as_u64(),
        Some(indexed),
        "committed files are not re-read: {report}"
    );
    assert_eq!(status_documents(&home), FILES as u64);
}

fn status_documents(home: &Path) -> u64 {
    status(home)["documents"].as_u64().expect("documents")
}

/// Signals a process with the system's `kill` command.
fn send_signal(pid: i32, signal: &str) -> i32 {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}

#[test]
fn kill_9_while_embedding_keeps_every_stored_batch_and_the_next_sync_finishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    // About 600 passages: several seconds of embedding, 128 a batch.
    prose_corpus(&docs, 60, 1000);
    let mut child = exsearch(&home)
        .args(["library", "add", docs.to_str().expect("utf8")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn exsearch");
    // Kill once a batch of vectors is reported stored.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("read stderr") == 0 {
            panic!("exsearch ended before embedding anything:\n{log}");
        }
        log.push_str(&line);
        if line.contains(" passages embedded") && !line.starts_with("progress: 0/") {
            break;
        }
    }
    assert_eq!(send_signal(child.id() as i32, "KILL"), 0);
    let exit = child.wait().expect("wait");
    assert_eq!(exit.signal(), Some(9), "finished before the kill:\n{log}");

    let check = json(&home, &["library", "check", "--json"]);
    assert_eq!(check["consistent"], true, "{check}");
    let before = status(&home);
    let (passages, kept) = (
        before["passages"].as_u64().expect("passages"),
        before["vectors"].as_u64().expect("vectors"),
    );
    assert!(
        kept > 0 && kept < passages && kept % 128 == 0,
        "whole batches stay: {kept} of {passages}"
    );
    // The next sync reads no file again and embeds only what is missing.
    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(report["indexed"], 0, "{report}");
    assert_eq!(report["embedding"]["embedded"], passages - kept, "{report}");
    assert_eq!(status(&home)["vectors"], passages);
}
