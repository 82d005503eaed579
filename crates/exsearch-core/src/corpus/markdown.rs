//! Markdown is indexed as its source text: the analyzer drops the markup
//! characters, and passage offsets then point into the file the user edits.
//! The title is the YAML front-matter `title:` or the first ATX heading.

use super::{clean_line, text, ExtractedDocument, Section, Skip};

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    let text = text::decode(bytes)?;
    Ok(ExtractedDocument {
        title: title(&text),
        sections: vec![Section {
            page: None,
            text,
            ocr: false,
        }],
    })
}

fn title(text: &str) -> Option<String> {
    let mut lines = text.lines();
    if text.starts_with("---") {
        lines.next();
        for line in lines.by_ref() {
            if line.trim_end() == "---" {
                break;
            }
            if let Some(t) = line.strip_prefix("title:") {
                return clean_line(t.trim().trim_matches(|c| c == '"' || c == '\''));
            }
        }
    }
    lines
        .find_map(|l| l.strip_prefix("# ").or_else(|| l.strip_prefix("## ")))
        .and_then(|t| clean_line(t.trim_end_matches('#')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_comes_from_front_matter_then_first_heading() {
        assert_eq!(
            title("---\ntitle: \"Notes\"\n---\n# Other").as_deref(),
            Some("Notes")
        );
        assert_eq!(
            title("intro\n\n# Main  heading #\nbody").as_deref(),
            Some("Main heading")
        );
        assert_eq!(title("no heading"), None);
    }
}
