//! PDF text layers through `pdf-extract`'s content interpreter (on `lopdf`):
//! pure Rust, no system library, page by page so every passage keeps its
//! page number. Our own [`layout`] turns the glyphs it places into words and
//! lines. What the parser cannot read of a page is left out and the rest
//! kept; a crash inside the parser is caught and reported as this file's
//! skip reason when nothing at all could be read.

mod fonts;
mod images;
mod layout;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use lopdf::{Document, Object};

use super::{clean_line, ExtractedDocument, Ocr, Section, Skip};

fn corrupt(detail: impl ToString) -> Skip {
    Skip::Corrupt {
        kind: "PDF",
        detail: detail.to_string(),
    }
}

/// The text of every page; with `ocr`, a page that has no text but a
/// scanned image is read from the image (only page `ocr_page`, when given).
pub(super) fn extract(
    bytes: &[u8],
    ocr: Option<&Ocr>,
    ocr_page: Option<u32>,
    on_ocr: &dyn Fn(u32, u32),
) -> Result<ExtractedDocument, Skip> {
    match catch_unwind(AssertUnwindSafe(|| {
        extract_unguarded(bytes, ocr, ocr_page, on_ocr)
    })) {
        Ok(result) => result,
        Err(panic) => Err(Skip::ParserCrashed {
            kind: "PDF",
            detail: panic_message(panic.as_ref()),
        }),
    }
}

fn extract_unguarded(
    bytes: &[u8],
    ocr: Option<&Ocr>,
    ocr_page: Option<u32>,
    on_ocr: &dyn Fn(u32, u32),
) -> Result<ExtractedDocument, Skip> {
    if !bytes.starts_with(b"%PDF")
        && !bytes[..bytes.len().min(1024)]
            .windows(4)
            .any(|w| w == b"%PDF")
    {
        return Err(corrupt("no %PDF header"));
    }
    let mut doc = match Document::load_mem(bytes) {
        Ok(doc) => doc,
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword) => {
            return Err(Skip::Encrypted)
        }
        // A damaged cross-reference table or trailer: rebuild it from the
        // objects themselves, as desktop PDF readers do.
        Err(e) => rebuild_xref(bytes)
            .and_then(|repaired| Document::load_mem(&repaired).ok())
            .ok_or_else(|| corrupt(e))?,
    };
    if doc.is_encrypted() {
        // Many PDFs are encrypted with an empty user password (owner-only
        // restrictions); those open for reading like any other.
        doc.decrypt("").map_err(|_| Skip::Encrypted)?;
    }
    fonts::mend(&mut doc);
    let title = info_title(&doc);
    let pages = doc.get_pages();
    let mut sections = Vec::with_capacity(pages.len());
    let mut first_failure: Option<String> = None;
    let mut scans = 0;
    for (&page, &page_id) in &pages {
        let mut out = layout::PageText::default();
        let page_result = catch_unwind(AssertUnwindSafe(|| {
            pdf_extract::output_doc_page(&doc, &mut out, page)
        }));
        match page_result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_failure.get_or_insert_with(|| format!("page {page}: {e}"));
            }
            Err(panic) => {
                first_failure.get_or_insert_with(|| {
                    format!("page {page}: {}", panic_message(panic.as_ref()))
                });
            }
        }
        let mut text = out.finish();
        let mut from_ocr = false;
        let wanted = ocr_page.is_none_or(|p| p == page);
        if let Some(ocr) = ocr.filter(|_| wanted && !text.chars().any(char::is_alphanumeric)) {
            if let Some(image) = images::page_image(&doc, page_id) {
                scans += 1;
                on_ocr(page, pages.len() as u32);
                match ocr.recognize(&image) {
                    Ok(pages) => {
                        text = pages.into_iter().next().unwrap_or_default();
                        from_ocr = !text.is_empty();
                    }
                    Err(e) => {
                        first_failure.get_or_insert_with(|| format!("page {page}: {e}"));
                    }
                }
            }
        }
        let filled = form_values(&doc, page_id);
        if !filled.is_empty() {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&filled.join("\n"));
        }
        sections.push(Section {
            page: Some(page),
            text,
            ocr: from_ocr,
        });
    }
    if sections.is_empty() {
        return Err(corrupt("no pages"));
    }
    if sections.iter().all(|s| s.text.trim().is_empty()) {
        // Only when nothing at all could be read; otherwise keep the rest.
        return Err(match (first_failure, ocr) {
            (Some(failure), _) => corrupt(format!("no page could be read ({failure})")),
            (None, None) => Skip::NoTextLayer,
            (None, Some(_)) if scans > 0 => Skip::NoTextFound,
            (None, Some(_)) => Skip::NoScannedPage,
        });
    }
    Ok(ExtractedDocument { title, sections })
}

