//! The EM rounds (METHOD.md, section 2), one implementation for the runs a
//! person starts (`exsearch train em`, the app) and the demonstrations.
//!
//! Each round samples K trajectories per training question with the
//! current model (the E-step, appended to `round-N/samples.jsonl` a batch
//! at a time), trains on them weighted by the gold answer's likelihood (the
//! M-step, checkpointed under `round-N/trainer`), validates, saves its
//! result and writes `round-N/done.json`. A killed loop resumes where it
//! stopped: finished rounds are restored, not redone; an E-step keeps the
//! questions it sampled; an M-step restarts from its checkpoint.
//!
//! The round kept is the one with the best validation EM, and only if it is
//! at least as good as the starting model's; without validation questions,
//! the last.

use std::collections::HashSet;
use std::path::Path;

use exsearch_agent::eval::QaItem;
use exsearch_agent::generator::Local;
use exsearch_agent::Agent;
use exsearch_core::{CancelToken, EventSink};
use exsearch_model::model::Decoder;

use crate::adapters::AdapterNote;
use crate::error::{Error, Result};
use crate::estep::{e_step, m_step_examples, summarize, EStepOptions, QuestionSamples};
use crate::events::{Recorder, TrainEvent};
use crate::files::write_atomic;
use crate::phase::Phase;
use crate::run::PhaseResult;
use crate::supervised::{encode, Encoded};
use crate::trainer::{TrainConfig, Trainer};
use crate::tuned::{Outputs, Tuned};

const SAMPLES_FILE: &str = "samples.jsonl";
const DONE_FILE: &str = "done.json";

/// The model being trained and where its rounds go.
pub(crate) struct Rounds<'a> {
    /// The run's or demonstration's folder: `round-N/` is made here.
    pub dir: &'a Path,
    /// The agent that samples the E-step's trajectories (its temperature).
    pub sampler: &'a Agent<'a>,
    pub local: &'a Local,
    /// The trainer's view of the model (it shares its variables with the
    /// engine's, so each update reaches generation at once).
    pub decoder: &'a Decoder,
    pub tuned: &'a Tuned,
    pub outputs: &'a Outputs<'a>,
    pub recorder: &'a Recorder<'a>,
    pub cancel: &'a CancelToken,
}

/// How many rounds, on what, with which settings.
pub(crate) struct RoundsConfig<'a> {
    pub questions: &'a [QaItem],
    pub rounds: usize,
    /// Rounds without a better validation EM before stopping (0: never).
    pub patience: usize,
    pub estep: &'a EStepOptions,
    pub mstep: &'a TrainConfig,
}

pub(crate) struct Outcome {
    /// The rounds run (or finished before a resume), in order.
    pub rounds: Vec<PhaseResult>,
    /// The round kept, if any.
    pub best: Option<usize>,
}

impl Rounds<'_> {
    /// Runs the rounds. `start_em` is the starting model's validation EM;
    /// `validate(phase)` evaluates the current model on the validation
    /// questions (`None` when there are none).
    pub(crate) fn run(
        &self,
        config: &RoundsConfig<'_>,
        start_em: Option<f64>,
        validate: &mut dyn FnMut(Phase) -> Result<Option<f64>>,
    ) -> Result<Outcome> {
        if config.rounds == 0 {
            return Err(Error::InvalidSetting("--rounds must be at least 1".into()));
        }
        let mut results: Vec<PhaseResult> = Vec::new();
        let mut best = Best::new(start_em);
        for round in 1..=config.rounds {
            let phase = Phase::Round(round);
            let dir = self.dir.join(phase.folder());
            let done_path = dir.join(DONE_FILE);
            if let Some(done) = read_done(&done_path)? {
                self.tuned.restore(&done.saved)?;
                self.recorder.emit(TrainEvent::Resumed {
                    what: format!("{phase} (finished before)"),
                });
                best.track(done.valid_em, round);
                results.push(done);
                continue;
            }
            if config.patience > 0 && best.rounds_without_rise(round) >= config.patience {
                break;
            }
            let done = self.round(config, round, &dir, validate)?;
            write_done(&done_path, &done)?;
            best.track(done.valid_em, round);
            results.push(done);
        }
        let best = best.kept(results.len());
        Ok(Outcome {
            rounds: results,
            best,
        })
    }

    fn round(
        &self,
        config: &RoundsConfig<'_>,
        round: usize,
        dir: &Path,
        validate: &mut dyn FnMut(Phase) -> Result<Option<f64>>,
    ) -> Result<PhaseResult> {
        let phase = Phase::Round(round);
        self.recorder.emit(TrainEvent::Phase {
            name: format!("{phase}: E-step"),
        });
        let started = std::time::Instant::now();
        let samples = self.e_step(config, round, dir)?;
        self.recorder.emit(TrainEvent::Round {
            round,
            estep: summarize(&samples, started.elapsed().as_secs_f64()),
        });
        self.recorder.emit(TrainEvent::Phase {
            name: format!("{phase}: M-step"),
        });
        let codec = self.local.handle().codec().clone();
        let data: Vec<Encoded> = m_step_examples(&samples, config.estep.rule)
            .iter()
            .map(|e| encode(&codec, e))
            .collect::<Result<_>>()?;
        let mut trainer = Trainer::new(
            self.decoder,
            self.tuned.params(),
            TrainConfig {
                seed: config.mstep.seed + round as u64,
                ..config.mstep.clone()
            },
            Some(&dir.join("trainer")),
        )?;
        if trainer.steps_taken() > 0 {
            self.recorder.emit(TrainEvent::Resumed {
                what: format!("{phase} M-step from step {}", trainer.steps_taken() + 1),
            });
        }
        let records = trainer.run(
            &data,
            &mut |r| {
                self.recorder.emit(TrainEvent::Step {
                    phase,
                    record: r.clone(),
                })
            },
            self.cancel,
        )?;
        let valid_em = validate(phase)?;
        let note = AdapterNote {
            valid_em,
            ..AdapterNote::default()
        };
        let saved = self.tuned.save(self.outputs, phase, &note)?;
        self.recorder.emit(TrainEvent::Saved {
            phase,
            path: saved.clone(),
        });
        self.recorder.charts()?;
        Ok(PhaseResult {
            phase,
            steps: trainer.steps_taken(),
            last_loss: records.last().map(|r| r.loss),
            valid_loss: None,
            valid_em,
            saved,
        })
    }

    /// Samples the round's trajectories, a batch at a time, appending each
    /// batch to `round-N/samples.jsonl` so a killed E-step keeps its work.
    fn e_step(
        &self,
        config: &RoundsConfig<'_>,
        round: usize,
        dir: &Path,
    ) -> Result<Vec<QuestionSamples>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(SAMPLES_FILE);
        let mut samples: Vec<QuestionSamples> = Vec::new();
        // The lines already written are kept verbatim; a line cut by the
        // kill ends them, and its questions are sampled again.
        let mut text = String::new();
        if let Ok(old) = std::fs::read_to_string(&path) {
            for line in old.lines() {
                let Ok(s) = serde_json::from_str(line) else {
                    break;
                };
                samples.push(s);
                text.push_str(line);
                text.push('\n');
            }
        }
        if !samples.is_empty() {
            self.recorder.emit(TrainEvent::Resumed {
                what: format!(
                    "round {round} E-step after {} sampled questions",
                    samples.len()
                ),
            });
        }
        let done: HashSet<&str> = samples.iter().map(|q| q.id.as_str()).collect();
        let todo: Vec<QaItem> = config
            .questions
            .iter()
            .filter(|i| !done.contains(i.id.as_str()))
            .cloned()
            .collect();
        for chunk in todo.chunks(config.estep.batch.max(1)) {
            let (batch, _) = e_step(
                self.sampler,
                self.local,
                chunk,
                config.estep,
                &mut |_, _| {},
                self.cancel,
            )?;
            for s in &batch {
                text.push_str(&serde_json::to_string(s).unwrap_or_default());
                text.push('\n');
            }
            write_atomic(&path, text.as_bytes())?;
            samples.extend(batch);
            self.recorder.emit(TrainEvent::Sampled {
                round,
                done: samples.len(),
                total: config.questions.len(),
            });
        }
        Ok(samples)
    }
}

