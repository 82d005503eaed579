//! EPUB books: a zip archive whose package document (found through
//! `META-INF/container.xml`) lists the chapters in reading order (the
//! spine). Each chapter is XHTML, read by the HTML extractor, and becomes
//! one section; the title is the package's `dc:title`. Books whose chapters
//! are encrypted (DRM, listed in `META-INF/encryption.xml`) are refused;
//! publishers' font obfuscation, listed in the same file, is not in the way.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::archive::{attribute, resolve, Archive};
use super::docx::core_title;
use super::{html, ExtractedDocument, Skip};

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let mut archive = Archive::open(bytes, "EPUB")?;
    let container = archive
        .read_string("META-INF/container.xml")?
        .ok_or_else(|| archive.corrupt("no META-INF/container.xml in the archive"))?;
    let package_path = attribute_of(&container, "rootfile", "full-path")
        .ok_or_else(|| archive.corrupt("META-INF/container.xml names no package document"))?;
    let package = archive
        .read_string(&package_path)?
        .ok_or_else(|| archive.corrupt(format!("no {package_path} in the archive")))?;
    let base = package_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let chapters: Vec<String> = spine(&package)
        .map_err(|e| archive.corrupt(format!("{package_path}: {e}")))?
        .iter()
        .map(|href| resolve(base, href))
        .collect();
    if chapters.is_empty() {
        return Err(archive.corrupt(format!("{package_path} lists no chapters")));
    }
    if let Some(encryption) = archive.read_string("META-INF/encryption.xml")? {
        let encrypted = encrypted_parts(&encryption);
        if chapters.iter().any(|c| encrypted.contains(c)) {
            return Err(archive.corrupt("DRM-protected: its chapters are encrypted"));
        }
    }
    let mut sections = Vec::new();
    let mut first_error = None;
    let mut found = 0;
    for chapter in &chapters {
        let Some(bytes) = archive.read(chapter)? else {
            continue; // A dangling spine entry: readers skip it too.
        };
        found += 1;
        match html::extract(&bytes) {
            Ok(doc) => sections.extend(doc.sections.into_iter().filter(|s| !s.text.is_empty())),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    if found == 0 {
        return Err(archive.corrupt(format!(
            "none of the {} chapters its spine lists is in the archive",
            chapters.len()
        )));
    }
    if sections.is_empty() {
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(ExtractedDocument {
        title: core_title(&package),
        sections,
    })
}

/// The value of attribute `attr` on the first element named `element`.
fn attribute_of(xml: &str, element: &str, attr: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == element => {
                return attribute(&e, attr);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// The hrefs of the spine's items, in reading order (linear or not: a
/// search should find the notes at the back too).
fn spine(package: &str) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = Reader::from_str(package);
    let mut manifest = Vec::new();
    let mut order = Vec::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| attribute(&e, name);
                match e.local_name().as_ref() {
                    "item" => {
                        if let (Some(id), Some(href)) = (attr("id"), attr("href")) {
                            manifest.push((id, href));
                        }
                    }
                    "itemref" => order.extend(attr("idref")),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(order
        .iter()
        .filter_map(|id| manifest.iter().find(|(m, _)| m == id))
        .map(|(_, href)| href.clone())
        .collect())
}

/// The archive paths `META-INF/encryption.xml` lists as encrypted with
/// anything but font obfuscation.
fn encrypted_parts(xml: &str) -> Vec<String> {
    const FONT_OBFUSCATION: [&str; 2] = [
        "http://www.idpf.org/2008/embedding",
        "http://ns.adobe.com/pdf/enc#RC",
    ];
    let mut reader = Reader::from_str(xml);
    let mut parts = Vec::new();
    let mut method = String::new();
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &str| attribute(&e, name);
                match e.local_name().as_ref() {
                    "EncryptionMethod" => method = attr("Algorithm").unwrap_or_default(),
                    "CipherReference" if !FONT_OBFUSCATION.contains(&method.as_str()) => {
                        parts.extend(attr("URI").map(|uri| resolve("", &uri)));
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::super::archive::zip_of;
    use super::*;

    const CONTAINER: &str = r#"<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;

    fn package(spine: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>The Voyage</dc:title></metadata>
            <manifest><item id="c2" href="text/chapter%202.xhtml" media-type="application/xhtml+xml"/><item id="c1" href="text/one.xhtml#top" media-type="application/xhtml+xml"/><item id="css" href="../style.css" media-type="text/css"/></manifest>
            <spine>{spine}</spine></package>"#
        )
    }

    fn chapter(title: &str, body: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>"#
        )
    }

    fn book(spine: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let (one, two) = (
            chapter("Departure", "The ship left Lisbon at dawn."),
            chapter("Arrival", "Land was sighted after forty days."),
        );
        let package = package(spine);
        let mut parts = vec![
            ("mimetype", "application/epub+zip"),
            ("META-INF/container.xml", CONTAINER),
            ("OEBPS/content.opf", package.as_str()),
            ("OEBPS/text/one.xhtml", one.as_str()),
            ("OEBPS/text/chapter 2.xhtml", two.as_str()),
        ];
        parts.extend_from_slice(extra);
        zip_of(&parts)
    }

    #[test]
    fn chapters_are_sections_in_spine_order_under_the_books_title() {
        let doc = extract(&book(
            r#"<itemref idref="c1"/><itemref idref="c2"/><itemref idref="gone"/>"#,
            &[],
        ))
        .expect("epub");
        assert_eq!(doc.title.as_deref(), Some("The Voyage"));
        let texts: Vec<_> = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Departure\n\nThe ship left Lisbon at dawn.",
                "Arrival\n\nLand was sighted after forty days."
            ]
        );
    }

    #[test]
    fn encrypted_chapters_are_refused_but_obfuscated_fonts_are_not() {
        let spine = r#"<itemref idref="c1"/><itemref idref="c2"/>"#;
        let encryption = |algorithm: &str, uri: &str| {
            format!(
                r#"<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:EncryptionMethod Algorithm="{algorithm}"/><enc:CipherData><enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>"#
            )
        };
        let drm = encryption(
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
            "OEBPS/text/one.xhtml",
        );
        match extract(&book(spine, &[("META-INF/encryption.xml", &drm)])) {
            Err(Skip::Corrupt {
                kind: "EPUB",
                detail,
            }) => assert!(detail.contains("DRM"), "{detail}"),
            other => panic!("{other:?}"),
        }
        let fonts = encryption("http://www.idpf.org/2008/embedding", "OEBPS/text/one.xhtml");
        let doc =
            extract(&book(spine, &[("META-INF/encryption.xml", &fonts)])).expect("fonts only");
        assert_eq!(doc.sections.len(), 2);
    }

    #[test]
    fn a_book_without_its_package_is_refused_naming_what_is_missing() {
        let bytes = zip_of(&[
            ("mimetype", "application/epub+zip"),
            ("META-INF/container.xml", CONTAINER),
        ]);
        match extract(&bytes) {
            Err(Skip::Corrupt {
                kind: "EPUB",
                detail,
            }) => {
                assert!(detail.contains("OEBPS/content.opf"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hrefs_resolve_against_the_package_folder() {
        assert_eq!(
            resolve("OEBPS", "text/a%20b.xhtml#x"),
            "OEBPS/text/a b.xhtml"
        );
        assert_eq!(resolve("OEBPS/sub", "../c.xhtml"), "OEBPS/c.xhtml");
        assert_eq!(resolve("", "./c.xhtml"), "c.xhtml");
    }
}
