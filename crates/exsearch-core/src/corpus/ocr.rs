//! Optical character recognition through Tesseract, the maintained open
//! engine every Linux distribution packages (`tesseract-ocr`), run as a
//! process: an image goes in on stdin (PNG, JPEG, TIFF with all its pages,
//! PNM, JPEG 2000: whatever its Leptonica reads), words come back as TSV
//! with a confidence each. Words Tesseract is unsure of, and pages whose
//! words are mostly unsure (a photograph read as text), are dropped.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Words below this confidence (0-100) are noise more often than text.
const MIN_WORD_CONFIDENCE: f32 = 30.0;
/// A page whose kept words average below this is not text (a photograph,
/// a drawing): nothing of it is kept.
const MIN_PAGE_CONFIDENCE: f32 = 55.0;
/// One image may take this long; a larger one is refused, not waited on.
const TIMEOUT: Duration = Duration::from_secs(180);

/// A Tesseract that runs, with the language data to read.
#[derive(Debug, Clone)]
pub struct Ocr {
    program: PathBuf,
    languages: String,
}

impl Ocr {
    /// Tesseract from `EXSEARCH_TESSERACT` or the `PATH`, reading English
    /// (`EXSEARCH_OCR_LANG`, Tesseract's `-l` syntax such as `eng+deu`,
    /// overrides it); found once per process. `Err` says what is missing.
    pub fn detect() -> Result<&'static Ocr, String> {
        static FOUND: OnceLock<Result<Ocr, String>> = OnceLock::new();
        FOUND
            .get_or_init(|| {
                let program = std::env::var_os("EXSEARCH_TESSERACT")
                    .map_or_else(|| PathBuf::from("tesseract"), PathBuf::from);
                let languages =
                    std::env::var("EXSEARCH_OCR_LANG").unwrap_or_else(|_| "eng".to_owned());
                Self::new(program, languages)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn new(program: PathBuf, languages: String) -> Result<Ocr, String> {
        let missing = || {
            format!(
                "Tesseract is not installed ({} not found; on Debian or Ubuntu: \
                 apt-get install tesseract-ocr)",
                program.display()
            )
        };
        let out = Command::new(&program)
            .arg("--list-langs")
            .stdin(Stdio::null())
            .output()
            .map_err(|_| missing())?;
        // Tesseract 4 wrote the list to stderr, 5 to stdout.
        let listed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let have: Vec<&str> = listed.lines().map(str::trim).collect();
        for language in languages.split('+') {
            if !have.contains(&language) {
                return Err(format!(
                    "Tesseract has no '{language}' language data (apt-get install \
                     tesseract-ocr-{language})"
                ));
            }
        }
        Ok(Ocr { program, languages })
    }

    /// The text of each page of `image`, in order ("" for a page with no
    /// text it is sure of).
    pub fn recognize(&self, image: &[u8]) -> Result<Vec<String>, String> {
        let mut child = Command::new(&self.program)
            .args([
                "stdin",
                "stdout",
                "-l",
                &self.languages,
                "--psm",
                "3",
                "tsv",
            ])
            // Our extractors already run one per core.
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let result = std::thread::scope(|scope| {
            scope.spawn(move || {
                // A broken pipe means Tesseract stopped reading: its exit
                // status says why.
                let _ = stdin.write_all(image);
            });
            let out = scope.spawn(move || {
                let mut buf = Vec::new();
                let _ = stdout.read_to_end(&mut buf);
                buf
            });
            let err = scope.spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr.read_to_end(&mut buf);
                buf
            });
            let started = Instant::now();
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if started.elapsed() > TIMEOUT => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(format!(
                            "OCR took over {} s on one image; stopped",
                            TIMEOUT.as_secs()
                        ));
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => break Err(format!("waiting for Tesseract: {e}")),
                }
            };
            let out = out.join().unwrap_or_default();
            let err = err.join().unwrap_or_default();
            (status, out, err)
        });
        let (status, out, err) = result;
        let status = status?;
        if !status.success() {
            let message = String::from_utf8_lossy(&err);
            let message = message
                .lines()
                .find(|l| l.contains("rror") || l.contains("annot"))
                .or_else(|| message.lines().last())
                .unwrap_or("no message");
            return Err(format!("Tesseract could not read the image: {message}"));
        }
        Ok(pages_from_tsv(&String::from_utf8_lossy(&out)))
    }
}

