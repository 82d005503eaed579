//! The catalog: a SQLite file holding the registered folders, every
//! document with its size, mtime, content hash, status and skip reason, and
//! every passage's place in its document. It is the source of truth for what
//! the passage index should contain.
//!
//! Invariant: a document row with `dirty = 0` agrees with the passage index
//! (its passages are exactly the index's passages with its `doc_id`). Rows
//! are marked dirty in the same transaction that changes them, before the
//! index commits; `Library` clears the mark after the index commit and
//! repairs rows left dirty by a crash.

mod migrations;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sqlite;
use migrations::SCHEMA;

pub struct Catalog {
    path: PathBuf,
    conn: Connection,
}

#[derive(Debug, Clone, Serialize)]
pub struct Folder {
    pub id: i64,
    pub path: PathBuf,
}

/// What `sync` needs to know about a known document to decide whether to
/// read it again.
#[derive(Debug, Clone)]
pub struct KnownDocument {
    pub id: i64,
    pub folder_id: Option<i64>,
    pub size: Option<u64>,
    pub mtime_ns: Option<i64>,
    pub hash: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    /// When size and mtime were recorded (seconds since the epoch).
    pub recorded_at: i64,
}

/// A document's catalog row as written after processing.
#[derive(Debug, Clone)]
pub struct DocumentRow<'a> {
    pub folder_id: i64,
    pub path: &'a str,
    pub kind: &'a str,
    pub title: Option<&'a str>,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: Option<&'a str>,
    pub pages: Option<u32>,
    /// `None` when indexed, else the skip code and message.
    pub error: Option<(&'a str, String)>,
}

#[derive(Debug, Clone)]
pub struct PassageRow {
    pub id: i64,
    pub ordinal: u32,
    pub page: Option<u32>,
    pub char_start: usize,
    pub char_end: usize,
    pub words: usize,
    /// Read by OCR from a scanned page or an image.
    pub ocr: bool,
}

