//! The one way exsearch opens a SQLite database: the library's catalog, the
//! conversation store and every training run's store go through [`open`].
//!
//! Each gets the same settings: WAL (readers never wait for a writer), FULL
//! sync (a commit is on disk when it returns, so the passage index or a
//! checkpoint that commits after it never gets ahead), foreign keys, and a
//! busy timeout instead of an immediate "database is locked". Its schema is
//! a list of migrations applied in order, each in its own transaction with
//! the new `PRAGMA user_version`; a database written by a newer exsearch is
//! refused with [`Error::DatabaseTooNew`], not opened and damaged.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

/// A database's schema: what the database is called in error messages, and
/// its migrations (append new steps; never edit one that has shipped).
pub struct Schema {
    pub what: &'static str,
    pub migrations: &'static [&'static str],
}

impl Schema {
    /// The version a database has once every migration has run.
    pub fn version(&self) -> i64 {
        self.migrations.len() as i64
    }
}

/// Opens (creating if needed) the database at `path` and brings it to
/// `schema`'s latest version.
pub fn open(path: &Path, schema: &Schema) -> Result<Connection> {
    let err = |source| Error::Database {
        what: schema.what,
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    // The version first: a newer exsearch's database is not touched at all.
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if found > schema.version() {
        return Err(Error::DatabaseTooNew {
            what: schema.what,
            path: path.to_owned(),
            found,
            supported: schema.version(),
        });
    }
    when_free(|| {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;",
        )
    })
    .map_err(err)?;
    if found < schema.version() {
        when_free(|| migrate(&mut conn, schema)).map_err(err)?;
    }
    Ok(conn)
}

/// Runs `f` again while another connection holds the lock it needs, for up
/// to 10 s. SQLite's busy timeout does not cover every case: switching to
/// WAL, or a deferred reader that must upgrade, fails at once instead.
fn when_free<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Runs the migrations not yet applied, one transaction each, each taking
/// the write lock at once (`BEGIN IMMEDIATE`) and reading the version again
/// inside it: two processes opening a new database together (a training run
/// writing its store while the app reads it) apply each step once, the
/// second finding it done. A step that fails leaves the ones before it.
fn migrate(conn: &mut Connection, schema: &Schema) -> rusqlite::Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some(sql) = schema.migrations.get(version(&tx)?.max(0) as usize) else {
            return tx.commit();
        };
        let next = version(&tx)? + 1;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", next)?;
        tx.commit()?;
    }
}

/// The schema version of an open database.
pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: Schema = Schema {
        what: "test store",
        migrations: &[
            "CREATE TABLE a (x INTEGER);",
            "ALTER TABLE a ADD COLUMN y TEXT;",
        ],
    };

    #[test]
    fn migrations_run_in_order_once_and_settings_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite");
        // A database at version 1 gets only the second step.
        let one = Schema {
            what: "test store",
            migrations: &TWO.migrations[..1],
        };
        let conn = open(&path, &one).expect("open v1");
        conn.execute("INSERT INTO a (x) VALUES (7)", [])
            .expect("insert");
        drop(conn);
        let conn = open(&path, &TWO).expect("open v2");
        assert_eq!(version(&conn).expect("version"), 2);
        let (x, y): (i64, Option<String>) = conn
            .query_row("SELECT x, y FROM a", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("row kept");
        assert_eq!((x, y), (7, None));
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2, "FULL");
        drop(conn);
        // Reopening at the latest version changes nothing.
        let conn = open(&path, &TWO).expect("reopen");
        assert_eq!(version(&conn).expect("version"), 2);
    }

    #[test]
    fn a_database_from_a_newer_exsearch_is_refused_by_name_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite");
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 9))
            .expect("set version");
        let err = open(&path, &TWO).expect_err("must refuse");
        assert_eq!(err.code(), "database_too_new");
        let text = err.to_string();
        assert!(
            text.contains("test store") && text.contains("t.sqlite"),
            "{text}"
        );
        assert!(
            text.contains("9") && text.contains("upgrade exsearch"),
            "{text}"
        );
        let conn = Connection::open(&path).expect("raw open");
        assert_eq!(version(&conn).expect("version"), 9, "left as it was");
    }

    #[test]
    fn processes_opening_a_new_database_together_migrate_it_once() {
        for round in 0..50 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.sqlite");
            let opened: Vec<Result<i64>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| open(&path, &TWO).map(|c| version(&c).expect("version")))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            for result in opened {
                let v = result.unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert_eq!(v, 2);
            }
        }
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.sqlite");
        const BROKEN: Schema = Schema {
            what: "test store",
            migrations: &["CREATE TABLE a (x INTEGER);", "THIS IS NOT SQL;"],
        };
        let err = open(&path, &BROKEN).expect_err("must fail");
        assert_eq!(err.code(), "database");
        assert!(err.to_string().contains("t.sqlite"), "{err}");
        let conn = Connection::open(&path).expect("raw open");
        assert_eq!(version(&conn).expect("version"), 1);
    }
}
