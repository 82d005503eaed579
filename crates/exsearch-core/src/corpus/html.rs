//! HTML through `scraper` (html5ever, the browser-grade parser Servo uses):
//! visible text only, block elements separated by blank lines so passages
//! break where the page does. The title is `<title>`, else the first `<h1>`.
//! The page's bytes are decoded from the encoding it declares (see
//! [`declared_encoding`]), else as [`text::decode`] finds.

use ego_tree::iter::Edge;
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};
use scraper::{Html, Node};

use super::{clean_line, text, ExtractedDocument, Section, Skip};

/// Elements whose content a reader never sees.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "head", "svg", "iframe",
];

/// Elements that start a new paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "aside",
    "header",
    "footer",
    "nav",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "hr",
    "address",
    "details",
    "summary",
    "form",
    "fieldset",
];

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let source = text::decode_declared(bytes, declared_encoding(bytes))?;
    let html = Html::parse_document(&source);
    let mut out = String::with_capacity(source.len() / 2);
    let mut hidden_depth = 0usize;
    let mut title: Option<String> = None;
    let mut first_h1: Option<String> = None;
    for edge in html.root_element().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(el) => {
                    let name = el.name();
                    if name == "title" && title.is_none() {
                        let t: String = node
                            .descendants()
                            .filter_map(|n| n.value().as_text().map(|t| t.to_string()))
                            .collect();
                        title = clean_line(&t);
                    }
                    if name == "h1" && first_h1.is_none() {
                        let t: String = node
                            .descendants()
                            .filter_map(|n| n.value().as_text().map(|t| t.to_string()))
                            .collect();
                        first_h1 = clean_line(&t);
                    }
                    if HIDDEN.contains(&name) {
                        hidden_depth += 1;
                    } else if name == "br" {
                        out.push('\n');
                    } else if BLOCKS.contains(&name) || name == "td" || name == "th" {
                        break_paragraph(&mut out, name);
                    }
                }
                Node::Text(t) if hidden_depth == 0 => out.push_str(t),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(el) = node.value() {
                    let name = el.name();
                    if HIDDEN.contains(&name) {
                        hidden_depth = hidden_depth.saturating_sub(1);
                    } else if BLOCKS.contains(&name) {
                        break_paragraph(&mut out, name);
                    }
                }
            }
        }
    }
    Ok(ExtractedDocument {
        title: title.or(first_h1),
        sections: vec![Section {
            ocr: false,
            page: None,
            text: out.trim().to_owned(),
        }],
    })
}

fn break_paragraph(out: &mut String, element: &str) {
    let sep = if matches!(element, "td" | "th") {
        " "
    } else {
        "\n\n"
    };
    if !out.is_empty() && !out.ends_with(sep) {
        out.push_str(sep);
    }
}

/// How much of a page browsers scan for a `<meta>` charset before parsing.
const PRESCAN_BYTES: usize = 1024;

/// The encoding a page declares in its first kilobyte, as browsers' prescan
/// reads it: `<meta charset=...>`, `<meta http-equiv="Content-Type"
/// content="...; charset=...">`, or an XML declaration's `encoding`. A
/// declared UTF-16 is ignored, as browsers do: a page that got this far has
/// no byte-order mark and no NUL bytes, so it is not UTF-16.
fn declared_encoding(bytes: &[u8]) -> Option<&'static Encoding> {
    let head = bytes[..bytes.len().min(PRESCAN_BYTES)].to_ascii_lowercase();
    let from_tag = |tag: &[u8], name: &[u8]| {
        attribute_value(tag, name)
            .and_then(Encoding::for_label)
            .filter(|&e| e != UTF_16LE && e != UTF_16BE)
    };
    if head.starts_with(b"<?xml") {
        let end = find(&head, b"?>").unwrap_or(head.len());
        if let Some(encoding) = from_tag(&head[..end], b"encoding") {
            return Some(encoding);
        }
    }
    let mut at = 0;
    while let Some(start) = find(&head[at..], b"<meta").map(|i| at + i) {
        let end = head[start..]
            .iter()
            .position(|&b| b == b'>')
            .map_or(head.len(), |i| start + i);
        if let Some(encoding) = from_tag(&head[start..end], b"charset") {
            return Some(encoding);
        }
        at = end;
    }
    None
}

/// The value after `name=` in a tag, quoted or bare, up to its closing
/// quote, a `;`, white space or the tag's end.
fn attribute_value<'a>(tag: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = tag[find(tag, name)? + name.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'"' | b'\'' | b';' | b'/' | b'>') || b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_text_with_paragraphs_and_title() {
        let doc = extract(
            b"<html><head><title> My  Page </title><style>p{}</style></head>\
              <body><h1>Head</h1><p>First <b>bold</b> para.</p><script>var x;</script>\
              <p>Second.</p></body></html>",
        )
        .expect("valid html");
        assert_eq!(doc.title.as_deref(), Some("My Page"));
        assert_eq!(doc.sections[0].text, "Head\n\nFirst bold para.\n\nSecond.");
    }

    fn latin1_page(head: &str, body: &str) -> Vec<u8> {
        let mut page = format!("<html><head>{head}<title>x</title></head><body><p>").into_bytes();
        // ISO-8859-1: one byte a letter.
        page.extend(
            body.chars()
                .map(|c| u8::try_from(u32::from(c)).expect("latin-1")),
        );
        page.extend_from_slice(b"</p></body></html>");
        page
    }

    #[test]
    fn pages_are_decoded_from_the_charset_they_declare() {
        let body = "Grüße aus Zürich: ½ Stück Käse";
        for head in [
            r#"<meta charset="iso-8859-1">"#,
            "<META CHARSET=latin1>",
            r#"<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">"#,
            "<meta http-equiv='content-type' content='text/html;charset=windows-1252'/>",
        ] {
            let doc = extract(&latin1_page(head, body)).expect(head);
            assert_eq!(doc.sections[0].text, body, "{head}");
        }
        let mut xhtml = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>".to_vec();
        xhtml.extend(latin1_page("", body));
        assert_eq!(extract(&xhtml).expect("xhtml").sections[0].text, body);
    }

    #[test]
    fn the_prescan_reads_charsets_and_ignores_what_is_not_one() {
        let label = |page: &str| declared_encoding(page.as_bytes()).map(|e| e.name());
        assert_eq!(label(r#"<meta charset="koi8-r">"#), Some("KOI8-R"));
        assert_eq!(
            label(r#"<meta name="x" content="y"><meta charset=gbk>"#),
            Some("GBK")
        );
        assert_eq!(label(r#"<meta charset="utf-16">"#), None);
        assert_eq!(label(r#"<meta charset="no-such-thing">"#), None);
        assert_eq!(label("<p>charset=latin1</p>"), None);
        // Past the first kilobyte, as in browsers.
        assert_eq!(
            label(&format!("{}<meta charset=latin1>", " ".repeat(1100))),
            None
        );
    }
}
