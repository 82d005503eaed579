//! What training reports while it runs (the demo and the runs a person
//! starts), and the recorder that writes each event's figures to the run's
//! store as it passes them on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use exsearch_core::EventSink;
use serde::Serialize;

use crate::charts::draw_all;
use crate::error::{Error, Result};
use crate::estep::EStepSummary;
use crate::phase::Phase;
use crate::store::{EvalRow, RunStore};
use crate::trainer::StepRecord;

/// Progress of a training run or of the demo.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    Phase {
        name: String,
    },
    /// Work already done by a killed run, picked up instead of redone.
    Resumed {
        what: String,
    },
    Step {
        phase: Phase,
        record: StepRecord,
    },
    Epoch {
        phase: Phase,
        epoch: usize,
        valid_loss: f64,
    },
    Sampled {
        round: usize,
        done: usize,
        total: usize,
    },
    /// Questions written from the library so far (`train auto`).
    Written {
        candidates: usize,
        kept: usize,
        wanted: usize,
    },
    Evaluated {
        phase: Phase,
        split: String,
        em: f64,
        f1: f64,
        acc: f64,
        recall: Option<f64>,
        questions: usize,
    },
    Round {
        round: usize,
        estep: EStepSummary,
    },
    /// An adapter or checkpoint written.
    Saved {
        phase: Phase,
        path: PathBuf,
    },
    Charts {
        files: Vec<PathBuf>,
    },
}

/// The charts' folder in a run's or demonstration's folder.
pub const CHARTS_DIR: &str = "charts";

/// Passes events on and records them in the run's store.
pub(crate) struct Recorder<'a> {
    events: &'a dyn EventSink<TrainEvent>,
    /// Where the charts are drawn.
    charts: PathBuf,
    store: Mutex<RunStore>,
    error: Mutex<Option<Error>>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn open(dir: &Path, events: &'a dyn EventSink<TrainEvent>) -> Result<Self> {
        Ok(Self {
            events,
            charts: dir.join(CHARTS_DIR),
            store: Mutex::new(RunStore::open(dir)?),
            error: Mutex::new(None),
        })
    }

    fn record(&self, event: &TrainEvent) -> Result<()> {
        let store = self.store.lock().map_err(|_| Error::Cancelled)?;
        match event {
            TrainEvent::Step { phase, record } => store.add_step(*phase, record),
            TrainEvent::Epoch {
                phase,
                epoch,
                valid_loss,
            } => store.add_epoch(*phase, *epoch, *valid_loss),
            TrainEvent::Evaluated {
                phase,
                split,
                em,
                f1,
                acc,
                recall,
                questions,
            } => store.add_eval(&EvalRow {
                phase: *phase,
                split: split.clone(),
                em: *em,
                f1: *f1,
                acc: *acc,
                recall: *recall,
                questions: *questions,
            }),
            TrainEvent::Round { round, estep } => store.add_round(*round, estep),
            _ => Ok(()),
        }
    }

    /// Reads the store (after checking no write to it failed).
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&RunStore) -> Result<T>) -> Result<T> {
        if let Some(e) = self.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(e);
        }
        let store = self.store.lock().map_err(|_| Error::Cancelled)?;
        f(&store)
    }

    /// Redraws the charts (into the folder's `charts/`).
    pub(crate) fn charts(&self) -> Result<()> {
        let files = self.with_store(|store| draw_all(store, &self.charts))?;
        self.events.emit(TrainEvent::Charts { files });
        Ok(())
    }
}

impl EventSink<TrainEvent> for Recorder<'_> {
    fn emit(&self, event: TrainEvent) {
        if let Err(e) = self.record(&event) {
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
        }
        self.events.emit(event);
    }
}
