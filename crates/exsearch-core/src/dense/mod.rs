//! Dense retrieval beside BM25: a sentence encoder's vector for every
//! passage, kept in `vectors.sqlite` next to the catalog, searched exactly
//! (every vector scored), and fused with BM25's ranking (normalized scores,
//! equal weights).
//!
//! The encoder itself lives in the model crate; the library only knows the
//! [`Embedder`] trait, so it stays free of tensor code and a library without
//! an encoder is plain BM25.
//!
//! Vectors follow the passage index rather than lead it: a sync commits its
//! passages first, then the passages without a vector are embedded in
//! batches, each batch one SQLite transaction. A crash or cancel loses at
//! most the batch in flight; the next sync embeds what is missing and drops
//! vectors whose passage is gone, so the two always converge and never
//! disagree about what a passage says (its id is a hash of its text).

mod store;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use store::{DenseMatrix, VectorStore};

/// Turns texts into unit-length vectors (so a dot product is the cosine).
pub trait Embedder: Send + Sync {
    /// Identifies the vectors: changing encoder re-embeds the library.
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String>;
}

/// How the library ranks passages for a query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retrieval {
    /// BM25 and the sentence encoder, their scores fused; BM25 alone
    /// where the library has no vectors or no encoder is attached.
    #[default]
    Hybrid,
    Bm25,
}

impl Retrieval {
    pub fn as_str(self) -> &'static str {
        match self {
            Retrieval::Hybrid => "hybrid",
            Retrieval::Bm25 => "bm25",
        }
    }
}

impl std::str::FromStr for Retrieval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hybrid" => Ok(Retrieval::Hybrid),
            "bm25" => Ok(Retrieval::Bm25),
            other => Err(format!("unknown retrieval {other:?} (hybrid or bm25)")),
        }
    }
}

/// How deep each ranking is read before fusing.
pub(crate) const FUSION_DEPTH: usize = 50;
/// BM25's weight in the fused score; the encoder has the rest.
const LEXICAL_WEIGHT: f32 = 0.5;

/// Fuses BM25's and the encoder's rankings (`(id, score)`, best first) by
/// a convex combination of their min-max normalized scores, equal weights
/// (Bruch, Gai and Ingber, "An Analysis of Fusion Functions for Hybrid
/// Retrieval", 2023: it beats reciprocal rank fusion, which throws the
/// score gaps away; on HotpotQA here recall@5 was 0.835 against RRF's
/// 0.818, untitled documents). A passage missing from one ranking scores 0
/// there. Equal fused
/// scores are ordered by id, so the result does not depend on hash order.
pub(crate) fn fuse(lexical: &[(u64, f32)], semantic: &[(u64, f32)], k: usize) -> Vec<(u64, f32)> {
    let mut scores: HashMap<u64, f32> = HashMap::new();
    for (ranking, weight) in [(lexical, LEXICAL_WEIGHT), (semantic, 1.0 - LEXICAL_WEIGHT)] {
        let max = ranking.iter().map(|x| x.1).fold(f32::MIN, f32::max);
        let min = ranking.iter().map(|x| x.1).fold(f32::MAX, f32::min);
        for &(id, score) in ranking {
            let normalized = if max > min {
                (score - min) / (max - min)
            } else {
                1.0
            };
            *scores.entry(id).or_default() += weight * normalized;
        }
    }
    let mut fused: Vec<(u64, f32)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(k);
    fused
}

/// What an embedding pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EmbedReport {
    /// The encoder, when one is attached.
    pub encoder: Option<String>,
    /// Passages embedded by this pass.
    pub embedded: u64,
    /// Vectors dropped because their passage left the index.
    pub dropped: u64,
    /// Vectors in the store afterwards.
    pub vectors: u64,
    pub elapsed_secs: f64,
    pub cancelled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_weighs_normalized_scores_and_breaks_ties_by_id() {
        // BM25 scores are unbounded, cosines are not: each ranking is
        // scaled to [0, 1] first, so neither drowns the other.
        let bm25 = [(7, 30.0), (3, 20.0), (9, 10.0)];
        let dense = [(3, 0.9), (8, 0.8), (7, 0.4)];
        let fused = fuse(&bm25, &dense, 10);
        let ids: Vec<u64> = fused.iter().map(|(id, _)| *id).collect();
        // 3: 0.5 * 0.5 + 0.5 * 1.0; 7: 0.5 * 1.0 + 0; 8: 0.5 * 0.8; 9: 0.
        assert_eq!(ids, [3, 7, 8, 9]);
        assert!((fused[0].1 - 0.75).abs() < 1e-6, "{fused:?}");
        // A ranking of one (or of equal scores) counts fully.
        let tied = fuse(&[(5, 2.0)], &[(2, 0.3)], 2);
        assert_eq!(tied.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(fuse(&bm25, &dense, 2).len(), 2);
        assert_eq!(
            fuse(&[], &dense, 1)[0].0,
            3,
            "no BM25 match: the encoder ranks"
        );
    }

    #[test]
    fn retrieval_names_round_trip() {
        for r in [Retrieval::Hybrid, Retrieval::Bm25] {
            assert_eq!(r.as_str().parse::<Retrieval>(), Ok(r));
        }
        assert!("dense".parse::<Retrieval>().is_err());
    }
}
