//! OpenDocument text (ODT), presentations (ODP) and spreadsheets (ODS), as
//! LibreOffice writes them: a zip archive whose `content.xml` holds the
//! body, read with `quick-xml`'s streaming reader. Paragraphs and headings
//! become paragraph breaks; each slide of a presentation (its speaker notes
//! too) is a page, numbered as the slide is; each sheet is a section, a
//! line per row (as XLSX). Text deleted under change tracking is left out.
//! The title is `dc:title` in `meta.xml`.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::archive::{attribute, push_entity, Archive};
use super::docx::core_title;
use super::{ExtractedDocument, Section, Skip};

pub(super) fn extract(bytes: &[u8], kind: &'static str) -> Result<ExtractedDocument, Skip> {
    let mut archive = Archive::open(bytes, kind)?;
    let content = archive
        .read_string("content.xml")?
        .ok_or_else(|| archive.corrupt("no content.xml in the archive"))?;
    let title = match archive.read_string("meta.xml") {
        Ok(Some(meta)) => core_title(&meta),
        _ => None,
    };
    let sections = if kind == "ODS" {
        sheet_sections(&content)
    } else {
        body_sections(&content)
    }
    .map_err(|e| archive.corrupt(format!("content.xml: {e}")))?;
    Ok(ExtractedDocument { title, sections })
}

/// `text:s` is a run of `text:c` spaces (one when absent).
fn spaces(e: &BytesStart<'_>) -> usize {
    attribute(e, "c")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
        .min(1000)
}

/// The body's text: one section, or one per slide (`draw:page`) numbered
/// from 1.
fn body_sections(xml: &str) -> Result<Vec<Section>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut sections = Vec::new();
    let mut out = String::new();
    let mut slides = 0u32;
    // Depth inside the body, paragraphs, and subtrees that are not shown.
    let (mut in_body, mut in_para, mut hidden) = (0usize, 0usize, 0usize);
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "body" => in_body += 1,
                "tracked-changes" => hidden += 1,
                _ if hidden > 0 => hidden += 1,
                "page" if in_body > 0 => {
                    finish(&mut sections, &mut out, (slides > 0).then_some(slides));
                    slides += 1;
                }
                "s" => out.extend(std::iter::repeat_n(' ', spaces(&e))),
                "p" | "h" => in_para += 1,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "body" => in_body = in_body.saturating_sub(1),
                _ if hidden > 0 => hidden -= 1,
                "p" | "h" => {
                    in_para = in_para.saturating_sub(1);
                    out.push_str("\n\n");
                }
                "page" if in_body > 0 => {
                    finish(&mut sections, &mut out, Some(slides));
                }
                _ => {}
            },
            Event::Empty(e) if hidden == 0 => match e.local_name().as_ref() {
                // A slide with nothing on it still takes its number.
                "page" if in_body > 0 => {
                    finish(&mut sections, &mut out, (slides > 0).then_some(slides));
                    slides += 1;
                }
                "s" => out.extend(std::iter::repeat_n(' ', spaces(&e))),
                "tab" => out.push('\t'),
                "line-break" => out.push('\n'),
                "p" | "h" => out.push_str("\n\n"),
                _ => {}
            },
            Event::Text(t) if in_para > 0 && hidden == 0 => {
                push_collapsed(&mut out, &t.xml10_content())
            }
            Event::GeneralRef(r) if in_para > 0 && hidden == 0 => {
                push_entity(&mut out, &r.xml10_content())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let last = (slides > 0).then_some(slides);
    finish(&mut sections, &mut out, last);
    if sections.is_empty() {
        sections.push(Section {
            ocr: false,
            page: None,
            text: String::new(),
        });
    }
    Ok(sections)
}

