//! Training runs in SQLite (`runs.sqlite` in the run's folder): every
//! optimizer step's loss, every evaluation, every round's E-step figures.
//! Rows are written as they happen, so a killed run keeps what it measured
//! and the charts can be redrawn at any time.

use std::path::{Path, PathBuf};

use exsearch_core::sqlite::{self, Schema};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estep::EStepSummary;
use crate::phase::Phase;
use crate::trainer::StepRecord;

/// The store's migrations (append new steps, never edit one that shipped).
/// Stores from before versioning are at version 0; the first step's
/// `IF NOT EXISTS` makes it a no-op for them.
const SCHEMA: Schema = Schema {
    what: "run store",
    migrations: &[
        // 1: steps, evaluations, rounds, epochs.
        "
CREATE TABLE IF NOT EXISTS steps (
    phase TEXT NOT NULL, step INTEGER NOT NULL, epoch INTEGER NOT NULL,
    loss REAL NOT NULL, lr REAL NOT NULL, grad_norm REAL NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (phase, step));
CREATE TABLE IF NOT EXISTS evals (
    phase TEXT NOT NULL, split TEXT NOT NULL, em REAL NOT NULL, f1 REAL NOT NULL,
    acc REAL NOT NULL, recall REAL, questions INTEGER NOT NULL,
    PRIMARY KEY (phase, split));
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, questions INTEGER NOT NULL, used INTEGER NOT NULL,
    sample_em REAL NOT NULL, bound REAL NOT NULL, ess REAL NOT NULL, seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS epochs (
    phase TEXT NOT NULL, epoch INTEGER NOT NULL, valid_loss REAL NOT NULL,
    PRIMARY KEY (phase, epoch));
",
        // 2: samples whose model call failed, dropped from the round.
        "ALTER TABLE rounds ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;",
    ],
};

/// One evaluation of the model at some point of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    pub phase: Phase,
    /// `valid` or `test`.
    pub split: String,
    pub em: f64,
    pub f1: f64,
    pub acc: f64,
    pub recall: Option<f64>,
    pub questions: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundRow {
    pub round: usize,
    pub summary: EStepSummary,
}

pub struct RunStore {
    conn: Connection,
    path: PathBuf,
}

impl RunStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join("runs.sqlite");
        let conn = sqlite::open(&path, &SCHEMA)?;
        Ok(Self { conn, path })
    }

    fn fail(&self, e: rusqlite::Error) -> Error {
        store_error(&self.path, e)
    }

    pub fn add_step(&self, phase: Phase, r: &StepRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO steps VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    phase,
                    r.step as i64,
                    r.epoch as i64,
                    r.loss,
                    r.lr,
                    r.grad_norm,
                    r.tokens as i64
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn add_epoch(&self, phase: Phase, epoch: usize, valid_loss: f64) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO epochs VALUES (?1, ?2, ?3)",
                params![phase, epoch as i64, valid_loss],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn add_eval(&self, row: &EvalRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO evals VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.phase,
                    row.split,
                    row.em,
                    row.f1,
                    row.acc,
                    row.recall,
                    row.questions as i64
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn add_round(&self, round: usize, s: &EStepSummary) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO rounds
                     (round, questions, used, sample_em, bound, ess, seconds, failed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    round as i64,
                    s.questions as i64,
                    s.used as i64,
                    s.sample_em,
                    s.bound,
                    s.ess,
                    s.seconds,
                    s.failed as i64
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Every step of `phase` in order (all phases when `None`), with its phase.
    pub fn steps(&self, phase: Option<Phase>) -> Result<Vec<(Phase, StepRecord)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT phase, step, epoch, loss, lr, grad_norm, tokens FROM steps
                 WHERE ?1 IS NULL OR phase = ?1 ORDER BY rowid",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![phase], |r| {
                Ok((
                    r.get::<_, Phase>(0)?,
                    StepRecord {
                        step: r.get::<_, i64>(1)? as usize,
                        total_steps: 0,
                        epoch: r.get::<_, i64>(2)? as usize,
                        loss: r.get(3)?,
                        lr: r.get(4)?,
                        grad_norm: r.get(5)?,
                        tokens: r.get::<_, i64>(6)? as usize,
                    },
                ))
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    pub fn evals(&self) -> Result<Vec<EvalRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT phase, split, em, f1, acc, recall, questions FROM evals ORDER BY rowid",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(EvalRow {
                    phase: r.get(0)?,
                    split: r.get(1)?,
                    em: r.get(2)?,
                    f1: r.get(3)?,
                    acc: r.get(4)?,
                    recall: r.get(5)?,
                    questions: r.get::<_, i64>(6)? as usize,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    pub fn eval(&self, phase: Phase, split: &str) -> Result<Option<EvalRow>> {
        Ok(self
            .evals()?
            .into_iter()
            .find(|r| r.phase == phase && r.split == split))
    }

    pub fn rounds(&self) -> Result<Vec<RoundRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT round, questions, used, sample_em, bound, ess, seconds, failed
                 FROM rounds ORDER BY round",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RoundRow {
                    round: r.get::<_, i64>(0)? as usize,
                    summary: EStepSummary {
                        questions: r.get::<_, i64>(1)? as usize,
                        used: r.get::<_, i64>(2)? as usize,
                        sample_em: r.get(3)?,
                        bound: r.get(4)?,
                        ess: r.get(5)?,
                        seconds: r.get(6)?,
                        failed: r.get::<_, i64>(7)? as usize,
                    },
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    /// The validation losses of `phase`'s epochs.
    pub fn epochs(&self, phase: Phase) -> Result<Vec<(usize, f64)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT epoch, valid_loss FROM epochs WHERE phase = ?1 ORDER BY epoch")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![phase], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get(1)?))
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.fail(e))
    }

    /// The last step recorded for `phase`, if any.
    pub fn last_step(&self, phase: Phase) -> Result<Option<usize>> {
        self.conn
            .query_row(
                "SELECT MAX(step) FROM steps WHERE phase = ?1",
                params![phase],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|v| v.flatten().map(|s| s as usize))
            .map_err(|e| self.fail(e))
    }
}

/// Phases are stored by their labels ("round 2").
impl ToSql for Phase {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.label()))
    }
}

impl FromSql for Phase {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let label = value.as_str()?;
        Phase::parse(label)
            .ok_or_else(|| FromSqlError::Other(format!("unknown training phase `{label}`").into()))
    }
}

fn store_error(path: &Path, source: rusqlite::Error) -> Error {
    exsearch_core::Error::Database {
        what: SCHEMA.what,
        path: path.to_owned(),
        source,
    }
    .into()
}
