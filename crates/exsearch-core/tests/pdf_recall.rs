//! PDF text against poppler's: of the words `pdftotext` finds in the shared
//! real-world PDFs, the share our extractor finds too, counted with
//! multiplicity, page by page. poppler-utils is installed by
//! scripts/deps.sh for this test only; the product does not use it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use exsearch_core::corpus::{extract, DocumentKind};

/// Words as a person searches for them: runs of at least three letters,
/// lowercased.
fn words(text: &str) -> HashMap<String, usize> {
    tokens(text, |c| c.is_alphabetic(), 3)
}

/// Every run of letters and digits. Formulas are where this departs from
/// poppler, whose own output is least right there: it writes TeX's ‖x‖ as
/// "kxk" and a′ as "a0", where we write the symbols.
fn all_tokens(text: &str) -> HashMap<String, usize> {
    tokens(text, char::is_alphanumeric, 1)
}

fn tokens(text: &str, keep: impl Fn(char) -> bool, min: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for word in text
        .split(|c: char| !keep(c))
        .filter(|w| w.chars().count() >= min)
    {
        *counts.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// (found, total) of `reference`'s tokens in `ours`, page by page.
fn found(
    reference: &[String],
    ours: &[String],
    split: fn(&str) -> HashMap<String, usize>,
    missed: &mut Vec<String>,
) -> (usize, usize) {
    let (mut found, mut total) = (0, 0);
    for (theirs, ours) in reference.iter().zip(ours) {
        let ours = split(ours);
        for (word, n) in split(theirs) {
            let got = n.min(ours.get(&word).copied().unwrap_or(0));
            total += n;
            found += got;
            if got < n {
                missed.push(word);
            }
        }
    }
    (found, total)
}

/// `pdftotext`'s pages, split at its form feeds.
fn poppler_pages(path: &Path) -> Option<Vec<String>> {
    let out = Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext runs (poppler-utils: scripts/deps.sh installs it)");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(text.split('\u{c}').map(str::to_owned).collect())
}

fn dataset() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/real-pdfs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 31,
        "{} PDFs in {}",
        files.len(),
        root.display()
    );
    files
}

#[test]
fn pdf_words_match_poppler() {
    let files = dataset();
    let (mut found_words, mut total_words) = (0usize, 0usize);
    let (mut found_tokens, mut total_tokens) = (0usize, 0usize);
    let mut report = Vec::new();
    for path in &files {
        let Some(reference) = poppler_pages(path) else {
            continue; // poppler refuses it too (the password-protected one)
        };
        let ours = extract(DocumentKind::Pdf, &std::fs::read(path).expect("read"));
        let ours: Vec<String> = match ours {
            Ok(doc) => {
                let mut pages = vec![String::new(); reference.len()];
                for section in doc.sections {
                    let page = section.page.expect("pdf page") as usize;
                    if page >= 1 && page <= pages.len() {
                        pages[page - 1].push_str(&section.text);
                    }
                }
                pages
            }
            Err(_) => vec![String::new(); reference.len()],
        };
        let name = path.file_name().expect("name").to_string_lossy();
        if name.starts_with("011-google-doc") {
            // The example: kerned runs came out as "Na mesp a ces".
            let text = ours.join(" ");
            for word in ["Namespaces", "Jakarta", "Beautiful is better than ugly."] {
                assert!(text.contains(word), "{word:?} not in {name}: {text}");
            }
        }
        let mut missed = Vec::new();
        let (file_found, file_total) = found(&reference, &ours, words, &mut missed);
        missed.sort();
        missed.dedup();
        found_words += file_found;
        total_words += file_total;
        let (tokens_found, tokens_total) = found(&reference, &ours, all_tokens, &mut Vec::new());
        found_tokens += tokens_found;
        total_tokens += tokens_total;
        if file_found < file_total {
            missed.truncate(12);
            report.push(format!(
                "{name}: {file_found}/{file_total}, missing e.g. {}",
                missed.join(" ")
            ));
        }
    }
    let recall = found_words as f64 / total_words.max(1) as f64;
    let token_recall = found_tokens as f64 / total_tokens.max(1) as f64;
    eprintln!(
        "word recall against pdftotext: {recall:.4} ({found_words}/{total_words}); \
         every letter-or-digit token: {token_recall:.4} ({found_tokens}/{total_tokens})"
    );
    for line in &report {
        eprintln!("  {line}");
    }
    assert!(total_words > 10_000, "only {total_words} reference words");
    assert!(recall >= 0.99, "word recall {recall:.4}: {report:#?}");
    assert!(token_recall >= 0.95, "token recall {token_recall:.4}");
}

/// The shared PDF whose name contains `name`.
fn real_pdf(name: &str) -> PathBuf {
    dataset()
        .into_iter()
        .find(|p| p.to_string_lossy().contains(name))
        .unwrap_or_else(|| panic!("no {name} in the real PDFs"))
}

fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn columns_read_in_order_with_hyphenated_words_joined() {
    let path = real_pdf("026-latex-multicolumn");
    let doc = extract(DocumentKind::Pdf, &std::fs::read(&path).expect("read")).expect("pdf");
    let text = flat(&doc.sections[0].text);
    // Three lines of the left column, the first two cut by hyphens
    // ("adip-iscing", "con-sectetuer"), read as one sentence.
    for sentence in [
        "Lorem ipsum dolor sit amet, consectetuer adipiscing elit. Ut purus elit, vestibulum ut, placerat ac, adipiscing vitae, felis.",
        "Nam arcu libero, nonummy eget, consectetuer id, vulputate a, magna.",
    ] {
        assert!(text.contains(sentence), "{sentence:?} not in {text}");
    }
}

#[test]
fn bytes_before_the_header_do_not_hide_the_pdf() {
    let path = real_pdf("004-pdflatex-4-pages");
    let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n".to_vec();
    bytes.extend(std::fs::read(&path).expect("read"));
    let doc = extract(DocumentKind::Pdf, &bytes).expect("read past the junk");
    assert_eq!(doc.sections.len(), 4);
    assert!(flat(&doc.sections[0].text).contains("Hello, here is some text without a meaning."));
}

#[test]
fn a_filled_in_form_keeps_its_answers() {
    let path = real_pdf("012-libreoffice-form");
    let doc = extract(DocumentKind::Pdf, &std::fs::read(&path).expect("read")).expect("pdf");
    let text = flat(&doc.sections[0].text);
    // Typed into the "First Name" fields; empty fields and ticks add nothing.
    assert!(text.contains("Alice") && text.contains("Bob"), "{text}");
    assert!(!text.contains("Off"), "{text}");
}
