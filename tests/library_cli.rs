//! End to end: the `exsearch` binary indexes a folder of every supported
//! format plus every kind of bad file, searches it, and keeps it in sync.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

fn reason_for<'a>(failed: &'a [(String, String)], name: &str) -> &'a str {
    failed
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("{name} is not listed as skipped: {failed:?}"))
}

fn paths(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            let p = h["path"].as_str().expect("path");
            Path::new(p)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn every_format_is_indexed_and_every_bad_file_is_listed_with_its_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    write(
        &docs.join("notes.txt"),
        "The aardvark eats termites at night. It digs burrows.",
    );
    write(
        &docs.join("guide.md"),
        "# Field Guide\n\nThe **pangolin** is covered in scales.\n",
    );
    write(
        &docs.join("page.html"),
        "<html><head><title>Okapi Page</title><script>var okapiscript = 1;</script></head>\
         <body><p>The okapi lives in the Congo rainforest.</p></body></html>",
    );
    write(
        &docs.join("report.docx"),
        docx(&["The narwhal has a long tusk.", "It lives in Arctic waters."]),
    );
    write(
        &docs.join("src/lib.rs"),
        "// quokka: a small marsupial\nfn quokka() {}\n",
    );
    std::fs::copy(
        shared_dataset("real-pdfs").join("004-pdflatex-4-pages_pdflatex-4-pages.pdf"),
        docs.join("four-pages.pdf"),
    )
    .expect("copy pdf");
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../exsearch-core/tests/fixtures");
    for name in ["voyage.epub", "quarterly.pptx", "memo.rtf"] {
        std::fs::copy(fixtures.join(name), docs.join(name)).expect("copy fixture");
    }
    write(
        &docs.join("mail/offsite.eml"),
        "From: Ann <ann@example.org>\r\nSubject: Offsite in Sintra\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nThe offsite moves to Sintra in June.\r\n",
    );
    // Bad input, one of each kind.
    write(&docs.join("binary.txt"), b"GIF89a\x00\x01\x02 not text");
    // Not UTF-8: Windows-1252, detected.
    write(
        &docs.join("latin1.txt"),
        b"Caf\xe9 cr\xe8me br\xfbl\xe9e, \xe0 la fa\xe7on de No\xebl.",
    );
    write(&docs.join("empty.md"), b"");
    write(
        &docs.join("broken.pdf"),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R",
    );
    write(&docs.join("broken.docx"), b"PK\x03\x04 truncated zip");
    write(&docs.join("huge.txt"), "word ".repeat(300_000)); // 1.5 MB > 1 MiB limit
    std::fs::copy(
        shared_dataset("real-pdfs")
            .join("005-libreoffice-writer-password_libreoffice-writer-password.pdf"),
        docs.join("locked.pdf"),
    )
    .expect("copy pdf");
    std::os::unix::fs::symlink(&docs, docs.join("src/loop")).expect("symlink loop");
    std::os::unix::fs::symlink(docs.join("nowhere.txt"), docs.join("dangling.txt"))
        .expect("symlink");
    write(
        &docs.join(".hidden/secret.txt"),
        "hidden files are not indexed",
    );
    // An image is read by OCR (on by default): this one is broken.
    write(&docs.join("photo.jpg"), b"\xff\xd8\xff not a whole JPEG");

    let docs_arg = docs.to_str().expect("utf8 path");
    let out = ok(
        &home,
        &["library", "add", docs_arg, "--max-file-mb", "1", "--json"],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report json");
    assert_eq!(report["indexed"], 11, "{report}");

    let status = status(&home);
    assert_eq!(status["documents"], 11, "{status}");
    assert!(status["passages"].as_u64().expect("passages") >= 6);
    let failed = failed_reasons(&status);
    assert!(reason_for(&failed, "binary.txt").contains("binary"));
    assert!(reason_for(&failed, "empty.md").contains("empty"));
    assert!(reason_for(&failed, "broken.pdf").contains("PDF"));
    assert!(reason_for(&failed, "broken.docx").contains("DOCX"));
    assert!(reason_for(&failed, "huge.txt").contains("too large"));
    assert!(reason_for(&failed, "locked.pdf").contains("password"));
    assert!(reason_for(&failed, "loop").contains("loop"));
    assert!(reason_for(&failed, "dangling.txt").contains("broken symbolic link"));
    assert!(reason_for(&failed, "photo.jpg").contains("image"));
    assert_eq!(failed.len(), 9, "{failed:?}");

    for (query, file) in [
        ("aardvark termites", "notes.txt"),
        ("pangolin scales", "guide.md"),
        ("okapi rainforest", "page.html"),
        ("narwhal tusk", "report.docx"),
        ("quokka marsupial", "lib.rs"),
        ("crème brûlée", "latin1.txt"),
        ("caravel lisbon", "voyage.epub"),
        ("tallinn hiring", "quarterly.pptx"),
        ("zürich relocation", "memo.rtf"),
        ("offsite sintra", "offsite.eml"),
    ] {
        let hits = search(&home, query);
        assert_eq!(
            paths(&hits).first().map(String::as_str),
            Some(file),
            "{query}: {hits:?}"
        );
    }
    // A slide is cited by its number, the book by its own title.
    assert_eq!(search(&home, "tallinn hiring")[0]["page"], 3);
    assert_eq!(
        search(&home, "caravel")[0]["title"],
        "The Voyage of the Esperança"
    );
    assert_eq!(search(&home, "sintra")[0]["title"], "Offsite in Sintra");
    // Legacy text shows as written.
    let creme = search(&home, "brûlée");
    assert!(
        creme[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Café crème brûlée, à la façon de Noël.")),
        "{creme:?}"
    );
    // Titles come from the documents themselves.
    assert_eq!(search(&home, "pangolin")[0]["title"], "Field Guide");
    assert_eq!(search(&home, "okapi")[0]["title"], "Okapi Page");
    // Script content and hidden folders are not indexed.
    assert!(search(&home, "okapiscript").is_empty());
    assert!(search(&home, "hidden secret").is_empty());

    // PDF passages carry their page; other formats have none.
    let pdf_hits: Vec<Value> = search(&home, "page")
        .into_iter()
        .filter(|h| h["path"].as_str().is_some_and(|p| p.ends_with(".pdf")))
        .collect();
    assert!(!pdf_hits.is_empty());
    let mut pages: Vec<u64> = pdf_hits
        .iter()
        .map(|h| h["page"].as_u64().expect("pdf page"))
        .collect();
    pages.sort_unstable();
    pages.dedup();
    assert!(
        pages.len() > 1 && pages.iter().all(|p| (1..=4).contains(p)),
        "{pages:?}"
    );
    let hit = &search(&home, "aardvark")[0];
    assert_eq!(hit["page"], Value::Null);
    for key in ["passage_id", "score", "text", "title"] {
        assert!(!hit[key].is_null(), "{key} missing in {hit}");
    }
    assert!(ok(&home, &["library", "check"]).status.success());
}

#[test]
fn sync_picks_up_changes_without_rereading_unchanged_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    write(
        &docs.join("a.txt"),
        "The original text mentions a lighthouse.",
    );
    write(
        &docs.join("b.txt"),
        "This file will be deleted; it mentions a windmill.",
    );
    write(
        &docs.join("c.txt"),
        "This file is only touched; it mentions a watermill.",
    );
    write(
        &docs.join("d.txt"),
        "This file never changes; it mentions a sawmill.",
    );
    ok(&home, &["library", "add", docs.to_str().expect("utf8")]);
    let before = search(&home, "watermill")[0]["passage_id"].clone();

    write(
        &docs.join("a.txt"),
        "The edited text mentions a lighthouse keeper and a foghorn.",
    );
    std::fs::remove_file(docs.join("b.txt")).expect("rm");
    let c = std::fs::read(docs.join("c.txt")).expect("read");
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&docs.join("c.txt"), c); // new mtime, same bytes
    write(&docs.join("e.txt"), "A new file about a granary.");

    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(report["indexed"], 2, "{report}"); // a (changed), e (new)
    assert_eq!(report["touched"], 1, "{report}"); // c
    assert_eq!(report["removed"], 1, "{report}"); // b
    assert_eq!(report["unchanged"], 1, "{report}"); // d

    assert_eq!(search(&home, "foghorn").len(), 1);
    assert!(search(&home, "windmill").is_empty());
    assert_eq!(search(&home, "granary").len(), 1);
    assert_eq!(
        search(&home, "watermill")[0]["passage_id"],
        before,
        "stable passage ids"
    );
    let again = json(&home, &["library", "sync", "--json"]);
    assert_eq!(
        (again["indexed"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(4)),
        "{again}"
    );

    ok(&home, &["library", "remove", docs.to_str().expect("utf8")]);
    assert!(search(&home, "lighthouse").is_empty());
    assert_eq!(status(&home)["documents"], 0);
    assert!(ok(&home, &["library", "check"]).status.success());
}

#[test]
fn errors_name_the_input_at_fault() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let missing = tmp.path().join("no-such-folder");
    let out = exsearch(&home)
        .args(["library", "add", missing.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-folder"));

    let out = exsearch(&home)
        .args(["library", "remove", "/not/registered"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/not/registered"));
}

#[test]
fn search_highlights_matches_in_plain_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    write(
        &docs.join("a.txt"),
        "Volcanoes erupt when magma rises. A volcano is a mountain.",
    );
    ok(&home, &["library", "add", docs.to_str().expect("utf8")]);
    let out = ok(&home, &["search", "volcano"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[Volcanoes]") && text.contains("[volcano]"),
        "{text}"
    );
}

#[test]
fn a_same_size_rewrite_within_the_timestamp_tick_is_not_missed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    std::fs::create_dir_all(&docs).expect("mkdir");
    let file = docs.join("draft.txt");
    std::fs::write(&file, "alpha version of the draft").expect("write");
    let mtime = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("mtime");
    ok(&home, &["library", "add", docs.to_str().expect("utf8")]);
    // Same size, same mtime: only the content says it changed.
    std::fs::write(&file, "gamma version of the draft").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    ok(&home, &["library", "sync"]);
    assert_eq!(search(&home, "gamma").len(), 1);
    assert!(search(&home, "alpha").is_empty());
}

#[test]
fn documents_behind_an_unreachable_subfolder_are_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs, drive) = (
        tmp.path().join("home"),
        tmp.path().join("docs"),
        tmp.path().join("drive"),
    );
    write(&drive.join("thesis.txt"), "The thesis studies glaciers.");
    write(&docs.join("notes.txt"), "Notes about fjords.");
    std::os::unix::fs::symlink(&drive, docs.join("usb")).expect("symlink");
    ok(&home, &["library", "add", docs.to_str().expect("utf8")]);
    assert_eq!(search(&home, "glaciers").len(), 1);

    // The drive is unplugged: its files are unknown, not deleted.
    std::fs::rename(&drive, tmp.path().join("elsewhere")).expect("unplug");
    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(report["removed"], 0, "{report}");
    assert_eq!(search(&home, "glaciers").len(), 1);
    let unplugged = status(&home);
    assert!(failed_reasons(&unplugged)
        .iter()
        .any(|(name, reason)| name == "usb" && reason.contains("broken symbolic link")));

    // Plugged back in: nothing to re-read, and the failure is gone.
    std::fs::rename(tmp.path().join("elsewhere"), &drive).expect("plug");
    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(
        (report["indexed"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(2)),
        "{report}"
    );
    assert!(failed_reasons(&status(&home)).is_empty());
}

#[test]
fn a_file_that_cannot_be_reread_keeps_its_indexed_version_and_is_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    write(
        &docs.join("log.txt"),
        "The first entry mentions an albatross.",
    );
    ok(
        &home,
        &[
            "library",
            "add",
            docs.to_str().expect("utf8"),
            "--max-file-mb",
            "1",
            // 2 MB of passages to embed would take minutes; not the point.
            "--retrieval",
            "bm25",
        ],
    );
    write(&docs.join("log.txt"), "albatross ".repeat(200_000)); // 2 MB
    ok(&home, &["library", "sync"]);
    let stale = status(&home);
    let failed = failed_reasons(&stale);
    let reason = reason_for(&failed, "log.txt");
    assert!(
        reason.contains("too large") && reason.contains("indexed version is kept"),
        "{reason}"
    );
    assert_eq!(stale["documents"], 1, "{stale}");
    assert!(search(&home, "albatross")[0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("first entry")));
    // Raising the limit retries it without any change to the file.
    ok(&home, &["library", "sync", "--max-file-mb", "4"]);
    assert!(failed_reasons(&status(&home)).is_empty());
    assert!(search(&home, "entry").is_empty());
}

#[test]
fn hybrid_search_finds_passages_by_meaning_and_follows_the_library() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    write(
        &docs.join("okapi.txt"),
        "The okapi is a giraffid mammal native to the rainforests of the Democratic Republic of the Congo.",
    );
    write(
        &docs.join("paris.txt"),
        "Paris is the capital and most populous city of France, on the Seine.",
    );
    write(
        &docs.join("rust.txt"),
        "Rust is a systems programming language focused on memory safety and speed.",
    );
    let docs_arg = docs.to_str().expect("utf8");
    let report = json(&home, &["library", "add", docs_arg, "--json"]);
    assert_eq!(report["embedding"]["embedded"], 3, "{report}");
    assert_eq!(report["embedding"]["encoder"], "all-MiniLM-L6-v2");
    let s = status(&home);
    assert_eq!(
        (&s["retrieval"], &s["vectors"]),
        (&json!("hybrid"), &json!(3)),
        "{s}"
    );

    // None of the question's words is in the passage: BM25 finds nothing,
    // hybrid (the default) finds it first by meaning.
    let question = "which animal is related to giraffes";
    assert!(search(&home, question).is_empty());
    let hits = json(&home, &["search", question, "-k", "3", "--json"]);
    let first = &hits[0];
    assert!(
        first["path"].as_str().unwrap_or("").ends_with("okapi.txt"),
        "{hits}"
    );
    let score = first["score"].as_f64().unwrap_or(0.0);
    assert!(score > 0.0 && score <= 1.0, "a fused score: {score}");

    // A deleted file's vector goes with its passage at the next sync.
    std::fs::remove_file(docs.join("paris.txt")).expect("rm");
    let report = json(&home, &["library", "sync", "--json"]);
    assert_eq!(report["embedding"]["dropped"], 1, "{report}");
    assert_eq!(status(&home)["vectors"], 2);

    // BM25 alone is saved with the library: syncs stop embedding, and
    // searches rank by words unless one asks for hybrid.
    write(
        &docs.join("tea.txt"),
        "Green tea is made from the unoxidized leaves of Camellia sinensis.",
    );
    let report = json(&home, &["library", "sync", "--retrieval", "bm25", "--json"]);
    assert!(report["embedding"].is_null(), "{report}");
    let s = status(&home);
    assert_eq!(
        (&s["retrieval"], &s["vectors"]),
        (&json!("bm25"), &json!(2))
    );
    let plain = json(&home, &["search", question, "--json"]);
    assert_eq!(plain, json!([]));
    let hybrid = json(
        &home,
        &["search", question, "--retrieval", "hybrid", "--json"],
    );
    assert!(
        hybrid[0]["path"]
            .as_str()
            .unwrap_or("")
            .ends_with("okapi.txt"),
        "{hybrid}"
    );
}

