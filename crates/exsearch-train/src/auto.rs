//! `exsearch train auto`: teach the model the person's own library with no
//! labels. Questions are written from the library ([`crate::questions`]),
//! some held out for validation; the model warms up on the searches that
//! built the others, EM rounds then train it on those questions' answers
//! alone, and the phase with the best validation EM (a round, or the
//! warm-up when none beats it) has its adapter made active.
//!
//! The run's folder holds `questions.jsonl` (every written candidate and
//! its fate, rewritten whole after each batch) and, once the questions are
//! done, `questions-done.json` (their summary); a resumed run continues
//! writing after the last batch on record, then skips or resumes each
//! phase as `train em` does.

use std::path::{Path, PathBuf};

use exsearch_agent::eval::QaItem;
use exsearch_agent::generator::OracleAnswer;
use exsearch_agent::{Agent, AgentSettings, Trajectory};
use exsearch_core::{CancelToken, EventSink, Home, Library};
use serde::{Deserialize, Serialize};

use crate::em::{Rounds, RoundsConfig};
use crate::error::{Error, Result};
use crate::estep::{example_of, EStepOptions};
use crate::events::{Recorder, TrainEvent};
use crate::files::{read_json, write_atomic};
use crate::phase::Phase;
use crate::plan::{oracle_trajectories, plan};
use crate::questions::{
    write_questions, Construction, LibraryPassage, WriteConfig, WriteSummary, WrittenQuestion,
};
use crate::real::{warm_up, RealConfig};
use crate::run::{resolve, Run, RunReport, Tuning};
use crate::supervised::{encode, Encoded};
use crate::trainer::TrainConfig;
use crate::tuned::spawn_trainable;

const QUESTIONS_FILE: &str = "questions.jsonl";
const QUESTIONS_DONE: &str = "questions-done.json";

/// Fewest kept questions a run trains on: some for validation, the rest
/// to train.
const MIN_QUESTIONS: usize = 4;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoSpec {
    pub model: String,
    /// Questions written before (`exsearch train questions`, perhaps by a
    /// stronger model, perhaps edited; any QA file) instead of writing them.
    pub questions_file: Option<PathBuf>,
    /// How questions are written (`count`: how many to keep).
    pub write: WriteConfig,
    /// Share of the questions held out to validate each phase.
    pub valid_share: f64,
    pub tuning: Tuning,
    pub warmup: TrainConfig,
    /// Warm-up epochs without a better validation loss before stopping.
    pub patience: usize,
    pub rounds: usize,
    /// Rounds without a better validation EM before stopping (0: never).
    pub em_patience: usize,
    pub estep: EStepOptions,
    pub mstep: TrainConfig,
    /// Sampling temperature of the E-step (validation is greedy).
    pub temperature: f32,
    pub agent: AgentSettings,
}

impl AutoSpec {
    /// Sized as `demo real` is for a small model on two cores: LoRA, two
    /// warm-up epochs, one round, three passages of at most 400 characters
    /// per search and four searches; 100 questions kept, a fifth held out.
    pub fn new(model: String) -> Self {
        let real = RealConfig::default();
        Self {
            model,
            questions_file: None,
            write: WriteConfig {
                count: 100,
                ..WriteConfig::default()
            },
            valid_share: 0.2,
            tuning: Tuning::Lora(real.lora),
            warmup: real.warmup_train,
            patience: real.patience,
            rounds: real.rounds,
            em_patience: real.em_patience,
            estep: real.estep,
            mstep: real.mstep,
            temperature: real.temperature,
            agent: real.agent,
        }
    }
}

/// How long a run will take, before it starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoEstimate {
    pub seconds: f64,
    /// Parameters of the model, estimated from its weight files.
    pub parameters: f64,
    /// What the estimate rests on.
    pub basis: String,
}

/// The pace of `train auto` with SmolLM2-135M-Instruct (Q4_1) on two
/// AVX2 cores, seconds per unit of work, from the acceptance run (README,
/// "Measured"; parts of it shared the cores with builds).
mod pace {
    /// Parameters of that model.
    pub const PARAMETERS: f64 = 135e6;
    /// Per question asked for: SmolLM2 keeps about one candidate in
    /// twelve, and a candidate (its question, a two-hop one's description,
    /// and the model reading it) takes about 2.5 s. The acceptance run
    /// wrote 500 candidates for 50 questions in 29 minutes.
    pub const WRITE_PER_QUESTION: f64 = 30.0;
    /// Per held-out question and evaluation: 8 questions took 4 minutes,
    /// 100 took 28 (batched).
    pub const EVAL_PER_QUESTION: f64 = 20.0;
    /// Per training question and warm-up epoch: 32 questions, two epochs,
    /// 19 minutes.
    pub const WARMUP_PER_QUESTION: f64 = 14.0;
    /// Per training question, round and sample, the E-step: 32 questions
    /// with 4 samples took 25 minutes.
    pub const SAMPLE_PER_QUESTION: f64 = 12.0;
    /// Per training question, round and sample, the M-step: the same
    /// round's 128 samples made 109 steps, which took 20 minutes.
    pub const MSTEP_PER_SAMPLE: f64 = 9.0;
}