/// Appends paragraph text with its XML white space collapsed, as ODF
/// prescribes (runs of spaces are written as `text:s`).
fn push_collapsed(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(|c: char| c.is_whitespace()) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

/// Closes the text gathered so far as a section of `page`, unless empty.
fn finish(sections: &mut Vec<Section>, out: &mut String, page: Option<u32>) {
    let text = out.trim();
    if !text.is_empty() {
        sections.push(Section {
            ocr: false,
            page,
            text: text.to_owned(),
        });
    }
    out.clear();
}

/// How many times one cell's value is written out when a spreadsheet says
/// it repeats (empty runs, the usual case, are not written at all).
const MAX_REPEAT: usize = 100;

/// A spreadsheet's sheets: a section each, headed by its name, a line per
/// row with tabs between cells; empty cells and rows left out.
fn sheet_sections(xml: &str) -> Result<Vec<Section>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut sections = Vec::new();
    let (mut name, mut rows) = (String::new(), String::new());
    let (mut row, mut cell) = (Vec::<String>::new(), String::new());
    let (mut in_cell, mut repeat, mut hidden) = (false, 1usize, 0usize);
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                _ if hidden > 0 => hidden += 1,
                "annotation" | "tracked-changes" => hidden += 1,
                "table" => {
                    name = attribute(&e, "name").unwrap_or_default();
                    rows.clear();
                }
                "table-row" => row.clear(),
                "table-cell" => {
                    in_cell = true;
                    cell.clear();
                    repeat = attribute(&e, "number-columns-repeated")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1);
                }
                "s" if in_cell => cell.extend(std::iter::repeat_n(' ', spaces(&e))),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                _ if hidden > 0 => hidden -= 1,
                "p" if in_cell && !cell.is_empty() => cell.push(' '),
                "table-cell" => {
                    in_cell = false;
                    let value = cell.trim();
                    if !value.is_empty() {
                        for _ in 0..repeat.clamp(1, MAX_REPEAT) {
                            row.push(value.to_owned());
                        }
                    }
                }
                "table-row" if !row.is_empty() => {
                    rows.push_str(&row.join("\t"));
                    rows.push('\n');
                }
                "table" => {
                    let text = rows.trim_end();
                    if !text.is_empty() {
                        sections.push(Section {
                            ocr: false,
                            page: None,
                            text: format!("{name}\n\n{text}"),
                        });
                    }
                }
                _ => {}
            },
            Event::Empty(e) if in_cell && hidden == 0 => match e.local_name().as_ref() {
                "s" => cell.extend(std::iter::repeat_n(' ', spaces(&e))),
                "tab" => cell.push('\t'),
                "line-break" => cell.push(' '),
                _ => {}
            },
            Event::Text(t) if in_cell && hidden == 0 => {
                push_collapsed(&mut cell, &t.xml10_content())
            }
            Event::GeneralRef(r) if in_cell && hidden == 0 => {
                push_entity(&mut cell, &r.xml10_content())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::super::archive::zip_of;
    use super::*;

    const NS: &str = r#"xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0""#;

    fn document(body: &str, title: &str) -> Vec<u8> {
        let content = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content {NS}><office:body>{body}</office:body></office:document-content>"#
        );
        let meta = format!(
            r#"<?xml version="1.0"?><office:document-meta xmlns:office="o" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>{title}</dc:title></office:meta></office:document-meta>"#
        );
        zip_of(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", &content),
            ("meta.xml", &meta),
        ])
    }

    #[test]
    fn a_text_document_reads_as_paragraphs_without_deleted_text() {
        let body = r#"<office:text>
            <text:tracked-changes><text:changed-region><text:deletion><text:p>Deleted words.</text:p></text:deletion></text:changed-region></text:tracked-changes>
            <text:h text:outline-level="1">Ohm&apos;s law</text:h>
            <text:p>Voltage<text:s text:c="3"/>equals current<text:tab/>times resistance.<text:line-break/>R &amp; I</text:p>
            <text:p/>
            <text:p>Second paragraph.</text:p>
        </office:text>"#;
        let doc = extract(&document(body, "Circuits"), "ODT").expect("odt");
        assert_eq!(doc.title.as_deref(), Some("Circuits"));
        assert_eq!(doc.sections.len(), 1);
        assert_eq!(doc.sections[0].page, None);
        assert_eq!(
            doc.sections[0].text,
            "Ohm's law\n\nVoltage   equals current\ttimes resistance.\nR & I\n\n\n\nSecond paragraph."
        );
    }

    #[test]
    fn each_slide_of_a_presentation_is_a_page_with_its_notes() {
        let body = r#"<office:presentation>
            <draw:page draw:name="one"><draw:frame><draw:text-box><text:p>Quarterly results</text:p></draw:text-box></draw:frame>
              <presentation:notes><draw:frame><draw:text-box><text:p>Mention the growth.</text:p></draw:text-box></draw:frame></presentation:notes></draw:page>
            <draw:page draw:name="two"/>
            <draw:page draw:name="three"><draw:frame><draw:text-box><text:p>Outlook</text:p></draw:text-box></draw:frame></draw:page>
        </office:presentation>"#;
        let doc = extract(&document(body, ""), "ODP").expect("odp");
        let pages: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.page, s.text.as_str()))
            .collect();
        assert_eq!(
            pages,
            [
                (Some(1), "Quarterly results\n\nMention the growth."),
                (Some(3), "Outlook")
            ]
        );
        assert_eq!(doc.title, None);
    }

    #[test]
    fn a_spreadsheet_reads_sheet_by_sheet_without_empty_runs_or_comments() {
        let body = r#"<office:spreadsheet xmlns:table="t">
            <table:table table:name="Plan"><table:table-row>
              <table:table-cell><text:p>Task</text:p></table:table-cell>
              <table:table-cell table:number-columns-repeated="3"/>
              <table:table-cell><text:p>Owner</text:p><office:annotation><text:p>ask Ann</text:p></office:annotation></table:table-cell>
            </table:table-row>
            <table:table-row table:number-rows-repeated="1000"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>
            <table:table-row><table:table-cell table:number-columns-repeated="2"><text:p>x</text:p></table:table-cell>
              <table:table-cell><text:p>two</text:p><text:p>lines</text:p></table:table-cell></table:table-row>
            </table:table>
            <table:table table:name="Empty"/>
        </office:spreadsheet>"#;
        let doc = extract(&document(body, "Budget"), "ODS").expect("ods");
        assert_eq!(doc.title.as_deref(), Some("Budget"));
        let sheets: Vec<_> = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(sheets, ["Plan\n\nTask\tOwner\nx\tx\ttwo lines"]);
    }

    #[test]
    fn a_broken_archive_or_body_is_refused_naming_the_format() {
        let no_content = zip_of(&[("mimetype", "application/vnd.oasis.opendocument.text")]);
        for (bytes, why) in [
            (b"PK\x03\x04 cut short".to_vec(), ""),
            (no_content, "no content.xml"),
            (
                document("<office:text><text:p>open</office:text>", "t"),
                "content.xml",
            ),
        ] {
            match extract(&bytes, "ODT") {
                Err(Skip::Corrupt {
                    kind: "ODT",
                    detail,
                }) => assert!(detail.contains(why), "{detail}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