/// Rebuilds pages from Tesseract's TSV: words (level 5) joined by spaces,
/// lines by newlines, paragraphs and blocks by blank lines; unsure words
/// and unsure pages dropped.
fn pages_from_tsv(tsv: &str) -> Vec<String> {
    struct Page {
        text: String,
        confidence: f32,
        letters: usize,
        /// (block, paragraph, line) of the last word.
        at: Option<(u32, u32, u32)>,
    }
    let mut pages: Vec<Page> = Vec::new();
    for row in tsv.lines().skip(1) {
        let cols: Vec<&str> = row.splitn(12, '\t').collect();
        if cols.len() < 12 || cols[0] != "5" {
            continue;
        }
        let number = |i: usize| cols[i].trim().parse::<u32>().unwrap_or(0);
        let (page, block, paragraph, line) = (number(1) as usize, number(2), number(3), number(4));
        let confidence: f32 = cols[10].trim().parse().unwrap_or(-1.0);
        let word = cols[11].trim();
        if page == 0 {
            continue;
        }
        while pages.len() < page {
            pages.push(Page {
                text: String::new(),
                confidence: 0.0,
                letters: 0,
                at: None,
            });
        }
        if word.is_empty() || confidence < MIN_WORD_CONFIDENCE {
            continue;
        }
        let p = &mut pages[page - 1];
        match p.at {
            Some((b, para, l)) if (b, para, l) == (block, paragraph, line) => p.text.push(' '),
            Some((b, para, _)) if (b, para) == (block, paragraph) => p.text.push('\n'),
            Some(_) => p.text.push_str("\n\n"),
            None => {}
        }
        p.text.push_str(word);
        p.at = Some((block, paragraph, line));
        let letters = word.chars().filter(|c| c.is_alphanumeric()).count();
        p.confidence += confidence * letters as f32;
        p.letters += letters;
    }
    pages
        .into_iter()
        .map(|p| {
            let mean = p.confidence / p.letters.max(1) as f32;
            if p.letters == 0 || mean < MIN_PAGE_CONFIDENCE {
                String::new()
            } else {
                p.text
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n";

    fn word(page: u32, block: u32, par: u32, line: u32, conf: f32, text: &str) -> String {
        format!("5\t{page}\t{block}\t{par}\t{line}\t1\t0\t0\t10\t10\t{conf}\t{text}\n")
    }

    #[test]
    fn words_lines_paragraphs_and_pages_come_back_in_order() {
        let tsv = [
            HEADER.to_owned(),
            "1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n".to_owned(),
            word(1, 1, 1, 1, 96.0, "Copper"),
            word(1, 1, 1, 1, 91.0, "kettles"),
            word(1, 1, 1, 2, 90.0, "traded"),
            word(1, 2, 1, 1, 95.0, "Thursday."),
            word(1, 2, 1, 1, 12.0, "~%"),
            word(3, 1, 1, 1, 93.0, "Third"),
        ]
        .concat();
        assert_eq!(
            pages_from_tsv(&tsv),
            ["Copper kettles\ntraded\n\nThursday.", "", "Third"]
        );
    }

    #[test]
    fn a_page_of_unsure_words_is_not_text() {
        let tsv = [
            HEADER.to_owned(),
            word(1, 1, 1, 1, 40.0, "Wl1"),
            word(1, 1, 1, 1, 35.0, "ftt"),
            word(1, 1, 1, 1, 70.0, "a"),
        ]
        .concat();
        assert_eq!(pages_from_tsv(&tsv), [""]);
    }

    #[test]
    fn a_missing_program_is_named_with_its_package() {
        let err = Ocr::new("/nonexistent/tesseract".into(), "eng".into()).expect_err("no program");
        assert!(err.contains("apt-get install tesseract-ocr"), "{err}");
    }
}