/// Appends a fresh cross-reference table and trailer built by scanning for
/// `N G obj` headers; the root is the object holding `/Type /Catalog`. A
/// page tree the catalog points to but the file lacks is rebuilt from the
/// `/Type /Page` objects in file order. `None` when there is no catalog.
fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut objects: BTreeMap<u32, (u16, usize)> = BTreeMap::new();
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b"obj") {
        let at = from + found;
        from = at + 3;
        let after = bytes.get(at + 3).copied().unwrap_or(b' ');
        if after.is_ascii_alphanumeric() {
            continue; // "objstm" and the like
        }
        if let Some((number, generation, start)) = object_header(bytes, at) {
            objects.insert(number, (generation, start));
        }
    }
    let mut root = None;
    let mut pages_ref = None;
    let mut page_objects = Vec::new();
    for (&number, &(generation, start)) in &objects {
        let dict = object_dictionary(bytes, start);
        if let Some(at) = find(dict, b"/Catalog") {
            if dict[..at].ends_with(b"/Type") || dict[..at].trim_ascii_end().ends_with(b"/Type") {
                root = Some((number, generation));
                pages_ref = reference_after(dict, b"/Pages");
            }
        }
        if is_page(dict) {
            page_objects.push((start, number, generation));
        }
    }
    let (root_number, root_generation) = root?;
    let mut out = bytes.to_vec();
    if let Some((pages_number, pages_generation)) =
        pages_ref.filter(|(n, _)| !objects.contains_key(n))
    {
        page_objects.sort_unstable();
        let kids: Vec<String> = page_objects
            .iter()
            .map(|(_, n, g)| format!("{n} {g} R"))
            .collect();
        out.extend_from_slice(b"\n");
        objects.insert(pages_number, (pages_generation, out.len()));
        out.extend_from_slice(
            format!(
                "{pages_number} {pages_generation} obj\n<< /Type /Pages /Kids [{}] /Count {} >>\nendobj\n",
                kids.join(" "),
                kids.len()
            )
            .as_bytes(),
        );
    }
    let size = objects.keys().max()? + 1;
    if size > MAX_OBJECT_NUMBER {
        return None; // a damaged header, not a real object number
    }
    out.extend_from_slice(b"\n");
    let xref_at = out.len();
    // One subsection per object: the table grows with the objects found,
    // never with how large a (possibly garbage) object number is.
    out.extend_from_slice(b"xref\n0 1\n0000000000 65535 f\r\n");
    for (&n, &(g, start)) in &objects {
        if n > 0 {
            out.extend_from_slice(format!("{n} 1\n{start:010} {g:05} n\r\n").as_bytes());
        }
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {size} /Root {root_number} {root_generation} R >>\nstartxref\n{xref_at}\n%%EOF\n")
            .as_bytes(),
    );
    Some(out)
}

/// The text of an object up to its stream or end, at most 4 KiB: enough
/// for the dictionary keys the repair looks at.
fn object_dictionary(bytes: &[u8], start: usize) -> &[u8] {
    let window = &bytes[start..bytes.len().min(start + 4096)];
    let end = [find(window, b"stream"), find(window, b"endobj")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(window.len());
    &window[..end]
}

fn is_page(dict: &[u8]) -> bool {
    let mut from = 0;
    while let Some(found) = find(&dict[from..], b"/Type") {
        let rest = dict[from + found + 5..].trim_ascii_start();
        if rest.starts_with(b"/Page") && !rest.get(5).is_some_and(u8::is_ascii_alphanumeric) {
            return true;
        }
        from += found + 5;
    }
    false
}

/// Parses `KEY N G R` in a dictionary's text.
fn reference_after(dict: &[u8], key: &[u8]) -> Option<(u32, u16)> {
    let at = find(dict, key)? + key.len();
    let text = std::str::from_utf8(&dict[at..dict.len().min(at + 32)]).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let number = parts.next()?.parse().ok()?;
    let generation = parts.next()?.parse().ok()?;
    parts
        .next()?
        .starts_with('R')
        .then_some((number, generation))
}

/// Parses `N G` before the `obj` keyword at `at`; returns the numbers and
/// where `N` starts.
fn object_header(bytes: &[u8], at: usize) -> Option<(u32, u16, usize)> {
    let mut i = at;
    let skip_space = |i: &mut usize| {
        while *i > 0 && bytes[*i - 1].is_ascii_whitespace() {
            *i -= 1;
        }
    };
    let digits = |i: &mut usize| -> Option<u64> {
        let end = *i;
        while *i > 0 && bytes[*i - 1].is_ascii_digit() {
            *i -= 1;
        }
        std::str::from_utf8(&bytes[*i..end]).ok()?.parse().ok()
    };
    skip_space(&mut i);
    let generation = digits(&mut i)?;
    skip_space(&mut i);
    let number = digits(&mut i)?;
    let start = i;
    let line_start = start == 0 || bytes[start - 1].is_ascii_whitespace();
    (line_start && i < at).then_some((
        u32::try_from(number).ok()?,
        u16::try_from(generation).ok()?,
        start,
    ))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The PDF specification's largest object number.
const MAX_OBJECT_NUMBER: u32 = 8_388_607;

/// Titles that producers write when the author gave none.
const PLACEHOLDER_TITLES: &[&str] = &[
    "untitled",
    "untitled document",
    "title",
    "document",
    "slide 1",
];

fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    match info.get(b"Title").ok()? {
        Object::String(bytes, _) => clean_line(&decode_text_string(bytes))
            .filter(|t| !PLACEHOLDER_TITLES.contains(&t.to_lowercase().as_str())),
        _ => None,
    }
}

/// PDF text strings are UTF-16BE with a byte-order mark, or PDFDocEncoding
/// (close enough to Latin-1 for titles).
fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(body) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units = body
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else if let Ok(s) = std::str::from_utf8(bytes) {
        s.to_owned()
    } else {
        bytes.iter().map(|&b| b as char).collect()
    }
}

