//! Training on a random model of a real architecture, loaded from a Hugging
//! Face folder the way a downloaded one is: the loss masks, LoRA and full
//! fine-tuning steps, PEFT adapter round trips, merging, resuming a killed
//! trainer, LoRA dropout's seeding, the E-step and gradients (the run store and charts are in
//! `stores.rs`).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{load, tiny, trajectory};
use exsearch_core::CancelToken;
use exsearch_model::model::Decoder;
use exsearch_model::ChatMessage;
use exsearch_train::{
    encode, evaluate_loss, Encoded, Lora, LoraConfig, Params, TrainConfig, Trainer,
};

fn logits(decoder: &Decoder, tokens: &[u32]) -> Vec<Vec<f32>> {
    let ids = Tensor::new(tokens, decoder.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    let pos: Vec<u32> = (0..tokens.len() as u32).collect();
    let pos = Tensor::new(pos, decoder.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("pos");
    let hidden = decoder.forward(&ids, &pos, None, None).expect("forward");
    decoder
        .logits(&hidden.squeeze(0).expect("row"))
        .and_then(|l| Ok(l.to_vec2::<f32>()?))
        .expect("logits")
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn weights_of(decoder: &Decoder) -> HashMap<String, Vec<f32>> {
    decoder
        .named_weights()
        .expect("dense")
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().and_then(|t| t.to_vec1()).expect("vec")))
        .collect()
}

/// Rank-4 adapters on the default projections, without dropout.
fn rank_4_lora(decoder: &mut Decoder) -> Lora {
    let config = LoraConfig {
        rank: 4,
        dropout: 0.0,
        ..LoraConfig::default()
    };
    Lora::new(decoder, config, 3).expect("lora")
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        lr: 1e-2,
        epochs,
        warmup_ratio: 0.0,
        token_budget: 512,
        checkpoint_every: 1,
        ..TrainConfig::default()
    }
}

#[test]
fn only_assistant_turns_and_their_end_markers_are_in_the_loss() {
    let (_dir, model) = tiny();
    let codec = &model.codec;
    let encoded = encode(codec, &trajectory("Velm")).expect("encodes");
    assert_eq!(encoded.ids.len(), encoded.trained.len());
    // Runs of consecutive trained tokens, decoded with special tokens kept.
    let mut runs: Vec<Vec<u32>> = Vec::new();
    for (i, &t) in encoded.trained.iter().enumerate() {
        if t {
            if i == 0 || !encoded.trained[i - 1] {
                runs.push(Vec::new());
            }
            runs.last_mut().expect("run").push(encoded.ids[i]);
        }
    }
    let text: Vec<String> = runs
        .iter()
        .map(|r| codec.tokenizer().decode(r, false).expect("decodes"))
        .collect();
    assert_eq!(
        text,
        vec![
            "<QUERY> Ada birthplace<|im_end|>",
            "<FACT> Ada was born in Velm\n<FINAL><|im_end|>",
            "Velm<|im_end|>",
        ]
    );
    // The rest (instructions, the passage block, the answer request, the
    // template's role headers) is context only.
    let context: Vec<u32> = encoded
        .ids
        .iter()
        .zip(&encoded.trained)
        .filter(|(_, &t)| !t)
        .map(|(&id, _)| id)
        .collect();
    let context = codec.tokenizer().decode(&context, false).expect("decodes");
    assert!(context.contains("Content: Ada was born in Velm."));
    assert!(context.contains("please give the final answer"));
    assert!(!context.contains("<QUERY>"));
}

