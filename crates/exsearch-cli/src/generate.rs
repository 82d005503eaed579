//! `exsearch generate`: text from a local model, streamed.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use exsearch_core::CancelToken;
use exsearch_model::engine::{
    Engine, FinishReason, GenerateEvent, GenerateRequest, SamplingParams,
};
use exsearch_model::hub::HubCache;
use exsearch_model::{parse_device, parse_dtype, ChatMessage, LoadedModel, ModelSource};

#[derive(Args)]
pub struct GenerateArgs {
    /// A model folder, a .gguf file, or a downloaded hub id (ORG/NAME[@REV][:FILE])
    #[arg(long, short = 'm')]
    model: String,
    /// What to ask; rendered with the model's chat template unless --raw
    prompt: String,
    /// Samples to draw
    #[arg(short = 'n', long, default_value_t = 1)]
    samples: usize,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// 0 keeps every token
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this text (repeatable)
    #[arg(long)]
    stop: Vec<String>,
    /// A system message for the chat template
    #[arg(long)]
    system: Option<String>,
    /// Use the prompt as is, without the chat template
    #[arg(long)]
    raw: bool,
    /// auto, cpu, cuda[:N] or metal
    #[arg(long, default_value = "auto")]
    device: String,
    /// auto, f32, bf16 or f16 (safetensors weights)
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Print one JSON object with every completion
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> Result<ExitCode> {
    let source: ModelSource = args.model.parse()?;
    let files = source.resolve(&HubCache::from_env())?;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype, &device)?;
    let loading = Instant::now();
    let model = LoadedModel::load(&files, &device, dtype)?;
    if !args.json {
        eprintln!(
            "loaded {} in {:.1} s",
            model.name,
            loading.elapsed().as_secs_f64()
        );
    }
    let tokens = if args.raw {
        model.codec.encode_prompt(&args.prompt)?
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(args.prompt.clone()));
        let text = model
            .codec
            .render_chat(&messages, true, &Default::default())?;
        model.codec.encode_rendered(&text)?
    };
    if args.samples == 0 {
        bail!("-n must be at least 1");
    }
    let request = GenerateRequest {
        prompts: vec![tokens],
        samples: args.samples,
        params: SamplingParams {
            temperature: args.temperature,
            top_p: args.top_p,
            top_k: args.top_k,
            seed: args.seed,
            max_tokens: args.max_tokens,
            stop: args.stop.clone(),
        },
    };
    let cancel: CancelToken = crate::cancel_on_ctrl_c("stopping generation")?;
    let stream = !args.json && args.samples == 1;
    let sink = |event: GenerateEvent| {
        if let GenerateEvent::Delta { text, .. } = event {
            if stream {
                print!("{text}");
                let _ = std::io::stdout().flush();
            }
        }
    };
    let started = Instant::now();
    let completions = Engine::new(model).generate(&request, &sink, &cancel)?;
    let secs = started.elapsed().as_secs_f64();
    let generated: usize = completions.iter().map(|c| c.tokens.len()).sum();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "completions": completions, "generated_tokens": generated, "seconds": secs,
            }))?
        );
    } else {
        if stream {
            println!();
        } else {
            for c in &completions {
                println!("--- sample {} ({:?})\n{}", c.sample + 1, c.finish, c.text);
            }
        }
        eprintln!(
            "{generated} tokens in {secs:.1} s ({:.1} tokens/s)",
            generated as f64 / secs.max(1e-9)
        );
    }
    Ok(
        if completions
            .iter()
            .any(|c| c.finish == FinishReason::Cancelled)
        {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        },
    )
}
