//! From a file on disk to plain text: format detection, one extractor per
//! format, and the reasons a file cannot be indexed.
//!
//! Extractors never panic on bad input as far as we can help it; the PDF
//! parser is a large third-party codebase, so calls into it also run under
//! `catch_unwind` (see [`pdf`]).

mod archive;
mod docx;
mod email;
mod epub;
mod html;
mod markdown;
mod ocr;
mod odf;
pub mod passages;
mod pdf;
mod pptx;
mod rtf;
mod text;
mod xlsx;

pub use ocr::Ocr;
pub(crate) use pdf::panic_message;

use std::io::Read;
use std::path::Path;

use serde::Serialize;

/// The formats we index, decided by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Epub,
    Odt,
    Odp,
    Ods,
    Pptx,
    Xlsx,
    Rtf,
    Eml,
    Mbox,
    /// A scan or photograph (PNG, JPEG, TIFF...): read by OCR.
    Image,
}

impl DocumentKind {
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" | "mdown" | "mkd" | "mdx" => Self::Markdown,
            "html" | "htm" | "xhtml" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "epub" => Self::Epub,
            "odt" => Self::Odt,
            "odp" => Self::Odp,
            "ods" => Self::Ods,
            "pptx" => Self::Pptx,
            "xlsx" => Self::Xlsx,
            "rtf" => Self::Rtf,
            "eml" => Self::Eml,
            "mbox" | "mbx" => Self::Mbox,
            "png" | "jpg" | "jpeg" | "tif" | "tiff" | "bmp" | "gif" | "webp" | "jp2" | "pnm"
            | "pbm" | "pgm" | "ppm" => Self::Image,
            e if TEXT_EXTENSIONS.contains(&e) => Self::Text,
            _ => return None,
        })
    }

    /// The kind of the file at `path`: by extension, or, for a file with
    /// none, by its first bytes (mail clients keep mailboxes as `Inbox`,
    /// `Sent`...). Reads at most 4 KiB, and only of extensionless files.
    pub fn detect(path: &Path) -> Option<Self> {
        if path.extension().is_some() {
            return Self::from_path(path);
        }
        let mut head = Vec::with_capacity(4096);
        std::io::Read::take(std::fs::File::open(path).ok()?, 4096)
            .read_to_end(&mut head)
            .ok()?;
        looks_like_mbox(&head).then_some(Self::Mbox)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Epub => "epub",
            Self::Odt => "odt",
            Self::Odp => "odp",
            Self::Ods => "ods",
            Self::Pptx => "pptx",
            Self::Xlsx => "xlsx",
            Self::Rtf => "rtf",
            Self::Eml => "eml",
            Self::Mbox => "mbox",
            Self::Image => "image",
        }
    }

    /// Whether only OCR can read files of this kind.
    pub fn needs_ocr(self) -> bool {
        self == Self::Image
    }
}

/// An mbox mailbox: a `From ` separator line (`From sender date`, or
/// Thunderbird's `From - date`), then a header block in which a mail
/// header (`From:`, `Date:`, `Subject:`, `Message-ID:`...) appears.
fn looks_like_mbox(head: &[u8]) -> bool {
    let Some(rest) = head.strip_prefix(b"From ") else {
        return false;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.lines();
    let separator = lines.next().unwrap_or_default();
    // The separator ends with a date: a year or a time.
    if !separator.split_whitespace().any(|w| {
        w.len() == 4 && w.chars().all(|c| c.is_ascii_digit())
            || w.len() == 8 && w.as_bytes()[2] == b':'
    }) {
        return false;
    }
    let mut headers = lines.take_while(|l| !l.trim().is_empty());
    headers.any(|l| {
        let name = l.split(':').next().unwrap_or_default().to_ascii_lowercase();
        l.contains(':')
            && matches!(
                name.as_str(),
                "from" | "to" | "date" | "subject" | "message-id" | "return-path" | "received"
            )
    })
}

/// Plain text, notes and source code: indexed as they are.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt",
    "text",
    "log",
    "rst",
    "org",
    "adoc",
    "tex",
    "bib",
    "csv",
    "tsv",
    "json",
    "jsonl",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "xml",
    "rs",
    "py",
    "pyi",
    "ipynb",
    "js",
    "mjs",
    "cjs",
    "ts",
    "tsx",
    "jsx",
    "go",
    "java",
    "kt",
    "kts",
    "scala",
    "c",
    "h",
    "cc",
    "cpp",
    "cxx",
    "hpp",
    "hh",
    "cs",
    "fs",
    "rb",
    "php",
    "swift",
    "m",
    "mm",
    "r",
    "jl",
    "lua",
    "pl",
    "pm",
    "sh",
    "bash",
    "zsh",
    "fish",
    "ps1",
    "sql",
    "hs",
    "ml",
    "mli",
    "ex",
    "exs",
    "erl",
    "clj",
    "el",
    "vim",
    "css",
    "scss",
    "less",
    "vue",
    "svelte",
    "dart",
    "zig",
    "nim",
    "proto",
    "graphql",
    "dockerfile",
    "makefile",
    "cmake",
    "gradle",
];

