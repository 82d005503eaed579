//! What the model is asked, as few-shot conversations (so a server's chat
//! endpoint works as the local model does), and its replies cleaned.

use exsearch_agent::generator::Prompt;
use exsearch_model::ChatMessage;

use super::WrittenContext;

pub(super) const WRITE_TASK: &str = "Write the question that the missing words (___) answer.";
pub(super) const DESCRIBE_TASK: &str = "Describe the missing words (___) without naming them.";
pub(super) const READ_TASK: &str = "Answer the question with a few words from the text.";

/// (title, sentence with a blank, question): the shots of the writing
/// prompt. Pronouns are resolved to the title, so a question stands alone.
pub(super) const WRITE_SHOTS: [(&str, &str, &str); 4] = [
    (
        "Eiffel Tower",
        "The tower was designed by the engineer ___ in 1887.",
        "Who designed the Eiffel Tower?",
    ),
    (
        "Marie Curie",
        "She was born in ___ and later moved to Paris to study physics.",
        "Where was Marie Curie born?",
    ),
    (
        "Nile",
        "The river flows north through eleven countries before it reaches ___.",
        "What sea does the Nile flow into?",
    ),
    (
        "Harry Potter and the Philosopher's Stone",
        "The novel was first published in ___ by Bloomsbury.",
        "In what year was Harry Potter and the Philosopher's Stone first published?",
    ),
];

/// (title, sentence with the bridge blanked, description).
pub(super) const DESCRIBE_SHOTS: [(&str, &str, &str); 3] = [
    (
        "Eiffel Tower",
        "The tower was designed by the engineer ___ in 1887.",
        "the engineer who designed the Eiffel Tower",
    ),
    (
        "Marie Curie",
        "She was born in ___ and later moved to Paris to study physics.",
        "the city where Marie Curie was born",
    ),
    (
        "Bloomsbury",
        "The publisher's best-known book is ___, released in 1997.",
        "the best-known book of the publisher Bloomsbury",
    ),
];

/// (text, question, answer).
pub(super) const READ_SHOTS: [(&str, &str, &str); 2] = [
    (
        "Eiffel Tower: The tower was designed by the engineer Gustave Eiffel in 1887.",
        "Who designed the Eiffel Tower?",
        "Gustave Eiffel",
    ),
    (
        "Marie Curie: She was born in Warsaw and later moved to Paris to study physics.",
        "Where was Marie Curie born?",
        "Warsaw",
    ),
];

/// A few-shot conversation: each shot a user turn and the reply.
fn shots_prompt(shots: impl IntoIterator<Item = (String, String)>, last: String) -> Prompt {
    let mut messages = Vec::new();
    for (user, reply) in shots {
        messages.push(ChatMessage::user(user));
        messages.push(ChatMessage::new("assistant", reply));
    }
    messages.push(ChatMessage::user(last));
    Prompt::new(messages)
}

pub(super) fn write_prompt(title: &str, blanked: &str) -> Prompt {
    let turn = |t: &str, s: &str| format!("{WRITE_TASK}\nText ({t}): {s}");
    shots_prompt(
        WRITE_SHOTS
            .iter()
            .map(|(t, s, q)| (turn(t, s), q.to_string())),
        turn(title, blanked),
    )
}

pub(super) fn describe_prompt(title: &str, blanked: &str) -> Prompt {
    let turn = |t: &str, s: &str| format!("{DESCRIBE_TASK}\nText ({t}): {s}");
    shots_prompt(
        DESCRIBE_SHOTS
            .iter()
            .map(|(t, s, d)| (turn(t, s), d.to_string())),
        turn(title, blanked),
    )
}

pub(super) fn read_prompt(contexts: &[WrittenContext], question: &str) -> Prompt {
    let turn = |text: &str, q: &str| format!("{READ_TASK}\nText: {text}\nQuestion: {q}");
    let text: Vec<String> = contexts
        .iter()
        .map(|c| format!("{}: {}", c.title, c.text))
        .collect();
    shots_prompt(
        READ_SHOTS
            .iter()
            .map(|(t, q, a)| (turn(t, q), a.to_string())),
        turn(&text.join("\n"), question),
    )
}

/// The question in a reply: its first line up to the first `?`, without
/// a "Question:" label or quotes; `None` unless it has 4 to 40 words.
pub(super) fn clean_question(reply: &str) -> Option<String> {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = strip_label(line, "question:");
    let end = line.find('?')?;
    let q = line[..=end]
        .trim()
        .trim_start_matches(['"', '\'', '“'])
        .trim();
    let n = q.split_whitespace().count();
    (4..=40).contains(&n).then(|| q.to_string())
}

/// A description in a reply: its first line without a label, quotes or a
/// final period.
pub(super) fn clean_phrase(reply: &str) -> String {
    let line = reply.lines().map(str::trim).find(|l| !l.is_empty());
    let line = strip_label(line.unwrap_or(""), "description:");
    line.trim_matches(['"', '\'', '“', '”', '.', ' '])
        .to_string()
}

fn strip_label<'a>(line: &'a str, label: &str) -> &'a str {
    match line.get(..label.len()) {
        Some(head) if head.eq_ignore_ascii_case(label) => line[label.len()..].trim(),
        _ => line,
    }
}