#[test]
fn a_lora_step_moves_only_the_adapters_and_lowers_the_loss() {
    let (_dir, mut model) = tiny();
    let data: Vec<Encoded> = vec![encode(&model.codec, &trajectory("Velm")).expect("encodes")];
    let base = weights_of(&model.decoder);
    let lora = rank_4_lora(&mut model.decoder);
    let before = evaluate_loss(&model.decoder, &data, 512).expect("loss");
    let mut trainer =
        Trainer::new(&model.decoder, Params::Lora(&lora), config(8), None).expect("trainer");
    let steps = trainer
        .run(&data, &mut |_| {}, &CancelToken::new())
        .expect("trains");
    assert_eq!(steps.len(), 8);
    let after = evaluate_loss(&model.decoder, &data, 512).expect("loss");
    assert!(after < before * 0.8, "loss {before} -> {after}");
    assert_eq!(weights_of(&model.decoder), base, "base weights are frozen");
    let b_norm: f32 = lora
        .vars()
        .iter()
        .filter(|(n, _)| n.contains("lora_B"))
        .map(|(_, v)| {
            v.as_tensor()
                .abs()
                .and_then(|t| t.sum_all())
                .and_then(|t| t.to_scalar::<f32>())
                .expect("norm")
        })
        .sum();
    assert!(b_norm > 0.0, "B left its zero initialisation");
}

#[test]
fn full_fine_tuning_memorises_a_trajectory() {
    let (_dir, mut model) = tiny();
    let data: Vec<Encoded> = vec![encode(&model.codec, &trajectory("Velm")).expect("encodes")];
    let before = evaluate_loss(&model.decoder, &data, 512).expect("loss");
    let vars = model.decoder.make_trainable().expect("dense weights");
    assert!(vars.iter().any(|(n, _)| n == "model.embed_tokens.weight"));
    assert!(
        !vars.iter().any(|(n, _)| n == "lm_head.weight"),
        "tied head"
    );
    let mut trainer =
        Trainer::new(&model.decoder, Params::Full(vars), config(30), None).expect("trainer");
    trainer
        .run(&data, &mut |_| {}, &CancelToken::new())
        .expect("trains");
    let after = evaluate_loss(&model.decoder, &data, 512).expect("loss");
    assert!(after < 0.1 * before, "loss {before} -> {after}");
}

/// The engine keeps prompts' keys and values for reuse, and a trainer
/// changes the weights under it (they share the variables): what it scores
/// after a step is what the trained weights give, not a cached prompt.
#[test]
fn after_a_training_step_the_engine_scores_with_the_new_weights() {
    use exsearch_model::{Engine, ScorePair};
    let (_dir, mut model) = tiny();
    let data: Vec<Encoded> = vec![encode(&model.codec, &trajectory("Velm")).expect("encodes")];
    let lora = rank_4_lora(&mut model.decoder);
    let decoder = model.decoder.clone();
    let ids = &data[0].ids;
    let pair = ScorePair {
        context: ids[..ids.len() - 8].to_vec(),
        target: ids[ids.len() - 8..].to_vec(),
    };
    let engine = Engine::new(model);
    let score = || {
        engine
            .score(std::slice::from_ref(&pair), &CancelToken::new())
            .expect("scores")
            .remove(0)
    };
    let before = score();
    assert_eq!(score(), before);
    let (reused, _) = engine.prompt_cache_stats();
    assert_eq!(
        reused,
        pair.context.len() as u64,
        "the second came from the cache"
    );

    Trainer::new(&decoder, Params::Lora(&lora), config(4), None)
        .expect("trainer")
        .run(&data, &mut |_| {}, &CancelToken::new())
        .expect("trains");
    let after = score();
    // The trained decoder's own log-probabilities of the target, no cache.
    let all = logits(&decoder, ids);
    let direct: Vec<f32> = (ids.len() - 8..ids.len())
        .map(|i| {
            let row = &all[i - 1];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = row.iter().map(|x| (x - max).exp()).sum();
            row[ids[i] as usize] - max - z.ln()
        })
        .collect();
    let moved = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(moved > 0.05, "training moved the scores by {moved}");
    let off = direct
        .iter()
        .zip(&after)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        off < 1e-3,
        "scored {after:?}, the trained weights give {direct:?}"
    );
}

