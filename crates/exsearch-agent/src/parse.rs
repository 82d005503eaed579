//! Reading what the model wrote. Model output is arbitrary text: these
//! functions never panic and never fail, they find what they can.

use crate::settings::Tags;

/// The next action a search step asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Search for this sub-query.
    Query(String),
    /// The model has enough to answer.
    Finish,
    /// Neither a usable sub-query nor the end marker.
    Unparsable,
}

/// One assistant turn of the search loop: the evidence recorded for the
/// previous sub-query (if any) and the next action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedStep {
    pub evidence: Option<String>,
    pub action: Action,
}

/// Sub-queries longer than this are cut (at a character boundary).
const MAX_QUERY_CHARS: usize = 300;

/// Parses one step. The evidence is the text after the first fact tag; the
/// action is the first sub-query tag with text on its line, or the end
/// marker, whichever comes first. Tags match ignoring ASCII case.
pub fn parse_step(text: &str, tags: &Tags) -> ParsedStep {
    let marks = find_tags(text, tags);
    let mut evidence = None;
    let mut action = Action::Unparsable;
    for (i, &(start, kind)) in marks.iter().enumerate() {
        let content_start = start + tag_of(tags, kind).len();
        let content_end = marks.get(i + 1).map_or(text.len(), |m| m.0);
        let content = &text[content_start..content_end];
        match kind {
            Kind::Fact if evidence.is_none() => {
                evidence = Some(collapse(content)).filter(|e| !e.is_empty());
            }
            Kind::Query if action == Action::Unparsable => {
                let line = content.trim_start().lines().next().unwrap_or("");
                let query = truncate(&collapse(line), MAX_QUERY_CHARS);
                if !query.is_empty() {
                    action = Action::Query(query);
                }
            }
            Kind::Finish if action == Action::Unparsable => action = Action::Finish,
            _ => {}
        }
    }
    ParsedStep { evidence, action }
}

/// Reads a re-ranking reply such as `[3] > [1]` against `k` candidates
/// shown as `[1]..[k]`. Returns 0-based candidate indices, best first,
/// without repeats; ids outside `1..=k` are ignored.
pub fn parse_ranking(text: &str, k: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let digits: &str = &rest[..rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len())];
        if !digits.is_empty() && rest[digits.len()..].starts_with(']') {
            if let Ok(id) = digits.parse::<usize>() {
                // Shown numbered from 1; stored from 0.
                if (1..=k).contains(&id) && !out.contains(&(id - 1)) {
                    out.push(id - 1);
                }
            }
        }
    }
    out
}

/// A sub-query reduced to its words, for spotting repeats.
pub fn query_key(query: &str) -> String {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Query,
    Fact,
    Finish,
    /// Passages or question tags the model echoed: they end a field.
    Other,
}

fn tag_of(tags: &Tags, kind: Kind) -> &str {
    match kind {
        Kind::Query => &tags.query,
        Kind::Fact => &tags.fact,
        Kind::Finish => &tags.finish,
        Kind::Other => "",
    }
}

/// Every tag occurrence as (byte offset, kind), in order.
fn find_tags(text: &str, tags: &Tags) -> Vec<(usize, Kind)> {
    let bytes = text.as_bytes();
    let kinds = [
        (tags.query.as_bytes(), Kind::Query),
        (tags.fact.as_bytes(), Kind::Fact),
        (tags.finish.as_bytes(), Kind::Finish),
        (tags.search.as_bytes(), Kind::Other),
        (tags.question.as_bytes(), Kind::Other),
    ];
    let mut marks = Vec::new();
    let mut i = 0;
    'scan: while i < bytes.len() {
        for &(tag, kind) in &kinds {
            let end = i + tag.len();
            if !tag.is_empty() && end <= bytes.len() && bytes[i..end].eq_ignore_ascii_case(tag) {
                marks.push((i, kind));
                i = end;
                continue 'scan;
            }
        }
        i += 1;
    }
    marks
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => s[..cut].trim_end().to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ParsedStep {
        parse_step(text, &Tags::default())
    }

    #[test]
    fn reads_the_wire_format() {
        assert_eq!(
            parse("<QUERY> who founded Velcora"),
            ParsedStep {
                evidence: None,
                action: Action::Query("who founded Velcora".into())
            }
        );
        assert_eq!(
            parse("<FACT> Ada Lind founded it.\n<QUERY> where was Ada Lind born\n"),
            ParsedStep {
                evidence: Some("Ada Lind founded it.".into()),
                action: Action::Query("where was Ada Lind born".into())
            }
        );
        assert_eq!(
            parse(" <fact>  Born in\n Oslo. \n<final>"),
            ParsedStep {
                evidence: Some("Born in Oslo.".into()),
                action: Action::Finish
            }
        );
    }

    #[test]
    fn an_empty_query_or_a_bare_fact_is_unparsable() {
        assert_eq!(parse("<FACT> x\n<QUERY>   ").action, Action::Unparsable);
        assert_eq!(parse("<FACT> x").action, Action::Unparsable);
        assert_eq!(parse("I think the answer is 4").action, Action::Unparsable);
        assert_eq!(parse("").evidence, None);
    }

    #[test]
    fn the_first_action_wins_and_echoed_passages_end_a_field() {
        assert_eq!(parse("<FINAL> <QUERY> more").action, Action::Finish);
        let p = parse("<FACT> a <SEARCH> [1] Title: x <QUERY> q\nrest");
        assert_eq!(p.evidence.as_deref(), Some("a"));
        assert_eq!(p.action, Action::Query("q".into()));
    }

    #[test]
    fn ranking_ids_are_one_based_and_checked() {
        assert_eq!(parse_ranking("[3] > [1] > [3] > [0] > [9]", 5), vec![2, 0]);
        assert_eq!(parse_ranking("[2]>[5", 5), vec![1]);
        assert_eq!(parse_ranking("none of them", 5), Vec::<usize>::new());
        assert_eq!(
            parse_ranking("[18446744073709551616]", 5),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn repeated_queries_share_a_key() {
        assert_eq!(
            query_key("Who  founded Velcora?"),
            query_key("who founded velcora")
        );
        assert_ne!(
            query_key("who founded Velcora"),
            query_key("who founded Oslo")
        );
    }
}
