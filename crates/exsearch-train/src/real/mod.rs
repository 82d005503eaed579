//! `exsearch demo real`: the paper's experiment at small scale, on a real
//! pretrained model and real questions.
//!
//! A QA file's paragraphs become the corpus. Its questions are split, in a
//! seeded order, into warm-up, EM-train, validation and test questions. On
//! the test split: the untrained model answering directly, with RAG and
//! with ExSearch (the zero-shot baselines); then after a LoRA warm-up on
//! trajectories planned from the warm-up questions' supporting passages
//! ([`crate::plan`]); after each EM round ([`crate::em`]); and for the
//! control, which spends the rounds' optimizer steps on more warm-up. The
//! phase with the best validation EM (a round, or the warm-up when no round
//! beats it) has its adapter made active in the home, so `ask` and `eval`
//! with the same base model use it.
//!
//! Everything is kept in the demonstration's folder and the store as it is
//! finished, so running the same command again after a kill resumes it:
//! finished evaluations and phases are read back, an interrupted training
//! phase continues from its last checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use exsearch_agent::eval::{corpus_from_contexts, EvalSummary, QaItem};
use exsearch_agent::{Agent, Method, Trajectory};
use exsearch_core::{CancelToken, EventSink, Home, Quiet};
use serde::{Deserialize, Serialize};

use crate::adapters::AdapterNote;
use crate::em::{read_done, write_done, Rounds, RoundsConfig};
use crate::error::{Error, Result};
use crate::estep::example_of;
use crate::events::{Recorder, TrainEvent};
use crate::files::write_atomic;
use crate::phase::Phase;
use crate::plan::planned_trajectories;
use crate::run::{evaluate_method, evaluated, resolve, PhaseResult, Tuning};
use crate::supervised::{encode, Encoded};
use crate::trainer::{evaluate_loss, TrainConfig, Trainer};
use crate::tuned::{spawn_trainable, Outputs, Tuned};

mod config;
pub use config::RealConfig;

/// What a real-model demonstration was started with, in its folder: the
/// same command continues it; other settings are refused.
const SPEC_FILE: &str = "real.json";
const REPORT_FILE: &str = "report.json";
const DONE_FILE: &str = "done.json";

/// What a demonstration was started with (its folder's `real.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealSpec {
    pub model: String,
    pub data: PathBuf,
    pub config: RealConfig,
}

/// One phase's scores on the test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub em: f64,
    pub f1: f64,
    pub acc: f64,
    pub recall: Option<f64>,
}

