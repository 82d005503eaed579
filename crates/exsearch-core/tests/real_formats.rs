//! Documents written by the tools people use (pandoc's EPUB and PPTX,
//! LibreOffice's ODT, ODP, ODS, XLSX and RTF; rebuilt by
//! scripts/make-format-fixtures.sh) read as a reader would see them.

use exsearch_core::corpus::{extract, DocumentKind};

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_pandoc_epub_reads_chapter_by_chapter_in_order() {
    let doc = extract(DocumentKind::Epub, &fixture("voyage.epub")).expect("epub");
    assert_eq!(doc.title.as_deref(), Some("The Voyage of the Esperança"));
    let texts: Vec<String> = doc.sections.iter().map(|s| words(&s.text)).collect();
    let departure = texts
        .iter()
        .position(|t| {
            t.contains("The caravel left Lisbon at dawn, bound for the Cape of Good Hope.")
        })
        .expect("chapter one");
    let arrival = texts
        .iter()
        .position(|t| t.contains("The pilot named the bay Angra dos Vaqueiros."))
        .expect("chapter two");
    assert!(departure < arrival, "{texts:?}");
    assert!(doc.sections.iter().all(|s| s.page.is_none()));
}

#[test]
fn a_libreoffice_text_document_reads_as_its_paragraphs() {
    let doc = extract(DocumentKind::Odt, &fixture("ohm.odt")).expect("odt");
    assert_eq!(
        doc.title.as_deref(),
        Some("Field notes on Ohm\u{2019}s law")
    );
    let text = &doc.sections[0].text;
    assert!(
        text.contains("Voltage equals current times resistance: V = I × R. Georg Ohm published it in 1827.\n\n"),
        "{text:?}"
    );
    assert!(
        text.contains("the unit named after him, the ohm."),
        "{text:?}"
    );
}

/// The same show, as pandoc wrote it (PPTX) and as LibreOffice converted
/// it (ODP).
#[test]
fn presentations_read_slide_by_slide_with_their_notes() {
    for (kind, name) in [
        (DocumentKind::Pptx, "quarterly.pptx"),
        (DocumentKind::Odp, "quarterly.odp"),
    ] {
        slides_of(kind, name);
    }
}

fn slides_of(kind: DocumentKind, name: &str) {
    let doc = extract(kind, &fixture(name)).expect(name);
    let slide = |needle: &str| {
        doc.sections
            .iter()
            .find(|s| words(&s.text).contains(needle))
            .and_then(|s| s.page)
            .unwrap_or_else(|| panic!("{name}: no slide says {needle:?}: {:?}", doc.sections))
    };
    let results = slide("Revenue grew by twelve percent in the third quarter.");
    assert_eq!(slide("Mention the growth in the northern region."), results);
    let outlook = slide("Hiring continues in Porto and Tallinn.");
    assert_eq!(outlook, results + 1, "{name}");
    // Slide numbers (fields on the notes page) are not text.
    assert!(
        doc.sections
            .iter()
            .all(|s| !s.text.contains(&format!("\n{results}"))),
        "{name}: {:?}",
        doc.sections
    );
}

/// The same sheet as LibreOffice writes it in both formats.
#[test]
fn libreoffice_workbooks_read_as_rows_of_cells_under_the_sheet_name() {
    for (kind, name) in [
        (DocumentKind::Xlsx, "cities.xlsx"),
        (DocumentKind::Ods, "cities.ods"),
    ] {
        let doc = extract(kind, &fixture(name)).expect(name);
        assert_eq!(doc.sections.len(), 1, "{name}");
        assert_eq!(
            doc.sections[0].text,
            "cities\n\nCity\tCountry\tPopulation\nLisbon\tPortugal\t545923\n\
             Tallinn\tEstonia\t438341\nPorto\tPortugal\t231800",
            "{name}"
        );
    }
}

#[test]
fn a_libreoffice_rtf_file_reads_as_its_paragraphs_in_every_script() {
    let doc = extract(DocumentKind::Rtf, &fixture("memo.rtf")).expect("rtf");
    assert_eq!(doc.title.as_deref(), Some("Memo on the Zürich office"));
    let text = words(&doc.sections[0].text);
    for sentence in [
        "Relocation",
        "The team moves to Zürich in März. Café breaks stay at ten o’clock — as agreed.",
        "Contacts: Zoë Brontë, François Lefèvre, and 山田太郎.",
    ] {
        assert!(text.contains(sentence), "{sentence:?} in {text:?}");
    }
    // Nothing from the font table, styles or document properties.
    for noise in ["Times New Roman", "Heading", "Normal", "StarSymbol"] {
        assert!(!text.contains(noise), "{noise:?} in {text:?}");
    }
}

#[test]
fn cjk_pdfs_in_predefined_cmaps_read_as_text() {
    // ReportLab's Chinese (UniGB-UCS2-H), and the same page re-encoded in
    // GBK (GBK-EUC-H) and a Japanese one in Shift_JIS (90ms-RKSJ-H):
    // scripts/make-cjk-fixtures.py. No font or ToUnicode map is embedded.
    for (name, expected) in [
        (
            "cjk-ucs2.pdf",
            [
                "北京是中华人民共和国的首都。",
                "Beijing 2008 奥运会在北京举行。",
            ],
        ),
        (
            "cjk-gbk.pdf",
            [
                "北京是中华人民共和国的首都。",
                "Beijing 2008 奥运会在北京举行。",
            ],
        ),
        (
            "cjk-sjis.pdf",
            ["東京は日本の首都です。", "Tokyo 2020 オリンピック"],
        ),
    ] {
        let doc =
            extract(DocumentKind::Pdf, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = doc.sections[0].text.clone();
        for line in expected {
            assert!(text.contains(line), "{name}: {line:?} not in {text:?}");
        }
    }
}