/// A finished phase's record (`done.json`), if it finished.
pub(crate) fn read_done(path: &Path) -> Result<Option<PhaseResult>> {
    crate::files::read_json(path)
}

/// Records that a phase finished: written last, so a phase is redone or
/// continued unless it is there.
pub(crate) fn write_done(path: &Path, done: &PhaseResult) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let text = serde_json::to_string_pretty(done).unwrap_or_default();
    write_atomic(path, text.as_bytes())
}

/// The best round so far by validation EM, against the starting model's.
struct Best {
    start: Option<f64>,
    /// (EM, round) of the best round; ties go to the earlier round.
    round: Option<(f64, usize)>,
    validated: bool,
}

impl Best {
    fn new(start: Option<f64>) -> Self {
        Self {
            start,
            round: None,
            validated: start.is_some(),
        }
    }

    fn track(&mut self, em: Option<f64>, round: usize) {
        if let Some(em) = em {
            self.validated = true;
            if self.round.is_none_or(|b| em > b.0) {
                self.round = Some((em, round));
            }
        }
    }

    /// The round that beat the start, if one did.
    fn kept_round(&self) -> Option<usize> {
        self.round
            .filter(|&(em, _)| self.start.is_none_or(|s| em >= s))
            .map(|(_, round)| round)
    }

    /// Rounds before `round` since validation EM last rose (0: the start).
    fn rounds_without_rise(&self, round: usize) -> usize {
        if !self.validated {
            return 0;
        }
        round - 1 - self.kept_round().unwrap_or(0)
    }

    /// The round to keep after `ran` rounds: the best that is at least as
    /// good as the start; without validation, the last.
    fn kept(&self, ran: usize) -> Option<usize> {
        if self.validated {
            self.kept_round()
        } else {
            (ran > 0).then_some(ran)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Best;

    #[test]
    fn the_best_round_must_match_the_start_and_ties_go_to_the_earlier_round() {
        let mut best = Best::new(Some(20.0));
        best.track(Some(15.0), 1);
        assert_eq!(best.kept(1), None);
        assert_eq!(best.rounds_without_rise(2), 1);
        best.track(Some(25.0), 2);
        best.track(Some(25.0), 3);
        assert_eq!(best.kept(3), Some(2));
        assert_eq!(best.rounds_without_rise(4), 1);
        // A round equal to the start is kept.
        let mut tie = Best::new(Some(20.0));
        tie.track(Some(20.0), 1);
        assert_eq!(tie.kept(1), Some(1));
        // Without validation: the last round, and patience never stops.
        let mut blind = Best::new(None);
        blind.track(None, 1);
        blind.track(None, 2);
        assert_eq!(blind.kept(2), Some(2));
        assert_eq!(blind.rounds_without_rise(3), 0);
        assert_eq!(Best::new(None).kept(0), None);
    }
}