impl From<&EvalSummary> for Scores {
    fn from(s: &EvalSummary) -> Self {
        Self {
            em: s.em,
            f1: s.f1,
            acc: s.acc,
            recall: s.recall,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    pub warmup: usize,
    pub train: usize,
    pub valid: usize,
    pub test: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealReport {
    pub model: String,
    pub data: PathBuf,
    pub dir: PathBuf,
    pub questions: Splits,
    /// Test scores of the untrained model, by method.
    pub zero_shot: std::collections::BTreeMap<String, Scores>,
    pub warmup: Scores,
    pub warmup_em: f64,
    pub control: Scores,
    pub control_em: f64,
    pub control_steps: usize,
    pub rounds: Vec<Scores>,
    /// Test EM after each round.
    pub round_em: Vec<f64>,
    /// The phase validation chose (a round, or the warm-up).
    pub best: Phase,
    pub final_em: f64,
    pub final_recall: Option<f64>,
    /// The adapter made active in the home for this base model.
    pub active_adapter: Option<String>,
    pub seconds: f64,
}

/// A real-model demonstration's folder.
#[derive(Clone, Debug)]
pub struct RealDemo {
    pub name: String,
    pub dir: PathBuf,
}

impl RealDemo {
    /// Demonstration `name` among the home's demonstrations.
    pub fn named(home: &Home, name: &str) -> Result<Self> {
        crate::files::check_name("demonstration", name)?;
        Ok(Self {
            name: name.to_string(),
            dir: crate::demo::Demo::root(home).join(name),
        })
    }

    /// An existing real-model demonstration of the home.
    pub fn open(home: &Home, name: &str) -> Result<Self> {
        let demo = Self::named(home, name)?;
        if !Self::holds(&demo.dir) {
            return Err(Error::UnknownTraining {
                what: "real-model demonstration",
                name: name.to_string(),
                dir: crate::demo::Demo::root(home),
            });
        }
        Ok(demo)
    }

    /// Whether `dir` holds a real-model demonstration (the home's
    /// demonstrations folder holds both kinds).
    pub fn holds(dir: &Path) -> bool {
        dir.join(SPEC_FILE).is_file()
    }

    /// The home's real-model demonstrations, by name.
    pub fn list(home: &Home) -> Vec<Self> {
        let mut demos: Vec<Self> = std::fs::read_dir(crate::demo::Demo::root(home))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| Self::holds(p))
            .filter_map(|p| Self::in_dir(p).ok())
            .collect();
        demos.sort_by(|a, b| a.name.cmp(&b.name));
        demos
    }

    /// The model, QA file and settings it was started with: the same ones
    /// continue it.
    pub fn spec(&self) -> Result<RealSpec> {
        let path = self.dir.join(SPEC_FILE);
        crate::files::read_json(&path)?.ok_or_else(|| Error::Unfinished {
            what: format!("demonstration `{}` (never started)", self.name),
            dir: self.dir.clone(),
        })
    }

    pub fn finished(&self) -> bool {
        self.dir.join(REPORT_FILE).is_file()
    }

    pub fn charts_dir(&self) -> PathBuf {
        self.dir.join(crate::events::CHARTS_DIR)
    }

    pub fn store(&self) -> Result<crate::store::RunStore> {
        crate::store::RunStore::open(&self.dir)
    }

    /// A demonstration in any folder (`--dir`); its name names its adapters.
    pub fn in_dir(dir: PathBuf) -> Result<Self> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("demo")
            .to_string();
        crate::files::check_name("demonstration", &name)?;
        Ok(Self { name, dir })
    }

    /// The report, once finished.
    pub fn report(&self) -> Result<Option<RealReport>> {
        crate::files::read_json(&self.dir.join(REPORT_FILE))
    }

    /// Runs the demonstration of `model` on the QA file `data`, or resumes
    /// it when this folder holds one started with the same settings.
    pub fn run(
        &self,
        home: &Home,
        model: &str,
        data: &Path,
        config: &RealConfig,
        events: &dyn EventSink<TrainEvent>,
        cancel: &CancelToken,
    ) -> Result<RealReport> {
        let started = Instant::now();
        self.claim(model, data, config)?;
        let dir = &self.dir;
        let recorder = Recorder::open(dir, events)?;
        let phase_event = |name: String| recorder.emit(TrainEvent::Phase { name });

        phase_event("questions".into());
        let items = exsearch_agent::eval::load(data)?;
        let split = split(items, config, data)?;
        let questions = Splits {
            warmup: split.warmup.len(),
            train: split.train.len(),
            valid: split.valid.len(),
            test: split.test.len(),
        };
        phase_event("corpus".into());
        let all: Vec<QaItem> = [&split.warmup, &split.train, &split.valid, &split.test]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let library = corpus_from_contexts(&all, &dir.join("corpus"), None, &Quiet, cancel)?;

        phase_event("loading".into());
        let files = resolve(model)?;
        let outputs = Outputs {
            home,
            name: &self.name,
            dir,
            files: &files,
            base: model,
            agent: Some(&config.agent),
        };
        let tuning = Tuning::Lora(config.lora.clone());
        let (local, decoder, tuned) = spawn_trainable(&files, &tuning, config.seed, &config.estep)?;
        let greedy = Agent {
            generator: &local,
            retriever: &library,
            settings: &config.agent,
        };
        let eval = |phase: Phase, split_name: &str, method: Method| -> Result<Scores> {
            if let Some(row) = recorder.with_store(|s| s.eval(phase, split_name))? {
                return Ok(Scores {
                    em: row.em,
                    f1: row.f1,
                    acc: row.acc,
                    recall: row.recall,
                });
            }
            let items = if split_name == "test" {
                &split.test
            } else {
                &split.valid
            };
            phase_event(format!("{phase}: {split_name} questions"));
            let out = dir
                .join("evals")
                .join(format!("{}-{split_name}.jsonl", phase.folder()));
            let s = evaluate_method(&greedy, items, method, out, cancel)?;
            recorder.emit(evaluated(phase, split_name, &s));
            Ok(Scores::from(&s))
        };

        // The untrained model (its adapters start as the identity).
        let mut zero_shot = std::collections::BTreeMap::new();
        for method in [Method::Direct, Method::Rag, Method::Exsearch] {
            let scores = eval(Phase::ZeroShot(method), "test", method)?;
            zero_shot.insert(method.to_string(), scores);
        }

        // Warm-up on planned trajectories, stopped on held-out ones.
        let codec = local.handle().codec().clone();
        let encode_all = |ts: &[Trajectory]| -> Result<Vec<Encoded>> {
            ts.iter().map(|t| encode(&codec, &example_of(t))).collect()
        };
        phase_event("warm-up trajectories".into());
        let warm_data = encode_all(&planned_trajectories(
            &split.warmup,
            &library,
            &config.agent,
            cancel,
        )?)?;
        let warm_valid = encode_all(&planned_trajectories(
            &split.valid,
            &library,
            &config.agent,
            cancel,
        )?)?;
        let warmed = warm_up(
            dir,
            &decoder,
            &tuned,
            &outputs,
            &TrainConfig {
                seed: config.seed,
                ..config.warmup_train.clone()
            },
            config.patience,
            &warm_data,
            &warm_valid,
            &recorder,
            cancel,
        )?;
        let warmup = eval(Phase::Warmup, "test", Method::Exsearch)?;
        let warmup_valid = eval(Phase::Warmup, "valid", Method::Exsearch)?;
        recorder.charts()?;

        // The EM rounds, each measured on the validation and test questions.
        let mut sampling = config.agent.clone();
        sampling.sampling.temperature = config.temperature;
        let sampler = Agent {
            generator: &local,
            retriever: &library,
            settings: &sampling,
        };
        let rounds = Rounds {
            dir,
            sampler: &sampler,
            local: &local,
            decoder: &decoder,
            tuned: &tuned,
            outputs: &outputs,
            recorder: &recorder,
            cancel,
        };
        let outcome = rounds.run(
            &RoundsConfig {
                questions: &split.train,
                rounds: config.rounds,
                patience: config.em_patience,
                estep: &config.estep,
                mstep: &config.mstep,
            },
            Some(warmup_valid.em),
            &mut |phase| {
                let valid = eval(phase, "valid", Method::Exsearch)?;
                eval(phase, "test", Method::Exsearch)?;
                Ok(Some(valid.em))
            },
        )?;
        let em_steps: usize = outcome.rounds.iter().map(|r| r.steps).sum();
        let round_scores: Vec<Scores> = outcome
            .rounds
            .iter()
            .map(|r| eval(r.phase, "test", Method::Exsearch))
            .collect::<Result<_>>()?;

        // The control: the warmed-up adapter given the rounds' optimizer
        // steps as more warm-up.
        tuned.restore(&warmed.saved)?;
        let control_steps = self.control(
            &decoder, &tuned, &outputs, config, &warm_data, em_steps, &recorder, cancel,
        )?;
        let control = eval(Phase::Control, "test", Method::Exsearch)?;
        recorder.charts()?;

        let best = outcome.best.map_or(Phase::Warmup, Phase::Round);
        let active_adapter = tuned.activate(&outputs, best)?;
        let final_scores = match best {
            Phase::Round(n) => round_scores[n - 1].clone(),
            _ => warmup.clone(),
        };
        let report = RealReport {
            model: model.to_string(),
            data: data.to_path_buf(),
            dir: dir.clone(),
            questions,
            zero_shot,
            warmup_em: warmup.em,
            warmup,
            control_em: control.em,
            control,
            control_steps,
            round_em: round_scores.iter().map(|s| s.em).collect(),
            rounds: round_scores,
            best,
            final_em: final_scores.em,
            final_recall: final_scores.recall,
            active_adapter,
            seconds: started.elapsed().as_secs_f64(),
        };
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        write_atomic(&dir.join(REPORT_FILE), text.as_bytes())?;
        Ok(report)
    }

    /// Records what this folder's demonstration is, or checks that the
    /// one it holds was started with the same settings.
    fn claim(&self, model: &str, data: &Path, config: &RealConfig) -> Result<()> {
        let data = data.canonicalize().map_err(|e| Error::io(data, e))?;
        let spec = RealSpec {
            model: model.to_string(),
            data,
            config: config.clone(),
        };
        let path = self.dir.join(SPEC_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let existing: RealSpec = serde_json::from_str(&text)
                    .map_err(|e| Error::bad_file(&path, e.to_string()))?;
                if existing != spec {
                    return Err(Error::InvalidSetting(format!(
                        "{} holds a demonstration started with other settings; run it with \
                         those to continue it, or choose another --dir",
                        self.dir.display()
                    )));
                }
                Ok(())
            }
            Err(_) => {
                std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
                let text = serde_json::to_string_pretty(&spec).unwrap_or_default();
                write_atomic(&path, text.as_bytes())
            }
        }
    }

