//! `exsearch ask`, `exsearch chats` and `exsearch eval`: the agent over the
//! library, with a local model or an OpenAI-compatible endpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use exsearch_agent::eval::{self, EvalEvent, EvalOptions, QuestionResult};
use exsearch_agent::generator::{Local, OpenAi, Oracle};
use exsearch_agent::{
    Agent, AgentEvent, AgentSettings, Asked, ChatStore, Citation, EndReason, Generator, Method,
    TurnStatus,
};
use exsearch_core::{Home, Library};
use exsearch_model::hub::HubCache;
use exsearch_model::{parse_device, parse_dtype, ModelSource};

use crate::output;

/// Which model answers.
#[derive(Args, Clone)]
pub struct BackendArgs {
    /// Local model: a folder, a .gguf file, or a hub id ORG/NAME[@REV][:FILE.gguf]
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    model: Option<String>,
    /// An OpenAI-compatible server instead (Ollama, llama.cpp, vLLM), e.g. http://localhost:11434
    #[arg(long, conflicts_with = "model")]
    endpoint: Option<String>,
    /// The model name the server knows (with --endpoint)
    #[arg(long, default_value = "default")]
    endpoint_model: String,
    /// API key for --endpoint
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests in flight at once (with --endpoint)
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// auto, cpu, cuda[:N] or metal (local model)
    #[arg(long, default_value = "auto")]
    device: String,
    /// auto, f32, bf16 or f16 (local model)
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// LoRA adapter for the local model: a name from `exsearch adapters
    /// list`, a PEFT folder, or `none` [default: the active adapter when
    /// the model is its base]
    #[arg(long, conflicts_with = "endpoint")]
    adapter: Option<String>,
}

/// How the agent searches.
#[derive(Args, Clone)]
pub struct AgentArgs {
    /// exsearch (agentic search), rag (retrieve once) or direct (no retrieval)
    #[arg(long, default_value = "exsearch")]
    method: Method,
    #[command(flatten)]
    search: SearchArgs,
    /// Sampling temperature, 0 for greedy [default: 0.8]
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Let the model re-rank each search's passages (paper, section 3)
    #[arg(long)]
    rerank: bool,
}

/// The agent's settings file and the search options that override it.
#[derive(Args, Clone)]
pub struct SearchArgs {
    /// Agent settings as JSON (any subset of the fields; see ARCHITECTURE.md)
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Passages per search [default: 5]
    #[arg(short = 'k', long)]
    k: Option<usize>,
    /// Searches at most before answering [default: 8]
    #[arg(long)]
    max_steps: Option<usize>,
}

impl SearchArgs {
    /// The settings file (or the defaults) with `-k` and `--max-steps` applied.
    pub(crate) fn settings(&self) -> Result<AgentSettings> {
        let mut s = match &self.settings {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
            }
            None => AgentSettings::default(),
        };
        if let Some(k) = self.k {
            s.k = k;
        }
        if let Some(n) = self.max_steps {
            s.max_steps = n;
        }
        Ok(s)
    }
}

impl AgentArgs {
    fn settings(&self) -> Result<AgentSettings> {
        let mut s = self.search.settings()?;
        if let Some(t) = self.temperature {
            s.sampling.temperature = t;
        }
        if let Some(seed) = self.seed {
            s.sampling.seed = seed;
        }
        s.rerank |= self.rerank;
        s.validate()?;
        Ok(s)
    }
}

#[derive(Args)]
pub struct AskArgs {
    /// The question
    #[arg(required = true)]
    question: Vec<String>,
    /// Continue conversation ID (a follow-up sees its earlier answers)
    #[arg(long, value_name = "ID")]
    chat: Option<i64>,
    /// Continue the most recent conversation
    #[arg(long = "continue", conflicts_with = "chat")]
    continue_latest: bool,
    /// Print the whole trajectory as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    agent: AgentArgs,
}

#[derive(Subcommand)]
pub enum ChatsCommand {
    /// List conversations, most recent first
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a conversation with its trajectories and citations
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Delete a conversation
    Delete { id: i64 },
}

#[derive(Args)]
pub struct EvalArgs {
    /// QA file: our JSONL, FlashRAG JSONL, MuSiQue JSONL, HotpotQA/2Wiki JSON
    #[arg(long)]
    data: PathBuf,
    /// Questions from the start of the file at most
    #[arg(long)]
    limit: Option<usize>,
    /// Search a corpus made of the file's own paragraphs instead of the library
    #[arg(long)]
    corpus_from_contexts: bool,
    /// Replace the model by an oracle that searches for the gold supporting
    /// titles (measures the retrieval side of multi-hop search)
    #[arg(long, conflicts_with_all = ["model", "endpoint"])]
    oracle: bool,
    /// Per-question results (JSONL) [default: <home>/evals/<file>-<method>-<time>.jsonl]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Questions run together (one batched model call per step)
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    agent: AgentArgs,
}

