//! Splits text into passages of about [`TARGET_WORDS`] words, the retrieval
//! unit of the ExSearch paper, cutting at the sentence or paragraph end
//! nearest the target and falling back to line breaks (source code, PDF
//! tables) and finally to a plain word count.
//!
//! The splitter streams: it holds at most [`MAX_WORDS`] words at a time, so
//! memory does not grow with the document.

/// The paper's passage size.
pub const TARGET_WORDS: usize = 100;
/// Shorter passages lose context; a cut is never made before this.
pub const MIN_WORDS: usize = 60;
/// Longer passages dilute BM25 scores and crowd the model's context.
pub const MAX_WORDS: usize = 140;

/// A passage's place in its section's text and its display text (words
/// joined by single spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Offsets in Unicode scalar values (chars) into the section text.
    pub char_start: usize,
    pub char_end: usize,
    pub words: usize,
    pub text: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Break {
    None,
    Line,
    Sentence,
    Paragraph,
}

#[derive(Clone, Copy, Debug)]
struct Word {
    byte_start: usize,
    byte_end: usize,
    char_start: usize,
    char_end: usize,
    /// The strength of the boundary after this word.
    after: Break,
}

/// Splits `text` into passages. Whitespace-only text yields none.
pub fn split(text: &str) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut window: Vec<Word> = Vec::with_capacity(MAX_WORDS + 1);
    // The last passage cut, held back so a short tail can be rebalanced.
    let mut previous: Vec<Word> = Vec::with_capacity(MAX_WORDS);
    let mut words = Words::new(text).peekable();
    while let Some(mut word) = words.next() {
        if word.after == Break::Sentence {
            // Confirm a sentence end: the next word must not start in lower case.
            if let Some(next) = words.peek() {
                let first = text[next.byte_start..].chars().next();
                if first.is_some_and(char::is_lowercase) {
                    word.after = Break::None;
                }
            }
        }
        window.push(word);
        if window.len() > MAX_WORDS {
            let cut = best_cut(&window, MIN_WORDS, MAX_WORDS, TARGET_WORDS);
            if !previous.is_empty() {
                out.push(chunk(text, &previous));
            }
            previous.clear();
            previous.extend(window.drain(..=cut));
        }
    }
    if window.len() < MIN_WORDS && !previous.is_empty() {
        // A short tail joins the passage before it, or the two are cut
        // again near their middle, so no passage falls below MIN_WORDS.
        previous.append(&mut window);
        if previous.len() > MAX_WORDS {
            let len = previous.len();
            let cut = best_cut(&previous, MIN_WORDS, len - MIN_WORDS, len / 2);
            window.extend(previous.drain(cut + 1..));
        }
    }
    for part in [&previous, &window] {
        if !part.is_empty() {
            out.push(chunk(text, part));
        }
    }
    out
}

/// The index of the last word of the next passage: the strongest boundary
/// among passage lengths `min..=max`, nearest `target` words among equals.
fn best_cut(window: &[Word], min: usize, max: usize, target: usize) -> usize {
    let mut best = target - 1;
    let mut best_key = (Break::None, usize::MAX);
    for (i, w) in window.iter().enumerate().take(max).skip(min - 1) {
        let distance = (i + 1).abs_diff(target);
        let better = w.after > best_key.0 || (w.after == best_key.0 && distance < best_key.1);
        if w.after > Break::None && better {
            best = i;
            best_key = (w.after, distance);
        }
    }
    best
}

fn chunk(text: &str, words: &[Word]) -> Chunk {
    let (first, last) = (words[0], words[words.len() - 1]);
    let mut joined = String::with_capacity(last.byte_end - first.byte_start);
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            joined.push(' ');
        }
        joined.push_str(&text[w.byte_start..w.byte_end]);
    }
    Chunk {
        char_start: first.char_start,
        char_end: last.char_end,
        words: words.len(),
        text: joined,
    }
}

/// Iterates whitespace-separated words with byte and char offsets and the
/// boundary that follows each.
struct Words<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    char_pos: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            chars: text.char_indices().peekable(),
            char_pos: 0,
        }
    }
}

impl Iterator for Words<'_> {
    type Item = Word;

    fn next(&mut self) -> Option<Word> {
        while let Some(&(_, c)) = self.chars.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.chars.next();
            self.char_pos += 1;
        }
        let &(byte_start, _) = self.chars.peek()?;
        let char_start = self.char_pos;
        let mut byte_end = self.text.len();
        while let Some(&(i, c)) = self.chars.peek() {
            if c.is_whitespace() {
                byte_end = i;
                break;
            }
            self.chars.next();
            self.char_pos += 1;
        }
        let char_end = self.char_pos;
        let mut newlines = 0;
        while let Some(&(_, c)) = self.chars.peek() {
            if !c.is_whitespace() {
                break;
            }
            newlines += usize::from(c == '\n');
            self.chars.next();
            self.char_pos += 1;
        }
        let word = &self.text[byte_start..byte_end];
        let after = if newlines >= 2 {
            Break::Paragraph
        } else if ends_sentence(word) {
            Break::Sentence
        } else if newlines == 1 {
            Break::Line
        } else {
            Break::None
        };
        Some(Word {
            byte_start,
            byte_end,
            char_start,
            char_end,
            after,
        })
    }
}

