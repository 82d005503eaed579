//! The shared collection of 32 real-world PDFs from many producers: every
//! unencrypted file is processed (text extracted where there is a text
//! layer), the password-protected one is listed with its reason.

mod common;

use common::*;

#[test]
fn real_world_pdfs_are_all_processed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    // Only the PDFs: the dataset folder also holds its README and metadata.
    let pdfs = tmp.path().join("pdfs");
    std::fs::create_dir(&pdfs).expect("mkdir");
    let mut total = 0;
    for entry in std::fs::read_dir(shared_dataset("real-pdfs")).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "pdf") {
            std::fs::copy(&path, pdfs.join(path.file_name().expect("name"))).expect("copy");
            total += 1;
        }
    }
    assert!(total >= 31, "{total} PDFs");
    // What is tested is the text; embedding thousands of pages is not.
    ok(
        &home,
        &[
            "library",
            "add",
            pdfs.to_str().expect("utf8"),
            "--retrieval",
            "bm25",
        ],
    );
    let status = status(&home);
    let failed = failed_reasons(&status);
    let indexed = status["documents"].as_u64().expect("documents") as usize;
    assert_eq!(
        indexed + failed.len(),
        total,
        "every file is accounted for: {status}"
    );

    let locked: Vec<_> = failed
        .iter()
        .filter(|(_, r)| r.contains("password"))
        .collect();
    assert_eq!(locked.len(), 1, "{failed:?}");
    assert!(locked[0].0.contains("password"));
    // The only other acceptable reasons: no text layer, and no writing in
    // the images OCR looked at (photographs, test patterns).
    for (name, reason) in &failed {
        assert!(
            reason.contains("password")
                || reason.contains("no text layer")
                || reason.contains("no text found by OCR"),
            "{name}: {reason}"
        );
    }
    assert!(
        indexed >= 24,
        "only {indexed} of 31 unencrypted PDFs had text: {failed:?}"
    );

    // The 117-page German thesis: passages on many pages.
    let hits = search(&home, "Topologie");
    assert!(
        hits.iter().any(
            |h| h["path"].as_str().is_some_and(|p| p.contains("GeoTopo"))
                && h["page"].as_u64().is_some_and(|p| p > 1)
        ),
        "{hits:?}"
    );
    assert!(ok(&home, &["library", "check"]).status.success());
}
