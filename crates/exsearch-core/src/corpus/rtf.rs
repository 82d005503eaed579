//! RTF, as word processors write it: a tokenizer over groups, control words
//! and text that keeps the visible text and drops the destinations a reader
//! never sees (font and color tables, style sheets, pictures, field
//! instructions, headers and footers, anything marked `\*`). `\par` breaks
//! paragraphs; `\'hh` bytes decode through the document's code page
//! (`\ansicpg`, Windows-1252 by default; double-byte pages included) and
//! `\uN` is Unicode with its `\ucN` fallback skipped. The title is `\title`
//! in the `\info` group.

use encoding_rs::{Encoding, WINDOWS_1252};

use super::{clean_line, ExtractedDocument, Section, Skip};

fn corrupt(detail: impl ToString) -> Skip {
    Skip::Corrupt {
        kind: "RTF",
        detail: detail.to_string(),
    }
}

/// Destinations whose text is not part of the document's body.
const HIDDEN: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "generator",
    "pict",
    "object",
    "fldinst",
    "header",
    "headerl",
    "headerr",
    "headerf",
    "footer",
    "footerl",
    "footerr",
    "footerf",
    "xmlnstbl",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "pgdsctbl",
    "filetbl",
    "bkmkstart",
    "bkmkend",
    "author",
    "operator",
    "company",
    "comment",
    "doccomm",
    "keywords",
    "subject",
    "category",
    "manager",
    "hlinkbase",
    "nonshppict",
    "shpinst",
    "template",
    "mmathPr",
    "userprops",
];

#[derive(Clone, Copy)]
struct Group {
    hidden: bool,
    /// Inside `\info{\title ...}`.
    title: bool,
    /// Fallback characters after `\uN`.
    uc: usize,
}

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    if !bytes.starts_with(b"{\\rtf") {
        return Err(corrupt("does not start with {\\rtf"));
    }
    let mut reader = Reader {
        bytes,
        at: 0,
        encoding: WINDOWS_1252,
        out: String::with_capacity(bytes.len() / 2),
        title: String::new(),
        pending: Vec::new(),
    };
    reader.run()?;
    Ok(ExtractedDocument {
        title: clean_line(&reader.title),
        sections: vec![Section {
            ocr: false,
            page: None,
            text: tidy(&reader.out),
        }],
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    encoding: &'static Encoding,
    out: String,
    title: String,
    /// `\'hh` bytes not decoded yet: a double-byte character spans two.
    pending: Vec<u8>,
}

impl Reader<'_> {
    fn run(&mut self) -> Result<(), Skip> {
        let mut stack: Vec<Group> = Vec::new();
        let mut group = Group {
            hidden: false,
            title: false,
            uc: 1,
        };
        // Fallback characters still to skip after a `\uN`.
        let mut skip = 0usize;
        // The group just opened: its first control word may name a destination.
        let mut fresh = false;
        while let Some(&b) = self.bytes.get(self.at) {
            self.at += 1;
            match b {
                b'{' => {
                    self.flush(&group);
                    stack.push(group);
                    fresh = true;
                    skip = 0;
                }
                b'}' => {
                    self.flush(&group);
                    group = stack.pop().ok_or_else(|| corrupt("unbalanced braces"))?;
                    fresh = false;
                    skip = 0;
                    if stack.is_empty() {
                        return Ok(());
                    }
                }
                b'\\' => {
                    let was_fresh = std::mem::take(&mut fresh);
                    self.control(&mut group, &mut skip, was_fresh)?;
                }
                b'\r' | b'\n' => {}
                _ => {
                    fresh = false;
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    self.flush(&group);
                    self.emit(&group, b as char);
                }
            }
        }
        // A file cut short keeps what it had.
        self.flush(&group);
        Ok(())
    }

    fn control(&mut self, group: &mut Group, skip: &mut usize, fresh: bool) -> Result<(), Skip> {
        let Some(&first) = self.bytes.get(self.at) else {
            return Ok(());
        };
        if !first.is_ascii_alphabetic() {
            self.at += 1;
            match first {
                b'\'' => {
                    let hex = self.bytes.get(self.at..self.at + 2).unwrap_or_default();
                    self.at += hex.len();
                    let value = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    if *skip > 0 {
                        *skip -= 1;
                    } else if let Some(v) = value {
                        if !group.hidden {
                            self.pending.push(v);
                        }
                    }
                }
                b'*' if fresh => group.hidden = true,
                b'~' => self.plain(group, ' '),
                b'_' => self.plain(group, '-'),
                b'\\' | b'{' | b'}' => self.plain(group, first as char),
                b'\r' | b'\n' => self.plain(group, '\n'),
                _ => {} // `\-` optional hyphen, `\|`, `\:`...
            }
            return Ok(());
        }
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_alphabetic) {
            self.at += 1;
        }
        let word = std::str::from_utf8(&self.bytes[start..self.at]).unwrap_or_default();
        let num_start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let param: Option<i64> = std::str::from_utf8(&self.bytes[num_start..self.at])
            .ok()
            .and_then(|n| n.parse().ok());
        if self.bytes.get(self.at) == Some(&b' ') {
            self.at += 1;
        }
        match word {
            "bin" => {
                // Raw bytes follow: skipped whole.
                self.at = self.at.saturating_add(param.unwrap_or(0).max(0) as usize);
                return Ok(());
            }
            "u" => {
                if let Some(n) = param {
                    let code = if n < 0 { n + 65536 } else { n };
                    self.flush(group);
                    if let Some(c) = u32::try_from(code).ok().and_then(char::from_u32) {
                        self.emit(group, c);
                    }
                    *skip = group.uc;
                }
                return Ok(());
            }
            "uc" => group.uc = param.unwrap_or(1).clamp(0, 16) as usize,
            "ansicpg" => {
                let label = format!("windows-{}", param.unwrap_or(1252));
                let label = match param {
                    Some(932) => "shift_jis".to_owned(),
                    Some(936) => "gbk".to_owned(),
                    Some(949) => "euc-kr".to_owned(),
                    Some(950) => "big5".to_owned(),
                    _ => label,
                };
                if let Some(e) = Encoding::for_label(label.as_bytes()) {
                    self.encoding = e;
                }
            }
            "title" => group.title = true,
            _ if HIDDEN.contains(&word) => group.hidden = true,
            _ => {}
        }
        self.flush(group);
        let text = match word {
            "par" | "sect" | "page" => "\n\n",
            "line" | "row" => "\n",
            "tab" | "cell" => "\t",
            "emdash" => "\u{2014}",
            "endash" => "\u{2013}",
            "bullet" => "\u{2022}",
            "lquote" => "\u{2018}",
            "rquote" => "\u{2019}",
            "ldblquote" => "\u{201C}",
            "rdblquote" => "\u{201D}",
            _ => "",
        };
        for c in text.chars() {
            self.emit(group, c);
        }
        Ok(())
    }

    /// Decodes pending `\'hh` bytes into the text.
    fn flush(&mut self, group: &Group) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        let (text, _) = self.encoding.decode_without_bom_handling(&bytes);
        for c in text.chars() {
            self.emit(group, c);
        }
    }

    fn plain(&mut self, group: &Group, c: char) {
        self.flush(group);
        self.emit(group, c);
    }

    fn emit(&mut self, group: &Group, c: char) {
        if group.title {
            self.title.push(c);
        } else if !group.hidden {
            self.out.push(c);
        }
    }
}