/// One extracted unit of a document: a PDF page, or the whole text of any
/// other format. Passage offsets count characters into `text`.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// 1-based page number, for PDFs (and slides, and the pages of a TIFF).
    pub page: Option<u32>,
    pub text: String,
    /// Read from a scanned image by OCR, not from the file's text.
    pub ocr: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedDocument {
    /// A title from the file itself (PDF metadata, HTML `<title>`, first
    /// Markdown heading, DOCX core properties); callers fall back to the
    /// file name.
    pub title: Option<String>,
    pub sections: Vec<Section>,
}

/// Why a file was not indexed. Each reason is shown to the user as it is and
/// stored in the catalog with its [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Skip {
    #[error("password-protected PDF (encrypted); remove the password to index it")]
    Encrypted,
    #[error("no text layer (image-only PDF: turn OCR on, with Tesseract installed, to read its scanned pages)")]
    NoTextLayer,
    #[error("no text found by OCR (a picture without writing, or too blurred to read)")]
    NoTextFound,
    #[error("no text layer, and no page image large enough to be a scan (drawings or icons only)")]
    NoScannedPage,
    #[error("an image: OCR reads it, and OCR is unavailable: {0}")]
    NeedsOcr(String),
    #[error("corrupt or unsupported {kind}: {detail}")]
    Corrupt { kind: &'static str, detail: String },
    #[error("binary content in a text file (NUL byte at offset {offset})")]
    Binary { offset: usize },
    #[error("empty file")]
    Empty,
    #[error("no text (the file holds only whitespace or markup)")]
    NoText,
    #[error("file too large ({size} bytes; the limit is {limit} bytes, see --max-file-mb)")]
    TooLarge { size: u64, limit: u64 },
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("symbolic link loop: {0}")]
    SymlinkLoop(String),
    #[error("the {kind} parser crashed on this file: {detail}")]
    ParserCrashed { kind: &'static str, detail: String },
}

impl Skip {
    pub fn code(&self) -> &'static str {
        match self {
            Skip::Encrypted => "encrypted",
            Skip::NoTextLayer => "no_text_layer",
            Skip::NoTextFound => "no_text_found",
            Skip::NoScannedPage => "no_scanned_page",
            Skip::NeedsOcr(_) => "needs_ocr",
            Skip::Corrupt { .. } => "corrupt",
            Skip::Binary { .. } => "binary",
            Skip::Empty => "empty",
            Skip::NoText => "no_text",
            Skip::TooLarge { .. } => "too_large",
            Skip::Unreadable(_) => "unreadable",
            Skip::SymlinkLoop(_) => "symlink_loop",
            Skip::ParserCrashed { .. } => "parser_crashed",
        }
    }

    /// Whether OCR could read what this failure left unread: worth another
    /// try once OCR is on.
    pub fn wants_ocr(code: &str) -> bool {
        matches!(code, "no_text_layer" | "needs_ocr")
    }

    /// Whether retrying the same bytes could succeed (the file's content is
    /// not the cause), so `sync` tries again even when size and mtime match.
    /// Also `not_utf8`, which earlier versions gave files in legacy
    /// encodings that are now decoded.
    pub fn is_transient(code: &str) -> bool {
        matches!(
            code,
            "unreadable" | "symlink_loop" | "too_large" | "not_utf8"
        )
    }
}

/// Extracts the text of a file whose bytes are already read, without OCR.
pub fn extract(kind: DocumentKind, bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    extract_with(kind, bytes, None)
}

/// Extracts the text of a file whose bytes are already read; with `ocr`,
/// images and the scanned pages of PDFs are read too.
pub fn extract_with(
    kind: DocumentKind,
    bytes: &[u8],
    ocr: Option<&Ocr>,
) -> Result<ExtractedDocument, Skip> {
    extract_inner(kind, bytes, ocr, None, &|_, _| {})
}

/// As [`extract_with`], calling `on_ocr(page, pages)` before each page is
/// read by OCR (a page takes seconds; a long scan wants progress).
pub fn extract_reporting(
    kind: DocumentKind,
    bytes: &[u8],
    ocr: Option<&Ocr>,
    on_ocr: &dyn Fn(u32, u32),
) -> Result<ExtractedDocument, Skip> {
    extract_inner(kind, bytes, ocr, None, on_ocr)
}

/// As [`extract_with`], reading by OCR only page `page` of a PDF (the
/// others come back as their text layer alone): what showing one page
/// needs, without OCR of the whole file.
pub fn extract_page_with(
    kind: DocumentKind,
    bytes: &[u8],
    ocr: Option<&Ocr>,
    page: Option<u32>,
) -> Result<ExtractedDocument, Skip> {
    extract_inner(kind, bytes, ocr, page, &|_, _| {})
}