fn generator(home: &Home, args: &BackendArgs) -> Result<Box<dyn Generator>> {
    if let Some(endpoint) = &args.endpoint {
        let g = OpenAi::new(endpoint, &args.endpoint_model, args.api_key.clone())
            .with_concurrency(args.concurrency);
        return Ok(Box::new(g));
    }
    let Some(spec) = &args.model else {
        bail!(
            "no model: pass --model (a folder, a .gguf file or a hub id; see \
             `exsearch model list --available`) or --endpoint URL"
        );
    };
    let source: ModelSource = spec.parse()?;
    let files = source.resolve(&HubCache::from_env())?;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype, &device)?;
    let adapter = crate::runs::adapter_for(home, spec, args.adapter.as_deref())?;
    let handle = exsearch_train::adapters::spawn_answerer(files, device, dtype, adapter)?;
    Ok(Box::new(Local::new(Arc::new(handle))))
}

pub fn ask(home: &Home, args: AskArgs) -> Result<ExitCode> {
    let settings = args.agent.settings()?;
    let question = args.question.join(" ");
    let library = Library::open(home)?;
    let chats = ChatStore::open(home)?;
    let conversation = match (args.chat, args.continue_latest) {
        (Some(id), _) => Some(id),
        (None, true) => chats.latest()?,
        (None, false) => None,
    };
    if let Some(id) = conversation {
        chats.history(id)?; // an unknown conversation fails before the model loads
    }
    let method = args.agent.method;
    if method != Method::Direct && library.status()?.documents == 0 && !args.json {
        eprintln!("note: the library is empty; add documents with `exsearch library add DIR`");
    }
    let generator = generator(home, &args.backend)?;
    let cancel = crate::cancel_on_ctrl_c("stopping (Ctrl-C again to quit now)")?;
    let agent = Agent {
        generator: generator.as_ref(),
        retriever: &library,
        settings: &settings,
    };
    let printer = StepPrinter::default();
    let show = |event: AgentEvent| {
        if !args.json {
            printer.print(&event);
        }
    };
    let Asked {
        conversation,
        turn,
        trajectory,
    } = chats.ask(&agent, conversation, &question, method, &show, &cancel)?;
    if args.json {
        let out = serde_json::json!({
            "conversation": conversation, "turn": turn, "trajectory": trajectory,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_citations(&trajectory.citations);
        eprintln!(
            "conversation {conversation}: follow up with `exsearch ask --chat {conversation} \"...\"`"
        );
    }
    Ok(if trajectory.end == EndReason::Cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints each step as it happens.
#[derive(Default)]
struct StepPrinter {
    answering: Mutex<bool>,
}

impl StepPrinter {
    fn print(&self, event: &AgentEvent) {
        let mut out = std::io::stdout().lock();
        let _ = match event {
            AgentEvent::SubQuery {
                step,
                query,
                repaired,
                ..
            } => {
                let note = if *repaired { " (after a repair)" } else { "" };
                writeln!(out, "[{step}] search: {query}{note}")
            }
            AgentEvent::Retrieved { passages, .. } => {
                let titles: Vec<String> = passages
                    .iter()
                    .map(|h| exsearch_agent::prompt::title_of(h).to_string())
                    .collect();
                writeln!(out, "    found {}: {}", passages.len(), titles.join("; "))
            }
            AgentEvent::Reranked { kept, .. } => writeln!(out, "    re-ranked: kept {kept:?}"),
            AgentEvent::Evidence { text, .. } => writeln!(out, "    evidence: {text}"),
            AgentEvent::Repeated { query, .. } => {
                writeln!(out, "    repeated search {query:?}: answering now")
            }
            AgentEvent::AnswerDelta { text, .. } => {
                let mut answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
                if !*answering {
                    *answering = true;
                    let _ = write!(out, "answer: ");
                }
                write!(out, "{text}").and_then(|()| out.flush())
            }
            AgentEvent::Finished { end, answer, .. } => {
                let answering = *self.answering.lock().unwrap_or_else(|e| e.into_inner());
                if !answering {
                    let _ = write!(out, "answer: {answer}");
                }
                let note = match end {
                    EndReason::Finished => "",
                    EndReason::Budget => "  (step budget reached)",
                    EndReason::Unparsable => "  (the model stopped writing searches)",
                    EndReason::Repeated => "  (the model repeated a search)",
                    EndReason::Cancelled => "  (cancelled)",
                };
                writeln!(out, "{note}")
            }
            // The error itself is printed by main.
            AgentEvent::Started { .. }
            | AgentEvent::StepText { .. }
            | AgentEvent::Failed { .. } => Ok(()),
        };
    }
}

fn print_citations(citations: &[Citation]) {
    for c in citations {
        let h = &c.passage;
        let page = h.page.map_or_else(String::new, |p| format!(" page {p},"));
        let excerpt: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let excerpt: String = excerpt.chars().take(160).collect();
        println!(
            "  [{}] {}{page} chars {}-{}: {excerpt}…",
            c.number, h.path, h.char_start, h.char_end
        );
    }
}

pub fn chats(home: &Home, cmd: Option<ChatsCommand>) -> Result<ExitCode> {
    let store = ChatStore::open(home)?;
    match cmd.unwrap_or(ChatsCommand::List { json: false }) {
        ChatsCommand::List { json } => {
            let list = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no conversations yet: ask with `exsearch ask \"QUESTION\"`");
            } else {
                for c in list {
                    println!("{:>5}  {:>3} turns  {}", c.id, c.turns, c.title);
                }
            }
        }
        ChatsCommand::Show { id, json } => {
            let conversation = store.conversation(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&conversation)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("conversation {}: {}", conversation.id, conversation.title);
            for turn in &conversation.turns {
                println!("\nQ: {}  ({}, {})", turn.question, turn.method, turn.model);
                if let Some(t) = &turn.trajectory {
                    for (i, step) in t.steps.iter().enumerate() {
                        println!("  [{}] search: {}", i + 1, step.query);
                        if let Some(e) = &step.evidence {
                            println!("      evidence: {e}");
                        }
                    }
                }
                match turn.status {
                    TurnStatus::Answered => println!("A: {}", turn.answer),
                    TurnStatus::Cancelled => println!("A: {} (cancelled)", turn.answer),
                    TurnStatus::Failed => {
                        println!(
                            "failed: {}",
                            turn.error.as_deref().unwrap_or("unknown error")
                        )
                    }
                    TurnStatus::Running => println!("no answer (still running, or interrupted)"),
                }
                if let Some(t) = &turn.trajectory {
                    print_citations(&t.citations);
                }
            }
        }
        ChatsCommand::Delete { id } => {
            store.delete(id)?;
            println!("deleted conversation {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn eval(home: &Home, args: EvalArgs) -> Result<ExitCode> {
    let settings = args.agent.settings()?;
    let items = eval::load(&args.data)?;
    let cancel = crate::cancel_on_ctrl_c("stopping after the questions in flight")?;
    let library = if args.corpus_from_contexts {
        let dir = eval::corpus_dir(home, &args.data)?;
        let progress = output::Progress::new();
        let sink = crate::library::sync_progress(&progress);
        let library = eval::corpus_from_contexts(&items, &dir, &sink, &cancel);
        progress.bar.finish_and_clear();
        library?
    } else {
        Library::open(home)?
    };
    let generator: Box<dyn Generator> = if args.oracle {
        Box::new(Oracle::for_items(settings.tags.clone(), &items))
    } else {
        generator(home, &args.backend)?
    };
    let out = match args.out.clone() {
        Some(p) => p,
        None => default_out(home, &args.data, args.agent.method)?,
    };
    let options = EvalOptions {
        method: args.agent.method,
        limit: args.limit,
        batch: args.batch,
        out: Some(out.clone()),
    };
    let agent = Agent {
        generator: generator.as_ref(),
        retriever: &library,
        settings: &settings,
    };
    let progress = output::Progress::counting();
    let sink = |event: EvalEvent| {
        let EvalEvent::Progress {
            done,
            total,
            em,
            f1,
        } = event;
        progress.bar.set_length(total as u64);
        progress.bar.set_position(done as u64);
        progress.bar.set_message(format!("EM {em:.1} F1 {f1:.1}"));
        progress.plain_line(|| format!("{done}/{total} questions, EM {em:.1} F1 {f1:.1}"));
    };
    let result = eval::evaluate(&agent, &items, &options, &sink, &cancel);
    progress.bar.finish_and_clear();
    let (mut summary, results) = result?;
    summary.data = args.data.display().to_string();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, &results, &out);
    }
    Ok(if summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(130)
    })
}

fn default_out(home: &Home, data: &Path, method: Method) -> Result<PathBuf> {
    let dir = home.root().join("evals");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = data.file_stem().and_then(|s| s.to_str()).unwrap_or("qa");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(dir.join(format!("{stem}-{method}-{stamp}.jsonl")))
}

fn print_summary(s: &eval::EvalSummary, results: &[QuestionResult], out: &Path) {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    println!(
        "| method | questions | EM | F1 | Acc | recall@{k} | precision@{k} | steps | tokens |",
        k = s.k
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {:.2} | {:.1} |",
        s.method,
        s.questions,
        s.em,
        s.f1,
        s.acc,
        pct(s.recall),
        pct(s.precision),
        s.avg_steps,
        s.avg_tokens
    );
    let ended = |reason: EndReason| results.iter().filter(|r| r.end == reason).count();
    println!(
        "model: {}; {:.1} s; ended by budget {}, unparsable {}, repeated {}{}",
        s.model,
        s.seconds,
        ended(EndReason::Budget),
        ended(EndReason::Unparsable),
        ended(EndReason::Repeated),
        if s.complete {
            ""
        } else {
            "; INCOMPLETE (cancelled)"
        }
    );
    println!("per-question results: {}", out.display());
}