impl AutoSpec {
    /// How long the run will take on two cores: the pace measured with
    /// SmolLM2-135M, scaled by the model's parameters (from the size of
    /// its weight files: about 0.6 bytes a parameter in a 4-bit GGUF file,
    /// 2 in bf16 safetensors).
    pub fn estimate(&self) -> Result<AutoEstimate> {
        let files = resolve(&self.model)?;
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64).unwrap_or(0.0);
        let parameters = match &files.weights {
            exsearch_model::source::WeightFiles::Gguf(path) => size(path) / 0.6,
            exsearch_model::source::WeightFiles::Safetensors(paths) => {
                paths.iter().map(|p| size(p)).sum::<f64>() / 2.0
            }
        };
        let scale = (parameters / pace::PARAMETERS).max(0.25);
        let n = self.write.count as f64;
        let valid = (n * self.valid_share).round().max(1.0);
        let train = (n - valid).max(1.0);
        let rounds = self.rounds as f64;
        let samples = self.estep.samples as f64;
        let writing = match self.questions_file {
            Some(_) => 0.0,
            None => n * pace::WRITE_PER_QUESTION,
        };
        let seconds = scale
            * (writing
                + valid * (2.0 + rounds) * pace::EVAL_PER_QUESTION
                + train * self.warmup.epochs as f64 * pace::WARMUP_PER_QUESTION
                + train * rounds * samples * (pace::SAMPLE_PER_QUESTION + pace::MSTEP_PER_SAMPLE));
        Ok(AutoEstimate {
            seconds,
            parameters,
            basis: format!(
                "the pace of SmolLM2-135M on two cores, times {scale:.1} for a model of about \
                 {:.0}M parameters",
                parameters / 1e6
            ),
        })
    }
}

/// What the questions came to, in a run's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoQuestions {
    /// Written by the model (`None`: read from a file).
    pub written: Option<WriteSummary>,
    pub train: usize,
    pub valid: usize,
    /// Validation EM of the model before training.
    pub start_em: Option<f64>,
}

/// One held-out question answered before training and by the phase kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compared {
    pub question: String,
    pub answer: String,
    pub before: String,
    pub after: String,
    pub before_em: f64,
    pub after_em: f64,
}

impl Run {
    /// Up to `limit` held-out questions with the answers of the model
    /// before training and of the phase the run kept (once finished): the
    /// ones it now gets right first, then the ones it got wrong before and
    /// still does, in the order they were asked.
    pub fn before_after(&self, limit: usize) -> Result<Vec<Compared>> {
        let Some(best) = self.report()?.and_then(|r| r.best) else {
            return Ok(Vec::new());
        };
        let evals = self.dir.join("evals");
        let before = read_answers(&evals.join(format!("{}.jsonl", Phase::Start.folder())))?;
        let after = read_answers(&evals.join(format!("{}.jsonl", best.folder())))?;
        let mut rows: Vec<Compared> = before
            .into_iter()
            .filter_map(|(id, b)| {
                let (_, a) = after.iter().find(|(other, _)| *other == id)?;
                Some(Compared {
                    question: b.question,
                    answer: b.answers.first().cloned().unwrap_or_default(),
                    before: b.prediction,
                    after: a.prediction.clone(),
                    before_em: b.em,
                    after_em: a.em,
                })
            })
            .collect();
        rows.sort_by_key(|c| std::cmp::Reverse(c.after_em > c.before_em));
        rows.truncate(limit);
        Ok(rows)
    }

    /// The questions a run wrote, each with its fate, so far.
    pub fn written_questions(&self) -> Result<Vec<WrittenQuestion>> {
        read_written(&self.dir.join(QUESTIONS_FILE))
    }

