//! Adapters trained over a quantized GGUF model, as QLoRA trains them:
//! the base stays in the file's bits and the gradient still reaches every
//! adapter.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{load, trajectory};
use exsearch_train::{encode, Encoded, Lora, LoraConfig};

/// LoRA over a quantized GGUF model (as QLoRA trains): the frozen products
/// pass the gradient back from the file's bits, so every adapter gets the
/// gradient it gets over the dense model, up to Q8_0's rounding. Llama's
/// query and key rows, which llama.cpp stores in its own order, are put
/// back at load: its adapters line up with the Hugging Face model's.
#[test]
fn lora_over_a_quantized_gguf_model_gets_the_dense_models_gradients() {
    use exsearch_model::fixtures::{self, Quant};
    use exsearch_model::model::{Family, Kernels};
    use exsearch_model::{LoadedModel, ModelSource};

    for family in [Family::Llama, Family::Gemma3] {
        let dir = tempfile::tempdir().expect("tmp");
        fixtures::write_hf_model(dir.path(), &fixtures::tiny_config(family), 11, DType::F32)
            .expect("fixture");
        let gguf = dir.path().join("model-q8_0.gguf");
        fixtures::write_gguf(dir.path(), &gguf, Quant::Q8_0).expect("gguf");
        let files = gguf
            .to_str()
            .expect("utf-8")
            .parse::<ModelSource>()
            .expect("a file")
            .resolve(&exsearch_model::hub::HubCache::new(dir.path().join("none")))
            .expect("resolves");
        let dense = load(dir.path());
        let data = [encode(&dense.codec, &trajectory("Velm")).expect("encodes")];
        let rows: Vec<&Encoded> = data.iter().collect();
        let grads = |mut model: LoadedModel| -> candle_core::Result<Vec<(String, Vec<f32>)>> {
            let config = LoraConfig {
                rank: 4,
                dropout: 0.0,
                ..LoraConfig::default()
            };
            let lora = Lora::new(&mut model.decoder, config, 5).expect("lora");
            // B starts at zero, which would leave A without a gradient.
            for (i, (name, var)) in lora.vars().iter().enumerate() {
                if name.contains("lora_B") {
                    let t = Tensor::ones(var.dims(), DType::F32, &Device::Cpu)?;
                    var.set(&(t * (0.01 * (1 + i % 7) as f64))?)?;
                }
            }
            model.decoder.set_kernels(Kernels::Differentiable);
            let loss = exsearch_train::weighted_loss(&model.decoder, &rows, 1.0).expect("loss");
            let grads = loss.backward()?;
            lora.vars()
                .into_iter()
                .map(|(name, var)| {
                    let g = grads
                        .get(var.as_tensor())
                        .expect("every adapter has a gradient");
                    Ok((name, g.flatten_all()?.to_vec1()?))
                })
                .collect()
        };
        // Loaded for inference only, the quantized model refuses clearly.
        let mut plain = LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("loads");
        Lora::new(&mut plain.decoder, LoraConfig::default(), 5).expect("lora");
        plain.decoder.set_kernels(Kernels::Differentiable);
        let err = exsearch_train::weighted_loss(&plain.decoder, &rows, 1.0)
            .expect_err("no backward without the file's bits");
        assert!(err.to_string().contains("loaded for training"), "{err}");

        let want = grads(dense).expect("dense gradients");
        let trainable =
            LoadedModel::load_trainable(&files, &Device::Cpu, DType::F32).expect("loads");
        let got = grads(trainable).expect("quantized gradients");
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            let dot: f64 = g.iter().zip(w).map(|(a, b)| (a * b) as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt();
            let cosine = dot / (norm(g) * norm(w)).max(1e-30);
            assert!(
                norm(w) > 0.0,
                "{family:?} {name}: the dense gradient is zero"
            );
            assert!(
                cosine > 0.99 && (norm(g) / norm(w) - 1.0).abs() < 0.05,
                "{family:?} {name}: cosine {cosine:.4}, norms {} vs {}",
                norm(g),
                norm(w)
            );
        }
    }
}