/// Trims spaces at line ends and collapses runs of blank lines.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line.trim_start_matches(' '));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(rtf: &str) -> String {
        extract(rtf.as_bytes()).expect("rtf").sections[0]
            .text
            .clone()
    }

    #[test]
    fn tables_and_pictures_are_dropped_and_paragraphs_kept() {
        let rtf = r"{\rtf1\ansi{\fonttbl{\f0 Times;}}{\colortbl;\red0\green0\blue0;}{\*\generator Writer;}{\info{\title The  Plan}{\author Ann}}
\pard\plain First \b bold\b0  words.\par
Second{\*\bkmkstart x} line\line wrapped\tab tabbed.\par{\pict\pngblip 89504e47}{\field{\*\fldinst HYPERLINK x}{\fldrslt shown link}}\par}";
        let doc = extract(rtf.as_bytes()).expect("rtf");
        assert_eq!(doc.title.as_deref(), Some("The Plan"));
        assert_eq!(
            doc.sections[0].text,
            "First bold words.\n\nSecond line\nwrapped\ttabbed.\n\nshown link"
        );
    }

    #[test]
    fn code_pages_and_unicode_escapes_decode() {
        assert_eq!(text(r"{\rtf1\ansi Caf\'e9 cr\'e8me}"), "Café crème");
        assert_eq!(
            text(r"{\rtf1\ansi\ansicpg1251 \'cc\'ee\'f1\'ea\'e2\'e0}"),
            "Москва"
        );
        // Shift_JIS: two bytes a character.
        assert_eq!(text(r"{\rtf1\ansi\ansicpg932 \'93\'8c\'8b\'9e}"), "東京");
        // \uN, then its one-byte fallback skipped; \uc2 skips two.
        assert_eq!(
            text(r"{\rtf1 Z\u252?rich, \uc2\u-3913\'3f\'3f!}"),
            "Zürich, \u{f0b7}!"
        );
    }

    #[test]
    fn what_is_not_rtf_is_refused_and_a_cut_file_keeps_its_text() {
        assert!(matches!(
            extract(b"plain text"),
            Err(Skip::Corrupt { kind: "RTF", .. })
        ));
        assert_eq!(text(r"{\rtf1 kept words\par lost"), "kept words\n\nlost");
        assert_eq!(text(r"{\rtf1 a}} ignored"), "a");
    }
}
