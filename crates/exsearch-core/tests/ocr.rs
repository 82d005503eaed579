//! OCR through the real Tesseract (installed by scripts/deps.sh) on scans
//! made the way scanners and fax software store them
//! (scripts/make-ocr-fixtures.py): a PDF whose three pages are a JPEG, a
//! CCITT group 4 fax page and a Flate-compressed palette image, a PNG and a
//! two-page TIFF.

use exsearch_core::corpus::{extract, extract_page_with, extract_with, DocumentKind, Ocr, Skip};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ocr() -> &'static Ocr {
    Ocr::detect().expect("Tesseract with English (scripts/deps.sh installs it)")
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_kind_of_scanned_pdf_page_is_read_with_its_page_number() {
    let doc = extract_with(DocumentKind::Pdf, &fixture("scan.pdf"), Some(ocr())).expect("read");
    assert_eq!(doc.sections.len(), 3);
    let expected = [
        "The lighthouse keeper recorded seventeen storms",
        "Copper kettles were traded for salted herring",
        "Quarterly invoices must be approved by the treasurer",
    ];
    for (i, (section, phrase)) in doc.sections.iter().zip(expected).enumerate() {
        assert_eq!(section.page, Some(i as u32 + 1));
        assert!(section.ocr, "page {} is marked as OCR text", i + 1);
        assert!(
            words(&section.text).contains(phrase),
            "page {}: {:?}",
            i + 1,
            section.text
        );
    }
    // Without OCR the same file has no text, and says how to read it.
    let skip = extract(DocumentKind::Pdf, &fixture("scan.pdf")).expect_err("refused");
    assert_eq!(skip, Skip::NoTextLayer);
    assert!(skip.to_string().contains("OCR"), "{skip}");
}

#[test]
fn showing_one_page_reads_only_that_page() {
    let doc = extract_page_with(
        DocumentKind::Pdf,
        &fixture("scan.pdf"),
        Some(ocr()),
        Some(2),
    )
    .expect("read");
    let read: Vec<bool> = doc.sections.iter().map(|s| s.ocr).collect();
    assert_eq!(read, [false, true, false]);
    assert!(words(&doc.sections[1].text).contains("salted herring"));
}

#[test]
fn image_files_are_read_page_by_page() {
    let png = extract_with(DocumentKind::Image, &fixture("receipt.png"), Some(ocr())).expect("png");
    assert_eq!(png.sections.len(), 1);
    assert_eq!(png.sections[0].page, None, "a single image has no pages");
    assert!(png.sections[0].ocr);
    let text = words(&png.sections[0].text);
    assert!(
        text.contains("Receipt 4471: two notebooks and a fountain pen"),
        "{text}"
    );

    let tiff = extract_with(DocumentKind::Image, &fixture("fax.tiff"), Some(ocr())).expect("tiff");
    let pages: Vec<(Option<u32>, String)> = tiff
        .sections
        .iter()
        .map(|s| (s.page, words(&s.text)))
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[0].0, Some(1));
    assert!(pages[0].1.contains("the pilot boat is moored"), "{pages:?}");
    assert_eq!(pages[1].0, Some(2));
    assert!(pages[1].1.contains("ferry timetable changes"), "{pages:?}");

    // Off, an image is refused with the reason.
    let skip = extract(DocumentKind::Image, &fixture("receipt.png")).expect_err("refused");
    assert_eq!(skip.code(), "needs_ocr");
}

#[test]
fn a_picture_without_writing_gives_no_text_and_broken_images_a_reason() {
    // Soft shapes and noise, as in a photograph: whatever Tesseract guesses
    // there is too unsure to keep.
    let (w, h) = (640usize, 480usize);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    let mut seed = 12345u32;
    for y in 0..h {
        for x in 0..w {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let noise = (seed >> 24) as f32 / 8.0;
            let (dx, dy) = (x as f32 - 320.0, y as f32 - 240.0);
            let blob = if dx * dx + dy * dy < 150.0 * 150.0 {
                60.0
            } else {
                180.0
            };
            pgm.push((blob + noise + (x as f32 / 16.0)).min(255.0) as u8);
        }
    }
    let skip = extract_with(DocumentKind::Image, &pgm, Some(ocr())).expect_err("refused");
    assert_eq!(skip, Skip::NoTextFound);

    let skip = extract_with(DocumentKind::Image, b"\x89PNG\r\n\x1a\nbroken", Some(ocr()))
        .expect_err("refused");
    assert_eq!(skip.code(), "corrupt", "{skip}");
    assert!(skip.to_string().contains("image"), "{skip}");
}
