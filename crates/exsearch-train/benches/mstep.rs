//! M-step training speed with LoRA (rank 16, all seven projections) on CPU
//! at Qwen2.5-0.5B's shape, side by side with PyTorch + PEFT on the same
//! weights, threads, batch and sequence length. Each side runs in its own
//! process so that its peak memory is its own.
//!
//! ```text
//! cargo bench -p exsearch-train --bench mstep
//! ```
//!
//! Weights: random, written once under `target/tmp/bench-model/hf-f32` (the
//! same folder as the runtime's speed bench). The peer runs
//! `scripts/bench/mstep_peft.py` with `EXSEARCH_BENCH_PYTHON` (default
//! `python3`; needs torch, transformers and peft); without them only our
//! figures are printed. Environment: `EXSEARCH_BENCH_THREADS` (default: all
//! cores), `EXSEARCH_BENCH_BATCH` (1 sequence; 4 needs about 22 GB on our
//! side and 15 GB on PyTorch's), `EXSEARCH_BENCH_SEQ` (256 tokens),
//! `EXSEARCH_BENCH_STEPS` (3 timed optimizer steps, after one untimed).
//!
//! `EXSEARCH_BENCH_MODEL=FILE.gguf` trains over a real quantized file
//! instead, as `demo real` does (LoRA on a frozen base that stays in the
//! file's format); PEFT has no such base, so only our side runs:
//!
//! ```text
//! EXSEARCH_BENCH_MODEL=~/.cache/exsearch/real-models/SmolLM2-135M-Instruct.Q4_1.gguf \
//!   EXSEARCH_BENCH_SEQ=1024 cargo bench -p exsearch-train --bench mstep
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device};
use exsearch_core::CancelToken;
use exsearch_model::fixtures;
use exsearch_model::{LoadedModel, ModelSource};
use exsearch_train::{Encoded, Lora, LoraConfig, Params, TrainConfig, Trainer};
use serde_json::{json, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn model_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/bench-model/hf-f32");
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "writing {} (random weights, Qwen2.5-0.5B shape)...",
            dir.display()
        );
        fixtures::write_hf_model(&dir, &fixtures::qwen25_05b_config(), 2024, DType::F32)
            .expect("write fixture");
    }
    dir
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The same token ids on both sides: a fixed pseudo-random stream.
fn batch_ids(batch: usize, seq: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..batch)
        .map(|_| {
            (0..seq)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % vocab as u64) as u32
                })
                .collect()
        })
        .collect()
}