#[test]
fn peft_adapters_round_trip_and_merge() {
    let (dir, mut model) = tiny();
    let data: Vec<Encoded> = vec![encode(&model.codec, &trajectory("Velm")).expect("encodes")];
    let lora = Lora::new(
        &mut model.decoder,
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
            rslora: false,
        },
        5,
    )
    .expect("lora");
    Trainer::new(&model.decoder, Params::Lora(&lora), config(3), None)
        .expect("trainer")
        .run(&data, &mut |_| {}, &CancelToken::new())
        .expect("trains");
    let tokens = &data[0].ids;
    let adapted = logits(&model.decoder, tokens);
    let out = dir.path().join("adapter");
    lora.save_peft(&out, "tiny").expect("saves");

    // PEFT's layout: names, shapes and config fields transformers reads.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("adapter_config.json")).expect("config"),
    )
    .expect("json");
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["q_proj", "v_proj", "down_proj"])
    );
    let tensors =
        candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
            .expect("safetensors");
    assert_eq!(
        tensors.len(),
        2 * 3 * 2,
        "A and B for 3 modules in 2 layers"
    );
    let a = &tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
    let b = &tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"];
    assert_eq!(a.dims(), &[4, 64]);
    assert_eq!(b.dims(), &[64, 4]);

    // Loaded into a fresh copy of the base: the same function.
    let mut fresh = load(dir.path());
    let base = logits(&fresh.decoder, tokens);
    assert!(
        max_diff(&base, &adapted) > 1e-3,
        "the adapter changes the model"
    );
    let loaded = Lora::load_peft(&out, &Device::Cpu, DType::F32).expect("loads");
    assert_eq!(loaded.config(), lora.config());
    loaded.install(&mut fresh.decoder, None).expect("fits");
    assert_eq!(logits(&fresh.decoder, tokens), adapted);

    // Merged into the weights: the same function without adapters.
    loaded.merge_into(&mut fresh.decoder).expect("merges");
    assert!(fresh
        .decoder
        .projections_mut()
        .iter()
        .all(|(_, l)| l.lora().is_none()));
    let merged = logits(&fresh.decoder, tokens);
    assert!(
        max_diff(&merged, &adapted) < 1e-4,
        "{}",
        max_diff(&merged, &adapted)
    );
}

#[test]
fn a_killed_run_resumes_at_the_next_step_and_ends_where_an_unbroken_one_does() {
    let (dir, mut model) = tiny();
    let examples: Vec<Encoded> = ["Velm", "the city of Velm", "Velm, in the north"]
        .iter()
        .map(|a| encode(&model.codec, &trajectory(a)).expect("encodes"))
        .collect();
    let mut cfg = config(4);
    cfg.token_budget = 200; // one example per micro-batch: 12 steps
    let mut unbroken_model = load(dir.path());
    let vars = unbroken_model.decoder.make_trainable().expect("vars");
    let unbroken = Trainer::new(
        &unbroken_model.decoder,
        Params::Full(vars),
        cfg.clone(),
        None,
    )
    .expect("trainer")
    .run(&examples, &mut |_| {}, &CancelToken::new())
    .expect("trains");
    assert_eq!(unbroken.len(), 12);

    let checkpoint = dir.path().join("run");
    let vars = model.decoder.make_trainable().expect("vars");
    let cancel = CancelToken::new();
    let mut trainer = Trainer::new(
        &model.decoder,
        Params::Full(vars),
        cfg.clone(),
        Some(&checkpoint),
    )
    .expect("trainer");
    let stop = cancel.clone();
    let result = trainer.run(
        &examples,
        &mut |r| {
            if r.step == 5 {
                stop.cancel();
            }
        },
        &cancel,
    );
    assert!(matches!(result, Err(exsearch_train::Error::Cancelled)));
    drop(trainer);

    // A new process: a fresh model, the state read back from disk.
    let mut resumed_model = load(dir.path());
    let vars = resumed_model.decoder.make_trainable().expect("vars");
    let rest = Trainer::new(
        &resumed_model.decoder,
        Params::Full(vars),
        cfg,
        Some(&checkpoint),
    )
    .expect("trainer")
    .run(&examples, &mut |_| {}, &CancelToken::new())
    .expect("resumes");
    assert_eq!(
        rest.iter().map(|r| r.step).collect::<Vec<_>>(),
        (6..=12).collect::<Vec<_>>(),
        "no finished step is run again"
    );
    for (a, b) in rest.iter().zip(&unbroken[5..]) {
        assert!((a.loss - b.loss).abs() < 1e-4, "{} vs {}", a.loss, b.loss);
    }
    let (x, y) = (
        weights_of(&resumed_model.decoder),
        weights_of(&unbroken_model.decoder),
    );
    let worst = x
        .iter()
        .flat_map(|(n, v)| v.iter().zip(&y[n]).map(|(a, b)| (a - b).abs()))
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "weights differ by {worst}");
}

