//! `exsearch library watch`: the index follows the folders as files are
//! created, changed, renamed and deleted, without reading unchanged files
//! again; Ctrl-C stops it, and the library it leaves is consistent.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// The file names `search` returns for `query`.
fn found(home: &Path, query: &str) -> Vec<String> {
    search(home, query)
        .iter()
        .filter_map(|h| h["path"].as_str())
        .filter_map(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

/// Waits up to 30 s for `done`, printing what the watch said if it never is.
fn eventually(
    what: &str,
    events: &mpsc::Receiver<Value>,
    seen: &mut Vec<Value>,
    done: impl Fn() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        seen.extend(events.try_iter());
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not seen in 30 s; the watch said {seen:#?}");
}

#[test]
fn the_index_follows_created_changed_renamed_and_deleted_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    // A large file that must never be read again.
    let keep = "The axolotl regrows its limbs. ".repeat(2_000);
    write(&docs.join("keep.md"), &keep);
    ok(
        &home,
        &["library", "add", docs.to_str().expect("utf8"), "--json"],
    );

    let mut child = exsearch(&home)
        .args(["library", "watch", "--debounce-ms", "300", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start watch");
    let (tx, events) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let mut seen = Vec::new();
    let watching = |seen: &Vec<Value>| seen.iter().any(|e| e["event"] == "watching");
    let start = Instant::now();
    while !watching(&seen) && start.elapsed() < Duration::from_secs(30) {
        seen.extend(events.recv_timeout(Duration::from_millis(100)).ok());
    }
    assert!(watching(&seen), "{seen:#?}");

    let new = docs.join("notes/new.txt");
    std::fs::create_dir_all(new.parent().expect("parent")).expect("mkdir");
    std::fs::write(&new, "The quetzal nests in tree hollows.").expect("create");
    eventually("a new file indexed", &events, &mut seen, || {
        found(&home, "quetzal") == ["new.txt"]
    });

    std::fs::write(&new, "The quetzal eats wild avocados in the cloud forest.").expect("change");
    eventually("a changed file re-read", &events, &mut seen, || {
        found(&home, "avocados") == ["new.txt"] && found(&home, "hollows").is_empty()
    });

    let renamed = docs.join("renamed.txt");
    std::fs::rename(&new, &renamed).expect("rename");
    eventually("a renamed file followed", &events, &mut seen, || {
        found(&home, "avocados") == ["renamed.txt"]
    });

    std::fs::remove_file(&renamed).expect("delete");
    eventually("a deleted file dropped", &events, &mut seen, || {
        found(&home, "avocados").is_empty()
    });
    let kept = found(&home, "axolotl");
    assert!(
        !kept.is_empty() && kept.iter().all(|n| n == "keep.md"),
        "{kept:?}"
    );

    // Stopped by Ctrl-C, cleanly.
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "watch exited {exit}");
    seen.extend(events.try_iter());

    // Every sync after a change read only what changed: never keep.md.
    let syncs: Vec<&Value> = seen
        .iter()
        .filter(|e| e["event"] == "synced")
        .map(|e| &e["report"])
        .collect();
    assert!(syncs.len() >= 4, "{seen:#?}");
    for report in &syncs {
        let read = report["bytes_read"].as_u64().expect("bytes_read");
        assert!(
            read < keep.len() as u64,
            "a sync read {read} bytes: {report}"
        );
    }
    assert!(seen.iter().any(|e| e["event"] == "changed"), "{seen:#?}");
    assert!(
        seen.iter().all(|e| e["event"] != "sync_failed"),
        "{seen:#?}"
    );
    let check = json(&home, &["library", "check", "--json"]);
    assert_eq!(check["consistent"], true, "{check}");
}
