//! The sentence encoder on the real all-MiniLM-L6-v2 weights (fetched from
//! the package index into the cache outside the repository), against
//! vectors from an independent float64 numpy implementation
//! (`scripts/reference/minilm_reference.py`, recorded in
//! `tests/fixtures/minilm_reference.json`).

use candle_core::Device;
use exsearch_model::embed::SentenceEncoder;
use serde_json::Value;

fn encoder() -> SentenceEncoder {
    let dir = exsearch_model::fixtures::real_model("minilm-l6-v2").expect("the encoder is fetched");
    SentenceEncoder::load(&dir, &Device::Cpu).expect("the encoder loads")
}

fn reference() -> Value {
    serde_json::from_str(include_str!("fixtures/minilm_reference.json")).expect("json")
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_matches_the_reference_alone_and_batched() {
    let encoder = encoder();
    assert_eq!(encoder.dim(), 384);
    assert_eq!(encoder.max_tokens(), 256);
    let reference = reference();
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| s.as_str().expect("text"))
        .collect();
    for (text, ids) in sentences
        .iter()
        .zip(reference["token_ids"].as_array().expect("ids"))
    {
        let want: Vec<u32> = ids
            .as_array()
            .expect("ids")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect();
        assert_eq!(encoder.tokenize(text).expect("tokens"), want, "{text:?}");
    }
    // All six in one call: padded batches must not change any vector.
    let batched = encoder.encode(&sentences).expect("encode");
    for (i, want) in reference["embeddings"]
        .as_array()
        .expect("vectors")
        .iter()
        .enumerate()
    {
        let want: Vec<f32> = want
            .as_array()
            .expect("vector")
            .iter()
            .map(|x| x.as_f64().expect("float") as f32)
            .collect();
        let alone = encoder.encode(&sentences[i..=i]).expect("encode one");
        for got in [&alone[0], &batched[i]] {
            // 8-bit matrices (on CPUs with AVX512-VNNI) stay within a
            // cosine of 0.999 of the float64 reference (0.9994 at worst here).
            let cosine = dot(got, &want);
            assert!(cosine > 0.999, "{:?}: cosine {cosine}", sentences[i]);
            assert!((dot(got, got) - 1.0).abs() < 1e-4, "unit length");
        }
        let spread = alone[0]
            .iter()
            .zip(&batched[i])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            spread < 1e-4,
            "{:?}: batching moved it by {spread}",
            sentences[i]
        );
    }
    // What retrieval relies on: the paraphrase is far closer than the rest.
    let close = dot(&batched[0], &batched[1]);
    let far = dot(&batched[0], &batched[2]);
    assert!(close > 0.7 && far < 0.1, "close {close}, far {far}");
}

#[test]
fn a_folder_without_weights_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), "{}").expect("write");
    let err = SentenceEncoder::load(dir.path(), &Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("config.json"), "{err}");
}
