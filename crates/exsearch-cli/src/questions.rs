//! `exsearch train questions`: questions written from the library by the
//! model, filtered, for a person to read, edit and train on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use exsearch_agent::eval;
use exsearch_core::{Home, Library};
use exsearch_train::questions::{
    write_questions, Filter, LibraryPassage, WriteConfig, WriteSummary, WrittenQuestion,
};

use crate::backend::BackendArgs;
use crate::output;

#[derive(Args)]
pub struct QuestionsArgs {
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    /// Questions to keep
    #[arg(short = 'n', long, default_value_t = 50)]
    pub(crate) count: usize,
    /// Where the kept questions go: JSONL that `eval` and `train em` read
    /// as a QA file, each with its passages and the search that built it
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Also write every candidate with its fate: kept, or the filter that
    /// dropped it and why
    #[arg(long)]
    pub(crate) all: Option<PathBuf>,
    /// Share of candidates tried as two-hop questions
    #[arg(long, default_value_t = 0.5)]
    pub(crate) two_hop: f64,
    /// Which passages, sentences and answers are chosen
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Candidates tried at most [default: ten per question]
    #[arg(long)]
    pub(crate) max_candidates: Option<usize>,
    /// Write from a QA file's paragraphs (as `eval --corpus-from-contexts`)
    /// instead of the home's library; its questions are not read
    #[arg(long)]
    pub(crate) corpus_from: Option<PathBuf>,
    #[arg(long)]
    pub(crate) json: bool,
}

pub fn run(home: &Home, args: QuestionsArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.two_hop) {
        anyhow::bail!("--two-hop {}: a share between 0 and 1", args.two_hop);
    }
    if args.count == 0 {
        anyhow::bail!("-n 0: ask for at least one question");
    }
    let cancel = crate::cancel_on_ctrl_c("stopping after the questions being written")?;
    let library = match &args.corpus_from {
        Some(data) => {
            let items = eval::load(data)?;
            let dir = eval::corpus_dir(home, data)?;
            let progress = output::Progress::new();
            let sink = output::sync_progress(&progress);
            let library = eval::corpus_from_contexts(&items, &dir, None, &sink, &cancel);
            progress.bar.finish_and_clear();
            library?
        }
        None => Library::open(home)?,
    };
    let passages: Vec<LibraryPassage> = library
        .passages()?
        .into_iter()
        .map(|(_, title, text)| LibraryPassage { title, text })
        .collect();
    let generator = crate::backend::generator(home, &args.backend)?;
    let config = WriteConfig {
        count: args.count,
        two_hop: args.two_hop,
        seed: args.seed,
        max_candidates: args.max_candidates.unwrap_or(0),
        ..WriteConfig::default()
    };
    let progress = output::Progress::counting();
    let mut written: Vec<WrittenQuestion> = Vec::new();
    let result = write_questions(
        generator.as_ref(),
        &library,
        &passages,
        &config,
        &[],
        &mut |batch, p| {
            written.extend_from_slice(batch);
            save(&args, &written)?;
            let left = progress.count(p.kept, p.wanted);
            progress
                .bar
                .set_message(format!("kept of {} candidates{left}", p.candidates));
            progress.plain_line(|| {
                format!(
                    "{} of {} questions kept, {} candidates{left}",
                    p.kept, p.wanted, p.candidates
                )
            });
            Ok(())
        },
        &cancel,
    );
    progress.bar.finish_and_clear();
    let cancelled = matches!(result, Err(exsearch_train::Error::Cancelled));
    if !cancelled {
        written = result?;
        save(&args, &written)?;
    }
    let summary = WriteSummary::of(&written);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, &args, passages.len());
    }
    Ok(if cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the kept questions (and every candidate with `--all`) as they
/// stand, each file replaced whole.
fn save(args: &QuestionsArgs, written: &[WrittenQuestion]) -> exsearch_train::Result<()> {
    let lines = |keep: &dyn Fn(&WrittenQuestion) -> bool| -> String {
        written
            .iter()
            .filter(|w| keep(w))
            .filter_map(|w| serde_json::to_string(w).ok())
            .map(|l| l + "\n")
            .collect()
    };
    replace(&args.out, &lines(&|w| w.kept()))?;
    if let Some(all) = &args.all {
        replace(all, &lines(&|_| true))?;
    }
    Ok(())
}

fn replace(path: &Path, text: &str) -> exsearch_train::Result<()> {
    let io = |source| exsearch_train::Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("jsonl.partial");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn print_summary(s: &WriteSummary, args: &QuestionsArgs, passages: usize) {
    let share = |n: usize| 100.0 * n as f64 / s.candidates.max(1) as f64;
    println!(
        "kept {} of {} candidates ({:.0}%) from {passages} passages: {} one-hop, {} two-hop \
         ({} two-hop tried)",
        s.kept,
        s.candidates,
        share(s.kept),
        s.kept_one_hop,
        s.kept_two_hop,
        s.tried_two_hop
    );
    for filter in Filter::ALL {
        let n = s.dropped_by(filter);
        if n > 0 {
            println!("  {:<40} {n:>5} ({:.0}%)", filter.describe(), share(n));
        }
    }
    println!("questions: {}", args.out.display());
    if let Some(all) = &args.all {
        println!("every candidate and its fate: {}", all.display());
    }
    if s.kept < args.count {
        println!(
            "fewer than the {} asked for: the candidates ran out (--max-candidates, or a larger \
             library or stronger model)",
            args.count
        );
    }
}
