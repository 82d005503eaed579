//! Conversations in SQLite (`chats.sqlite` in the data directory): every
//! question, its trajectory and its answer. A turn is written before the
//! model starts (status `running`) and completed after, so a crash or a
//! kill leaves the question on record.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use exsearch_core::sqlite::{self, Schema};
use exsearch_core::Home;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use exsearch_core::{CancelToken, EventSink};

use crate::agent::{Agent, AgentEvent, Question};
use crate::error::{Error, Result};
use crate::prompt::Exchange;
use crate::settings::Method;
use crate::trajectory::{EndReason, Trajectory};

/// A question answered in a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    pub conversation: i64,
    pub turn: i64,
    pub trajectory: Trajectory,
}

/// The store's migrations (append new steps, never edit one that shipped).
const SCHEMA: Schema = Schema {
    what: "conversation store",
    migrations: &[
        // 1: conversations and their turns.
        "
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    method TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    error TEXT,
    trajectory TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id);
",
    ],
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// Started and not finished: still running, or its process was killed.
    Running,
    Answered,
    Cancelled,
    Failed,
}

impl TurnStatus {
    fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Running => "running",
            TurnStatus::Answered => "answered",
            TurnStatus::Cancelled => "cancelled",
            TurnStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "answered" => TurnStatus::Answered,
            "cancelled" => TurnStatus::Cancelled,
            "failed" => TurnStatus::Failed,
            _ => TurnStatus::Running,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ConversationSummary {
    pub id: i64,
    pub title: String,
    pub turns: u64,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Conversation {
    pub id: i64,
    pub title: String,
    pub created_at: i64,
    pub turns: Vec<Turn>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Turn {
    pub id: i64,
    pub question: String,
    pub method: String,
    pub model: String,
    pub status: TurnStatus,
    pub answer: String,
    pub error: Option<String>,
    pub trajectory: Option<Trajectory>,
    pub created_at: i64,
}

pub struct ChatStore {
    conn: Connection,
    path: PathBuf,
}

impl ChatStore {
    /// The store of a data directory, created on first use.
    pub fn open(home: &Home) -> Result<Self> {
        std::fs::create_dir_all(home.root()).map_err(|e| Error::io(home.root(), e))?;
        Self::open_at(&home.root().join("chats.sqlite"))
    }

    pub fn open_at(path: &Path) -> Result<Self> {
        Ok(Self {
            conn: sqlite::open(path, &SCHEMA)?,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A query failed: the same error, naming the store, as a failed open.
    fn err(&self, source: rusqlite::Error) -> Error {
        exsearch_core::Error::Database {
            what: SCHEMA.what,
            path: self.path.clone(),
            source,
        }
        .into()
    }

    /// Starts a conversation titled after its first question.
    pub fn create(&self, first_question: &str) -> Result<i64> {
        let title: String = first_question
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let title = match title.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &title[..cut]),
            None => title,
        };
        let now = now();
        self.conn
            .execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?1, ?2, ?2)",
                params![title, now],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The most recently updated conversation.
    pub fn latest(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT id FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn require(&self, conversation: i64) -> Result<()> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM conversations WHERE id = ?1",
                [conversation],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        found
            .map(|_| ())
            .ok_or(Error::UnknownConversation(conversation))
    }

    /// Records a question before it is answered; returns the turn's id.
    pub fn begin_turn(
        &self,
        conversation: i64,
        question: &str,
        method: Method,
        model: &str,
    ) -> Result<i64> {
        self.require(conversation)?;
        let now = now();
        self.conn
            .execute(
                "INSERT INTO turns (conversation_id, question, method, model, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
                params![conversation, question, method.as_str(), model, now],
            )
            .map_err(|e| self.err(e))?;
        let turn = self.conn.last_insert_rowid();
        self.touch(conversation)?;
        Ok(turn)
    }

    /// Stores a turn's trajectory and answer (a cancelled run keeps what it had).
    pub fn finish_turn(&self, turn: i64, trajectory: &Trajectory) -> Result<()> {
        let status = match trajectory.end {
            EndReason::Cancelled => TurnStatus::Cancelled,
            EndReason::Failed => TurnStatus::Failed,
            _ => TurnStatus::Answered,
        };
        let json = serde_json::to_string(trajectory)
            .map_err(|e| Error::InvalidSetting(format!("trajectory is not serializable: {e}")))?;
        let error = trajectory.error.as_deref();
        self.update(turn, status, &trajectory.answer, error, Some(&json))
    }

    pub fn fail_turn(&self, turn: i64, error: &str) -> Result<()> {
        self.update(turn, TurnStatus::Failed, "", Some(error), None)
    }

    fn update(
        &self,
        turn: i64,
        status: TurnStatus,
        answer: &str,
        error: Option<&str>,
        trajectory: Option<&str>,
    ) -> Result<()> {
        exsearch_core::failpoint::write_fault("chats_write")
            .map_err(|e| Error::io(&self.path, e))?;
        let conversation: i64 = self
            .conn
            .query_row(
                "UPDATE turns SET status = ?2, answer = ?3, error = ?4, trajectory = ?5
                 WHERE id = ?1 RETURNING conversation_id",
                params![turn, status.as_str(), answer, error, trajectory],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        self.touch(conversation)
    }

    fn touch(&self, conversation: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE conversations SET updated_at = max(updated_at, ?2) WHERE id = ?1",
                params![conversation, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Conversations, most recently updated first.
    pub fn list(&self) -> Result<Vec<ConversationSummary>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.id, c.title, c.created_at, c.updated_at,
                        (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id)
                 FROM conversations c ORDER BY c.updated_at DESC, c.id DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ConversationSummary {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    created_at: r.get(2)?,
                    updated_at: r.get(3)?,
                    turns: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    pub fn conversation(&self, id: i64) -> Result<Conversation> {
        let (title, created_at): (String, i64) = self
            .conn
            .query_row(
                "SELECT title, created_at FROM conversations WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(Error::UnknownConversation(id))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, question, method, model, status, answer, error, trajectory, created_at
                 FROM turns WHERE conversation_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                let trajectory: Option<String> = r.get(7)?;
                Ok(Turn {
                    id: r.get(0)?,
                    question: r.get(1)?,
                    method: r.get(2)?,
                    model: r.get(3)?,
                    status: TurnStatus::parse(&r.get::<_, String>(4)?),
                    answer: r.get(5)?,
                    error: r.get(6)?,
                    // A row from a future version that does not parse shows without it.
                    trajectory: trajectory.and_then(|t| serde_json::from_str(&t).ok()),
                    created_at: r.get(8)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let turns = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        Ok(Conversation {
            id,
            title,
            created_at,
            turns,
        })
    }

    /// The answered exchanges of a conversation, oldest first (what a
    /// follow-up question sees).
    pub fn history(&self, id: i64) -> Result<Vec<Exchange>> {
        self.require(id)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT question, answer FROM turns
                 WHERE conversation_id = ?1 AND status = 'answered' ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(Exchange {
                    question: r.get(0)?,
                    answer: r.get(1)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Asks `question` through `agent` in conversation `follow_up` (a new
    /// one when `None`; a follow-up sees the earlier answers). The turn is
    /// stored before the model runs and completed after: answered,
    /// cancelled with what it had, or failed with the error.
    pub fn ask(
        &self,
        agent: &Agent<'_>,
        follow_up: Option<i64>,
        question: &str,
        method: Method,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<Asked> {
        let history = match follow_up {
            Some(id) => self.history(id)?,
            None => Vec::new(),
        };
        let conversation = match follow_up {
            Some(id) => id,
            None => self.create(question)?,
        };
        let turn = self.begin_turn(conversation, question, method, &agent.generator.describe())?;
        let q = Question {
            text: question.to_owned(),
            history,
        };
        match agent.answer(&q, method, events, cancel) {
            Ok(trajectory) => match self.finish_turn(turn, &trajectory) {
                Ok(()) => Ok(Asked {
                    conversation,
                    turn,
                    trajectory,
                }),
                // The question stays on record, with why its answer is not.
                Err(e) => {
                    let _ = self.fail_turn(turn, &format!("the answer could not be stored: {e}"));
                    Err(e)
                }
            },
            Err(e) => {
                self.fail_turn(turn, &e.to_string())?;
                Err(e)
            }
        }
    }

    pub fn delete(&self, id: i64) -> Result<()> {
        self.require(id)?;
        self.conn
            .execute("DELETE FROM conversations WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
