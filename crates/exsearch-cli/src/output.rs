//! Human-readable output: search hits with highlighted matches, status and
//! sync reports.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use exsearch_agent::Citation;
use exsearch_core::{Hit, LibraryStatus, SyncReport};

const BOLD_YELLOW: &str = "\x1b[1;33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub fn print_hits(hits: &[Hit]) {
    if hits.is_empty() {
        println!("no passages match");
        return;
    }
    let color = color();
    for (rank, hit) in hits.iter().enumerate() {
        let page = hit.page.map_or_else(String::new, |p| format!(", page {p}"));
        let (dim, reset) = if color { (DIM, RESET) } else { ("", "") };
        println!(
            "{}. {} {dim}({}{page}; score {:.2}; passage {}){reset}",
            rank + 1,
            hit.title,
            hit.path,
            hit.score,
            hit.passage_id
        );
        println!("   {}\n", highlight(&hit.text, &hit.highlights, color));
    }
}

/// Marks the highlighted char ranges: bold yellow on a terminal, `[...]`
/// otherwise, so a match stays visible in a pipe or a log.
fn highlight(text: &str, ranges: &[[usize; 2]], color: bool) -> String {
    let (open, close) = if color {
        (BOLD_YELLOW, RESET)
    } else {
        ("[", "]")
    };
    let mut out = String::with_capacity(text.len() + ranges.len() * 8);
    let mut ranges = ranges.iter().peekable();
    for (i, c) in text.chars().enumerate() {
        if ranges.peek().is_some_and(|r| r[0] == i) {
            out.push_str(open);
        }
        out.push(c);
        if ranges.peek().is_some_and(|r| r[1] == i + 1) {
            out.push_str(close);
            ranges.next();
        }
    }
    out
}

/// The numbered sources of an answer: file, page, character span and the
/// start of the passage.
pub fn print_citations(citations: &[Citation]) {
    for c in citations {
        let h = &c.passage;
        let page = h.page.map_or_else(String::new, |p| format!(" page {p},"));
        let excerpt: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let excerpt: String = excerpt.chars().take(160).collect();
        println!(
            "  [{}] {}{page} chars {}-{}: {excerpt}…",
            c.number, h.path, h.char_start, h.char_end
        );
    }
}

pub fn print_status(s: &LibraryStatus) {
    println!("library: {}", s.home.display());
    if s.folders.is_empty() {
        println!("no folders yet: add one with `exsearch library add DIR`");
    }
    for f in &s.folders {
        println!("  folder {}", f.path.display());
    }
    println!(
        "{} documents indexed ({}), {} passages, {} pending, {} skipped",
        s.documents,
        bytes(s.bytes),
        s.passages,
        s.pending,
        s.failed.len()
    );
    for f in &s.failed {
        println!("  skipped {}: {}", f.path, f.reason);
    }
}

pub fn print_report(r: &SyncReport) {
    println!(
        "{} indexed, {} unchanged, {} touched, {} removed, {} skipped this run; {} passages added, {} read in {}",
        r.indexed,
        r.unchanged,
        r.touched,
        r.removed,
        r.failed,
        r.passages_added,
        bytes(r.bytes_read),
        duration(r.elapsed_secs)
    );
    for f in &r.missing_folders {
        println!("folder {f} is missing (unplugged drive?): its documents were kept");
    }
    if r.cancelled {
        println!("cancelled: what was committed is kept; `exsearch library sync` continues");
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A byte-counting progress bar on stderr for long jobs. Without a terminal
/// (a log, a pipe) indicatif hides it, so `plain_line` prints a line at most
/// once a second instead.
pub struct Progress {
    pub bar: ProgressBar,
    plain: bool,
    last_line: Mutex<Option<Instant>>,
}

impl Progress {
    /// A bar counting bytes.
    pub fn new() -> Self {
        Self::with_template("{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}")
    }

    /// A bar counting items (questions, files), with an ETA.
    pub fn counting() -> Self {
        Self::with_template("{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta} {msg}")
    }

    fn with_template(template: &str) -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            plain: !std::io::stderr().is_terminal(),
            last_line: Mutex::new(None),
        }
    }

    /// Prints `line()` as `progress: ...` when stderr is not a terminal and a
    /// second has passed since the last one.
    pub fn plain_line(&self, line: impl FnOnce() -> String) {
        if !self.plain {
            return;
        }
        if let Ok(mut last) = self.last_line.lock() {
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(Instant::now());
                eprintln!("progress: {}", line());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_wrap_the_matched_chars() {
        assert_eq!(
            highlight("héllo wörld", &[[0, 5], [6, 11]], false),
            "[héllo] [wörld]"
        );
    }
}
