//! Answer metrics with the standard SQuAD/HotpotQA normalization (lowercase,
//! drop ASCII punctuation, drop the words a/an/the, collapse whitespace),
//! matching the official HotpotQA script (`hotpot_evaluate_v1.py`, copied in
//! `scripts/metrics/hotpot_official.py`) including its yes/no rule for F1.
//! Each metric is the maximum over the gold aliases.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerScores {
    pub em: f64,
    pub f1: f64,
    /// A normalized gold answer occurs in the normalized prediction.
    pub acc: f64,
}

/// Python's `normalize_answer` from the official script.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let no_articles = remove_articles(&no_punct);
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: a whole run of word characters
/// (Unicode letters, digits, underscore) equal to an article becomes a space.
fn remove_articles(text: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        if matches!(run, "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in text.char_indices() {
        match (is_word(c), run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(start)) => {
                flush(&mut out, &text[start..i]);
                run_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
            (true, Some(_)) => {}
        }
    }
    if let Some(start) = run_start {
        flush(&mut out, &text[start..]);
    }
    out
}

/// (f1, precision, recall) against one gold answer, as the official script.
pub fn f1_precision_recall(prediction: &str, gold: &str) -> (f64, f64, f64) {
    let p = normalize_answer(prediction);
    let g = normalize_answer(gold);
    let special = ["yes", "no", "noanswer"];
    if (special.contains(&p.as_str()) || special.contains(&g.as_str())) && p != g {
        return (0.0, 0.0, 0.0);
    }
    let p_tokens: Vec<&str> = p.split_whitespace().collect();
    let g_tokens: Vec<&str> = g.split_whitespace().collect();
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &g_tokens {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0;
    for t in &p_tokens {
        if let Some(n) = counts.get_mut(t) {
            if *n > 0 {
                *n -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return (0.0, 0.0, 0.0);
    }
    let precision = same as f64 / p_tokens.len() as f64;
    let recall = same as f64 / g_tokens.len() as f64;
    (
        2.0 * precision * recall / (precision + recall),
        precision,
        recall,
    )
}

pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// EM, F1 and Acc of a prediction, each the max over `golds`.
pub fn score_answer(prediction: &str, golds: &[String]) -> AnswerScores {
    let mut s = AnswerScores::default();
    let normalized = normalize_answer(prediction);
    for gold in golds {
        s.em = s.em.max(f64::from(u8::from(exact_match(prediction, gold))));
        s.f1 = s.f1.max(f1_precision_recall(prediction, gold).0);
        let g = normalize_answer(gold);
        if !g.is_empty() && normalized.contains(&g) {
            s.acc = 1.0;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_is_squad_s_not_the_reference_code_s() {
        assert_eq!(normalize_answer("The  Eiffel-Tower!"), "eiffeltower");
        assert_eq!(normalize_answer("an apple a day"), "apple day");
        // The reference code deleted every letter a and i.
        assert_eq!(normalize_answer("Paris, Italia"), "paris italia");
        assert_eq!(normalize_answer("“the” Beatles"), "“ ” beatles");
    }

    #[test]
    fn yes_no_answers_score_only_when_equal() {
        assert_eq!(f1_precision_recall("yes", "no").0, 0.0);
        assert_eq!(f1_precision_recall("yes it is", "yes").0, 0.0);
        assert_eq!(f1_precision_recall("Yes.", "yes").0, 1.0);
    }

    #[test]
    fn scores_take_the_best_alias() {
        let golds = vec!["Chief of Protocol".to_string(), "ambassador".to_string()];
        let s = score_answer("She was an ambassador to Ghana", &golds);
        assert_eq!(s.em, 0.0);
        assert_eq!(s.acc, 1.0);
        // "she was ambassador to ghana": 1 of 5 words.
        assert!((s.f1 - 2.0 * 0.2 / 1.2).abs() < 1e-12);
        assert_eq!(score_answer("chief of protocol", &golds).em, 1.0);
        assert_eq!(score_answer("anything", &[]), AnswerScores::default());
    }
}
