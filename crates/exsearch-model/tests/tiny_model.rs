//! A random model of each real architecture, written as a Hugging Face folder
//! (and as GGUF) into a temp dir and loaded through the same path as a
//! downloaded one.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use exsearch_jobs::{CancelToken, Quiet};
use exsearch_model::engine::{
    Engine, FinishReason, GenerateEvent, GenerateRequest, SamplingParams, ScorePair,
};
use exsearch_model::fixtures::{self, Quant};
use exsearch_model::model::{Family, Kernels, LoraAdapter};
use exsearch_model::{ChatMessage, LoadedModel, ModelHandle, ModelSource};

fn load(dir: &Path) -> LoadedModel {
    let source: ModelSource = dir.to_str().expect("utf-8 path").parse().expect("a folder");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(dir.join("no-cache")))
        .expect("files resolve");
    LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("model loads")
}

/// A random model of `family` written as a Hugging Face folder.
fn fixture_dir(family: Family, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(dir.path(), &fixtures::tiny_config(family), seed, DType::F32)
        .expect("fixture");
    dir
}

fn tiny(family: Family) -> (tempfile::TempDir, LoadedModel) {
    let dir = fixture_dir(family, 7);
    let model = load(dir.path());
    (dir, model)
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// Logits of every position of `tokens` in one forward pass, no cache.
fn full_logits(model: &LoadedModel, tokens: &[u32]) -> Vec<Vec<f32>> {
    let d = &model.decoder;
    let ids = Tensor::new(tokens, d.device())
        .expect("ids")
        .unsqueeze(0)
        .expect("batch");
    let pos: Vec<u32> = (0..tokens.len() as u32).collect();
    let pos = Tensor::new(pos, d.device())
        .expect("pos")
        .unsqueeze(0)
        .expect("batch");
    let hidden = d.forward(&ids, &pos, None, None).expect("forward");
    d.logits(&hidden.squeeze(0).expect("row"))
        .expect("logits")
        .to_vec2()
        .expect("vec")
}

fn prompt(model: &LoadedModel, text: &str) -> Vec<u32> {
    let rendered = model
        .codec
        .render_chat(&[ChatMessage::user(text)], true, &Default::default())
        .expect("template");
    model.codec.encode_rendered(&rendered).expect("tokens")
}

#[test]
fn greedy_generation_is_deterministic_and_batching_changes_nothing() {
    let (_dir, model) = tiny(Family::Qwen2);
    let prompts = vec![
        prompt(&model, "Who wrote the novel Dune?"),
        prompt(&model, "Hi"),
        prompt(
            &model,
            "In which year did the Berlin Wall fall, and who was chancellor then?",
        ),
    ];
    assert!(
        prompts[0].len() != prompts[1].len(),
        "prompts of different lengths share the batch"
    );
    let engine = Engine::new(model);
    let greedy = GenerateRequest {
        prompts: prompts.clone(),
        samples: 1,
        params: SamplingParams::greedy(24),
    };
    let batched = engine
        .generate(&greedy, &Quiet, &CancelToken::new())
        .expect("generate");
    let again = engine
        .generate(&greedy, &Quiet, &CancelToken::new())
        .expect("generate");
    assert_eq!(batched, again, "greedy decoding is deterministic");
    for (i, p) in prompts.iter().enumerate() {
        let alone = GenerateRequest {
            prompts: vec![p.clone()],
            samples: 1,
            params: SamplingParams::greedy(24),
        };
        let alone = engine
            .generate(&alone, &Quiet, &CancelToken::new())
            .expect("generate");
        assert_eq!(
            alone[0].tokens, batched[i].tokens,
            "prompt {i}: batched result differs from unbatched"
        );
    }
    assert!(batched.iter().all(|c| !c.tokens.is_empty()));

    // Sampling: K samples of one prompt share its prefill; each sample is
    // reproducible whatever the batch size.
    let sampled = GenerateRequest {
        prompts: prompts[..1].to_vec(),
        samples: 6,
        params: SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: 11,
            max_tokens: 16,
            ..Default::default()
        },
    };
    let together = engine
        .generate(&sampled, &Quiet, &CancelToken::new())
        .expect("generate");
    let one_by_one = Engine::new(load(_dir.path()))
        .with_max_batch(1)
        .generate(&sampled, &Quiet, &CancelToken::new())
        .expect("generate");
    assert_eq!(together, one_by_one);
    let distinct: std::collections::HashSet<_> =
        together.iter().map(|c| c.tokens.clone()).collect();
    assert!(
        distinct.len() > 1,
        "samples differ from each other: {together:?}"
    );
}