/// Abbreviations that end in a period without ending a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "e.g", "i.e", "fig", "no", "vol",
    "inc", "ltd", "co", "cf", "al", "approx", "dept", "est", "gen", "gov", "mt", "ft", "pp",
];

fn ends_sentence(word: &str) -> bool {
    let core = word.trim_end_matches(['"', '\'', ')', ']', '”', '’', '»']);
    let Some(stem) = core.strip_suffix(['.', '!', '?', '…', '。', '！', '？']) else {
        return false;
    };
    if !core.ends_with('.') {
        return true;
    }
    let stem = stem.trim_start_matches(['"', '\'', '(', '[', '“', '‘', '«']);
    // "J." in "J. R. R. Tolkien" is an initial, not a sentence end.
    let is_initial = stem.chars().count() == 1 && stem.chars().all(char::is_uppercase);
    !is_initial && !ABBREVIATIONS.contains(&stem.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(n: usize, tag: &str) -> String {
        let mut s: Vec<String> = (0..n - 1).map(|i| format!("{tag}{i}")).collect();
        s.insert(0, "Start".into());
        s.join(" ") + "."
    }

    #[test]
    fn short_text_is_one_passage_with_exact_offsets() {
        let text = "  Hello   world.\nSecond line here. ";
        let chunks = split(text);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Hello world. Second line here.");
        assert_eq!(chunks[0].char_start, 2);
        let chars: Vec<char> = text.chars().collect();
        let span: String = chars[chunks[0].char_start..chunks[0].char_end]
            .iter()
            .collect();
        assert_eq!(span, "Hello   world.\nSecond line here.");
    }

    #[test]
    fn cuts_fall_on_sentence_ends_near_the_target() {
        // Sentences of 30 words: the best cuts are after 90 or 120 words.
        let text: String = (0..12)
            .map(|i| sentence(30, &format!("w{i}x")))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = split(&text);
        assert!(chunks.len() >= 3);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.text.ends_with('.'), "cut mid-sentence: {}", c.text);
            assert!(
                (MIN_WORDS..=MAX_WORDS).contains(&c.words),
                "{} words",
                c.words
            );
        }
        let total: usize = chunks.iter().map(|c| c.words).sum();
        assert_eq!(total, 12 * 30);
    }

    #[test]
    fn unpunctuated_text_is_cut_at_the_target() {
        let text = vec!["word"; 1000].join(" ");
        let chunks = split(&text);
        assert_eq!(chunks.len(), 10);
        assert!(chunks.iter().all(|c| c.words == TARGET_WORDS));
    }

    #[test]
    fn a_short_tail_is_rebalanced_not_left_tiny() {
        // 141 words with a sentence end at word 139: a naive cut leaves 2.
        let mut words = vec!["word"; 141];
        words[138] = "end.";
        words[139] = "Two";
        let chunks = split(&words.join(" "));
        let sizes: Vec<usize> = chunks.iter().map(|c| c.words).collect();
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n >= MIN_WORDS), "{sizes:?}");
        // 150 words without boundaries make two passages of at least 60.
        let sizes: Vec<usize> = split(&vec!["word"; 150].join(" "))
            .iter()
            .map(|c| c.words)
            .collect();
        assert!(
            sizes.iter().all(|n| (MIN_WORDS..=MAX_WORDS).contains(n)),
            "{sizes:?}"
        );
        assert_eq!(sizes.iter().sum::<usize>(), 150);
        // Short texts stay whole.
        assert_eq!(split(&vec!["word"; 30].join(" ")).len(), 1);
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert!(!ends_sentence("Dr."));
        assert!(!ends_sentence("J."));
        assert!(ends_sentence("done."));
        assert!(ends_sentence("\"Really?\""));
        assert!(!ends_sentence("3.14"));
    }

    #[test]
    fn offsets_are_chars_not_bytes() {
        let text = "Ünïcödé wörds hére. ".repeat(100);
        let chars: Vec<char> = text.chars().collect();
        let chunks = split(&text);
        assert!(chunks.len() > 1);
        for c in chunks {
            let span: String = chars[c.char_start..c.char_end].iter().collect();
            assert_eq!(
                span.split_whitespace().collect::<Vec<_>>().join(" "),
                c.text
            );
        }
    }

    #[test]
    fn whitespace_only_gives_nothing() {
        assert!(split(" \n\t ").is_empty());
    }
}
