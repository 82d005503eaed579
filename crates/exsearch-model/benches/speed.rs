//! CPU speed of the model runtime, side by side with llama.cpp on the same
//! weights and thread count.
//!
//! ```text
//! cargo bench -p exsearch-model --bench speed
//! ```
//!
//! Weights: random, at Qwen2.5-0.5B's shape, written once under
//! `target/tmp/bench-model` as a Hugging Face folder (f32, bf16) and as GGUF
//! (f32, Q8_0, Q4_K_M) by our fixture writer; or the real pretrained files
//! `smollm2-135m` (Q4_1) and `gemma3-270m` (Q4_K_M), fetched by
//! `scripts/fetch_real_models.py`. The peer is `llama-bench`
//! (built by `scripts/build-llama-bench.sh`, found through `LLAMA_BENCH` or
//! at `target/llama.cpp/build/bin/llama-bench`); without it only our figures
//! are printed. Environment:
//!
//! - `EXSEARCH_BENCH_FORMATS` (default `q8_0,q4_k_m,f32,bf16`)
//! - `EXSEARCH_BENCH_THREADS` (default: all cores), `EXSEARCH_BENCH_PP` (256),
//!   `EXSEARCH_BENCH_TG` (64), `EXSEARCH_BENCH_BATCH` (`1,4,8,16`; `none`
//!   skips batched sampling)
//! - `EXSEARCH_BENCH_DEVICE` (`cpu`; `cuda` in a build with `--features cuda`,
//!   where llama-bench, built with CUDA, offloads every layer: `-ngl 99`)
//! - `EXSEARCH_KERNELS` (`avx2` runs our AVX2 kernels on an AVX512 CPU,
//!   `candle` turns ours off: what they bring, side by side)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use exsearch_jobs::{CancelToken, Quiet};
use exsearch_model::engine::{Engine, GenerateRequest, SamplingParams};
use exsearch_model::fixtures::{self, Quant};
use exsearch_model::model::KvCache;
use exsearch_model::{LoadedModel, ModelSource};

// As in the `exsearch` binary: glibc's malloc hands large buffers back to the
// OS, so every decode step would fault in fresh zeroed pages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/bench-model")
}

/// The weight files of one format, written on first use.
fn weights(format: &str) -> PathBuf {
    let dir = bench_dir();
    let hf = |dtype: DType, name: &str| {
        let path = dir.join(name);
        if !path.join("model.safetensors").is_file() {
            eprintln!(
                "writing {} (random weights, Qwen2.5-0.5B shape)...",
                path.display()
            );
            fixtures::write_hf_model(&path, &fixtures::qwen25_05b_config(), 2024, dtype)
                .expect("write fixture");
        }
        path
    };
    let gguf = |quant: Quant, name: &str| {
        let source = hf(DType::F32, "hf-f32");
        let path = dir.join(name);
        if !path.is_file() {
            eprintln!("writing {}...", path.display());
            fixtures::write_gguf(&source, &path, quant).expect("write gguf");
        }
        path
    };
    match format {
        "smollm2-135m" | "gemma3-270m" => fixtures::real_model(format).expect("fetched"),
        "f32" => hf(DType::F32, "hf-f32"),
        "bf16" => hf(DType::BF16, "hf-bf16"),
        "f32.gguf" => gguf(Quant::F32, "model-f32.gguf"),
        "q8_0" => gguf(Quant::Q8_0, "model-q8_0.gguf"),
        "q4_k_m" => gguf(Quant::Q4KM, "model-q4_k_m.gguf"),
        other => panic!("unknown format {other}"),
    }
}

fn load(path: &Path, device: &Device, dtype: DType) -> LoadedModel {
    let source: ModelSource = path.to_str().expect("utf-8").parse().expect("model path");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(bench_dir()))
        .expect("files");
    LoadedModel::load(&files, device, dtype).expect("load")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prefill and decode tokens/s at batch size one, median of three runs.