#[test]
fn cached_decoding_matches_a_full_forward_pass() {
    // Gemma 3's 8-token window is crossed both in the prefill and in decoding.
    let families = [
        Family::Qwen2,
        Family::Qwen3,
        Family::Llama,
        Family::Mistral,
        Family::Gemma3,
    ];
    for family in families {
        let (_dir, model) = tiny(family);
        let tokens: Vec<u32> = (0..40).map(|i| (i * 37 % 300) as u32).collect();
        let full = full_logits(&model, &tokens);
        // Prefill 25 tokens, then feed the rest one at a time through the cache.
        let d = &model.decoder;
        let mut cache = exsearch_model::model::KvCache::new(d.config().num_layers);
        let step =
            |from: usize, to: usize, cache: &mut exsearch_model::model::KvCache| -> Vec<Vec<f32>> {
                let ids = Tensor::new(&tokens[from..to], d.device())
                    .expect("ids")
                    .unsqueeze(0)
                    .expect("b");
                let pos: Vec<u32> = (from as u32..to as u32).collect();
                let pos = Tensor::new(pos, d.device())
                    .expect("pos")
                    .unsqueeze(0)
                    .expect("b");
                let h = d.forward(&ids, &pos, None, Some(cache)).expect("forward");
                d.logits(&h.squeeze(0).expect("row"))
                    .expect("logits")
                    .to_vec2()
                    .expect("vec")
            };
        let mut incremental = step(0, 25, &mut cache);
        for i in 25..40 {
            incremental.extend(step(i, i + 1, &mut cache));
        }
        let max_diff = max_abs_diff(&full, &incremental);
        assert!(
            max_diff < 1e-4,
            "{family:?}: cached logits differ by {max_diff}"
        );
    }
}

#[test]
fn differentiable_kernels_compute_the_same_function() {
    for family in [Family::Qwen2, Family::Qwen3, Family::Llama, Family::Gemma3] {
        let (_dir, mut model) = tiny(family);
        let tokens: Vec<u32> = (0..30).map(|i| (i * 53 % 300) as u32).collect();
        let fused = full_logits(&model, &tokens);
        model.decoder.set_kernels(Kernels::Differentiable);
        let slow = full_logits(&model, &tokens);
        let max_diff = max_abs_diff(&fused, &slow);
        assert!(
            max_diff < 1e-4,
            "{family:?}: kernel sets differ by {max_diff}"
        );
    }
}

#[test]
fn scoring_matches_summed_log_softmax() {
    let (_dir, model) = tiny(Family::Qwen2);
    let context = prompt(&model, "Where was Ada Lovelace born?");
    let targets: Vec<Vec<u32>> = vec![
        model.codec.encode_rendered("London").expect("tokens"),
        model
            .codec
            .encode_rendered("She was born in London, England.")
            .expect("tokens"),
        model.codec.encode_rendered("Paris").expect("tokens"),
    ];
    let mut reference = Vec::new();
    for t in &targets {
        let all: Vec<u32> = context.iter().chain(t).copied().collect();
        let logits = full_logits(&model, &all);
        let lp: Vec<f32> = (0..t.len())
            .map(|i| {
                let row = &logits[context.len() + i - 1];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let z = max + row.iter().map(|l| (l - max).exp()).sum::<f32>().ln();
                row[t[i] as usize] - z
            })
            .collect();
        reference.push(lp);
    }
    let pairs: Vec<ScorePair> = targets
        .iter()
        .map(|t| ScorePair {
            context: context.clone(),
            target: t.clone(),
        })
        .collect();
    let scored = Engine::new(model)
        .score(&pairs, &CancelToken::new())
        .expect("score");
    for (got, want) in scored.iter().zip(&reference) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "log-prob {g} vs {w}");
        }
    }
}