#[test]
fn lora_dropout_follows_the_run_seed_so_runs_repeat_and_resume_exactly() {
    let (dir, _) = tiny();
    let lora_config = LoraConfig {
        rank: 4,
        dropout: 0.3,
        ..LoraConfig::default()
    };
    // Six steps over three examples with dropout on every adapter's input;
    // `stop_after` cancels the run there and resumes it in a fresh model.
    let runs = std::cell::Cell::new(0);
    let train = |seed: u64, stop_after: Option<usize>| -> (Vec<f64>, Vec<Vec<f32>>) {
        let mut model = load(dir.path());
        let examples: Vec<Encoded> = ["Velm", "the city of Velm", "Velm, in the north"]
            .iter()
            .map(|a| encode(&model.codec, &trajectory(a)).expect("encodes"))
            .collect();
        let cfg = TrainConfig {
            seed,
            token_budget: 200,
            ..config(2)
        };
        runs.set(runs.get() + 1);
        let checkpoint = dir.path().join(format!("run-{}", runs.get()));
        let mut losses = Vec::new();
        if let Some(stop) = stop_after {
            let lora = Lora::new(&mut model.decoder, lora_config.clone(), 3).expect("lora");
            let cancel = CancelToken::new();
            let (flag, mut trainer) = (
                cancel.clone(),
                Trainer::new(
                    &model.decoder,
                    Params::Lora(&lora),
                    cfg.clone(),
                    Some(&checkpoint),
                )
                .expect("trainer"),
            );
            let result = trainer.run(
                &examples,
                &mut |r| {
                    losses.push(r.loss);
                    if r.step == stop {
                        flag.cancel();
                    }
                },
                &cancel,
            );
            assert!(matches!(result, Err(exsearch_train::Error::Cancelled)));
            model = load(dir.path());
        }
        let lora = Lora::new(&mut model.decoder, lora_config.clone(), 3).expect("lora");
        Trainer::new(&model.decoder, Params::Lora(&lora), cfg, Some(&checkpoint))
            .expect("trainer")
            .run(&examples, &mut |r| losses.push(r.loss), &CancelToken::new())
            .expect("trains");
        let adapters = lora
            .vars()
            .iter()
            .map(|(_, v)| v.flatten_all().and_then(|t| t.to_vec1()).expect("values"))
            .collect();
        (losses, adapters)
    };
    let (losses, adapters) = train(5, None);
    assert_eq!(losses.len(), 6);
    assert_eq!(
        train(5, None),
        (losses.clone(), adapters.clone()),
        "the same seed repeats"
    );
    assert_eq!(
        train(5, Some(3)),
        (losses.clone(), adapters.clone()),
        "a resumed run draws the masks an unbroken one does"
    );
    let (other_losses, other_adapters) = train(6, None);
    assert_ne!(other_losses, losses, "another seed drops other values");
    assert_ne!(other_adapters, adapters);
}

