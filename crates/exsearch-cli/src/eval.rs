//! `exsearch eval`: a method scored on a QA file (EM, F1, Acc, retrieval
//! recall and precision), one result per question written as it finishes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Args;
use exsearch_agent::eval::{self, EvalEvent, EvalOptions, QuestionResult};
use exsearch_agent::generator::Oracle;
use exsearch_agent::{Agent, EndReason, Generator, Method};
use exsearch_core::{Home, Library, Retrieval};

use crate::backend::{AgentArgs, BackendArgs};
use crate::output;

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
    /// Rank passages with `hybrid` (BM25 fused with the sentence encoder)
    /// or `bm25` alone, for this run [default: the library's setting; hybrid
    /// for --corpus-from-contexts]
    #[arg(long)]
    retrieval: Option<Retrieval>,
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

pub fn run(home: &Home, args: EvalArgs) -> Result<ExitCode> {
    let trained = match args.oracle {
        true => None,
        false => crate::backend::trained_settings(home, &args.backend)?,
    };
    let settings = args.agent.settings_with(trained)?;
    let items = eval::load(&args.data)?;
    let cancel = crate::cancel_on_ctrl_c("stopping after the questions in flight")?;
    let library = if args.corpus_from_contexts {
        let dir = eval::corpus_dir(home, &args.data)?;
        let progress = output::Progress::new();
        let sink = output::sync_progress(&progress);
        let encoder = crate::retrieval::encoder_for(args.retrieval, &cancel);
        let library = eval::corpus_from_contexts(&items, &dir, encoder, &sink, &cancel);
        progress.bar.finish_and_clear();
        let mut library = library?;
        library.use_retrieval(args.retrieval.unwrap_or_default());
        library
    } else {
        let mut library = Library::open(home)?;
        crate::retrieval::prepare_for_search(&mut library, args.retrieval)?;
        library
    };
    let generator: Box<dyn Generator> = if args.oracle {
        Box::new(Oracle::for_items(settings.tags.clone(), &items))
    } else {
        crate::backend::generator(home, &args.backend)?
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
    // 130: cancelled; 2: finished, but some questions failed (each with its
    // error in the results file).
    Ok(if !summary.complete {
        ExitCode::from(130)
    } else if summary.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
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
        "model: {}; {:.1} s; ended by budget {}, unparsable {}, repeated {}, full context {}{}",
        s.model,
        s.seconds,
        ended(EndReason::Budget),
        ended(EndReason::Unparsable),
        ended(EndReason::Repeated),
        ended(EndReason::ContextFull),
        if s.complete {
            ""
        } else {
            "; INCOMPLETE (cancelled)"
        }
    );
    if s.failed > 0 {
        let first = results
            .iter()
            .find_map(|r| r.error.as_deref())
            .unwrap_or("");
        println!(
            "FAILED: {} of {} questions (scored 0; the others are unaffected), first error: {first}",
            s.failed, s.questions
        );
    }
    println!("per-question results: {}", out.display());
}