#[test]
fn gguf_q8_matches_the_safetensors_model() {
    for family in [Family::Qwen2, Family::Llama, Family::Qwen3, Family::Gemma3] {
        let (dir, model) = tiny(family);
        let gguf = dir.path().join("model-q8_0.gguf");
        fixtures::write_gguf(dir.path(), &gguf, Quant::Q8_0).expect("gguf");
        let quantized = load(&gguf);
        assert!(
            quantized.codec.has_template(),
            "the chat template comes from GGUF metadata"
        );
        let text = "The quick brown fox";
        assert_eq!(
            quantized.codec.encode_prompt(text).expect("ids"),
            model.codec.encode_prompt(text).expect("ids"),
            "the GGUF tokenizer splits like tokenizer.json"
        );
        let tokens: Vec<u32> = (0..32).map(|i| (i * 41 % 300) as u32).collect();
        let (a, b) = (
            full_logits(&model, &tokens),
            full_logits(&quantized, &tokens),
        );
        let scale = a.iter().flatten().map(|x| x.abs()).fold(0.0f32, f32::max);
        let max_diff = max_abs_diff(&a, &b);
        assert!(
            max_diff < 0.05 * scale,
            "{family:?}: Q8_0 logits differ by {max_diff} (scale {scale})"
        );
        let agree = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| {
                exsearch_model::engine::sampling::argmax(x)
                    == exsearch_model::engine::sampling::argmax(y)
            })
            .count();
        assert!(
            agree >= 28,
            "{family:?}: greedy tokens agree at {agree}/32 positions"
        );
    }
}

#[test]
fn prompts_that_extend_earlier_ones_reuse_their_cache_and_answer_the_same() {
    // As search steps do: a prompt, two continuations of it, the first again,
    // and K samples of a continuation. Gemma's window is crossed.
    for family in [Family::Qwen2, Family::Gemma3] {
        let dir = fixture_dir(family, 5);
        let cached = Engine::new(load(dir.path()));
        let plain = Engine::new(load(dir.path())).with_prompt_cache(0);
        let base = prompt(
            cached.model(),
            "Who founded the company that makes the Velcora?",
        );
        let step = |extra: &str| -> Vec<u32> {
            let mut p = base.clone();
            p.extend(cached.model().codec.encode_rendered(extra).expect("ids"));
            p
        };
        let (a, b) = (
            step("Search: Velcora founder"),
            step("Search: Velcora maker"),
        );
        let mut longer = a.clone();
        longer.extend(
            cached
                .model()
                .codec
                .encode_rendered(" Observation: Ada Lind")
                .expect("ids"),
        );
        let requests = [
            (vec![base.clone()], 1, SamplingParams::greedy(12)),
            (vec![a.clone()], 1, SamplingParams::greedy(12)),
            (vec![b.clone()], 1, SamplingParams::greedy(12)),
            (vec![a.clone()], 1, SamplingParams::greedy(12)),
            (
                vec![longer.clone(), b.clone()],
                3,
                SamplingParams {
                    temperature: 1.0,
                    seed: 4,
                    max_tokens: 12,
                    ..Default::default()
                },
            ),
        ];
        for (prompts, samples, params) in requests {
            let request = GenerateRequest {
                prompts,
                samples,
                params,
            };
            let run = |e: &Engine| {
                e.generate(&request, &Quiet, &CancelToken::new())
                    .expect("generate")
            };
            assert_eq!(run(&cached), run(&plain), "{family:?}");
        }
        let (reused, prefilled) = cached.prompt_cache_stats();
        // Each distinct prompt of a request is prefilled once, whatever K.
        let total = base.len() + 2 * a.len() + 2 * b.len() + longer.len();
        assert_eq!(reused + prefilled, total as u64, "{family:?}");
        assert!(
            prefilled < (base.len() + a.len()) as u64,
            "{family:?}: {prefilled} of {total} prompt tokens prefilled"
        );
        assert_eq!(plain.prompt_cache_stats().0, 0);
    }
}

#[test]
fn a_token_outside_a_quantized_vocabulary_is_an_error_not_a_panic() {
    let (dir, _) = tiny(Family::Qwen2);
    let gguf = dir.path().join("model-q8_0.gguf");
    fixtures::write_gguf(dir.path(), &gguf, Quant::Q8_0).expect("gguf");
    let model = load(&gguf);
    let d = &model.decoder;
    let vocab = d.config().vocab_size as u32;
    let ids = Tensor::new(&[[1u32, vocab]], d.device()).expect("ids");
    let pos = Tensor::new(&[[0u32, 1]], d.device()).expect("pos");
    let err = d.forward(&ids, &pos, None, None).expect_err("out of range");
    assert!(err.to_string().contains(&vocab.to_string()), "{err}");
}

