//! The library API as the desktop shell will drive it: events in order with
//! consistent counts, cancellation through the token, search results with
//! the fields a citation needs.

use std::sync::Mutex;

use exsearch_core::{CancelToken, Home, Library, LibraryEvent, SyncOptions};

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn events_arrive_in_order_with_consistent_counts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    for i in 0..40 {
        let body = format!("Report {i} on the harbour. ").repeat(200);
        write(&docs.join(format!("r{i:02}.txt")), &body);
    }
    write(&docs.join("bad.txt"), "\u{0}binary");
    let events = Mutex::new(Vec::new());
    let sink = |e: LibraryEvent| events.lock().expect("lock").push(e);
    let mut library = Library::open(&Home::at(tmp.path().join("home"))).expect("open");
    let report = library
        .add_folders(&[docs], &SyncOptions::default(), &sink, &CancelToken::new())
        .expect("add");
    assert_eq!((report.indexed, report.failed), (40, 1));

    let events = events.into_inner().expect("lock");
    let LibraryEvent::Started(first) = &events[0] else {
        panic!("first event is {:?}", events[0]);
    };
    assert_eq!(first.files_total, 41);
    let progress: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            LibraryEvent::Progress(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(progress
        .windows(2)
        .all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].files_done <= w[1].files_done));
    let last = progress.last().expect("a final progress event");
    assert_eq!((last.files_done, last.files_total), (41, 41));
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.passages, report.passages_added);
    let skipped: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            LibraryEvent::Skipped { path, reason } => Some((path, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].0.ends_with("bad.txt") && skipped[0].1.contains("binary"));

    let hits = library.search("harbour report", 3).expect("search");
    assert_eq!(hits.len(), 3);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let hit = &hits[0];
    let source = std::fs::read_to_string(&hit.path).expect("read source");
    let cited: String = source
        .chars()
        .skip(hit.char_start)
        .take(hit.char_end - hit.char_start)
        .collect();
    assert_eq!(
        cited.split_whitespace().collect::<Vec<_>>().join(" "),
        hit.text,
        "offsets point at the passage"
    );
    assert!(!hit.highlights.is_empty());
}

#[test]
fn a_cancelled_sync_keeps_nothing_half_done() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    for i in 0..200 {
        write(
            &docs.join(format!("n{i:03}.txt")),
            &format!("note {i} about tides. ").repeat(100),
        );
    }
    let cancel = CancelToken::new();
    let to_cancel = cancel.clone();
    // Cancel as soon as the first file is processed.
    let sink = move |e: LibraryEvent| {
        if matches!(&e, LibraryEvent::Progress(p) if p.files_done > 0) {
            to_cancel.cancel();
        }
    };
    let mut library = Library::open(&Home::at(tmp.path().join("home"))).expect("open");
    let options = SyncOptions {
        threads: 1,
        ..SyncOptions::default()
    };
    let report = library
        .add_folders(&[docs], &options, &sink, &cancel)
        .expect("add");
    assert!(report.cancelled);
    assert!(report.indexed < 200, "{report:?}");
    let check = library.check().expect("check");
    assert!(check.consistent, "{check:?}");
    assert_eq!(library.status().expect("status").documents, report.indexed);

    let report = library
        .sync(
            &SyncOptions::default(),
            &exsearch_core::Quiet,
            &CancelToken::new(),
        )
        .expect("resume");
    assert!(!report.cancelled);
    assert_eq!(library.status().expect("status").documents, 200);
}

#[test]
fn each_scanned_page_is_announced_before_ocr_reads_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("scan.pdf"), docs.join("scan.pdf")).expect("copy");
    let events = Mutex::new(Vec::new());
    let sink = |e: LibraryEvent| events.lock().expect("lock").push(e);
    let mut library = Library::open(&Home::at(tmp.path().join("home"))).expect("open");
    let report = library
        .add_folders(&[docs], &SyncOptions::default(), &sink, &CancelToken::new())
        .expect("add");
    assert_eq!(report.indexed, 1, "{report:?}");
    let pages: Vec<(u32, u32)> = events
        .into_inner()
        .expect("lock")
        .into_iter()
        .filter_map(|e| match e {
            LibraryEvent::Ocr { path, page, pages } if path.ends_with("scan.pdf") => {
                Some((page, pages))
            }
            _ => None,
        })
        .collect();
    assert_eq!(pages, [(1, 3), (2, 3), (3, 3)]);
}