    /// More warm-up for `steps` optimizer steps, from the warmed-up adapter.
    #[allow(clippy::too_many_arguments)]
    fn control(
        &self,
        decoder: &exsearch_model::model::Decoder,
        tuned: &Tuned,
        outputs: &Outputs<'_>,
        config: &RealConfig,
        data: &[Encoded],
        steps: usize,
        recorder: &Recorder<'_>,
        cancel: &CancelToken,
    ) -> Result<usize> {
        let phase = Phase::Control;
        let folder = self.dir.join(phase.folder());
        let done_path = folder.join(DONE_FILE);
        if let Some(done) = read_done(&done_path)? {
            tuned.restore(&done.saved)?;
            return Ok(done.steps);
        }
        recorder.emit(TrainEvent::Phase {
            name: phase.label(),
        });
        let per_epoch = crate::supervised::pack(data, config.mstep.token_budget)
            .len()
            .div_ceil(config.mstep.accumulation.max(1))
            .max(1);
        let mut trainer = Trainer::new(
            decoder,
            tuned.params(),
            TrainConfig {
                epochs: steps.div_ceil(per_epoch).max(1),
                max_steps: steps.max(1),
                seed: config.seed + 1,
                ..config.mstep.clone()
            },
            Some(&folder.join("trainer")),
        )?;
        trainer.run(
            data,
            &mut |r| {
                recorder.emit(TrainEvent::Step {
                    phase,
                    record: r.clone(),
                })
            },
            cancel,
        )?;
        let saved = tuned.save(outputs, phase, &AdapterNote::default())?;
        let done = PhaseResult {
            phase,
            steps: trainer.steps_taken(),
            last_loss: None,
            valid_loss: None,
            valid_em: None,
            saved,
        };
        write_done(&done_path, &done)?;
        Ok(done.steps)
    }
}

