//! HTML through `scraper` (html5ever, the browser-grade parser Servo uses):
//! visible text only, block elements separated by blank lines so passages
//! break where the page does. The title is `<title>`, else the first `<h1>`.

use ego_tree::iter::Edge;
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
    let source = text::decode(bytes)?;
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
}
