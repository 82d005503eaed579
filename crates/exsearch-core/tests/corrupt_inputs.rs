//! Damaged files never take the indexer down: real PDFs, DOCX, EPUB, ODP and HTML with
//! bytes flipped or cut short are either extracted or refused with a reason.

use exsearch_core::corpus::{extract, DocumentKind};

fn shared_pdf(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/real-pdfs")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Deterministic damage: `flips` random bytes overwritten, or the file cut.
fn mutants(original: &[u8], count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x853C_49E6_748F_EA9B;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let mut m = original.to_vec();
            if i % 4 == 3 {
                m.truncate((next() % original.len() as u64) as usize);
            } else {
                for _ in 0..1 + i % 16 {
                    let at = (next() % m.len() as u64) as usize;
                    m[at] = next() as u8;
                }
            }
            m
        })
        .collect()
}

/// Extracts every mutant (a panic fails the test) and returns how many were
/// still readable and the reasons given for the others.
fn survive(kind: DocumentKind, original: &[u8], count: usize) -> (usize, Vec<String>) {
    let mut extracted = 0;
    let mut reasons = Vec::new();
    for m in mutants(original, count) {
        match extract(kind, &m) {
            Ok(_) => extracted += 1,
            Err(skip) => reasons.push(skip.to_string()),
        }
    }
    (extracted, reasons)
}

fn assert_survives(kind: DocumentKind, original: &[u8], count: usize) {
    let (extracted, _) = survive(kind, original, count);
    assert!(
        extracted > 0,
        "{kind:?}: no mutant was readable at all, the damage is too coarse"
    );
}

#[test]
fn damaged_pdfs_are_extracted_or_refused() {
    for name in [
        "001-trivial_minimal-document.pdf",
        "004-pdflatex-4-pages_pdflatex-4-pages.pdf",
        "026-latex-multicolumn_multicolumn.pdf",
    ] {
        assert_survives(DocumentKind::Pdf, &shared_pdf(name), 60);
    }
}

#[test]
fn damaged_html_and_text_are_extracted_or_refused() {
    let html = "<html><head><title>T</title></head><body><p>Caf\u{e9} <b>bold</b> text.</p><table><tr><td>a</td></tr></table></body></html>".repeat(20);
    assert_survives(DocumentKind::Html, html.as_bytes(), 200);
    assert_survives(
        DocumentKind::Markdown,
        "# Title\n\nSome *text* here.\n".repeat(50).as_bytes(),
        200,
    );
}

#[test]
fn damaged_docx_is_extracted_or_refused() {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        // Stored, not deflated: flipped bytes then reach the XML parser
        // instead of failing the checksum every time.
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("word/document.xml", opts).expect("zip");
        let body = "<w:p><w:r><w:t>Damaged &amp; repaired text.</w:t></w:r></w:p>".repeat(40);
        write!(
            zip,
            r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        )
        .expect("zip");
        zip.finish().expect("zip");
    }
    // The zip checksum catches nearly every flipped byte: each refusal must
    // say the DOCX is damaged.
    let (_, reasons) = survive(DocumentKind::Docx, &buf.into_inner(), 200);
    assert!(!reasons.is_empty());
    assert!(reasons.iter().all(|r| r.contains("DOCX")), "{reasons:?}");
}

/// A zip archive of `(name, content)` parts, stored so that flipped bytes
/// reach the parsers.
fn stored_zip(parts: &[(&str, String)]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, content) in parts {
            zip.start_file(*name, opts).expect("zip");
            zip.write_all(content.as_bytes()).expect("zip");
        }
        zip.finish().expect("zip");
    }
    buf.into_inner()
}

#[test]
fn damaged_epub_and_opendocument_are_extracted_or_refused_by_name() {
    let chapter = format!(
        "<html><body>{}</body></html>",
        "<p>A chapter of some length.</p>".repeat(30)
    );
    let epub = stored_zip(&[
        ("mimetype", "application/epub+zip".into()),
        (
            "META-INF/container.xml",
            r#"<container><rootfiles><rootfile full-path="book.opf"/></rootfiles></container>"#.into(),
        ),
        (
            "book.opf",
            r#"<package><metadata><title>B</title></metadata><manifest><item id="a" href="a.xhtml"/></manifest><spine><itemref idref="a"/></spine></package>"#.into(),
        ),
        ("a.xhtml", chapter),
    ]);
    let (_, reasons) = survive(DocumentKind::Epub, &epub, 200);
    assert!(!reasons.is_empty());
    assert!(reasons.iter().all(|r| r.contains("EPUB")), "{reasons:?}");

    let body = "<text:p>Slide text &amp; more.</text:p>".repeat(30);
    let odp = stored_zip(&[(
        "content.xml",
        format!(
            r#"<office:document-content xmlns:office="o" xmlns:text="t" xmlns:draw="d"><office:body><office:presentation><draw:page>{body}</draw:page></office:presentation></office:body></office:document-content>"#
        ),
    )]);
    let (_, reasons) = survive(DocumentKind::Odp, &odp, 200);
    assert!(!reasons.is_empty());
    assert!(reasons.iter().all(|r| r.contains("ODP")), "{reasons:?}");
}
