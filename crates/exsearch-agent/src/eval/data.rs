//! QA files in the formats the field uses, read into one shape:
//!
//! - our JSONL: `{id?, question, answers: [..], contexts?: [{title, text, supporting}]}`
//!   (the shared hotpotqa-dev-500 file);
//! - FlashRAG JSONL: `{id, question, golden_answers, metadata}`, with the
//!   paragraphs of its hotpotqa/2wiki `metadata.context` (columns `title`
//!   and `sentences` or `content`, supporting titles in
//!   `metadata.supporting_facts.title`) or musique's
//!   `metadata.question_decomposition[].support_paragraph`;
//! - MuSiQue JSONL: `{id, question, answer, answer_aliases, paragraphs:
//!   [{title, paragraph_text, is_supporting}]}`;
//! - HotpotQA and 2WikiMultihopQA JSON arrays: `{_id, question, answer,
//!   supporting_facts: [[title, sentence]], context: [[title, [sentences]]]}`.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct QaItem {
    pub id: String,
    pub question: String,
    pub answers: Vec<String>,
    /// The file's own paragraphs for this question (may be empty).
    pub contexts: Vec<Context>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    pub title: String,
    pub text: String,
    pub supporting: bool,
}

impl QaItem {
    /// Titles of the gold supporting paragraphs, in file order.
    pub fn supporting_titles(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.contexts
            .iter()
            .filter(|c| c.supporting && seen.insert(c.title.as_str()))
            .map(|c| c.title.as_str())
            .collect()
    }
}

/// Reads a QA file, recognizing its format from its content.
pub fn load(path: &Path) -> Result<Vec<QaItem>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |line: usize, message: String| Error::Data {
        path: path.to_owned(),
        line,
        message,
    };
    if text.trim_start().starts_with('[') {
        let rows: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| bad(e.line(), format!("not a JSON array of questions: {e}")))?;
        return rows
            .iter()
            .enumerate()
            .map(|(i, row)| item(row, i).map_err(|m| bad(1, format!("question {}: {m}", i + 1))))
            .collect();
    }
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Value =
            serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
        items.push(item(&row, items.len()).map_err(|m| bad(i + 1, m))?);
    }
    if items.is_empty() {
        return Err(bad(1, "no questions in the file".into()));
    }
    Ok(items)
}

fn item(row: &Value, index: usize) -> Result<QaItem, String> {
    let str_of = |v: &Value| v.as_str().map(str::to_string);
    let question = row
        .get("question")
        .and_then(str_of)
        .filter(|q| !q.trim().is_empty())
        .ok_or("no \"question\" text")?;
    let id = ["id", "_id", "qid"]
        .iter()
        .find_map(|k| {
            row.get(*k)
                .and_then(|v| str_of(v).or_else(|| v.as_i64().map(|n| n.to_string())))
        })
        .unwrap_or_else(|| format!("q{}", index + 1));
    let mut answers: Vec<String> = Vec::new();
    for key in ["answers", "golden_answers", "answer", "answer_aliases"] {
        match row.get(key) {
            Some(Value::String(s)) => answers.push(s.clone()),
            Some(Value::Array(list)) => answers.extend(list.iter().filter_map(str_of)),
            _ => {}
        }
    }
    answers.retain(|a| !a.trim().is_empty());
    answers.dedup();
    if answers.is_empty() {
        return Err("no gold answer (\"answers\", \"golden_answers\" or \"answer\")".into());
    }
    Ok(QaItem {
        id,
        question,
        answers,
        contexts: contexts(row),
    })
}

/// A paragraph object with its title under `title`, its text under `text`
/// and its gold flag under `supporting` (`None`: every paragraph is gold).
fn paragraph(c: &Value, text: &str, supporting: Option<&str>) -> Context {
    let str_at = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Context {
        title: str_at("title"),
        text: str_at(text),
        supporting: supporting.is_none_or(|k| c.get(k).and_then(Value::as_bool).unwrap_or(false)),
    }
}