fn ours(model: &LoadedModel, pp: usize, tg: usize) -> (f64, f64) {
    let d = &model.decoder;
    let step = |tokens: &[u32], start: usize, cache: &mut KvCache| -> u32 {
        let ids = Tensor::new(tokens, d.device())
            .expect("ids")
            .unsqueeze(0)
            .expect("b");
        let pos: Vec<u32> = (start as u32..(start + tokens.len()) as u32).collect();
        let pos = Tensor::new(pos, d.device())
            .expect("pos")
            .unsqueeze(0)
            .expect("b");
        let h = d.forward(&ids, &pos, None, Some(cache)).expect("forward");
        let last = h.narrow(1, tokens.len() - 1, 1).expect("last");
        let logits: Vec<f32> = d
            .logits(&last)
            .expect("logits")
            .flatten_all()
            .expect("flat")
            .to_vec1()
            .expect("vec");
        exsearch_model::engine::sampling::argmax(&logits)
    };
    let vocab = d.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..pp as u32).map(|i| (i * 7919) % vocab).collect();
    let (mut pps, mut tgs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut cache = KvCache::new(d.config().num_layers);
        let t = Instant::now();
        step(&prompt, 0, &mut cache);
        pps.push(pp as f64 / t.elapsed().as_secs_f64());
        // Decode from an empty context, as llama-bench's tg test does.
        let mut cache = KvCache::new(d.config().num_layers);
        let mut token = 1u32;
        let t = Instant::now();
        for i in 0..tg {
            token = step(&[token], i, &mut cache);
        }
        tgs.push(tg as f64 / t.elapsed().as_secs_f64());
    }
    (median(pps), median(tgs))
}

/// Teacher-forced logits at every position of `tokens`, one row each.
fn logits_rows(model: &LoadedModel, tokens: &[u32]) -> Vec<Vec<f32>> {
    let d = &model.decoder;
    let ids = Tensor::new(tokens, d.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    let pos: Vec<u32> = (0..tokens.len() as u32).collect();
    let pos = Tensor::new(pos, d.device())
        .and_then(|t| t.unsqueeze(0))
        .expect("pos");
    let mut cache = KvCache::new(d.config().num_layers);
    let h = d
        .forward(&ids, &pos, None, Some(&mut cache))
        .expect("forward");
    let logits = d.logits(&h).expect("logits");
    logits
        .squeeze(0)
        .and_then(|l| l.to_vec2::<f32>())
        .expect("rows")
}

/// How the accelerator's logits compare with the CPU's on the same file:
/// top-1 agreement over `n` teacher-forced positions, and the largest
/// difference against the largest logit.
fn against_cpu(model: &LoadedModel, path: &Path, dtype: DType, n: usize) -> String {
    let vocab = model.decoder.config().vocab_size as u32;
    let tokens: Vec<u32> = (0..n as u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let ours = logits_rows(model, &tokens);
    let cpu = logits_rows(&load(path, &Device::Cpu, dtype), &tokens);
    let argmax = |r: &[f32]| exsearch_model::engine::sampling::argmax(r);
    let same = ours
        .iter()
        .zip(&cpu)
        .filter(|(a, b)| argmax(a.as_slice()) == argmax(b.as_slice()))
        .count();
    let (mut diff, mut scale) = (0f32, 0f32);
    for (a, b) in ours.iter().zip(&cpu) {
        for (x, y) in a.iter().zip(b) {
            diff = diff.max((x - y).abs());
            scale = scale.max(y.abs());
        }
    }
    format!("top-1 {same}/{n} as on the CPU; max |diff| {diff:.4} (largest logit {scale:.2})")
}

fn llama_bench() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("LLAMA_BENCH").map(PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/llama.cpp/build/bin/llama-bench"),
        ),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// One llama-bench rate (tokens/s) on `gguf`: prefill of `pp` tokens, or
/// decode of `tg`. Each is run on its own with llama.cpp's defaults, and
/// again with `--repack 0` (its plain CPU kernels) only where the default
/// fails: llama-cpp-python 0.3.36's llama.cpp repacks weights for AMX, which
/// dies with an illegal instruction in the prefill of every file here while
/// its decode runs. The second value says whether the fallback was taken.
fn peer_rate(
    bin: &Path,
    gguf: &Path,
    gpu: bool,
    threads: usize,
    pp: usize,
    tg: usize,
) -> Option<(f64, bool)> {
    let run = |extra: &[&str]| {
        let out = Command::new(bin)
            .args(["-m", gguf.to_str()?])
            .args(["-p", &pp.to_string(), "-n", &tg.to_string()])
            .args(["-t", &threads.to_string(), "-r", "3", "-o", "json"])
            .args(["-ngl", if gpu { "99" } else { "0" }])
            .args(extra)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "llama-bench -p {pp} -n {tg} {extra:?} failed on {} ({})",
                gguf.display(),
                out.status,
            );
            return None;
        }
        let rows = serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()?;
        rows.as_array()?.first()?["avg_ts"].as_f64()
    };
    run(&[])
        .map(|r| (r, false))
        .or_else(|| run(&["--repack", "0"]).map(|r| (r, true)))
}