#[test]
fn model_init_trains_a_tokenizer_on_the_corpus_and_writes_a_loadable_model() {
    use exsearch_train::init::{init_model, InitConfig};
    use exsearch_train::world::{World, WorldConfig};
    let world = World::generate(&WorldConfig {
        seed: 4,
        warmup: 10,
        train: 30,
        valid: 5,
        test: 5,
        ..WorldConfig::default()
    })
    .expect("world");
    let dir = tempfile::tempdir().expect("tmp");
    let config = InitConfig {
        hidden: 32,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        intermediate: 64,
        vocab: 8192,
        words: vec!["<QUERY>".into(), "<FACT>".into()],
        ..InitConfig::default()
    };
    let written = init_model(dir.path(), &config, world.text()).expect("init");
    let model = load(dir.path());
    assert_eq!(model.decoder.config().num_layers, 2);
    assert_eq!(model.decoder.config().vocab_size, written.vocab_size);
    assert_eq!(written.vocab_size % 64, 0);
    let tokenizer = model.codec.tokenizer();
    // Learnt from the corpus: the world's invented names are whole tokens.
    let name = &world.train[0].supporting[0];
    let ids = tokenizer
        .encode(format!("founder of {name}"), false)
        .expect("encodes");
    assert!(
        ids.get_tokens().contains(&format!("\u{120}{name}")),
        "{:?}",
        ids.get_tokens()
    );
    // Byte-level: any text survives a round trip, special tokens are single ids.
    for text in [world.documents[0].text.as_str(), "Ünïcode ✓ never seen"] {
        let ids = model.codec.encode_rendered(text).expect("encodes");
        assert_eq!(model.codec.decode(&ids), text);
    }
    // The agent's tags are one token each, and decode back to themselves.
    let step = "<QUERY> founder of X\n<FACT> Y";
    let ids = model.codec.encode_rendered(step).expect("encodes");
    assert_eq!(ids[0], tokenizer.token_to_id("<QUERY>").expect("a word"));
    assert!(ids.contains(&tokenizer.token_to_id("<FACT>").expect("a word")));
    assert_eq!(model.codec.decode(&ids), step);
    // ChatML turns, and no system prompt nobody wrote.
    let turn = model
        .codec
        .render_chat(&[ChatMessage::user("hi")], true, &Default::default())
        .expect("template");
    assert_eq!(
        turn,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = model.codec.encode_rendered(&turn).expect("encodes");
    assert!(ids.contains(&tokenizer.token_to_id("<|im_start|>").expect("special")));
    // Same seed and corpus, same model.
    let again = tempfile::tempdir().expect("tmp");
    init_model(again.path(), &config, world.text()).expect("init");
    for file in ["tokenizer.json", "model.safetensors", "config.json"] {
        assert_eq!(
            std::fs::read(dir.path().join(file)).expect("read"),
            std::fs::read(again.path().join(file)).expect("read"),
            "{file}"
        );
    }
}

#[test]
fn the_e_step_samples_k_trajectories_scores_the_gold_answer_and_weights_them() {
    use exsearch_agent::generator::Local;
    use exsearch_agent::{Agent, AgentSettings};
    use exsearch_train::estep::{e_step, m_step_examples, EStepOptions};
    use exsearch_train::importance::{log_sum_exp, WeightRule};

    let (dir, _) = tiny();
    let (files, library) = common::indexed_world(dir.path(), 2, 3, 0);
    let model_dir = dir.path().to_path_buf();
    let handle = std::sync::Arc::new(
        exsearch_model::ModelHandle::spawn(move || Ok(load(&model_dir)), 16).expect("model"),
    );
    let local = Local::new(handle.clone());
    let mut settings = AgentSettings {
        k: 2,
        max_steps: 2,
        step_tokens: 8,
        answer_tokens: 4,
        ..AgentSettings::default()
    };
    settings.sampling.temperature = 1.0;
    let agent = Agent {
        generator: &local,
        retriever: &library,
        settings: &settings,
    };
    let items = exsearch_agent::eval::load(&files.train).expect("qa file");
    let options = EStepOptions {
        samples: 3,
        // A random model writes no evidence; keep every sample.
        max_empty_evidence: usize::MAX,
        ..EStepOptions::default()
    };
    let mut progress = Vec::new();
    let (questions, summary) = e_step(
        &agent,
        &local,
        &items,
        &options,
        &mut |done, total| progress.push((done, total)),
        &CancelToken::new(),
    )
    .expect("e-step");
    assert_eq!(progress.last(), Some(&(3, 3)));
    assert_eq!(questions.len(), 3);
    assert_eq!(summary.used, 3);
    for (q, item) in questions.iter().zip(&items) {
        assert_eq!(q.samples.len(), 3);
        assert_eq!(q.answer, item.answers[0]);
        let gold_tokens = handle
            .codec()
            .encode_rendered(&q.answer)
            .expect("tokens")
            .len();
        let sums: Vec<f64> = q.samples.iter().map(|s| s.score.sum).collect();
        for s in &q.samples {
            assert_eq!(
                s.score.tokens,
                gold_tokens + 1,
                "answer tokens and end of turn"
            );
            assert!(s.score.sum < 0.0 && s.score.sum.is_finite());
        }
        let total: f64 = q.samples.iter().map(|s| s.weight).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let expected = log_sum_exp(&sums) - 3f64.ln();
        assert!((q.log_mean.expect("scored") - expected).abs() < 1e-9);
    }
    let mean_bound = questions.iter().filter_map(|q| q.log_mean).sum::<f64>() / 3.0;
    assert!((summary.bound - mean_bound).abs() < 1e-9);

    // The M-step learns each trajectory with the gold answer, weighted by K w.
    let examples = m_step_examples(&questions, WeightRule::SelfNormalized);
    assert_eq!(examples.len(), 9);
    for (e, s) in examples.iter().zip(
        questions
            .iter()
            .flat_map(|q| q.samples.iter().map(move |s| (q, s))),
    ) {
        let (q, sample) = s;
        assert_eq!(
            e.messages.last(),
            Some(&ChatMessage::assistant(q.answer.clone()))
        );
        assert!((e.weight as f64 - 3.0 * sample.weight).abs() < 1e-5);
        let transcript = &sample.trajectory.transcript;
        assert_eq!(
            &e.messages[..e.messages.len() - 1],
            &transcript[..transcript.len() - 1]
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let (_dir, mut model) = tiny();
    let data = [encode(&model.codec, &trajectory("Velm")).expect("encodes")];
    let rows: Vec<&Encoded> = data.iter().collect();
    let vars = model.decoder.make_trainable().expect("vars");
    model
        .decoder
        .set_kernels(exsearch_model::model::Kernels::Differentiable);
    let loss = exsearch_train::weighted_loss(&model.decoder, &rows, 1.0).expect("loss");
    let grads = loss.backward().expect("backward");
    let loss_at = |decoder: &Decoder| -> f64 {
        exsearch_train::weighted_loss(decoder, &rows, 1.0)
            .and_then(|l| Ok(l.to_scalar::<f32>()? as f64))
            .expect("loss")
    };
    let mut checked = 0;
    for (name, var) in &vars {
        let grad = grads
            .get(var.as_tensor())
            .expect("every weight gets a gradient");
        let flat_grad: Vec<f32> = grad.flatten_all().and_then(|g| g.to_vec1()).expect("grad");
        let original = var.as_tensor().copy().expect("copy");
        let values: Vec<f32> = original
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values");
        // The coordinate with the largest gradient: finite differences are
        // meaningful there.
        let (i, &g) = flat_grad
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .expect("non-empty");
        let eps = 1e-2f32;
        let shifted = |delta: f32| {
            let mut v = values.clone();
            v[i] += delta;
            Tensor::from_vec(v, original.dims(), &Device::Cpu).expect("tensor")
        };
        var.set(&shifted(eps)).expect("set");
        let up = loss_at(&model.decoder);
        var.set(&shifted(-eps)).expect("set");
        let down = loss_at(&model.decoder);
        var.set(&original).expect("restore");
        let numeric = (up - down) / (2.0 * eps as f64);
        let err = (numeric - g as f64).abs() / (g.abs() as f64).max(1e-3);
        assert!(err < 0.05, "{name}[{i}]: analytic {g}, numeric {numeric}");
        checked += 1;
    }
    assert!(checked > 10);
}