/// LoRA warm-up in `dir` until the held-out loss stops improving; the
/// best epoch's adapter is saved and left in the model. `train.seed`
/// orders the batches. Finished before (its `done.json`), it is restored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn warm_up(
    dir: &Path,
    decoder: &exsearch_model::model::Decoder,
    tuned: &Tuned,
    outputs: &Outputs<'_>,
    train: &TrainConfig,
    patience: usize,
    data: &[Encoded],
    valid: &[Encoded],
    recorder: &Recorder<'_>,
    cancel: &CancelToken,
) -> Result<PhaseResult> {
    let phase = Phase::Warmup;
    let folder = dir.join(phase.folder());
    let done_path = folder.join(DONE_FILE);
    if let Some(done) = read_done(&done_path)? {
        tuned.restore(&done.saved)?;
        recorder.emit(TrainEvent::Resumed {
            what: format!("{phase} (finished before)"),
        });
        return Ok(done);
    }
    recorder.emit(TrainEvent::Phase {
        name: phase.label(),
    });
    let mut trainer = Trainer::new(
        decoder,
        tuned.params(),
        train.clone(),
        Some(&folder.join("trainer")),
    )?;
    if trainer.steps_taken() > 0 {
        recorder.emit(TrainEvent::Resumed {
            what: format!("{phase} from step {}", trainer.steps_taken() + 1),
        });
    }
    // The best epoch so far, including those of a killed earlier attempt.
    let mut best = recorder.with_store(|s| s.epochs(phase))?.into_iter().fold(
        (f64::INFINITY, 0usize),
        |b, (epoch, loss)| if loss < b.0 { (loss, epoch) } else { b },
    );
    let records = trainer.run_until(
        data,
        &mut |r| {
            recorder.emit(TrainEvent::Step {
                phase,
                record: r.clone(),
            })
        },
        &mut |epoch| {
            if valid.is_empty() {
                tuned.save(outputs, phase, &AdapterNote::default())?;
                return Ok(true);
            }
            let loss = evaluate_loss(decoder, valid, train.token_budget)?;
            recorder.emit(TrainEvent::Epoch {
                phase,
                epoch,
                valid_loss: loss,
            });
            if loss < best.0 - 1e-4 {
                best = (loss, epoch);
                let note = AdapterNote {
                    valid_loss: Some(loss),
                    ..AdapterNote::default()
                };
                tuned.save(outputs, phase, &note)?;
            }
            Ok(patience == 0 || epoch - best.1 < patience)
        },
        cancel,
    )?;
    // The best epoch's adapter, not the last one's, is what goes on.
    let saved = tuned.saved_path(outputs, phase);
    tuned.restore(&saved)?;
    recorder.emit(TrainEvent::Saved {
        phase,
        path: saved.clone(),
    });
    let done = PhaseResult {
        phase,
        steps: trainer.steps_taken(),
        last_loss: records.last().map(|r| r.loss),
        valid_loss: best.0.is_finite().then_some(best.0),
        valid_em: None,
        saved,
    };
    write_done(&done_path, &done)?;
    Ok(done)
}