fn contexts(row: &Value) -> Vec<Context> {
    // Ours.
    if let Some(list) = row.get("contexts").and_then(Value::as_array) {
        return list
            .iter()
            .map(|c| paragraph(c, "text", Some("supporting")))
            .collect();
    }
    // MuSiQue.
    if let Some(list) = row.get("paragraphs").and_then(Value::as_array) {
        return list
            .iter()
            .map(|c| paragraph(c, "paragraph_text", Some("is_supporting")))
            .collect();
    }
    let meta = row.get("metadata").unwrap_or(row);
    // FlashRAG musique: only the gold paragraph of each hop.
    if let Some(hops) = meta.get("question_decomposition").and_then(Value::as_array) {
        return hops
            .iter()
            .filter_map(|h| h.get("support_paragraph"))
            .map(|c| paragraph(c, "paragraph_text", None))
            .collect();
    }
    let supporting: HashSet<String> = match meta.get("supporting_facts") {
        // Columns: {"title": [..], "sent_id": [..]}.
        Some(Value::Object(cols)) => cols
            .get("title")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        // Pairs: [[title, sentence], ..].
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| p.get(0).and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => HashSet::new(),
    };
    let sentences = |v: &Value| -> String {
        match v {
            Value::Array(s) => s
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" "),
            Value::String(s) => s.clone(),
            _ => String::new(),
        }
    };
    let make = |title: String, text: String| Context {
        supporting: supporting.contains(&title),
        title,
        text,
    };
    match meta.get("context") {
        Some(Value::Object(cols)) => {
            let titles = cols.get("title").and_then(Value::as_array);
            let bodies = cols
                .get("sentences")
                .or_else(|| cols.get("content"))
                .and_then(Value::as_array);
            match (titles, bodies) {
                (Some(t), Some(b)) => t
                    .iter()
                    .zip(b)
                    .map(|(t, b)| make(t.as_str().unwrap_or("").to_string(), sentences(b)))
                    .collect(),
                _ => Vec::new(),
            }
        }
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| {
                let title = p.get(0)?.as_str()?.to_string();
                Some(make(title, sentences(p.get(1)?)))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(row: Value) -> QaItem {
        item(&row, 0).expect("parses")
    }

    #[test]
    fn reads_each_format_into_one_shape() {
        let ours = one(json!({"question": "Q?", "answers": ["A"],
            "contexts": [{"title": "T", "text": "x", "supporting": true}]}));
        assert_eq!(
            (ours.id.as_str(), ours.supporting_titles()),
            ("q1", vec!["T"])
        );

        let hotpot = one(json!({"_id": "5a", "question": "Q?", "answer": "yes",
            "supporting_facts": [["B", 0], ["B", 1]],
            "context": [["A", ["a1 ", "a2"]], ["B", ["b1"]]]}));
        assert_eq!(hotpot.answers, vec!["yes"]);
        assert_eq!(hotpot.contexts[0].text, "a1 a2");
        assert_eq!(hotpot.supporting_titles(), vec!["B"]);

        let flashrag = one(
            json!({"id": "dev_0", "question": "Q?", "golden_answers": ["x", "y"],
            "metadata": {"supporting_facts": {"title": ["A"], "sent_id": [0]},
                         "context": {"title": ["A", "B"], "content": [["a"], ["b"]]}}}),
        );
        assert_eq!(flashrag.answers, vec!["x", "y"]);
        assert_eq!(flashrag.supporting_titles(), vec!["A"]);

        let musique = one(json!({"id": "2hop__1", "question": "Q?", "answer": "M",
            "answer_aliases": ["Em"], "paragraphs": [
                {"idx": 0, "title": "P", "paragraph_text": "p", "is_supporting": false},
                {"idx": 1, "title": "S", "paragraph_text": "s", "is_supporting": true}]}));
        assert_eq!(musique.answers, vec!["M", "Em"]);
        assert_eq!(musique.supporting_titles(), vec!["S"]);

        let nq = one(json!({"id": "test_0", "question": "Q?", "golden_answers": ["N"]}));
        assert!(nq.contexts.is_empty());
    }

    #[test]
    fn a_question_without_answer_is_named() {
        let e = item(&json!({"question": "Q?"}), 0).expect_err("refused");
        assert!(e.contains("gold answer"), "{e}");
        assert!(item(&json!({"answers": ["a"]}), 0)
            .expect_err("refused")
            .contains("question"));
    }
}
