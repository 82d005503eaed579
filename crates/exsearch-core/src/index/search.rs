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
    /// Read by OCR from a scanned page or an image (the library marks it;
    /// the index alone leaves it false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocr: bool,
}

impl PassageIndex {
    /// The `k` best passages for `query`; empty when the query has no
    /// searchable words.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let terms = analyze(query);
        let searcher = self.reader.searcher();
        let top = self.ranked(&searcher, &terms, k)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, _, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| self.error(e))?;
            hits.push(self.hit(&doc, score, &terms));
        }
        Ok(hits)
    }

    /// The ids and BM25 scores of the `k` best passages for `query`, read
    /// from the index's columns alone (no stored text): what fusion needs.
    pub fn ranked_ids(&self, query: &str, k: usize) -> Result<Vec<(PassageId, f32)>> {
        let searcher = self.reader.searcher();
        let top = self.ranked(&searcher, &analyze(query), k)?;
        Ok(top.into_iter().map(|(score, id, _)| (id, score)).collect())
    }

    /// BM25's `k` best for the disjunction of `terms`; empty when there is
    /// no term.
    fn ranked(
        &self,
        searcher: &tantivy::Searcher,
        terms: &BTreeSet<String>,
        k: usize,
    ) -> Result<Vec<(f32, PassageId, tantivy::DocAddress)>> {
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
        self.top_k(searcher, &BooleanQuery::new(clauses), k)
    }

    /// The passages `scored` names, as hits with the given scores and the
    /// words of `query` highlighted, in the same order; ids no longer in the
    /// index are left out.
    pub fn hits_by_id(&self, scored: &[(PassageId, f32)], query: &str) -> Result<Vec<Hit>> {
        let terms = analyze(query);
        let searcher = self.reader.searcher();
        let mut hits = Vec::with_capacity(scored.len());
        for &(id, score) in scored {
            if let Some(doc) = self.doc_of(&searcher, id)? {
                hits.push(self.hit(&doc, score, &terms));
            }
        }
        Ok(hits)
    }

    /// Each passage's title and text, for the sentence encoder; ids no
    /// longer in the index are left out.
    pub fn passage_texts(&self, ids: &[PassageId]) -> Result<Vec<(PassageId, String, String)>> {
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(doc) = self.doc_of(&searcher, id)? {
                let text_of = |field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned()
                };
                out.push((id, text_of(f.title), text_of(f.text)));
            }
        }
        Ok(out)
    }

    fn doc_of(
        &self,
        searcher: &tantivy::Searcher,
        id: PassageId,
    ) -> Result<Option<TantivyDocument>> {
        let query = TermQuery::new(
            Term::from_field_u64(self.fields.passage_id, id.0),
            IndexRecordOption::Basic,
        );
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .map_err(|e| self.error(e))?;
        match top.first() {
            Some((_, address)) => searcher.doc(*address).map(Some).map_err(|e| self.error(e)),
            None => Ok(None),
        }
    }

    fn hit(&self, doc: &TantivyDocument, score: f32, terms: &BTreeSet<String>) -> Hit {
        let f = &self.fields;
        let text_of = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let u64_of = |field| doc.get_first(field).and_then(|v| v.as_u64());
        let text = text_of(f.text);
        Hit {
            passage_id: PassageId(u64_of(f.passage_id).unwrap_or_default()),
            path: text_of(f.path),
            title: text_of(f.title),
            page: u64_of(f.page).and_then(|p| u32::try_from(p).ok()),
            score,
            char_start: u64_of(f.char_start).unwrap_or_default() as usize,
            char_end: u64_of(f.char_end).unwrap_or_default() as usize,
            highlights: highlights(&text, terms),
            text,
            ocr: false,
        }
    }
}

impl PassageIndex {
    /// The `k` best hits, equal scores ranked by passage id. tantivy breaks
    /// ties by where a passage sits in the index, which multi-threaded
    /// indexing and merges make differ from one build of the same corpus to
    /// the next; ties are common (short queries, passages of similar
    /// length), so the same question over the same documents could retrieve
    /// different passages. Hits past the cut are fetched while they tie with
    /// it (up to [`MAX_TIE_WINDOW`]), and the ties are settled by a hash of
    /// the passage's text, then by id: an id hashes the document's path, so
    /// by id alone the same documents in another folder (a demonstration's
    /// world in another run folder) retrieved other passages.
    fn top_k(
        &self,
        searcher: &tantivy::Searcher,
        query: &BooleanQuery,
        k: usize,
    ) -> Result<Vec<(f32, PassageId, tantivy::DocAddress)>> {
        let total = self.num_passages() as usize;
        let mut limit = (k + 8).min(total);
        let top = loop {
            let top = searcher
                .search(query, &TopDocs::with_limit(limit).order_by_score())
                .map_err(|e| self.error(e))?;
            let cut = top.get(k - 1).map(|(score, _)| *score);
            let open = top.len() == limit
                && limit < total.min(MAX_TIE_WINDOW)
                && cut.is_some_and(|c| top.last().is_some_and(|(s, _)| *s == c));
            if !open {
                break top;
            }
            limit = (limit * 4).min(total).min(MAX_TIE_WINDOW);
        };
        let cut = top.get(k - 1).map_or(f32::MIN, |(score, _)| *score);
        // Each segment's id column is opened once, not once per hit.
        let mut columns = vec![None; searcher.segment_readers().len()];
        let mut ranked = Vec::with_capacity(top.len());
        for (score, address) in top.into_iter().filter(|(s, _)| *s >= cut) {
            let column = match &mut columns[address.segment_ord as usize] {
                Some(column) => column,
                slot => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("passage_id")
                        .map_err(|e| self.error(e))?
                        .first_or_default_col(0),
                ),
            };
            ranked.push((score, column.get_val(address.doc_id), address));
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        // Only tied hits need their text read.
        let mut keyed = Vec::with_capacity(ranked.len());
        for (i, &(score, id, address)) in ranked.iter().enumerate() {
            let tied = |j: usize| ranked.get(j).is_some_and(|o| o.0 == score);
            let key = if tied(i + 1) || (i > 0 && tied(i - 1)) {
                self.text_key(searcher, address)?
            } else {
                0
            };
            keyed.push((score, key, id, address));
        }
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        keyed.truncate(k);
        Ok(keyed
            .into_iter()
            .map(|(s, _, id, a)| (s, PassageId(id), a))
            .collect())
    }

