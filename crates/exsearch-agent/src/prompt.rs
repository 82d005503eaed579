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
    if hits.is_empty() {
        return format!("{} (no passage matched)", settings.tags.search);
    }
    format!("{} {}", settings.tags.search, passages(settings, hits))
}

pub fn final_request(settings: &AgentSettings, question: &str) -> String {
    settings.final_request.replace("{question}", question)
}

pub fn rag_turn(settings: &AgentSettings, question: &str, hits: &[Hit]) -> String {
    let block = if hits.is_empty() {
        "(no passage matched)".to_string()
    } else {
        passages(settings, hits)
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
    settings
        .rerank_prompt
        .replace("{query}", query)
        .replace("{passages}", &passages(settings, hits))
}

/// `[1] Title: t. Content: text` lines, numbered from 1.
pub fn passages(settings: &AgentSettings, hits: &[Hit]) -> String {
    let mut out = String::new();
    for (i, hit) in hits.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let text = clip(&hit.text, settings.passage_chars);
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
