//! The evaluation harness: QA files in the field's formats, a corpus built
//! from their own paragraphs, any method and generator, per-question results
//! as JSONL and a summary (EM, F1, Acc; retrieval recall and precision of
//! the gold supporting passages; steps and tokens per question).

pub mod data;
pub mod metrics;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use exsearch_core::{
    CancelToken, Embedder, EventSink, Home, Library, LibraryEvent, Quiet, Retrieval, SyncOptions,
};
use serde::{Deserialize, Serialize};

pub use data::{load, Context, QaItem};
pub use metrics::{normalize_answer, score_answer, AnswerScores};

use crate::agent::{Agent, AgentEvent, Question};
use crate::error::{Error, Result};
use crate::settings::Method;
use crate::trajectory::{EndReason, Trajectory};

#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub method: Method,
    /// Questions from the start of the file at most.
    pub limit: Option<usize>,
    /// Questions run in lockstep (one batched model call per step).
    pub batch: usize,
    /// Per-question results, one JSON object per line, written as they come.
    pub out: Option<PathBuf>,
}

/// One question's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub question: String,
    pub answers: Vec<String>,
    pub prediction: String,
    pub em: f64,
    pub f1: f64,
    pub acc: f64,
    /// Share of the gold supporting titles among the retrieved passages
    /// (`None` when the file names no supporting paragraphs).
    pub recall: Option<f64>,
    /// Share of retrieved passages that are gold supporting ones.
    pub precision: Option<f64>,
    pub steps: usize,
    pub tokens: usize,
    pub model_calls: usize,
    pub end: EndReason,
    pub retrieved: Vec<String>,
    pub trajectory: Trajectory,
    /// Why the question failed (`end` is `failed`); it scores 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalSummary {
    pub data: String,
    pub method: String,
    pub model: String,
    pub k: usize,
    /// Questions evaluated (fewer than asked when cancelled).
    pub questions: usize,
    /// Of those, the ones whose run failed (a model call failed after the
    /// backend's retries, or the library could not be searched). They
    /// score 0 and the others are unaffected.
    #[serde(default)]
    pub failed: usize,
    pub complete: bool,
    /// Means in percent.
    pub em: f64,
    pub f1: f64,
    pub acc: f64,
    /// Means in percent over the questions with supporting paragraphs.
    pub recall: Option<f64>,
    pub precision: Option<f64>,
    pub avg_steps: f64,
    pub avg_tokens: f64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EvalEvent {
    Progress {
        done: usize,
        total: usize,
        em: f64,
        f1: f64,
    },
}

/// Scores one trajectory against a question's gold answers and supporting titles.
pub fn score(item: &QaItem, trajectory: Trajectory) -> QuestionResult {
    let s = score_answer(&trajectory.answer, &item.answers);
    let gold: HashSet<&str> = item.supporting_titles().into_iter().collect();
    let retrieved = trajectory.retrieved();
    let titles: Vec<String> = retrieved
        .iter()
        .map(|h| h.title.trim().to_string())
        .collect();
    let (recall, precision) = if gold.is_empty() {
        (None, None)
    } else {
        let found: HashSet<&str> = titles
            .iter()
            .map(String::as_str)
            .filter(|t| gold.contains(t))
            .collect();
        let relevant = titles.iter().filter(|t| gold.contains(t.as_str())).count();
        let precision = if titles.is_empty() {
            0.0
        } else {
            relevant as f64 / titles.len() as f64
        };
        (
            Some(found.len() as f64 / gold.len() as f64),
            Some(precision),
        )
    };
    QuestionResult {
        id: item.id.clone(),
        question: item.question.clone(),
        answers: item.answers.clone(),
        prediction: trajectory.answer.clone(),
        em: s.em,
        f1: s.f1,
        acc: s.acc,
        recall,
        precision,
        steps: trajectory.steps.len(),
        tokens: trajectory.generated_tokens,
        model_calls: trajectory.model_calls,
        end: trajectory.end.clone(),
        retrieved: titles,
        error: trajectory.error.clone(),
        trajectory,
    }
}

/// Averages results into a summary (metrics in percent).
pub fn summarize(results: &[QuestionResult]) -> EvalSummary {
    let n = results.len().max(1) as f64;
    let mean = |f: &dyn Fn(&QuestionResult) -> f64| results.iter().map(f).sum::<f64>() / n;
    let mean_some = |f: &dyn Fn(&QuestionResult) -> Option<f64>| {
        let v: Vec<f64> = results.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| 100.0 * v.iter().sum::<f64>() / v.len() as f64)
    };
    EvalSummary {
        questions: results.len(),
        failed: results
            .iter()
            .filter(|r| r.end == EndReason::Failed)
            .count(),
        em: 100.0 * mean(&|r| r.em),
        f1: 100.0 * mean(&|r| r.f1),
        acc: 100.0 * mean(&|r| r.acc),
        recall: mean_some(&|r| r.recall),
        precision: mean_some(&|r| r.precision),
        avg_steps: mean(&|r| r.steps as f64),
        avg_tokens: mean(&|r| r.tokens as f64),
        ..EvalSummary::default()
    }
}