/// Our side, in a child process: one untimed step, then `steps` timed.
/// `model` is the fixture folder or a GGUF file (trained as QLoRA).
fn ours(model: &Path, batch: usize, seq: usize, steps: usize) -> Value {
    let source: ModelSource = model.to_str().expect("utf-8").parse().expect("model");
    let files = source
        .resolve(&exsearch_model::hub::HubCache::new(
            std::env::temp_dir().join("exsearch-bench-no-hub"),
        ))
        .expect("files");
    let gguf = model.extension().is_some_and(|e| e == "gguf");
    let mut model = match gguf {
        true => LoadedModel::load_trainable(&files, &Device::Cpu, DType::F32),
        false => LoadedModel::load(&files, &Device::Cpu, DType::F32),
    }
    .expect("loads");
    let lora = Lora::new(&mut model.decoder, LoraConfig::default(), 0).expect("lora");
    let vocab = model.decoder.config().vocab_size.min(150_000);
    let data: Vec<Encoded> = batch_ids(batch, seq, vocab)
        .into_iter()
        .map(|ids| Encoded {
            trained: vec![true; ids.len()],
            ids,
            weight: 1.0,
        })
        .collect();
    let config = TrainConfig {
        lr: 1e-4,
        epochs: steps + 1,
        // The whole batch in one micro-batch, one optimizer step per epoch.
        token_budget: batch * seq,
        warmup_ratio: 0.0,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let mut trainer =
        Trainer::new(&model.decoder, Params::Lora(&lora), config, None).expect("trainer");
    let mut times = Vec::new();
    let mut last = Instant::now();
    trainer
        .run(
            &data,
            &mut |_| {
                times.push(last.elapsed().as_secs_f64());
                last = Instant::now();
            },
            &CancelToken::new(),
        )
        .expect("trains");
    let timed: f64 = times.iter().skip(1).sum();
    json!({
        "tokens_per_s": (batch * seq * steps) as f64 / timed,
        "step_s": timed / steps as f64,
        "peak_rss_mib": peak_rss_mib(),
    })
}

fn run_child(cmd: &mut Command) -> Option<Value> {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        if let Some(signal) = out.status.signal() {
            eprintln!("killed by signal {signal} (9: most likely out of memory)");
        }
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = env_usize(
        "EXSEARCH_BENCH_THREADS",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let (batch, seq, steps) = (
        env_usize("EXSEARCH_BENCH_BATCH", 1),
        env_usize("EXSEARCH_BENCH_SEQ", 256),
        env_usize("EXSEARCH_BENCH_STEPS", 3),
    );
    if args.get(1).map(String::as_str) == Some("--child") {
        let dir = PathBuf::from(&args[2]);
        println!("{}", ours(&dir, batch, seq, steps));
        return;
    }
    let real = std::env::var_os("EXSEARCH_BENCH_MODEL").map(PathBuf::from);
    let dir = real.clone().unwrap_or_else(model_dir);
    let shape = match &real {
        Some(file) => format!("{} (frozen quantized base)", file.display()),
        None => "Qwen2.5-0.5B shape, f32".to_string(),
    };
    println!(
        "M-step, LoRA r16 on q,k,v,o,gate,up,down, {shape}, CPU, {threads} threads, \
         batch {batch} x {seq} tokens, {steps} timed steps"
    );
    let exe = std::env::current_exe().expect("bench binary");
    let ours = run_child(
        Command::new(&exe)
            .args(["--child", dir.to_str().expect("utf-8")])
            .env("RAYON_NUM_THREADS", threads.to_string()),
    )
    .unwrap_or_else(|| {
        println!("ours: did not finish (see above)");
        std::process::exit(1)
    });
    if real.is_some() {
        println!(
            "ours: {:.1} tokens/s, {:.2} s/step, peak RSS {:.0} MiB (no peer: PEFT trains over \
             the original weights, not a GGUF file)",
            ours["tokens_per_s"].as_f64().unwrap_or(f64::NAN),
            ours["step_s"].as_f64().unwrap_or(f64::NAN),
            ours["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
        );
        return;
    }
    let python = std::env::var("EXSEARCH_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench/mstep_peft.py");
    let peer = run_child(
        Command::new(&python)
            .arg(&script)
            .arg(&dir)
            .args(["--threads", &threads.to_string()])
            .args(["--batch", &batch.to_string(), "--seq", &seq.to_string()])
            .args(["--steps", &steps.to_string()]),
    );
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:<22} {:>10} {:>9} {:>14}",
        "", "tokens/s", "s/step", "peak RSS MiB"
    );
    println!(
        "{:<22} {:>10.1} {:>9.2} {:>14.0}",
        "ours (candle)",
        f(&ours, "tokens_per_s"),
        f(&ours, "step_s"),
        f(&ours, "peak_rss_mib")
    );
    match peer {
        Some(peer) => {
            println!(
                "{:<22} {:>10.1} {:>9.2} {:>14.0}",
                format!("PyTorch {} + PEFT", peer["torch"].as_str().unwrap_or("?")),
                f(&peer, "tokens_per_s"),
                f(&peer, "step_s"),
                f(&peer, "peak_rss_mib")
            );
            println!(
                "ratio ours/peer: speed {:.2}x, peak memory {:.2}x",
                f(&ours, "tokens_per_s") / f(&peer, "tokens_per_s"),
                f(&ours, "peak_rss_mib") / f(&peer, "peak_rss_mib")
            );
        }
        None => println!(
            "peer: not run ({python} with torch, transformers and peft is needed; \
             set EXSEARCH_BENCH_PYTHON)"
        ),
    }
}
