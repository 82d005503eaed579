//! The texts the model sees: the first turn with the instructions and the
//! question, the search blocks, the final-answer request, the baselines'
//! single turns and the re-ranking call. Built from `AgentSettings` only.

use exsearch_core::Hit;
use exsearch_model::ChatMessage;

use crate::settings::AgentSettings;

/// An earlier question of the same conversation and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub question: String,
    pub answer: String,
}

/// The conversation so far as chat turns, oldest first, at most
/// `settings.history_turns` exchanges.
pub fn history(settings: &AgentSettings, earlier: &[Exchange]) -> Vec<ChatMessage> {
    let skip = earlier.len().saturating_sub(settings.history_turns);
    earlier[skip..]
        .iter()
        .flat_map(|e| {
            [
                ChatMessage::user(e.question.clone()),
                ChatMessage::assistant(e.answer.clone()),
            ]
        })
        .collect()
}

/// The search loop's first user turn.
pub fn first_turn(settings: &AgentSettings, question: &str) -> String {
    let t = &settings.tags;
    let instructions = settings
        .instructions
        .replace("{query}", &t.query)
        .replace("{search}", &t.search)
        .replace("{fact}", &t.fact)
        .replace("{finish}", &t.finish);
    format!("{instructions}\n{} {question}  Your Output:", t.question)
}

/// The engine's turn after a sub-query: the search tag and the passages.
pub fn search_turn(settings: &AgentSettings, hits: &[Hit]) -> String {
    search_turn_at(settings, hits, Detail::Full)
}

/// How much of each passage a passage block shows. When a conversation
/// outgrows the model's context, its oldest blocks are shortened, then cut
/// to their titles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Detail {
    Full,
    /// The first `SHORT_CHARS` characters of each passage.
    Short,
    /// Titles only.
    Titles,
}

/// Characters of a passage kept at `Detail::Short`.
pub const SHORT_CHARS: usize = 160;

pub fn search_turn_at(settings: &AgentSettings, hits: &[Hit], detail: Detail) -> String {
    if hits.is_empty() {
        return format!("{} (no passage matched)", settings.tags.search);
    }
    format!(
        "{} {}",
        settings.tags.search,
        passages_at(settings, hits, detail)
    )
}

pub fn final_request(settings: &AgentSettings, question: &str) -> String {
    settings.final_request.replace("{question}", question)
}

pub fn rag_turn(settings: &AgentSettings, question: &str, hits: &[Hit]) -> String {
    rag_turn_at(settings, question, hits, Detail::Full)
}

pub fn rag_turn_at(
    settings: &AgentSettings,
    question: &str,
    hits: &[Hit],
    detail: Detail,
) -> String {
    let block = if hits.is_empty() {
        "(no passage matched)".to_string()
    } else {
        passages_at(settings, hits, detail)
    };
    settings
        .rag_prompt
        .replace("{passages}", &block)
        .replace("{question}", question)
}

pub fn direct_turn(settings: &AgentSettings, question: &str) -> String {
    settings.direct_prompt.replace("{question}", question)
}

pub fn rerank_turn(settings: &AgentSettings, query: &str, hits: &[Hit]) -> String {
    rerank_turn_at(settings, query, hits, Detail::Full)
}

/// The re-ranking request with its passages at `detail`.
pub fn rerank_turn_at(
    settings: &AgentSettings,
    query: &str,
    hits: &[Hit],
    detail: Detail,
) -> String {
    settings
        .rerank_prompt
        .replace("{query}", query)
        .replace("{passages}", &passages_at(settings, hits, detail))
}

/// `[1] Title: t. Content: text` lines, numbered from 1.
pub fn passages(settings: &AgentSettings, hits: &[Hit]) -> String {
    passages_at(settings, hits, Detail::Full)
}

fn passages_at(settings: &AgentSettings, hits: &[Hit], detail: Detail) -> String {
    let chars = match (detail, settings.passage_chars) {
        (Detail::Short, 0) => SHORT_CHARS,
        (Detail::Short, n) => n.min(SHORT_CHARS),
        (_, n) => n,
    };
    let mut out = String::new();
    for (i, hit) in hits.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if detail == Detail::Titles {
            out.push_str(&format!("[{}] Title: {}.", i + 1, title_of(hit)));
            continue;
        }
        let text = clip(&hit.text, chars);
        out.push_str(&format!(
            "[{}] Title: {}. Content: {}",
            i + 1,
            title_of(hit),
            text
        ));
    }
    out
}

/// The passage's document title, else its file name.
pub fn title_of(hit: &Hit) -> &str {
    if !hit.title.trim().is_empty() {
        return hit.title.trim();
    }
    hit.path.rsplit(['/', '\\']).next().unwrap_or(&hit.path)
}

fn clip(text: &str, max_chars: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if max_chars == 0 {
        return flat;
    }
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
