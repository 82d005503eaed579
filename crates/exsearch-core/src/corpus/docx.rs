//! DOCX: a zip archive (the `zip` crate) whose `word/document.xml` is read
//! with `quick-xml`'s streaming reader. That is all a text extractor needs;
//! the full DOCX object-model crates parse styles and layout we would discard.

use std::io::{Cursor, Read};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{clean_line, ExtractedDocument, Section, Skip};

/// Guards against zip bombs: XML compresses about 10x, so a part that
/// expands past this ratio of the whole file (or 256 MiB) is refused.
const MAX_EXPANSION: u64 = 64;
const MAX_XML_BYTES: u64 = 256 * 1024 * 1024;

fn corrupt(detail: impl ToString) -> Skip {
    Skip::Corrupt {
        kind: "DOCX",
        detail: detail.to_string(),
    }
}

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        // An OLE container: Office wraps password-protected documents so.
        return Err(Skip::Corrupt {
            kind: "DOCX",
            detail: "an OLE container, not a zip archive (password-protected or legacy .doc)"
                .into(),
        });
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    let limit = (bytes.len() as u64 * MAX_EXPANSION).clamp(1 << 20, MAX_XML_BYTES);
    let body = read_part(&mut archive, "word/document.xml", limit)?
        .ok_or_else(|| corrupt("no word/document.xml in the archive"))?;
    let title = match read_part(&mut archive, "docProps/core.xml", limit) {
        Ok(Some(core)) => core_title(&core),
        _ => None,
    };
    Ok(ExtractedDocument {
        title,
        sections: vec![Section {
            page: None,
            text: body_text(&body)?,
        }],
    })
}

fn read_part(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> Result<Option<String>, Skip> {
    let file = match archive.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(corrupt(e)),
    };
    let mut xml = String::new();
    file.take(limit + 1)
        .read_to_string(&mut xml)
        .map_err(|e| corrupt(format!("{name}: {e}")))?;
    if xml.len() as u64 > limit {
        return Err(corrupt(format!(
            "{name} expands past {limit} bytes (a zip bomb?)"
        )));
    }
    Ok(Some(xml))
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

fn core_title(xml: &str) -> Option<String> {
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
    use std::io::Write;
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
