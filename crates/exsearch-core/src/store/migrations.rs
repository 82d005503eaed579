//! The catalog's schema migrations, applied in order by [`crate::sqlite`];
//! `PRAGMA user_version` records how many have run. Append new steps, never
//! edit old ones.

use crate::sqlite::Schema;

pub(super) const SCHEMA: Schema = Schema {
    what: "catalog",
    migrations: MIGRATIONS,
};

const MIGRATIONS: &[&str] = &[
    // 1: folders, documents, passages, settings.
    r#"
    CREATE TABLE folders (
        id        INTEGER PRIMARY KEY,
        path      TEXT NOT NULL UNIQUE,
        added_at  INTEGER NOT NULL
    );
    CREATE TABLE documents (
        id          INTEGER PRIMARY KEY,
        folder_id   INTEGER REFERENCES folders(id) ON DELETE SET NULL,
        path        TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL,
        title       TEXT,
        size        INTEGER,
        mtime_ns    INTEGER,
        hash        TEXT,
        -- 'removed' rows exist only between the two commits of a batch.
        status      TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed', 'removed')),
        error_code  TEXT,
        error       TEXT,
        pages       INTEGER,
        passages    INTEGER NOT NULL DEFAULT 0,
        -- 1 while the passage index may not yet agree with this row.
        dirty       INTEGER NOT NULL DEFAULT 0,
        updated_at  INTEGER NOT NULL
    );
    CREATE INDEX documents_folder ON documents(folder_id);
    CREATE INDEX documents_dirty ON documents(dirty) WHERE dirty = 1;
    CREATE INDEX documents_status ON documents(status);
    CREATE TABLE passages (
        id          INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal     INTEGER NOT NULL,
        page        INTEGER,
        char_start  INTEGER NOT NULL,
        char_end    INTEGER NOT NULL,
        words       INTEGER NOT NULL
    );
    CREATE INDEX passages_document ON passages(document_id);
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    "#,
    // 2: passages read by OCR from scanned pages and images are marked.
    r#"
    ALTER TABLE passages ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0;
    "#,
];
