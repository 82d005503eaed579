//! The text rules of question writing: which spans of a sentence can be
//! answers, blanking one, and whether a text names an entity.

use std::collections::HashSet;

use exsearch_model::text::template::MONTHS;

use super::LibraryPassage;
use crate::plan::contains_words;

/// Whether `text` names `entity`: the whole name, or any of its words
/// longer than three letters that is capitalized in the name.
pub(super) fn names(text: &str, entity: &str) -> bool {
    contains_words(text, entity)
        || entity
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().count() > 3 && w.starts_with(char::is_uppercase))
            .any(|w| contains_words(text, w))
}

/// `text` with the first whole-word, case-insensitive occurrence of
/// `needle` replaced by `by`; `None` when `needle` does not occur.
pub(super) fn replace_words(text: &str, needle: &str, by: &str) -> Option<String> {
    let lower = text.to_lowercase();
    let n = needle.trim().to_lowercase();
    if n.is_empty() || lower.len() != text.len() {
        return None;
    }
    let at = lower.match_indices(&n).map(|(at, _)| at).find(|&at| {
        let before = lower[..at].chars().next_back();
        let after = lower[at + n.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })?;
    Some(format!("{}{by}{}", &text[..at], &text[at + n.len()..]))
}

/// `sentence` with `span` replaced by a blank (the sentence as it is when
/// `span` is not in it).
pub(super) fn blank(sentence: &str, span: &str) -> String {
    replace_words(sentence, span, "___").unwrap_or_else(|| sentence.to_string())
}

/// Words that start a sentence or join a name without being one.
const NOT_NAMES: [&str; 32] = [
    "The", "A", "An", "In", "On", "At", "He", "She", "It", "They", "This", "That", "These", "His",
    "Her", "Its", "Their", "As", "After", "Before", "During", "When", "While", "There", "What",
    "Who", "Whom", "Whose", "Which", "Where", "Why", "How",
];

/// Short answers a sentence holds: dates ("April 23, 1928"), years, and
/// names (runs of capitalized words, "of", "the", "de" allowed inside). Spans of one short word, and the words that open a sentence
/// without naming anything, are left out.
pub fn answer_spans(sentence: &str) -> Vec<String> {
    let tokens: Vec<&str> = sentence
        .split(|c: char| c.is_whitespace() || matches!(c, '—' | '–'))
        .filter(|t| !t.is_empty())
        .collect();
    let bare = |t: &str| -> String {
        let t = t.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '&');
        t.strip_suffix("'s").unwrap_or(t).to_string()
    };
    let ends_clause = |t: &str| t.ends_with([',', ';', ':', '.', ')', '"']);
    let is_year = |t: &str| {
        t.len() == 4 && t.chars().all(|c| c.is_ascii_digit()) && t.starts_with(['1', '2'])
    };
    let capitalized = |t: &str| t.starts_with(|c: char| c.is_uppercase());
    let mut spans = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let word = bare(tokens[i]);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // A date: Month [day[,]] year.
        if MONTHS.contains(&word.as_str()) {
            let mut j = i + 1;
            let mut parts = vec![word.clone()];
            if j < tokens.len() && bare(tokens[j]).chars().all(|c| c.is_ascii_digit()) {
                let day = bare(tokens[j]);
                if day.len() <= 2 && j + 1 < tokens.len() && is_year(&bare(tokens[j + 1])) {
                    parts.push(format!("{day},"));
                    parts.push(bare(tokens[j + 1]));
                    j += 2;
                } else if is_year(&day) {
                    parts.push(day);
                    j += 1;
                }
            }
            if parts.len() > 1 {
                spans.push(parts.join(" "));
                i = j;
                continue;
            }
        }
        if is_year(&word) {
            spans.push(word);
            i += 1;
            continue;
        }
        if capitalized(&word) && !(i == 0 && NOT_NAMES.contains(&word.as_str())) {
            let mut parts = vec![word.clone()];
            let mut j = i + 1;
            let mut last_closed = ends_clause(tokens[i]);
            while !last_closed && j < tokens.len() && !opens_aside(tokens[j]) {
                let next = bare(tokens[j]);
                if capitalized(&next) && !MONTHS.contains(&next.as_str()) {
                    parts.push(next);
                    last_closed = ends_clause(tokens[j]);
                    j += 1;
                } else if matches!(next.as_str(), "of" | "the" | "de" | "von" | "&")
                    && j + 1 < tokens.len()
                    && capitalized(&bare(tokens[j + 1]))
                    && !ends_clause(tokens[j])
                {
                    parts.push(next);
                    j += 1;
                } else {
                    break;
                }
            }
            let span = parts.join(" ");
            let keep = !(parts.len() == 1
                && (NOT_NAMES.contains(&span.as_str()) || span.chars().count() < 4));
            if keep {
                spans.push(span);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    // A span is the sentence's own words ("Punk's Not Dead" is not
    // "Punk Not Dead").
    let mut seen = HashSet::new();
    spans.retain(|s| contains_words(sentence, s) && seen.insert(s.clone()));
    spans
}

/// Whether a token opens a parenthesis or a quotation, which a name does
/// not run into ("Christine Aprile (Silent Diane)").
fn opens_aside(token: &str) -> bool {
    token.starts_with(['(', '"', '“', '[', '\''])
}

pub(super) fn body(p: &LibraryPassage) -> &str {
    body_of(&p.title, &p.text)
}

/// A passage's text without the heading that repeats its document's title
/// (a Markdown file's passages start "# Title").
pub(super) fn body_of<'a>(title: &str, text: &'a str) -> &'a str {
    let rest = text.trim_start().trim_start_matches('#').trim_start();
    match rest.strip_prefix(title.trim()) {
        Some(after) if !title.trim().is_empty() && text.trim_start().starts_with('#') => {
            after.trim_start()
        }
        _ => text,
    }
}

/// `sentence` with a pronoun that opens it ("He", "Its") replaced by
/// `subject` (a passage's first sentences are about its subject), so a
/// question written from it names what it asks about.
pub(super) fn resolve_pronoun(sentence: &str, subject: &str) -> String {
    let Some((first, rest)) = sentence.split_once(' ') else {
        return sentence.to_string();
    };
    match first {
        "He" | "She" | "It" | "They" => format!("{subject} {rest}"),
        "His" | "Her" | "Its" | "Their" => format!("{subject}'s {rest}"),
        _ => sentence.to_string(),
    }
}