/// Runs the agent over `items` and scores every answer.
pub fn evaluate(
    agent: &Agent<'_>,
    items: &[QaItem],
    options: &EvalOptions,
    events: &dyn EventSink<EvalEvent>,
    cancel: &CancelToken,
) -> Result<(EvalSummary, Vec<QuestionResult>)> {
    let started = Instant::now();
    let items = &items[..options.limit.unwrap_or(items.len()).min(items.len())];
    let mut out = match &options.out {
        Some(path) => Some((
            path,
            std::io::BufWriter::new(std::fs::File::create(path).map_err(|e| Error::io(path, e))?),
        )),
        None => None,
    };
    let mut results: Vec<QuestionResult> = Vec::with_capacity(items.len());
    let mut complete = true;
    for batch in items.chunks(options.batch.max(1)) {
        if cancel.is_cancelled() {
            complete = false;
            break;
        }
        let questions: Vec<Question> = batch
            .iter()
            .map(|i| Question::new(i.question.clone()))
            .collect();
        // A failed model call fails only its own questions (the agent
        // isolates them); a failure of the whole batch (the library) is
        // recorded for each of its questions, and the next batch goes on.
        let trajectories = match agent.run(
            &questions,
            1,
            options.method,
            &Quiet as &dyn EventSink<AgentEvent>,
            cancel,
        ) {
            Ok(t) => t,
            Err(Error::Cancelled) => {
                complete = false;
                break;
            }
            Err(e) => questions
                .iter()
                .map(|q| Trajectory::failed(&q.text, options.method, &e))
                .collect(),
        };
        for (item, trajectory) in batch.iter().zip(trajectories) {
            if trajectory.end == EndReason::Cancelled {
                complete = false;
                continue;
            }
            let result = score(item, trajectory);
            if let Some((path, w)) = out.as_mut() {
                let line = serde_json::to_string(&result)
                    .map_err(|e| Error::InvalidSetting(e.to_string()))?;
                writeln!(w, "{line}").map_err(|e| Error::io(path.as_path(), e))?;
            }
            results.push(result);
        }
        // Every finished question is on disk before the next batch starts.
        if let Some((path, w)) = out.as_mut() {
            w.flush().map_err(|e| Error::io(path.as_path(), e))?;
        }
        let so_far = summarize(&results);
        events.emit(EvalEvent::Progress {
            done: results.len(),
            total: items.len(),
            em: so_far.em,
            f1: so_far.f1,
        });
        if !complete {
            break;
        }
    }
    if let Some((path, mut w)) = out {
        w.flush().map_err(|e| Error::io(path.as_path(), e))?;
    }
    let mut summary = summarize(&results);
    summary.method = options.method.to_string();
    summary.model = agent.generator.describe();
    summary.k = agent.settings.k;
    summary.complete = complete && results.len() == items.len();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, results))
}

/// Builds (or reuses) a library whose documents are the file's own
/// paragraphs, one Markdown file per distinct title, under `dir`.
pub fn corpus_from_contexts(
    items: &[QaItem],
    dir: &Path,
    encoder: Option<Arc<dyn Embedder>>,
    events: &dyn EventSink<LibraryEvent>,
    cancel: &CancelToken,
) -> Result<Library> {
    let docs = dir.join("docs");
    let home = Home::at(dir.join("home"));
    let marker = dir.join("complete");
    let mut seen = HashSet::new();
    let paragraphs: Vec<&Context> = items
        .iter()
        .flat_map(|i| &i.contexts)
        .filter(|c| !c.title.trim().is_empty() && seen.insert(c.title.as_str()))
        .collect();
    if paragraphs.is_empty() {
        return Err(Error::InvalidSetting(
            "--corpus-from-contexts: the file has no paragraphs (contexts)".into(),
        ));
    }
    let expected = paragraphs.len().to_string();
    let open = || -> Result<Library> {
        let mut library = Library::open(&home)?;
        if let Some(encoder) = &encoder {
            library.set_embedder(encoder.clone());
        }
        Ok(library)
    };
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(expected.as_str()) {
        let mut library = open()?;
        // Built before the encoder was attached, or cut short: the passages
        // without a vector get one (nothing to do otherwise).
        if encoder.is_some() && library.retrieval() == Retrieval::Hybrid {
            library.embed(events, cancel)?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
        return Ok(library);
    }
    std::fs::create_dir_all(&docs).map_err(|e| Error::io(&docs, e))?;
    for c in &paragraphs {
        let path = docs.join(file_name(&c.title));
        let body = format!("# {}\n\n{}\n", c.title.trim(), c.text.trim());
        std::fs::write(&path, body).map_err(|e| Error::io(&path, e))?;
    }
    let mut library = open()?;
    if library.status()?.folders.is_empty() {
        library.add_folders(&[docs], &SyncOptions::default(), events, cancel)?;
    } else {
        library.sync(&SyncOptions::default(), events, cancel)?;
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    std::fs::write(&marker, expected).map_err(|e| Error::io(&marker, e))?;
    Ok(library)
}

/// Where `corpus_from_contexts` keeps a file's corpus: one folder per file
/// content, so an edited file gets a new corpus.
pub fn corpus_dir(home: &Home, data: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(data).map_err(|e| Error::io(data, e))?;
    let stem = data.file_stem().and_then(|s| s.to_str()).unwrap_or("qa");
    let hash = blake3::hash(&bytes).to_hex();
    Ok(home
        .root()
        .join("eval-corpora")
        .join(format!("{}-{}", slug(stem), &hash[..12])))
}

fn file_name(title: &str) -> String {
    let hash = blake3::hash(title.as_bytes()).to_hex();
    format!("{}-{}.md", slug(title), &hash[..8])
}

fn slug(s: &str) -> String {
    let slug: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    slug.trim_matches('-').to_string()
}