/// Memory bandwidth in GB/s: (copy, read) over 1 GiB buffers on `threads` threads.
fn bandwidth(threads: usize) -> (f64, f64) {
    const SIZE: usize = 1 << 30;
    let src = vec![1u64; SIZE / 8];
    let mut dst = vec![0u64; SIZE / 8];
    let chunk = src.len().div_ceil(threads);
    let mut copy = Vec::new();
    let mut read = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (d, c) in dst.chunks_mut(chunk).zip(src.chunks(chunk)) {
                s.spawn(move || d.copy_from_slice(c));
            }
        });
        copy.push(SIZE as f64 / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = src
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        std::hint::black_box(total);
        read.push(SIZE as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    (median(copy), median(read))
}

/// Bytes of weights one decode step reads (the embedding row aside; a tied
/// embedding is read whole as the output layer).
fn weight_bytes(format: &str, path: &Path, params: u64) -> f64 {
    match format {
        "f32" => params as f64 * 4.0,
        "bf16" => params as f64 * 2.0,
        _ => std::fs::metadata(path).map_or(0.0, |m| m.len() as f64),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let threads: usize = env_or(
        "EXSEARCH_BENCH_THREADS",
        &std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .to_string(),
    )
    .parse()
    .expect("EXSEARCH_BENCH_THREADS is a number");
    // candle's CPU kernels size their pool from RAYON_NUM_THREADS.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let pp: usize = env_or("EXSEARCH_BENCH_PP", "256").parse().expect("PP");
    let tg: usize = env_or("EXSEARCH_BENCH_TG", "64").parse().expect("TG");
    let formats = env_or("EXSEARCH_BENCH_FORMATS", "q8_0,q4_k_m,f32,bf16");
    let device = match env_or("EXSEARCH_BENCH_DEVICE", "cpu").as_str() {
        "cpu" => Device::Cpu,
        other => exsearch_model::model::parse_device(other).expect("EXSEARCH_BENCH_DEVICE"),
    };
    let gpu = !device.is_cpu();
    let batches: Vec<usize> = match env_or("EXSEARCH_BENCH_BATCH", "1,4,8,16").as_str() {
        "none" => Vec::new(),
        list => list
            .split(',')
            .map(|b| b.trim().parse().expect("batch sizes"))
            .collect(),
    };
    let peer_bin = llama_bench();
    let (copy_bw, read_bw) = bandwidth(threads);
    if gpu {
        println!("device {device:?}; llama-bench offloads every layer (-ngl 99)");
    }
    println!("threads {threads}; prompt {pp} tokens; decode {tg} tokens; memory bandwidth: copy {copy_bw:.1} GB/s, read {read_bw:.1} GB/s");
    println!(
        "simd: avx2 {} avx512f {} fma {} (compile-time); our quantized kernels: {} (EXSEARCH_KERNELS)",
        cfg!(target_feature = "avx2"),
        cfg!(target_feature = "avx512f"),
        cfg!(target_feature = "fma"),
        exsearch_model::model::packed::isa()
            .map_or("none, candle's".to_string(), |isa| format!("{isa:?}"))
    );
    match &peer_bin {
        Some(p) => println!("peer: {}", p.display()),
        None => println!("peer: llama-bench not found (run scripts/build-llama-bench.sh); printing our figures only"),
    }
    println!();
    println!("| format | ours prefill tok/s | llama.cpp prefill | ratio | ours decode tok/s | llama.cpp decode | ratio | decode / bandwidth limit |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut parity = Vec::new();
    for format in formats.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let path = weights(format);
        let dtype = if format == "bf16" {
            DType::BF16
        } else {
            DType::F32
        };
        let model = load(&path, &device, dtype);
        let (pp_ours, tg_ours) = ours(&model, pp, tg);
        if gpu {
            parity.push(format!(
                "{format}: {}",
                against_cpu(&model, &path, dtype, 64)
            ));
        }
        let params = model.decoder.config().parameter_count();
        drop(model);
        let peer_file = match format {
            "f32" => Some(weights("f32.gguf")),
            "bf16" => None,
            _ => Some(path.clone()),
        };
        let theirs = |pp: usize, tg: usize| {
            peer_bin
                .as_ref()
                .zip(peer_file.as_ref())
                .and_then(|(bin, file)| peer_rate(bin, file, gpu, threads, pp, tg))
        };
        let (pp_peer, tg_peer) = (theirs(pp, 0), theirs(0, tg));
        let bytes = weight_bytes(format, &path, params);
        // The host's bandwidth bounds a CPU's decode only.
        let limit = read_bw * 1e9 / bytes;
        let cell = |x: Option<(f64, bool)>| {
            x.map_or("-".to_string(), |(v, plain)| {
                format!("{v:.1}{}", if plain { " (--repack 0)" } else { "" })
            })
        };
        let ratio = |a: f64, b: Option<(f64, bool)>| {
            b.map_or("-".to_string(), |(b, _)| format!("{:.2}x", a / b))
        };
        println!(
            "| {format} | {pp_ours:.1} | {} | {} | {tg_ours:.1} | {} | {} | {} |",
            cell(pp_peer),
            ratio(pp_ours, pp_peer),
            cell(tg_peer),
            ratio(tg_ours, tg_peer),
            if gpu {
                format!("- ({:.0} MB/token)", bytes / 1e6)
            } else {
                format!(
                    "{:.0}% of {limit:.1} tok/s ({:.0} MB/token)",
                    100.0 * tg_ours / limit,
                    bytes / 1e6
                )
            }
        );
    }
    println!();
    for line in &parity {
        println!("logits on {device:?} against the CPU, 64 teacher-forced positions, {line}");
    }
    if batches.is_empty() {
        return;
    }
    let batch_format = env_or("EXSEARCH_BENCH_BATCH_FORMAT", "q8_0");
    let model = load(&weights(&batch_format), &device, DType::F32);
    let vocab = model.decoder.config().vocab_size as u32;
    let engine = Engine::new(model);
    let prompt: Vec<u32> = (0..64u32).map(|i| (i * 104_729) % vocab).collect();
    println!("batched sampling ({batch_format}): K samples of one 64-token prompt, 64 new tokens each, temperature 0.8, top-p 0.95; median of three rounds (range)");
    println!("| K | tokens/s | vs K=1 (medians) |");
    println!("|---|---|---|");
    // Warm up: candle repacks each quantized matrix on its first product.
    let warm = GenerateRequest {
        prompts: vec![prompt.clone()],
        samples: 2,
        params: SamplingParams::greedy(4),
    };
    engine
        .generate(&warm, &Quiet, &CancelToken::new())
        .expect("warm-up");
    // Three rounds over every K, interleaved so that a slow spell of the
    // machine does not land on one K only; medians per K.
    let mut rates = vec![Vec::new(); batches.len()];
    for _ in 0..3 {
        for (&k, rates) in batches.iter().zip(&mut rates) {
            let request = GenerateRequest {
                prompts: vec![prompt.clone()],
                samples: k,
                params: SamplingParams {
                    temperature: 0.8,
                    top_p: 0.95,
                    max_tokens: 64,
                    seed: 1,
                    ..Default::default()
                },
            };
            let t = Instant::now();
            let out = engine
                .generate(&request, &Quiet, &CancelToken::new())
                .expect("generate");
            let tokens: usize = out.iter().map(|c| c.tokens.len()).sum();
            rates.push(tokens as f64 / t.elapsed().as_secs_f64());
        }
    }
    let base = median(rates[0].clone());
    for (&k, rates) in batches.iter().zip(rates) {
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let rate = median(rates);
        println!(
            "| {k} | {rate:.1} ({lo:.1}-{hi:.1}) | {:.2}x |",
            rate / base
        );
    }
}