    pub(crate) fn auto(
        &self,
        home: &Home,
        spec: &AutoSpec,
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<RunReport> {
        if spec.rounds == 0 {
            return Err(Error::InvalidSetting("--rounds must be at least 1".into()));
        }
        if !(spec.valid_share > 0.0 && spec.valid_share < 1.0) {
            return Err(Error::InvalidSetting(format!(
                "the validation share {} must lie between 0 and 1",
                spec.valid_share
            )));
        }
        let phase_event = |name: &str| {
            recorder.emit(TrainEvent::Phase {
                name: name.to_string(),
            })
        };
        phase_event("loading");
        let library = Library::open(home)?;
        let files = resolve(&spec.model)?;
        let outputs = self.outputs(home, &files, &spec.model, Some(&spec.agent));
        let (local, decoder, tuned) =
            spawn_trainable(&files, &spec.tuning, spec.warmup.seed, &spec.estep)?;

        // The questions: from a file, or written by the model before any
        // training (a resumed run reads the ones on record).
        let (questions, written) = match &spec.questions_file {
            Some(path) => (read_questions(path)?, None),
            None => {
                let summary = self.write(&local, &library, spec, recorder, cancel)?;
                let kept = self
                    .written_questions()?
                    .into_iter()
                    .filter(WrittenQuestion::kept)
                    .map(|w| (w.item(), Some(w.construction)))
                    .collect();
                (kept, Some(summary))
            }
        };
        let (train, valid) = split(questions, spec, &self.dir)?;
        let train_items: Vec<QaItem> = train.iter().map(|(i, _)| i.clone()).collect();
        let valid_items: Vec<QaItem> = valid.iter().map(|(i, _)| i.clone()).collect();

        let mut greedy = spec.agent.clone();
        greedy.sampling.temperature = 0.0;
        let mut sampling = spec.agent.clone();
        sampling.sampling.temperature = spec.temperature;
        let greedy_agent = Agent {
            generator: &local,
            retriever: &library,
            settings: &greedy,
        };
        let mut validate = |phase: Phase| -> Result<Option<f64>> {
            self.validated(phase, &greedy_agent, &valid_items, recorder, cancel)
                .map(Some)
        };
        let start_em = validate(Phase::Start)?;

        // Warm-up on the searches that built the questions.
        phase_event("warm-up trajectories");
        let codec = local.handle().codec().clone();
        let encode_all = |ts: &[Trajectory]| -> Result<Vec<Encoded>> {
            ts.iter().map(|t| encode(&codec, &example_of(t))).collect()
        };
        let warm_data = encode_all(&constructed(&train, &library, &greedy, cancel)?)?;
        let warm_valid = encode_all(&constructed(&valid, &library, &greedy, cancel)?)?;
        let warmed = warm_up(
            &self.dir,
            &decoder,
            &tuned,
            &outputs,
            &spec.warmup,
            spec.patience,
            &warm_data,
            &warm_valid,
            recorder,
            cancel,
        )?;
        let warmup_em = validate(Phase::Warmup)?;
        recorder.charts()?;

        // EM rounds on the training questions' answers alone.
        let sampler = Agent {
            generator: &local,
            retriever: &library,
            settings: &sampling,
        };
        let rounds = Rounds {
            dir: &self.dir,
            sampler: &sampler,
            local: &local,
            decoder: &decoder,
            tuned: &tuned,
            outputs: &outputs,
            recorder,
            cancel,
        };
        let outcome = rounds.run(
            &RoundsConfig {
                questions: &train_items,
                rounds: spec.rounds,
                patience: spec.em_patience,
                estep: &spec.estep,
                mstep: &spec.mstep,
            },
            warmup_em,
            &mut validate,
        )?;
        let best = outcome.best.map_or(Phase::Warmup, Phase::Round);
        if best == Phase::Warmup {
            tuned.restore(&warmed.saved)?;
        }
        let active = tuned.activate(&outputs, best)?;
        let mut phases = vec![crate::run::PhaseResult {
            valid_em: warmup_em,
            ..warmed
        }];
        phases.extend(outcome.rounds);
        Ok(RunReport {
            name: self.name.clone(),
            phases,
            best: Some(best),
            active_adapter: active,
            questions: Some(AutoQuestions {
                written,
                train: train.len(),
                valid: valid.len(),
                start_em,
            }),
        })
    }

    /// Writes questions until the wanted number are kept, continuing the
    /// batches on record; returns their summary.
    fn write(
        &self,
        local: &exsearch_agent::generator::Local,
        library: &Library,
        spec: &AutoSpec,
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<WriteSummary> {
        let done = self.dir.join(QUESTIONS_DONE);
        if let Some(summary) = read_json::<WriteSummary>(&done)? {
            recorder.emit(TrainEvent::Resumed {
                what: format!("questions ({} kept before)", summary.kept),
            });
            return Ok(summary);
        }
        recorder.emit(TrainEvent::Phase {
            name: "writing questions".into(),
        });
        let path = self.dir.join(QUESTIONS_FILE);
        let earlier = read_written(&path)?;
        if !earlier.is_empty() {
            recorder.emit(TrainEvent::Resumed {
                what: format!("writing questions after {} candidates", earlier.len()),
            });
        }
        let passages: Vec<LibraryPassage> = library
            .passages()?
            .into_iter()
            .map(|(_, title, text)| LibraryPassage { title, text })
            .collect();
        let mut all = earlier.clone();
        let written = write_questions(
            local,
            library,
            &passages,
            &spec.write,
            &earlier,
            &mut |batch, progress| {
                all.extend_from_slice(batch);
                save_written(&path, &all)?;
                recorder.emit(TrainEvent::Written {
                    candidates: progress.candidates,
                    kept: progress.kept,
                    wanted: progress.wanted,
                });
                Ok(())
            },
            cancel,
        )?;
        save_written(&path, &written)?;
        let summary = WriteSummary::of(&written);
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        write_atomic(&done, text.as_bytes())?;
        Ok(summary)
    }
}

/// The kept questions in a seeded order (by id, not by the order they
/// were written), split into training and validation questions.
#[allow(clippy::type_complexity)]
fn split(
    mut questions: Vec<(QaItem, Option<Construction>)>,
    spec: &AutoSpec,
    dir: &Path,
) -> Result<(
    Vec<(QaItem, Option<Construction>)>,
    Vec<(QaItem, Option<Construction>)>,
)> {
    if questions.len() < MIN_QUESTIONS {
        let whence = match &spec.questions_file {
            Some(path) => format!("{} holds", path.display()),
            None => format!(
                "the model kept (see {} for why each was filtered)",
                dir.join(QUESTIONS_FILE).display()
            ),
        };
        return Err(Error::InvalidSetting(format!(
            "{} questions: {whence}; at least {MIN_QUESTIONS} are needed. Add documents, \
             ask for more questions, or write them with a stronger model (`exsearch train \
             questions --endpoint URL --out FILE`, then `train auto --questions-file FILE`)",
            questions.len()
        )));
    }
    questions.sort_by_key(|(item, _)| crate::questions::order_key(spec.write.seed, &item.id));
    let valid = ((questions.len() as f64 * spec.valid_share).round() as usize)
        .clamp(1, questions.len() - 1);
    let train = questions.split_off(valid);
    Ok((train, questions))
}

/// The searches that built each question, run through the agent over the
/// library: the construction when known, else a plan from its supporting
/// passages.
fn constructed(
    questions: &[(QaItem, Option<Construction>)],
    library: &Library,
    settings: &AgentSettings,
    cancel: &CancelToken,
) -> Result<Vec<Trajectory>> {
    let known: Vec<(String, OracleAnswer)> = questions
        .iter()
        .filter_map(|(item, construction)| {
            let answer = match construction {
                Some(c) => OracleAnswer::from(c),
                None => plan(item)?,
            };
            Some((item.question.clone(), answer))
        })
        .collect();
    oracle_trajectories(known, library, settings, cancel)
}

/// A QA file's questions, with the construction of those written by
/// `train questions`.
fn read_questions(path: &Path) -> Result<Vec<(QaItem, Option<Construction>)>> {
    let items = exsearch_agent::eval::load(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let constructions: Vec<Option<Construction>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| serde_json::from_value(v.get("construction")?.clone()).ok())
        })
        .collect();
    let aligned = constructions.len() == items.len();
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let c = if aligned {
                constructions[i].clone()
            } else {
                None
            };
            (item, c)
        })
        .collect())
}

fn read_written(path: &Path) -> Result<Vec<WrittenQuestion>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::bad_file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn save_written(path: &Path, written: &[WrittenQuestion]) -> Result<()> {
    let text: String = written
        .iter()
        .filter_map(|w| serde_json::to_string(w).ok())
        .map(|l| l + "\n")
        .collect();
    write_atomic(path, text.as_bytes())
}

/// One answer of an evaluation's results file.
#[derive(Deserialize)]
struct Answered {
    #[serde(default)]
    id: String,
    question: String,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default)]
    prediction: String,
    #[serde(default)]
    em: f64,
}

fn read_answers(path: &Path) -> Result<Vec<(String, Answered)>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Answered>(l).ok())
        .map(|a| (a.id.clone(), a))
        .collect())
}
