//! PowerPoint (PPTX): a zip archive whose `ppt/presentation.xml` lists the
//! slides in order, each resolved through the package's relationships to
//! `ppt/slides/slideN.xml`; DrawingML text runs (`a:t`) with `a:p`
//! paragraphs and `a:br` breaks. Each slide, with its speaker notes, is a
//! page numbered by its position in the show. Fields (slide numbers,
//! dates) are left out. The title is `dc:title` in `docProps/core.xml`.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::archive::{push_entity, relationships, Archive};
use super::docx::core_title;
use super::{ExtractedDocument, Section, Skip};

const PRESENTATION: &str = "ppt/presentation.xml";

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let mut archive = Archive::open(bytes, "PPTX")?;
    let presentation = archive
        .read_string(PRESENTATION)?
        .ok_or_else(|| archive.corrupt(format!("no {PRESENTATION} in the archive")))?;
    let rels = relationships(&mut archive, PRESENTATION)?;
    let order =
        slide_ids(&presentation).map_err(|e| archive.corrupt(format!("{PRESENTATION}: {e}")))?;
    let mut sections = Vec::new();
    for (n, id) in order.iter().enumerate() {
        let Some((_, slide)) = rels.iter().find(|(rid, _)| rid == id) else {
            continue;
        };
        let Some(xml) = archive.read_string(slide)? else {
            continue;
        };
        let mut text = slide_text(&xml).map_err(|e| archive.corrupt(format!("{slide}: {e}")))?;
        let notes = relationships(&mut archive, slide)?
            .into_iter()
            .find(|(_, target)| target.contains("/notesSlides/"));
        if let Some((_, notes)) = notes {
            if let Some(xml) = archive.read_string(&notes)? {
                let notes =
                    slide_text(&xml).map_err(|e| archive.corrupt(format!("{notes}: {e}")))?;
                if !notes.is_empty() {
                    text = format!("{text}\n\n{notes}");
                }
            }
        }
        let text = text.trim();
        if !text.is_empty() {
            sections.push(Section {
                ocr: false,
                page: Some(n as u32 + 1),
                text: text.to_owned(),
            });
        }
    }
    let title = match archive.read_string("docProps/core.xml") {
        Ok(Some(core)) => core_title(&core),
        _ => None,
    };
    Ok(ExtractedDocument { title, sections })
}

/// The relationship ids of the slides, in the show's order.
fn slide_ids(xml: &str) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut ids = Vec::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sldId" => {
                // `r:id` and the slide's own `id` share a local name: take
                // the one in the relationships namespace (prefixed).
                ids.extend(
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
                        .map(|a| a.value.into_owned()),
                );
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(ids)
}

/// The text of a slide or notes page: runs joined, paragraphs and shapes
/// apart, fields left out.
fn slide_text(xml: &str) -> Result<String, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let (mut in_text, mut in_field) = (false, 0usize);
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "t" => in_text = true,
                "fld" => in_field += 1,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "fld" => in_field = in_field.saturating_sub(1),
                "p" => out.push('\n'),
                "sp" | "graphicFrame" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) if e.local_name().as_ref() == "br" => out.push('\n'),
            Event::Text(t) if in_text && in_field == 0 => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text && in_field == 0 => {
                push_entity(&mut out, &r.xml10_content())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // Blank lines (empty paragraphs, shapes) collapse to paragraph breaks.
    let mut text = String::with_capacity(out.len());
    for block in out.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(block);
    }
    Ok(text)
}
