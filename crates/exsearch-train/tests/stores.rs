//! The SQLite stores as a user's data meets them across versions: a newer
//! exsearch's database refused by name, an older run store migrated in place.

#[test]
fn every_store_refuses_a_database_from_a_newer_exsearch_by_name() {
    use exsearch_agent::ChatStore;
    use exsearch_core::store::Catalog;
    use exsearch_train::store::RunStore;

    let dir = tempfile::tempdir().expect("tempdir");
    let newer = |path: &std::path::Path| {
        rusqlite::Connection::open(path)
            .and_then(|c| c.pragma_update(None, "user_version", 42))
            .expect("set version");
    };
    let catalog = dir.path().join("catalog.sqlite");
    newer(&catalog);
    let chats = dir.path().join("chats.sqlite");
    newer(&chats);
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    newer(&run.join("runs.sqlite"));

    let messages = [
        (Catalog::open(&catalog)
            .err()
            .map(|e| (e.code(), e.to_string()))),
        (ChatStore::open_at(&chats)
            .err()
            .map(|e| (e.code(), e.to_string()))),
        (RunStore::open(&run)
            .err()
            .map(|e| (e.code(), e.to_string()))),
    ];
    for (m, (what, file)) in messages.iter().zip([
        ("catalog", "catalog.sqlite"),
        ("conversation store", "chats.sqlite"),
        ("run store", "runs.sqlite"),
    ]) {
        let (code, text) = m.as_ref().expect("a newer database must be refused");
        assert_eq!(*code, "database_too_new", "{text}");
        assert!(text.starts_with(what) && text.contains(file), "{text}");
        assert!(
            text.contains("42") && text.contains("upgrade exsearch"),
            "{text}"
        );
    }
}

#[test]
fn a_run_store_from_before_versioning_is_migrated_keeping_its_rounds() {
    use exsearch_train::store::RunStore;

    let dir = tempfile::tempdir().expect("tempdir");
    {
        // runs.sqlite as the previous release wrote it: no schema version,
        // rounds without the failed count.
        let old = rusqlite::Connection::open(dir.path().join("runs.sqlite")).expect("open");
        old.execute_batch(
            "CREATE TABLE rounds (
                 round INTEGER PRIMARY KEY, questions INTEGER NOT NULL, used INTEGER NOT NULL,
                 sample_em REAL NOT NULL, bound REAL NOT NULL, ess REAL NOT NULL, seconds REAL NOT NULL);
             INSERT INTO rounds VALUES (1, 10, 9, 0.4, -3.0, 1.5, 12.0);",
        )
        .expect("old schema");
    }
    let store = RunStore::open(dir.path()).expect("migrated");
    let rounds = store.rounds().expect("rounds");
    assert_eq!(rounds.len(), 1);
    assert_eq!(
        (
            rounds[0].summary.used,
            rounds[0].summary.bound,
            rounds[0].summary.failed
        ),
        (9, -3.0, 0)
    );
    assert_eq!(store.steps(None).expect("the other tables exist").len(), 0);
}