#[test]
fn scans_are_searchable_through_ocr_and_the_switch_is_saved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../exsearch-core/tests/fixtures");
    for name in ["scan.pdf", "receipt.png", "fax.tiff"] {
        write(
            &docs.join(name),
            std::fs::read(fixtures.join(name)).expect("fixture"),
        );
    }
    write(&docs.join("notes.txt"), "Plain notes about the harbour.");
    let docs_arg = docs.to_str().expect("utf8 path");

    // Off: the scan has no text layer, and images are not looked at.
    ok(
        &home,
        &[
            "library",
            "add",
            docs_arg,
            "--ocr",
            "off",
            "--retrieval",
            "bm25",
        ],
    );
    let off = status(&home);
    assert_eq!(off["ocr"], false, "{off}");
    assert_eq!(off["documents"], 1, "{off}");
    let failed = failed_reasons(&off);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        reason_for(&failed, "scan.pdf").contains("OCR"),
        "{failed:?}"
    );
    assert!(search(&home, "salted herring").is_empty());

    // On (and saved): the next sync reads what it passed over, unchanged
    // files included.
    ok(&home, &["library", "sync", "--ocr", "on"]);
    let on = status(&home);
    assert_eq!(on["ocr"], true, "{on}");
    assert_eq!(on["documents"], 4, "{on}");
    assert!(failed_reasons(&on).is_empty(), "{on}");
    let herring = search(&home, "salted herring");
    assert_eq!(paths(&herring)[0], "scan.pdf", "{herring:?}");
    assert_eq!(herring[0]["page"], 2);
    assert_eq!(
        herring[0]["ocr"], true,
        "OCR passages are marked: {herring:?}"
    );
    let receipt = search(&home, "fountain pen");
    assert_eq!(paths(&receipt)[0], "receipt.png", "{receipt:?}");
    let ferry = search(&home, "ferry timetable");
    assert_eq!(paths(&ferry)[0], "fax.tiff", "{ferry:?}");
    assert_eq!(ferry[0]["page"], 2, "a TIFF's pages are cited");
    let notes = search(&home, "harbour notes");
    assert_eq!(paths(&notes)[0], "notes.txt");
    assert!(
        notes[0].get("ocr").is_none(),
        "text passages are not marked"
    );

    let out = ok(&home, &["library", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OCR: on"), "{text}");
    let hits = ok(&home, &["search", "salted herring", "--retrieval", "bm25"]);
    assert!(String::from_utf8_lossy(&hits.stdout).contains("read by OCR"));
    assert_eq!(
        String::from_utf8_lossy(&ok(&home, &["library", "check"]).stdout)
            .trim_end()
            .lines()
            .last(),
        Some("consistent")
    );
}

#[test]
fn a_mailbox_without_an_extension_is_read_and_other_extensionless_files_are_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (home, docs) = (tmp.path().join("home"), tmp.path().join("docs"));
    // Thunderbird keeps a folder's mail in a file named after the folder.
    write(
        &docs.join("Mail/Inbox"),
        "From - Thu Mar 05 10:00:00 2026\nX-Mozilla-Status: 0001\nFrom: Ann <ann@example.org>\n\
         Subject: Lighthouse rota\n\nThe keeper of the Fastnet light changes on Sunday.\n\n\
         From - Fri Mar 06 09:00:00 2026\nFrom: Bo <bo@example.org>\nSubject: Re: rota\n\n\
         Sunday suits the relief crew.\n",
    );
    write(&docs.join("Mail/Inbox.msf"), "// Mork index, not mail");
    write(
        &docs.join("LICENSE"),
        "From the authors, with thanks.\n\nPermission is granted.",
    );
    ok(
        &home,
        &[
            "library",
            "add",
            docs.to_str().expect("utf8"),
            "--retrieval",
            "bm25",
        ],
    );
    let status = status(&home);
    assert_eq!(status["documents"], 1, "{status}");
    let hits = search(&home, "Fastnet keeper");
    assert_eq!(paths(&hits), ["Inbox"], "{hits:?}");
    // A mailbox is titled by its folder; its messages are its sections.
    assert_eq!(hits[0]["title"], "Inbox");
    assert!(
        hits[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Lighthouse rota")),
        "{hits:?}"
    );
    assert!(search(&home, "permission granted").is_empty());
}