/// The text typed into the form fields on a page (a filled-in form's
/// answers live in the fields, not in the page's content), in the order
/// of the page's widgets. Choices and check boxes, whose values are names
/// or option lists, are left out.
fn form_values(doc: &Document, page: lopdf::ObjectId) -> Vec<String> {
    let Some(annots) = doc
        .get_dictionary(page)
        .ok()
        .and_then(|p| p.get(b"Annots").ok())
        .and_then(|a| deref(doc, a).as_array().ok())
    else {
        return Vec::new();
    };
    let mut values = Vec::new();
    for annot in annots {
        let Ok(widget) = deref(doc, annot).as_dict() else {
            continue;
        };
        if !widget
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|s| s == b"Widget")
        {
            continue;
        }
        // A widget's value may sit on its parent field.
        let mut field = widget;
        for _ in 0..8 {
            if field.has(b"V") {
                break;
            }
            match field.get(b"Parent").ok().map(|p| deref(doc, p)) {
                Some(Object::Dictionary(parent)) => field = parent,
                _ => break,
            }
        }
        if let Ok(Object::String(bytes, _)) = field.get(b"V").map(|v| deref(doc, v)) {
            if let Some(value) = clean_line(&decode_text_string(bytes)) {
                values.push(value);
            }
        }
    }
    values
}

/// The object a reference points to (itself when it is not one, or when
/// the reference is dangling).
fn deref<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    match object {
        Object::Reference(id) => doc.get_object(*id).unwrap_or(object),
        other => other,
    }
}

/// A number, integer or real, behind any reference.
fn number(doc: &Document, object: &Object) -> Option<f64> {
    match deref(doc, object) {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncated_pdfs_are_corrupt_not_panics() {
        assert!(matches!(
            extract(b"hello", None, None, &|_, _| {}),
            Err(Skip::Corrupt { .. })
        ));
        assert!(matches!(
            extract(
                b"%PDF-1.7\n1 0 obj << /Type /Catalog",
                None,
                None,
                &|_, _| {}
            ),
            Err(Skip::Corrupt { .. } | Skip::ParserCrashed { .. })
        ));
    }

    #[test]
    fn a_pdf_with_a_broken_trailer_is_repaired() {
        let body = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
                    2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n\
                    3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R\n\
                    /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n\
                    4 0 obj\n<< /Length 44 >>\nstream\nBT /F1 12 Tf 20 100 Td (Hello repair) Tj ET\nendstream\nendobj\n\
                    5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n\
                    trailer\n/Size 6\nstartxref\n%%EOF\n";
        assert!(
            Document::load_mem(body.as_bytes()).is_err(),
            "the fixture must be broken"
        );
        let doc = extract(body.as_bytes(), None, None, &|_, _| {}).expect("repaired");
        assert_eq!(doc.sections.len(), 1);
        assert!(
            doc.sections[0].text.contains("Hello repair"),
            "{:?}",
            doc.sections
        );
        // The rebuilt table lists the objects found, so a huge (garbage)
        // object number costs nothing, and past the spec's limit it is refused.
        let big = body.replace("5 0 obj", "4000000 0 obj");
        let repaired = rebuild_xref(big.as_bytes()).expect("repairable");
        assert!(repaired.len() < 2 * big.len(), "{} bytes", repaired.len());
        let huge = body.replace("5 0 obj", "900000000 0 obj");
        assert!(rebuild_xref(huge.as_bytes()).is_none());
    }

    #[test]
    fn utf16_titles_decode() {
        assert_eq!(decode_text_string(&[0xFE, 0xFF, 0, b'H', 0, b'i']), "Hi");
        assert_eq!(decode_text_string(b"Plain"), "Plain");
    }
}
