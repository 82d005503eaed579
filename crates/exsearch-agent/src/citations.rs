//! Which passages an answer rests on. In the search loop the evidence the
//! model recorded for a sub-query points at the passages it came from: per
//! step with evidence, the passages holding most of the evidence's words
//! (at most `PER_STEP`), else the step's first passage (the one the model
//! read first). For `rag`, the passages that contain the answer's words;
//! and so for a search that recorded no evidence at all (small models
//! often search and answer without writing any), since its answer still
//! rests on what it retrieved.

use std::collections::HashSet;

use exsearch_core::{Hit, PassageId};

use crate::trajectory::{Citation, Step};

/// Citations per step at most.
const PER_STEP: usize = 2;
/// A passage is cited when it holds this share of the best passage's overlap.
const NEAR_BEST: f32 = 0.75;

pub fn for_search(steps: &[Step], answer: &str) -> Vec<Citation> {
    let recorded = steps
        .iter()
        .any(|s| s.evidence.as_deref().is_some_and(|e| !e.trim().is_empty()));
    if !recorded {
        return holding(steps, answer, true);
    }
    let mut out = Vec::new();
    let mut cited = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(evidence) = step.evidence.as_deref().filter(|e| !e.trim().is_empty()) else {
            continue;
        };
        let mut chosen = supporting(&step.passages, evidence);
        if chosen.is_empty() {
            chosen.extend(step.passages.first());
        }
        push(&mut out, &mut cited, i + 1, chosen);
    }
    out
}

pub fn for_answer(steps: &[Step], answer: &str) -> Vec<Citation> {
    holding(steps, answer, false)
}

/// The passages that hold the answer's words, per step; each citation
/// names its step when `numbered`, else step 0 (one retrieval, as in RAG).
fn holding(steps: &[Step], answer: &str, numbered: bool) -> Vec<Citation> {
    let mut out = Vec::new();
    let mut cited = HashSet::new();
    for (i, step) in steps.iter().enumerate() {
        let number = if numbered { i + 1 } else { 0 };
        push(
            &mut out,
            &mut cited,
            number,
            supporting(&step.passages, answer),
        );
    }
    out
}

fn push(out: &mut Vec<Citation>, cited: &mut HashSet<PassageId>, step: usize, hits: Vec<&Hit>) {
    for hit in hits {
        if cited.insert(hit.passage_id) {
            out.push(Citation {
                number: out.len() + 1,
                step,
                passage: hit.clone(),
            });
        }
    }
}

/// The passages holding the largest share of `claim`'s words, best first.
fn supporting<'a>(passages: &'a [Hit], claim: &str) -> Vec<&'a Hit> {
    let wanted = words(claim);
    if wanted.is_empty() {
        return Vec::new();
    }
    let scored: Vec<(f32, &Hit)> = passages
        .iter()
        .map(|h| {
            let have = words(&format!("{} {}", h.title, h.text));
            let share = wanted.iter().filter(|w| have.contains(*w)).count() as f32;
            (share / wanted.len() as f32, h)
        })
        .collect();
    let best = scored.iter().map(|s| s.0).fold(0.0, f32::max);
    if best <= 0.0 {
        return Vec::new();
    }
    let mut chosen: Vec<(f32, &Hit)> = scored
        .into_iter()
        .filter(|(s, _)| *s >= best * NEAR_BEST)
        .collect();
    chosen.sort_by(|a, b| b.0.total_cmp(&a.0));
    chosen.into_iter().take(PER_STEP).map(|(_, h)| h).collect()
}

/// Lowercased words that carry content: digits, or three letters or more.
fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 || w.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, title: &str, text: &str) -> Hit {
        Hit {
            passage_id: PassageId(id),
            path: format!("/docs/{title}.md"),
            title: title.into(),
            page: None,
            score: 1.0,
            char_start: 0,
            char_end: text.len(),
            text: text.into(),
            highlights: Vec::new(),
            ocr: false,
        }
    }

    fn step(passages: Vec<Hit>, evidence: Option<&str>) -> Step {
        Step {
            query: "q".into(),
            passages,
            evidence: evidence.map(Into::into),
            repaired: false,
            rerank: None,
        }
    }

    #[test]
    fn cites_the_passages_holding_the_evidence_once_each() {
        let a = hit(1, "Velcora", "Velcora was founded by Ada Lind in 1990.");
        let b = hit(2, "Ada Lind", "Ada Lind was born in Oslo.");
        let c = hit(3, "Other", "Unrelated text about ships.");
        let steps = vec![
            step(vec![c.clone(), a.clone()], Some("founded by Ada Lind")),
            step(vec![b.clone(), a.clone()], Some("born in Oslo")),
            step(vec![c.clone()], None),
        ];
        let cited = for_search(&steps, "");
        let ids: Vec<(usize, usize, u64)> = cited
            .iter()
            .map(|c| (c.number, c.step, c.passage.passage_id.0))
            .collect();
        assert_eq!(ids, vec![(1, 1, 1), (2, 2, 2)]);
    }

    #[test]
    fn evidence_found_nowhere_cites_the_first_passage() {
        let steps = vec![step(
            vec![hit(7, "X", "alpha"), hit(8, "Y", "beta")],
            Some("zzz qqq"),
        )];
        assert_eq!(
            for_search(&steps, "alpha")[0].passage.passage_id,
            PassageId(7)
        );
    }

    #[test]
    fn a_search_without_evidence_cites_what_holds_the_answer() {
        let steps = vec![
            step(vec![hit(1, "A", "born in Oslo")], None),
            step(vec![hit(2, "B", "moved to Paris")], Some("  ")),
        ];
        let cited = for_search(&steps, "Paris");
        assert_eq!(cited.len(), 1);
        assert_eq!(cited[0].passage.passage_id, PassageId(2));
        assert_eq!(cited[0].step, 2, "the step that retrieved it");
        assert!(for_search(&steps, "Berlin").is_empty(), "nothing holds it");
    }

    #[test]
    fn rag_cites_passages_containing_the_answer() {
        let steps = vec![step(
            vec![hit(1, "A", "born in Oslo"), hit(2, "B", "in Paris")],
            None,
        )];
        let cited = for_answer(&steps, "Oslo");
        assert_eq!(cited.len(), 1);
        assert_eq!(cited[0].passage.passage_id, PassageId(1));
        assert!(for_answer(&steps, "").is_empty());
    }
}