#[test]
fn sliding_window_layers_forget_tokens_beyond_their_reach() {
    // Every layer local, window 8: a token reaches at most 7 positions
    // further per layer, 21 over three layers.
    let mut config = fixtures::tiny_config(Family::Gemma3);
    config["layer_types"] = serde_json::json!(vec!["sliding_attention"; 3]);
    let dir = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(dir.path(), &config, 7, DType::F32).expect("fixture");
    let model = load(dir.path());
    let tokens: Vec<u32> = (0..40).map(|i| (i * 37 % 300) as u32).collect();
    let mut changed = tokens.clone();
    changed[0] = 299;
    let (a, b) = (full_logits(&model, &tokens), full_logits(&model, &changed));
    let near = max_abs_diff(&a[..22], &b[..22]);
    let far = max_abs_diff(&a[22..], &b[22..]);
    assert!(near > 1e-3, "the first token shapes what follows ({near})");
    assert!(
        far < 1e-6,
        "positions 22+ cannot see the first token ({far})"
    );
    // With the global layer back, the first token reaches every position.
    let (_dir, global) = tiny(Family::Gemma3);
    let (a, b) = (
        full_logits(&global, &tokens),
        full_logits(&global, &changed),
    );
    assert!(max_abs_diff(&a[22..], &b[22..]) > 1e-4);
}

#[test]
fn stop_strings_spanning_tokens_cut_the_text_and_the_stream() {
    let (_dir, model) = tiny(Family::Qwen2);
    let tok = model.codec.tokenizer();
    let ids = model
        .codec
        .encode_rendered("Search: Dune author\nObservation: Frank Herbert")
        .expect("ids");
    let stops = vec!["\nObservation:".to_string()];
    let mut stream = exsearch_model::text::TextStream::new();
    let mut streamed = String::new();
    let mut stopped = None;
    for &id in &ids {
        let step = stream.push(tok, id, &stops);
        streamed.push_str(&step.delta);
        if step.stop.is_some() {
            stopped = step.stop;
            break;
        }
    }
    assert_eq!(stopped.as_deref(), Some("\nObservation:"));
    assert_eq!(stream.text(), "Search: Dune author");
    assert_eq!(
        streamed, "Search: Dune author",
        "held-back text never leaks the stop string"
    );
}

