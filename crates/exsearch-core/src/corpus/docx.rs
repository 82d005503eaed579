//! DOCX: a zip archive (the `zip` crate) whose `word/document.xml` is read
//! with `quick-xml`'s streaming reader. That is all a text extractor needs;
//! the full DOCX object-model crates parse styles and layout we would discard.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::archive::{self, Archive};
use super::{clean_line, ExtractedDocument, Section, Skip};

fn corrupt(detail: impl ToString) -> Skip {
    archive::corrupt("DOCX", detail)
}

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let mut archive = Archive::open(bytes, "DOCX")?;
    let body = archive
        .read_string("word/document.xml")?
        .ok_or_else(|| corrupt("no word/document.xml in the archive"))?;
    let title = match archive.read_string("docProps/core.xml") {
        Ok(Some(core)) => core_title(&core),
        _ => None,
    };
    Ok(ExtractedDocument {
        title,
        sections: vec![Section {
            ocr: false,
            page: None,
            text: body_text(&body)?,
        }],
    })
}

fn body_text(xml: &str) -> Result<String, Skip> {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let mut in_text = false;
    loop {
        match reader
            .read_event()
            .map_err(|e| corrupt(format!("word/document.xml: {e}")))?
        {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => out.push_str("\n\n"),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                "tab" => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                let entity = format!("&{};", r.xml10_content());
                out.push_str(&quick_xml::escape::unescape(&entity).map_err(corrupt)?);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out.trim().to_owned())
}

/// The text of the first `<title>` element (Dublin Core's `dc:title` in
/// DOCX core properties, EPUB packages and OpenDocument metadata).
pub(super) fn core_title(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut in_title = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::Text(t) if in_title => return clean_line(&t.xml10_content()),
            Event::End(e) if e.local_name().as_ref() == "title" => return None,
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Builds a minimal valid DOCX, for tests here and in other modules.
#[cfg(test)]
pub(crate) fn tiny_docx(title: &str, paragraphs: &[&str]) -> Vec<u8> {
    use std::io::{Cursor, Write};
    let mut buf = Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        let body: String = paragraphs
            .iter()
            .map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>"))
            .collect();
        zip.start_file("word/document.xml", opts).expect("zip");
        write!(
            zip,
            r#"<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
        )
        .expect("zip");
        zip.start_file("docProps/core.xml", opts).expect("zip");
        write!(
            zip,
            r#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="x" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></cp:coreProperties>"#
        )
        .expect("zip");
        zip.finish().expect("zip");
    }
    buf.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_title_are_read() {
        let doc = extract(&tiny_docx("Report", &["Alpha &amp; beta.", "Gamma."])).expect("docx");
        assert_eq!(doc.title.as_deref(), Some("Report"));
        assert_eq!(doc.sections[0].text, "Alpha & beta.\n\nGamma.");
    }

    #[test]
    fn a_non_zip_is_corrupt() {
        assert!(matches!(
            extract(b"not a zip at all"),
            Err(Skip::Corrupt { .. })
        ));
    }
}
