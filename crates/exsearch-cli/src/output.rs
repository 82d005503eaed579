//! Human-readable output: search hits with highlighted matches, status and
//! sync reports.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use exsearch_agent::Citation;
use exsearch_core::{Hit, LibraryEvent, LibraryStatus, Retrieval, SyncReport};
use exsearch_train::TrainEvent;

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
        let ocr = if hit.ocr { "; read by OCR" } else { "" };
        let (dim, reset) = if color { (DIM, RESET) } else { ("", "") };
        println!(
            "{}. {} {dim}({}{page}{ocr}; score {:.2}; passage {}){reset}",
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
    match (&s.retrieval, &s.encoder) {
        (Retrieval::Hybrid, Some(encoder)) => println!(
            "retrieval: hybrid (BM25 + {encoder}), {} of {} passages embedded",
            s.vectors, s.passages
        ),
        (Retrieval::Hybrid, None) => {
            println!("retrieval: hybrid, no passage embedded yet (the next sync embeds them)")
        }
        (Retrieval::Bm25, _) => println!("retrieval: bm25"),
    }
    match (s.ocr, &s.ocr_unavailable) {
        (false, _) => println!("OCR: off"),
        (true, None) => println!("OCR: on (images and scanned pages are read)"),
        (true, Some(why)) => println!("OCR: on, but cannot run: {why}"),
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
    if let Some(e) = &r.embedding {
        println!(
            "{} passages embedded by {} in {}, {} vectors in all{}",
            e.embedded,
            e.encoder.as_deref().unwrap_or("the encoder"),
            duration(e.elapsed_secs),
            e.vectors,
            if e.dropped > 0 {
                format!(", {} dropped with their passages", e.dropped)
            } else {
                String::new()
            }
        );
    }
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
    pace: Mutex<Pace>,
}

/// The time left in a count (training steps, sampled questions) at its mean
/// pace so far. A training step takes seconds, too long for indicatif's
/// 15-second estimate, and a resumed phase starts at the step it stopped
/// at: the pace counts only the positions moved since this count's first.
#[derive(Debug, Default)]
struct Pace {
    /// When the count was first seen, at which position, its length and
    /// the last position.
    start: Option<(Instant, u64, u64, u64)>,
}

impl Pace {
    /// Records `pos` of `len` at `now`; the time left, once a position has
    /// been moved and until the last (as the app shows it). A new length or
    /// a position that goes back starts a new count.
    fn update(&mut self, pos: u64, len: u64, now: Instant) -> Option<Duration> {
        match &mut self.start {
            Some((since, first, l, last)) if *l == len && pos >= *last => {
                *last = pos;
                let moved = pos - *first;
                (moved > 0 && pos < len)
                    .then(|| (now - *since).mul_f64(len.saturating_sub(pos) as f64 / moved as f64))
            }
            _ => {
                self.start = Some((now, pos, len, pos));
                None
            }
        }
    }
}

impl Progress {
    /// A bar counting bytes.
    pub fn new() -> Self {
        Self::with_template("{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg}")
    }

    /// A bar counting training steps or sampled questions; the message says
    /// the time left.
    pub fn counting() -> Self {
        Self::with_template("{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {msg}")
    }

    fn with_template(template: &str) -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            bar,
            plain: !std::io::stderr().is_terminal(),
            last_line: Mutex::new(None),
            pace: Mutex::new(Pace::default()),
        }
    }

    /// Moves the bar to `pos` of `len`; returns `", 12m30s left"` once
    /// the count's pace is known, else nothing.
    pub(crate) fn count(&self, pos: usize, len: usize) -> String {
        let (pos, len) = (pos as u64, len as u64);
        self.bar.set_length(len);
        self.bar.set_position(pos);
        let left = self
            .pace
            .lock()
            .ok()
            .and_then(|mut p| p.update(pos, len, Instant::now()));
        left.map_or_else(String::new, |d| {
            format!(", {} left", duration(d.as_secs_f64()))
        })
    }

    /// Starts a new count at the next [`Progress::count`] (a new phase).
    fn new_count(&self) {
        if let Ok(mut p) = self.pace.lock() {
            *p = Pace::default();
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

/// Draws a sync's progress on `progress` and lists skipped files above it.
pub(crate) fn sync_progress(progress: &Progress) -> impl Fn(LibraryEvent) + Send + Sync + '_ {
    let bar = &progress.bar;
    move |event: LibraryEvent| match event {
        LibraryEvent::Started(p) | LibraryEvent::Progress(p) => {
            progress.plain_line(|| {
                format!(
                    "{}/{} files, {}/{}, {} passages",
                    p.files_done,
                    p.files_total,
                    bytes(p.bytes_done),
                    bytes(p.bytes_total),
                    p.passages
                )
            });
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            let eta = p
                .eta_secs
                .map_or_else(String::new, |s| format!(", ETA {}", duration(s)));
            bar.set_message(format!(
                "{}/{} files, {} passages, {}/s{eta}",
                p.files_done,
                p.files_total,
                p.passages,
                bytes(p.bytes_per_sec as u64)
            ));
        }
        LibraryEvent::Skipped { path, reason } => {
            bar.suspend(|| eprintln!("skipped {path}: {reason}"));
        }
        LibraryEvent::Committed { .. } | LibraryEvent::Fetching { .. } => {}
        LibraryEvent::Warning { message } => bar.suspend(|| eprintln!("warning: {message}")),
        LibraryEvent::Ocr { path, page, pages } => {
            let name = std::path::Path::new(&path)
                .file_name()
                .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
            progress.plain_line(|| format!("OCR: {name}, page {page} of {pages}"));
            bar.set_message(format!("OCR: {name}, page {page} of {pages}"));
        }
        LibraryEvent::Embedding { done, total } => {
            progress.plain_line(|| format!("{done}/{total} passages embedded"));
            if done == 0 {
                bar.set_position(0);
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message("passages embedded (hybrid search)");
            }
            bar.set_position(done);
        }
    }
}

/// Prints training events: a progress bar for steps and sampling, a line
/// per epoch, evaluation, round, save and chart update.
pub(crate) fn event_printer(progress: &Progress) -> impl Fn(TrainEvent) + Sync + '_ {
    let bar = &progress.bar;
    move |event: TrainEvent| {
        match event {
        TrainEvent::Phase { name } => {
            bar.set_length(0);
            bar.set_position(0);
            progress.new_count();
            bar.set_message(name.clone());
            bar.suspend(|| eprintln!("== {name}"));
        }
        TrainEvent::Step { phase, record } => {
            let left = progress.count(record.step, record.total_steps);
            bar.set_message(format!("{phase}: loss {:.3}{left}", record.loss));
            progress.plain_line(|| {
                format!(
                    "{phase} step {}/{} loss {:.3}{left}",
                    record.step, record.total_steps, record.loss
                )
            });
        }
        TrainEvent::Epoch {
            phase,
            epoch,
            valid_loss,
        } => {
            bar.suspend(|| eprintln!("   {phase} epoch {epoch}: validation loss {valid_loss:.3}"));
        }
        TrainEvent::Resumed { what } => bar.suspend(|| eprintln!("   resumed: {what}")),
        TrainEvent::Saved { phase, path } => {
            bar.suspend(|| eprintln!("   {phase}: saved {}", path.display()))
        }
        TrainEvent::Sampled { round, done, total } => {
            let left = progress.count(done, total);
            bar.set_message(format!("round {round}: sampling{left}"));
            progress.plain_line(|| format!("round {round} E-step {done}/{total}{left}"));
        }
        TrainEvent::Written {
            candidates,
            kept,
            wanted,
        } => {
            let left = progress.count(kept, wanted);
            bar.set_message(format!("questions kept, {candidates} written{left}"));
            progress.plain_line(|| {
                format!("questions: {kept}/{wanted} kept of {candidates} written{left}")
            });
        }
        TrainEvent::Evaluated {
            phase,
            split,
            em,
            f1,
            recall,
            ..
        } => {
            let recall = recall.map_or_else(|| "-".into(), |r| format!("{r:.1}"));
            let split = if split == "test" { "held-out" } else { "validation" };
            bar.suspend(|| eprintln!("   {phase}: {split} EM {em:.1}, F1 {f1:.1}, recall {recall}"));
        }
        TrainEvent::Round { round, estep } => bar.suspend(|| {
            eprintln!(
                "   round {round} E-step: samples EM {:.1}, bound {:.3}, ESS {:.2}, {}/{} questions used{}",
                100.0 * estep.sample_em,
                estep.bound,
                estep.ess,
                estep.used,
                estep.questions,
                if estep.failed > 0 {
                    format!(", {} samples failed and dropped", estep.failed)
                } else {
                    String::new()
                }
            )
        }),
        TrainEvent::Charts { files } => {
            if let Some(dir) = files.first().and_then(|f| f.parent()) {
                bar.suspend(|| eprintln!("   charts: {}", dir.display()));
            }
        }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_left_is_the_mean_pace_since_the_count_was_first_seen() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut pace = Pace::default();
        // A resumed phase: first seen at step 50 of 200; 10 s a step since.
        assert_eq!(pace.update(50, 200, at(0)), None);
        assert_eq!(
            pace.update(51, 200, at(10)),
            Some(Duration::from_secs(1490))
        );
        assert_eq!(
            pace.update(60, 200, at(100)),
            Some(Duration::from_secs(1400))
        );
        // A new count (another length, or a position going back) starts over.
        assert_eq!(pace.update(200, 200, at(1500)), None, "nothing left to say");
        assert_eq!(pace.update(1, 160, at(110)), None);
        assert_eq!(
            pace.update(3, 160, at(130)),
            Some(Duration::from_secs(1570))
        );
        assert_eq!(pace.update(1, 160, at(140)), None);
    }

    #[test]
    fn highlights_wrap_the_matched_chars() {
        assert_eq!(
            highlight("héllo wörld", &[[0, 5], [6, 11]], false),
            "[héllo] [wörld]"
        );
    }
}