#[test]
fn the_model_thread_streams_and_cancels() {
    let dir = fixture_dir(Family::Qwen2, 3);
    let path = dir.path().to_path_buf();
    let handle = ModelHandle::spawn(move || Ok(load(&path)), 8).expect("spawn");
    assert_eq!(handle.info().layers, 2);
    let ids = handle
        .codec()
        .encode_prompt("Tell me about tantivy")
        .expect("ids");
    let request = GenerateRequest {
        prompts: vec![ids.clone()],
        samples: 2,
        params: SamplingParams {
            temperature: 0.8,
            max_tokens: 20,
            seed: 5,
            ..Default::default()
        },
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let done = handle
        .submit_generate(request.clone(), Some(tx), CancelToken::new())
        .expect("queued");
    let completions = done.recv().expect("reply").expect("generate");
    let mut streamed = vec![String::new(); 2];
    let mut finished = 0;
    for event in rx.try_iter() {
        match event {
            GenerateEvent::Delta { sample, text, .. } => streamed[sample].push_str(&text),
            GenerateEvent::Done { .. } => finished += 1,
        }
    }
    assert_eq!(finished, 2);
    for c in &completions {
        assert_eq!(
            streamed[c.sample], c.text,
            "the stream adds up to the final text"
        );
    }
    let cancel = CancelToken::new();
    cancel.cancel();
    let cancelled = handle.generate(request, cancel).expect("generate");
    assert!(cancelled
        .iter()
        .all(|c| c.finish == FinishReason::Cancelled));
}

#[test]
fn a_lora_adapter_changes_the_output_only_when_nonzero() {
    let (_dir, mut model) = tiny(Family::Qwen2);
    let tokens: Vec<u32> = (0..12).map(|i| i * 7 + 3).collect();
    let base = full_logits(&model, &tokens);
    let q = &mut model.decoder.layers_mut()[0].self_attn.q_proj;
    let (out, inp) = (q.out_features(), q.in_features());
    let a = Tensor::randn(0f32, 1.0, (4, inp), &Device::Cpu).expect("a");
    let zero = LoraAdapter {
        a: a.clone(),
        b: Tensor::zeros((out, 4), DType::F32, &Device::Cpu).expect("b"),
        scale: 2.0,
        dropout: None,
    };
    q.set_lora(Some(zero)).expect("fits");
    let same = full_logits(&model, &tokens);
    assert_eq!(base, same, "B = 0 is the identity (LoRA's initial state)");
    let b = Tensor::randn(0f32, 0.5, (out, 4), &Device::Cpu).expect("b");
    model.decoder.layers_mut()[0]
        .self_attn
        .q_proj
        .set_lora(Some(LoraAdapter {
            a,
            b,
            scale: 2.0,
            dropout: None,
        }))
        .expect("fits");
    let changed = full_logits(&model, &tokens);
    assert_ne!(base, changed);
    let wrong = LoraAdapter {
        a: Tensor::zeros((4, inp + 1), DType::F32, &Device::Cpu).expect("a"),
        b: Tensor::zeros((out, 4), DType::F32, &Device::Cpu).expect("b"),
        scale: 1.0,
        dropout: None,
    };
    assert!(model.decoder.layers_mut()[0]
        .self_attn
        .q_proj
        .set_lora(Some(wrong))
        .is_err());
    let _ = D::Minus1;
}

#[test]
fn sharded_and_half_precision_checkpoints_load_to_the_same_model() {
    let (dir, model) = tiny(Family::Qwen3);
    let tokens: Vec<u32> = (0..16).map(|i| i * 11 + 5).collect();
    let reference = full_logits(&model, &tokens);

    // Split the checkpoint into two shards with an index, as large models ship.
    let sharded = tempfile::tempdir().expect("tmp");
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(dir.path().join(name), sharded.path().join(name)).expect("copy");
    }
    let all = candle_core::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu)
        .expect("load");
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: std::collections::HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&tensors, sharded.path().join(file)).expect("save shard");
        for n in part {
            map.insert((*n).clone(), file.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    assert_eq!(full_logits(&load(sharded.path()), &tokens), reference);

    // A bf16 checkpoint loads into f32 and stays within bf16 rounding.
    let half = tempfile::tempdir().expect("tmp");
    fixtures::write_hf_model(
        half.path(),
        &fixtures::tiny_config(Family::Qwen3),
        7,
        DType::BF16,
    )
    .expect("bf16");
    let from_bf16 = full_logits(&load(half.path()), &tokens);
    let max_diff = max_abs_diff(&reference, &from_bf16);
    assert!(max_diff < 0.1, "bf16 weights differ by {max_diff}");

    // A missing tensor is named, with the file at fault.
    let broken = tempfile::tempdir().expect("tmp");
    for name in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(dir.path().join(name), broken.path().join(name)).expect("copy");
    }
    let mut partial = all.clone();
    partial.remove("model.layers.1.mlp.up_proj.weight");
    let path = broken.path().join("model.safetensors");
    candle_core::safetensors::save(&partial, &path).expect("save");
    let source: ModelSource = broken.path().to_str().expect("utf-8").parse().expect("dir");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(broken.path()))
        .expect("files");
    let err = LoadedModel::load(&files, &Device::Cpu, DType::F32).expect_err("missing tensor");
    let msg = err.to_string();
    assert!(
        msg.contains("model.layers.1.mlp.up_proj.weight") && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn the_end_of_turn_is_the_token_the_template_closes_a_reply_with() {
    let (dir, model) = tiny(Family::Qwen2);
    let codec = &model.codec;
    let (im_end, endoftext) = (
        fixtures::special_id("<|im_end|>"),
        fixtures::special_id("<|endoftext|>"),
    );
    assert!(
        codec.eos_ids().contains(&endoftext) && codec.eos_ids()[0] != im_end,
        "the fixture lists a document end before the turn end: {:?}",
        codec.eos_ids()
    );
    assert_eq!(codec.end_of_turn(), Some(im_end));
    let gguf = dir.path().join("model-q8_0.gguf");
    fixtures::write_gguf(dir.path(), &gguf, Quant::Q8_0).expect("gguf");
    assert_eq!(load(&gguf).codec.end_of_turn(), Some(im_end));
}
