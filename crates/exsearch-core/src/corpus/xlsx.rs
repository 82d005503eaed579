//! Excel workbooks (XLSX): a zip archive whose `xl/workbook.xml` lists the
//! sheets in order, resolved through the package's relationships; cells
//! hold numbers, booleans, inline text or indexes into
//! `xl/sharedStrings.xml`. Each sheet is a section headed by its name, a
//! line per row, its cells apart by tabs; empty rows and cells are left
//! out. Numbers stay as stored (dates are serial day numbers). The title
//! is `dc:title` in `docProps/core.xml`.

use quick_xml::events::Event;
use quick_xml::Reader;

use super::archive::{attribute, push_entity, relationships, Archive};
use super::docx::core_title;
use super::{ExtractedDocument, Section, Skip};

const WORKBOOK: &str = "xl/workbook.xml";

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let mut archive = Archive::open(bytes, "XLSX")?;
    let workbook = archive
        .read_string(WORKBOOK)?
        .ok_or_else(|| archive.corrupt(format!("no {WORKBOOK} in the archive")))?;
    let rels = relationships(&mut archive, WORKBOOK)?;
    let strings = match archive.read_string("xl/sharedStrings.xml")? {
        Some(xml) => shared_strings(&xml)
            .map_err(|e| archive.corrupt(format!("xl/sharedStrings.xml: {e}")))?,
        None => Vec::new(),
    };
    let sheets = sheets(&workbook).map_err(|e| archive.corrupt(format!("{WORKBOOK}: {e}")))?;
    let mut sections = Vec::new();
    for (name, id) in sheets {
        let Some((_, path)) = rels.iter().find(|(rid, _)| *rid == id) else {
            continue;
        };
        let Some(xml) = archive.read_string(path)? else {
            continue;
        };
        let rows =
            sheet_rows(&xml, &strings).map_err(|e| archive.corrupt(format!("{path}: {e}")))?;
        if !rows.is_empty() {
            sections.push(Section {
                ocr: false,
                page: None,
                text: format!("{name}\n\n{rows}"),
            });
        }
    }
    let title = match archive.read_string("docProps/core.xml") {
        Ok(Some(core)) => core_title(&core),
        _ => None,
    };
    Ok(ExtractedDocument { title, sections })
}

/// `(name, relationship id)` of each sheet, in the workbook's order.
fn sheets(xml: &str) -> Result<Vec<(String, String)>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sheet" => {
                // `r:id`: the prefixed `id`, in the relationships namespace.
                let id = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
                    .map(|a| a.value.into_owned());
                if let (Some(name), Some(id)) = (attribute(&e, "name"), id) {
                    out.push((name, id));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The text of every shared string: its runs joined, phonetic guides left
/// out.
fn shared_strings(xml: &str) -> Result<Vec<String>, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut in_text, mut in_phonetic) = (false, 0usize);
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "si" => current.clear(),
                "t" => in_text = true,
                "rPh" => in_phonetic += 1,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "si" => out.push(std::mem::take(&mut current)),
                "t" => in_text = false,
                "rPh" => in_phonetic = in_phonetic.saturating_sub(1),
                _ => {}
            },
            Event::Empty(e) if e.local_name().as_ref() == "si" => out.push(String::new()),
            Event::Text(t) if in_text && in_phonetic == 0 => current.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text && in_phonetic == 0 => {
                push_entity(&mut current, &r.xml10_content())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The sheet's rows, one line each, cells apart by tabs.
fn sheet_rows(xml: &str, strings: &[String]) -> Result<String, quick_xml::Error> {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell_type = String::new();
    let mut value = String::new();
    let mut in_value = false;
    loop {
        match reader.read_event()? {
            Event::Start(e) => match e.local_name().as_ref() {
                "row" => row.clear(),
                "c" => {
                    cell_type = attribute(&e, "t").unwrap_or_default();
                    value.clear();
                }
                // `v` holds the value; `t` the text of an inline string.
                "v" | "t" => in_value = true,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "v" | "t" => in_value = false,
                "c" => {
                    let shown = match cell_type.as_str() {
                        "s" => value
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| strings.get(i))
                            .cloned()
                            .unwrap_or_default(),
                        "b" => match value.trim() {
                            "1" => "TRUE".to_owned(),
                            "0" => "FALSE".to_owned(),
                            other => other.to_owned(),
                        },
                        _ => value.clone(),
                    };
                    let shown = shown.trim();
                    if !shown.is_empty() {
                        row.push(shown.to_owned());
                    }
                }
                "row" if !row.is_empty() => {
                    out.push_str(&row.join("\t"));
                    out.push('\n');
                }
                _ => {}
            },
            Event::Text(t) if in_value => value.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_value => push_entity(&mut value, &r.xml10_content()),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_and_phonetic_shared_strings_read_as_their_text() {
        let xml = r#"<sst><si><t>plain</t></si><si><r><t>rich </t></r><r><t>text &amp; more</t></r><rPh><t>ふりがな</t></rPh></si><si/></sst>"#;
        assert_eq!(
            shared_strings(xml).expect("sst"),
            ["plain", "rich text & more", ""]
        );
    }

    #[test]
    fn cells_of_every_type_show_as_a_spreadsheet_would() {
        let strings = vec!["Name".to_owned(), "Ada".to_owned()];
        let xml = r#"<worksheet><sheetData>
            <row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="inlineStr"><is><t>Born</t></is></c></row>
            <row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2"><v>1815</v></c><c r="C2" t="b"><v>1</v></c><c r="D2" t="str"><f>A2</f><v>Ada</v></c></row>
            <row r="3"><c r="A3"/></row>
        </sheetData></worksheet>"#;
        assert_eq!(
            sheet_rows(xml, &strings).expect("sheet"),
            "Name\tBorn\nAda\t1815\tTRUE\tAda"
        );
    }
}
