//! Can a model made by `model init` learn to copy a name from its context?
//! The skill every search step needs ("founder of X" -> query X). Trains a
//! fresh model on "... Find X now. ..." -> "<QUERY> X" and prints the
//! validation loss per epoch; a model that only guesses among the context's
//! words stays near 0.6, one that copies goes towards 0.
//!
//! `cargo run --release -p exsearch-train --example copy_probe [EPOCHS]`

use anyhow::Context;
use exsearch_core::CancelToken;
use exsearch_model::{ChatMessage, LoadedModel, ModelSource};
use exsearch_train::init::{init_model, InitConfig};
use exsearch_train::{encode, evaluate_loss, Encoded, Example, Params, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};

fn main() -> anyhow::Result<()> {
    let epochs: u64 = std::env::args().nth(1).map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let words: Vec<String> = (0..400)
        .map(|i| format!("Zq{}x", i * 7919 % 10007))
        .collect();
    let corpus: Vec<String> = (0..50).map(|_| words.join(" ")).collect();
    init_model(dir.path(), &InitConfig::default(), corpus.into_iter())?;
    let source: ModelSource = dir.path().to_str().context("utf-8 path")?.parse()?;
    let files = source.resolve(&exsearch_model::hub::HubCache::new(
        dir.path().join(".none"),
    ))?;
    let mut model = LoadedModel::load(&files, &candle_core::Device::Cpu, candle_core::DType::F32)?;
    let mut make = |n: usize| -> anyhow::Result<Vec<Encoded>> {
        (0..n)
            .map(|_| {
                let mut pick = || words[rng.random_range(0..words.len())].as_str();
                let target = pick();
                let before: Vec<&str> = (0..10).map(|_| pick()).collect();
                let after: Vec<&str> = (0..10).map(|_| pick()).collect();
                let example = Example {
                    messages: vec![
                        ChatMessage::user(format!(
                            "{} Find {target} now. {}",
                            before.join(" "),
                            after.join(" ")
                        )),
                        ChatMessage::assistant(format!("<QUERY> {target}")),
                    ],
                    weight: 1.0,
                };
                Ok(encode(&model.codec, &example)?)
            })
            .collect()
    };
    let train = make(2000)?;
    let valid = make(100)?;
    let vars = model.decoder.make_trainable()?;
    println!(
        "before: valid {:.3}",
        evaluate_loss(&model.decoder, &valid, 4096)?
    );
    for epoch in 0..epochs {
        let config = TrainConfig {
            lr: 7e-4,
            epochs: 1,
            token_budget: 1024,
            warmup_ratio: 0.05,
            min_lr_ratio: 1.0,
            checkpoint_every: 0,
            seed: epoch,
            ..TrainConfig::default()
        };
        let steps = Trainer::new(&model.decoder, Params::Full(vars.clone()), config, None)?.run(
            &train,
            &mut |_| {},
            &CancelToken::new(),
        )?;
        let valid_loss = evaluate_loss(&model.decoder, &valid, 4096)?;
        let train_loss = steps.last().map_or(f64::NAN, |s| s.loss);
        println!(
            "epoch {epoch}: {} steps, train {train_loss:.3}, valid {valid_loss:.3}",
            steps.len()
        );
    }
    Ok(())
}