    /// A hash of a passage's stored text, the same wherever its document is.
    fn text_key(&self, searcher: &tantivy::Searcher, address: tantivy::DocAddress) -> Result<u64> {
        let doc: TantivyDocument = searcher.doc(address).map_err(|e| self.error(e))?;
        let text = doc
            .get_first(self.fields.text)
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let hash = blake3::hash(text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        Ok(u64::from_le_bytes(first))
    }
}

/// How far past the cut [`PassageIndex::top_k`] looks for hits tied with
/// it: beyond, ties among so many equal passages are left to the index.
const MAX_TIE_WINDOW: usize = 4096;

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

    /// An index of `segments`, each committed as one segment, in order; a
    /// passage is its id, file path and text.
    fn index_of(
        dir: &std::path::Path,
        segments: &[Vec<(PassageId, String, String)>],
    ) -> PassageIndex {
        let index = PassageIndex::open(dir).expect("index");
        {
            let mut writer = index.writer(1).expect("writer");
            for segment in segments {
                for (id, path, text) in segment {
                    writer
                        .add(&super::super::IndexedPassage {
                            id: *id,
                            doc_id: id.0,
                            path,
                            title: "Okapi",
                            page: None,
                            char_start: 0,
                            char_end: text.chars().count(),
                            text,
                        })
                        .expect("add");
                }
                writer.commit().expect("commit");
            }
            writer.finish().expect("finish");
        }
        index.refresh().expect("refresh");
        index
    }

    /// Passages of equal length that each name the okapi once (every
    /// search for it ties them), indexed as the files of `folder`.
    fn okapi_passages(dir: &std::path::Path, folder: &str) -> PassageIndex {
        let animals = ["tapir", "lemur", "bison", "otter", "camel", "hyena"];
        let passages = animals
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let (path, text) = (
                    format!("{folder}/{i}.txt"),
                    format!("The okapi and the {a} live here."),
                );
                (PassageId::derive(&path, None, 0, &text), path, text)
            })
            .collect();
        index_of(dir, &[passages])
    }

    #[test]
    fn tied_passages_rank_the_same_wherever_their_folder_is() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ranked = |name: &str, folder: &str| -> Vec<String> {
            let index = okapi_passages(&tmp.path().join(name), folder);
            let hits = index.search("okapi", 3).expect("search");
            assert!(hits.windows(2).all(|w| w[0].score == w[1].score), "tied");
            hits.into_iter().map(|h| h.text).collect()
        };
        let here = ranked("a", "/home/ada/library");
        for (name, folder) in [("b", "/tmp/run-1/world"), ("c", "/srv/x")] {
            assert_eq!(ranked(name, folder), here, "{folder}");
        }
    }

    /// Builds an index of `ids` (identical passages: every search ties
    /// them all), one commit (segment) per `chunk` passages, in that order.
    fn tied_index(dir: &std::path::Path, ids: &[u64], chunk: usize) -> PassageIndex {
        let same = |&id: &u64| {
            let text = "The okapi lives in the rainforest.".to_string();
            (PassageId(id), "/same.txt".to_string(), text)
        };
        let segments: Vec<Vec<_>> = ids
            .chunks(chunk)
            .map(|c| c.iter().map(same).collect())
            .collect();
        index_of(dir, &segments)
    }

    #[test]
    fn equal_scores_rank_by_passage_id_whatever_the_index_layout() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ids: Vec<u64> = (1..=40).map(|i| i * 7919 % 1000 + 1).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        let mut smallest = ids.clone();
        smallest.sort_unstable();
        for (name, order, chunk) in [("a", &ids, 40), ("b", &reversed, 3), ("c", &ids, 7)] {
            let index = tied_index(&tmp.path().join(name), order, chunk);
            for k in [1, 3, 10] {
                let got: Vec<u64> = index
                    .search("okapi", k)
                    .expect("search")
                    .iter()
                    .map(|h| h.passage_id.0)
                    .collect();
                assert_eq!(got, smallest[..k], "layout {name}, k {k}");
            }
        }
    }
}