/// One document as the library page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentEntry {
    pub path: String,
    pub kind: String,
    pub title: Option<String>,
    /// `indexed`, `pending` or `failed`.
    pub status: String,
    /// Why it was skipped (or why its newest version was).
    pub error: Option<String>,
    pub size: u64,
    pub pages: Option<u32>,
    pub passages: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedDocument {
    pub path: String,
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogSummary {
    pub folders: Vec<Folder>,
    pub documents: u64,
    pub passages: u64,
    pub pending: u64,
    pub failed: Vec<FailedDocument>,
    pub bytes: u64,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Catalog {
    /// Opens (creating if needed) and migrates the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            path: path.to_owned(),
            conn: sqlite::open(path, &SCHEMA)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Database {
            what: SCHEMA.what,
            path: self.path.clone(),
            source,
        }
    }

    pub fn schema_version(&self) -> Result<i64> {
        sqlite::version(&self.conn).map_err(|e| self.err(e))
    }

    pub fn folders(&self) -> Result<Vec<Folder>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, path FROM folders ORDER BY path")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Folder {
                    id: r.get(0)?,
                    path: PathBuf::from(r.get::<_, String>(1)?),
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| self.err(e))
    }

    pub fn add_folder(&self, path: &Path) -> Result<Folder> {
        let p = path.to_string_lossy();
        self.conn
            .execute(
                "INSERT INTO folders (path, added_at) VALUES (?1, ?2) ON CONFLICT(path) DO NOTHING",
                params![p, now_secs()],
            )
            .map_err(|e| self.err(e))?;
        let id = self
            .conn
            .query_row("SELECT id FROM folders WHERE path = ?1", [&p], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(Folder {
            id,
            path: path.to_owned(),
        })
    }

    /// Unregisters a folder and marks its documents for removal (dirty), in
    /// one transaction; the caller then removes them from the index.
    pub fn remove_folder(&mut self, id: i64) -> Result<()> {
        let path = self.path.clone();
        let ctx = |source| Error::Database {
            what: SCHEMA.what,
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(ctx)?;
        tx.execute(
            "UPDATE documents SET status = 'removed', dirty = 1 WHERE folder_id = ?1",
            [id],
        )
        .map_err(ctx)?;
        tx.execute("DELETE FROM folders WHERE id = ?1", [id])
            .map_err(ctx)?;
        tx.commit().map_err(ctx)
    }

    /// Moves a registered subfolder's documents to its new parent folder
    /// and unregisters the subfolder.
    pub fn absorb_folder(&self, parent: i64, child: i64) -> Result<()> {
        self.conn
            .execute_batch(&format!(
                "BEGIN;
                 UPDATE documents SET folder_id = {parent} WHERE folder_id = {child};
                 DELETE FROM folders WHERE id = {child};
                 COMMIT;"
            ))
            .map_err(|e| self.err(e))
    }

    /// Every document row, keyed by path, for one sync's change detection.
    pub fn known_documents(&self) -> Result<HashMap<String, KnownDocument>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, folder_id, path, size, mtime_ns, hash, status, error_code, updated_at
                   FROM documents",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(2)?,
                    KnownDocument {
                        id: r.get(0)?,
                        folder_id: r.get(1)?,
                        size: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
                        mtime_ns: r.get(4)?,
                        hash: r.get(5)?,
                        status: r.get(6)?,
                        error_code: r.get(7)?,
                        recorded_at: r.get(8)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>());
        rows.map_err(|e| self.err(e))
    }

    /// Opens the write transaction of a batch; [`put_document`](Self::put_document),
    /// [`touch`](Self::touch) and [`mark_removed`](Self::mark_removed) write into
    /// it, and nothing is visible to other connections until
    /// [`commit_batch`](Self::commit_batch).
    pub fn begin_batch(&self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))
    }

    pub fn commit_batch(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    /// Drops an open batch after an error; a no-op when none is open.
    pub fn rollback_batch(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Writes a processed document and its passages, replacing any earlier
    /// version, and returns its id.
    pub fn put_document(&self, row: &DocumentRow<'_>, passages: &[PassageRow]) -> Result<i64> {
        let (status, code, message) = match &row.error {
            None => ("indexed", None, None),
            Some((code, message)) => ("failed", Some(*code), Some(message.as_str())),
        };
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO documents (folder_id, path, kind, title, size, mtime_ns, hash, status,
                                        error_code, error, pages, passages, dirty, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13)
                 ON CONFLICT(path) DO UPDATE SET
                    folder_id = excluded.folder_id, kind = excluded.kind, title = excluded.title,
                    size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash,
                    status = excluded.status, error_code = excluded.error_code,
                    error = excluded.error, pages = excluded.pages, passages = excluded.passages,
                    dirty = 1, updated_at = excluded.updated_at
                 RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        row.folder_id,
                        row.path,
                        row.kind,
                        row.title,
                        row.size as i64,
                        row.mtime_ns,
                        row.hash,
                        status,
                        code,
                        message,
                        row.pages,
                        passages.len() as i64,
                        now_secs()
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(|e| self.err(e))?;
        self.conn
            .prepare_cached("DELETE FROM passages WHERE document_id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(|e| self.err(e))?;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO passages (id, document_id, ordinal, page, char_start, char_end, words, ocr)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| self.err(e))?;
        for p in passages {
            insert
                .execute(params![
                    p.id,
                    id,
                    p.ordinal,
                    p.page,
                    p.char_start as i64,
                    p.char_end as i64,
                    p.words as i64,
                    p.ocr
                ])
                .map_err(|e| self.err(e))?;
        }
        Ok(id)
    }

    /// Which of `ids` were read by OCR.
    pub fn ocr_passages(&self, ids: &[i64]) -> Result<std::collections::HashSet<i64>> {
        let mut found = std::collections::HashSet::new();
        let mut query = self
            .conn
            .prepare_cached("SELECT ocr FROM passages WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        for &id in ids {
            let ocr: Option<bool> = query
                .query_row([id], |row| row.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if ocr == Some(true) {
                found.insert(id);
            }
        }
        Ok(found)
    }

    /// Records a new size and mtime for a file whose content hash did not
    /// change; the index is not touched, so the row stays clean.
    pub fn touch(&self, id: i64, size: u64, mtime_ns: i64) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE documents SET size = ?2, mtime_ns = ?3, updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, size as i64, mtime_ns, now_secs()]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records why an indexed file could not be read again this time (it is
    /// locked, unreadable, too large now...) while its indexed version stays
    /// searchable; `status` lists it, and the next sync retries.
    pub fn mark_stale(&self, id: i64, code: &str, message: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE documents SET error_code = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, code, message, now_secs()]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Marks a document whose file is gone; [`Catalog::settle`] deletes it
    /// once the index has dropped its passages.
    pub fn mark_removed(&self, id: i64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE documents SET status = 'removed', dirty = 1 WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Ids of documents whose rows may disagree with the passage index.
    pub fn dirty_documents(&self) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM documents WHERE dirty = 1")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>());
        ids.map_err(|e| self.err(e))
    }

    /// Called after the passage index committed: dirty rows now agree with
    /// it, and rows marked removed can go.
    pub fn settle(&mut self) -> Result<()> {
        self.conn
            .execute_batch(
                "BEGIN;
                 DELETE FROM documents WHERE dirty = 1 AND status = 'removed';
                 UPDATE documents SET dirty = 0 WHERE dirty = 1;
                 COMMIT;",
            )
            .map_err(|e| self.err(e))
    }

    /// Crash repair, after the index dropped every dirty document's
    /// passages: their rows lose their passages and are left pending, so the
    /// next sync reads the files again.
    pub fn reset_dirty(&mut self) -> Result<()> {
        self.conn
            .execute_batch(
                "BEGIN;
                 DELETE FROM passages WHERE document_id IN (SELECT id FROM documents WHERE dirty = 1);
                 DELETE FROM documents WHERE dirty = 1 AND status = 'removed';
                 UPDATE documents SET status = 'pending', size = NULL, mtime_ns = NULL, hash = NULL,
                        passages = 0, error_code = NULL, error = NULL, dirty = 0
                  WHERE dirty = 1;
                 COMMIT;",
            )
            .map_err(|e| self.err(e))
    }

    /// Ids of every passage the catalog says is indexed.
    pub fn passage_ids(&self) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM passages")
            .map_err(|e| self.err(e))?;
        let ids = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<i64>>>());
        ids.map_err(|e| self.err(e))
    }

    pub fn summary(&self) -> Result<CatalogSummary> {
        let count = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, COALESCE(error_code, ''),
                        CASE WHEN status = 'indexed' THEN error || ' (the indexed version is kept)'
                             ELSE COALESCE(error, '') END
                   FROM documents
                  WHERE status = 'failed' OR (status = 'indexed' AND error IS NOT NULL)
                  ORDER BY path",
            )
            .map_err(|e| self.err(e))?;
        let failed = stmt
            .query_map([], |r| {
                Ok(FailedDocument {
                    path: r.get(0)?,
                    code: r.get(1)?,
                    reason: r.get(2)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.err(e))?;
        Ok(CatalogSummary {
            folders: self.folders()?,
            documents: count("SELECT COUNT(*) FROM documents WHERE status = 'indexed'")? as u64,
            passages: count("SELECT COUNT(*) FROM passages")? as u64,
            pending: count("SELECT COUNT(*) FROM documents WHERE status = 'pending'")? as u64,
            bytes: count("SELECT COALESCE(SUM(size), 0) FROM documents WHERE status = 'indexed'")?
                as u64,
            failed,
        })
    }

    /// Every document row, ordered by path: what the library page lists.
    pub fn documents(&self) -> Result<Vec<DocumentEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT path, kind, title, status, error, size, pages, passages
                   FROM documents WHERE status != 'removed' ORDER BY path",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DocumentEntry {
                    path: r.get(0)?,
                    kind: r.get(1)?,
                    title: r.get(2)?,
                    status: r.get(3)?,
                    error: r.get(4)?,
                    size: r.get::<_, Option<i64>>(5)?.map_or(0, |s| s as u64),
                    pages: r.get(6)?,
                    passages: r.get::<_, i64>(7)? as u64,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        rows.map_err(|e| self.err(e))
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(folder: i64, path: &'a str, error: Option<(&'a str, String)>) -> DocumentRow<'a> {
        DocumentRow {
            folder_id: folder,
            path,
            kind: "text",
            title: None,
            size: 10,
            mtime_ns: 5,
            hash: Some("h"),
            pages: None,
            error,
        }
    }

    fn passage(id: i64) -> PassageRow {
        PassageRow {
            id,
            ordinal: 0,
            page: None,
            char_start: 0,
            char_end: 5,
            words: 1,
            ocr: false,
        }
    }

    #[test]
    fn migrations_run_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        let c = Catalog::open(&path).expect("open");
        assert_eq!(c.schema_version().expect("version"), SCHEMA.version());
        drop(c);
        let c = Catalog::open(&path).expect("reopen");
        assert_eq!(c.schema_version().expect("version"), SCHEMA.version());
    }

    #[test]
    fn a_newer_catalog_is_refused_with_its_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.sqlite");
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 99))
            .expect("set version");
        let err = Catalog::open(&path).err().expect("must refuse");
        assert!(err.to_string().contains("99"), "{err}");
    }

    #[test]
    fn dirty_rows_are_reset_to_pending_or_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).expect("open");
        let folder = c.add_folder(Path::new("/docs")).expect("folder");
        c.begin_batch().expect("begin");
        let kept = c
            .put_document(&row(folder.id, "/docs/a", None), &[passage(1), passage(2)])
            .expect("put");
        let gone = c
            .put_document(&row(folder.id, "/docs/b", None), &[passage(3)])
            .expect("put");
        c.mark_removed(gone).expect("remove");
        c.commit_batch().expect("commit");
        assert_eq!(c.dirty_documents().expect("dirty").len(), 2);
        c.reset_dirty().expect("reset");
        let known = c.known_documents().expect("known");
        assert_eq!(known.len(), 1);
        assert_eq!(known["/docs/a"].id, kept);
        assert_eq!(known["/docs/a"].status, "pending");
        assert_eq!(known["/docs/a"].size, None);
        assert!(c.passage_ids().expect("ids").is_empty());
        assert!(c.dirty_documents().expect("dirty").is_empty());
    }

    #[test]
    fn failed_documents_are_listed_with_reasons() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Catalog::open(&dir.path().join("c.sqlite")).expect("open");
        let folder = c.add_folder(Path::new("/docs")).expect("folder");
        c.begin_batch().expect("begin");
        c.put_document(&row(folder.id, "/docs/ok", None), &[passage(1)])
            .expect("put");
        c.put_document(
            &row(folder.id, "/docs/bad", Some(("empty", "empty file".into()))),
            &[],
        )
        .expect("put");
        c.commit_batch().expect("commit");
        c.settle().expect("settle");
        let s = c.summary().expect("summary");
        assert_eq!((s.documents, s.passages), (1, 1));
        assert_eq!(s.failed.len(), 1);
        assert_eq!(s.failed[0].path, "/docs/bad");
        assert_eq!(s.failed[0].reason, "empty file");
    }
}