struct Split {
    warmup: Vec<QaItem>,
    train: Vec<QaItem>,
    valid: Vec<QaItem>,
    test: Vec<QaItem>,
}

/// The questions in a seeded order: test first, then validation, EM-train,
/// and at most `warmup` of the rest. Only questions with an answer and
/// supporting passages are used.
fn split(items: Vec<QaItem>, config: &RealConfig, data: &Path) -> Result<Split> {
    let mut items: Vec<QaItem> = items
        .into_iter()
        .filter(|i| !i.answers.is_empty() && !i.supporting_titles().is_empty())
        .collect();
    let needed = config.test + config.valid + config.train + 1;
    if items.len() < needed {
        return Err(Error::bad_file(
            data,
            format!(
                "{} questions with answers and supporting paragraphs; the splits need at least \
                 {needed} (test {}, validation {}, EM-train {}, and warm-up)",
                items.len(),
                config.test,
                config.valid,
                config.train
            ),
        ));
    }
    // A seeded shuffle that does not depend on the file's order of lines.
    items.sort_by_key(|i| fnv(config.seed, &i.id));
    let mut valid = items.split_off(config.test);
    let test = items;
    let mut train = valid.split_off(config.valid);
    let mut warmup = train.split_off(config.train);
    warmup.truncate(config.warmup);
    Ok(Split {
        warmup,
        train,
        valid,
        test,
    })
}

/// FNV-1a of the seed and `text`.
fn fnv(seed: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