fn extract_inner(
    kind: DocumentKind,
    bytes: &[u8],
    ocr: Option<&Ocr>,
    ocr_page: Option<u32>,
    on_ocr: &dyn Fn(u32, u32),
) -> Result<ExtractedDocument, Skip> {
    if bytes.is_empty() {
        return Err(Skip::Empty);
    }
    let doc = match kind {
        DocumentKind::Text => text::extract(bytes)?,
        DocumentKind::Markdown => markdown::extract(bytes)?,
        DocumentKind::Html => html::extract(bytes)?,
        DocumentKind::Pdf => pdf::extract(bytes, ocr, ocr_page, on_ocr)?,
        DocumentKind::Image => {
            if ocr.is_some() {
                on_ocr(1, 1);
            }
            image(bytes, ocr)?
        }
        DocumentKind::Docx => docx::extract(bytes)?,
        DocumentKind::Epub => epub::extract(bytes)?,
        DocumentKind::Odt => odf::extract(bytes, "ODT")?,
        DocumentKind::Odp => odf::extract(bytes, "ODP")?,
        DocumentKind::Ods => odf::extract(bytes, "ODS")?,
        DocumentKind::Pptx => pptx::extract(bytes)?,
        DocumentKind::Xlsx => xlsx::extract(bytes)?,
        DocumentKind::Rtf => rtf::extract(bytes)?,
        DocumentKind::Eml => email::extract_eml(bytes)?,
        DocumentKind::Mbox => email::extract_mbox(bytes)?,
    };
    if doc.sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(match kind {
            DocumentKind::Pdf if ocr.is_none() => Skip::NoTextLayer,
            DocumentKind::Pdf | DocumentKind::Image => Skip::NoTextFound,
            _ => Skip::NoText,
        });
    }
    Ok(doc)
}

/// An image file's text, a section per page (a TIFF may hold many).
fn image(bytes: &[u8], ocr: Option<&Ocr>) -> Result<ExtractedDocument, Skip> {
    let ocr = ocr.ok_or_else(|| Skip::NeedsOcr("OCR is off".into()))?;
    let pages = ocr.recognize(bytes).map_err(|detail| Skip::Corrupt {
        kind: "image",
        detail,
    })?;
    let many = pages.len() > 1;
    Ok(ExtractedDocument {
        title: None,
        sections: pages
            .into_iter()
            .enumerate()
            .map(|(i, text)| Section {
                page: many.then_some(i as u32 + 1),
                ocr: !text.is_empty(),
                text,
            })
            .collect(),
    })
}

/// Collapses runs of whitespace into one space and trims, for titles.
pub(crate) fn clean_line(s: &str) -> Option<String> {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!joined.is_empty()).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_extensions_case_insensitively() {
        assert_eq!(
            DocumentKind::from_path(Path::new("a/B.PDF")),
            Some(DocumentKind::Pdf)
        );
        assert_eq!(
            DocumentKind::from_path(Path::new("x.rs")),
            Some(DocumentKind::Text)
        );
        assert_eq!(
            DocumentKind::from_path(Path::new("notes.md")),
            Some(DocumentKind::Markdown)
        );
        assert_eq!(
            DocumentKind::from_path(Path::new("scan.TIFF")),
            Some(DocumentKind::Image)
        );
        assert_eq!(DocumentKind::from_path(Path::new("clip.mp4")), None);
        assert_eq!(DocumentKind::from_path(Path::new("Makefile")), None);
    }

    #[test]
    fn extensionless_mailboxes_are_told_by_their_first_lines() {
        assert!(looks_like_mbox(
            b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\nReturn-Path: <a@b>\nSubject: Hi\n\nBody"
        ));
        assert!(looks_like_mbox(
            b"From - Thu Jan 01 00:00:00 2020\nX-Mozilla-Status: 0001\nFrom: Ann <a@b>\n\nHi"
        ));
        // Prose that happens to start with "From " is not mail.
        assert!(!looks_like_mbox(
            b"From the authors of this book\n\nChapter 1"
        ));
        assert!(!looks_like_mbox(b"From here: 2020 was long\nNotes: none\n"));
        assert!(!looks_like_mbox(b"Subject: no separator line\n"));
    }

    #[test]
    fn empty_and_whitespace_files_are_skipped_with_a_reason() {
        assert_eq!(extract(DocumentKind::Text, b""), Err(Skip::Empty));
        assert_eq!(extract(DocumentKind::Text, b"  \n\t "), Err(Skip::NoText));
        assert_eq!(
            extract(DocumentKind::Html, b"<html><script>x()</script></html>"),
            Err(Skip::NoText)
        );
    }
}
