//! BM25 search over passages. A query is analyzed like the indexed text and
//! becomes a disjunction of its terms, so questions in plain language work
//! and no query syntax can fail to parse.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{TantivyDocument, Term};

use super::{english_analyzer, PassageId, PassageIndex};
use crate::error::Result;

/// One ranked passage with what is needed to show and cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub passage_id: PassageId,
    pub path: String,
    pub title: String,
    /// 1-based PDF page; `None` for formats without pages.
    pub page: Option<u32>,
    pub score: f32,
    /// Char offsets of the passage in its page's (or document's) text.
    pub char_start: usize,
    pub char_end: usize,
    pub text: String,
    /// Char ranges in `text` of words that matched the query.
    pub highlights: Vec<[usize; 2]>,
}

impl PassageIndex {
    /// The `k` best passages for `query`; empty when the query has no
    /// searchable words.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let terms = analyze(query);
        // tantivy reserves room for k hits up front: never more than exist.
        let k = k.min(self.num_passages() as usize);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let term = Term::from_field_text(self.fields.content, t);
                let q: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())
            .map_err(|e| self.error(e))?;
        let f = &self.fields;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| self.error(e))?;
            let text_of = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let u64_of = |field| doc.get_first(field).and_then(|v| v.as_u64());
            let text = text_of(f.text);
            hits.push(Hit {
                passage_id: PassageId(u64_of(f.passage_id).unwrap_or_default()),
                path: text_of(f.path),
                title: text_of(f.title),
                page: u64_of(f.page).and_then(|p| u32::try_from(p).ok()),
                score,
                char_start: u64_of(f.char_start).unwrap_or_default() as usize,
                char_end: u64_of(f.char_end).unwrap_or_default() as usize,
                highlights: highlights(&text, &terms),
                text,
            });
        }
        Ok(hits)
    }
}

/// The distinct index terms of `text`.
pub(crate) fn analyze(text: &str) -> BTreeSet<String> {
    let mut analyzer = english_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = BTreeSet::new();
    while stream.advance() {
        terms.insert(stream.token().text.clone());
    }
    terms
}

/// Char ranges of the words in `text` whose index term is one of `terms`.
fn highlights(text: &str, terms: &BTreeSet<String>) -> Vec<[usize; 2]> {
    let mut analyzer = english_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut byte_ranges = Vec::new();
    while stream.advance() {
        let t = stream.token();
        if terms.contains(&t.text) {
            byte_ranges.push((t.offset_from, t.offset_to));
        }
    }
    // Byte offsets to char offsets, in one pass since ranges are ordered.
    let mut out = Vec::with_capacity(byte_ranges.len());
    let (mut byte, mut chars) = (0usize, 0usize);
    for (from, to) in byte_ranges {
        chars += text[byte..from].chars().count();
        let len = text[from..to].chars().count();
        out.push([chars, chars + len]);
        chars += len;
        byte = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_are_char_ranges_of_stemmed_matches() {
        let terms = analyze("running café");
        let text = "Él runs; the runner ran to the Café.";
        let h = highlights(text, &terms);
        let chars: Vec<char> = text.chars().collect();
        let words: Vec<String> = h
            .iter()
            .map(|[a, b]| chars[*a..*b].iter().collect())
            .collect();
        assert_eq!(words, ["runs", "Café"]);
    }
}
