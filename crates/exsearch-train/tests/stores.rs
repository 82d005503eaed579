//! The SQLite stores as a user's data meets them across versions: a newer
//! exsearch's database refused by name, an older run store migrated in place;
//! a run's metrics kept in its store and the charts drawn from them.

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

#[test]
fn the_run_store_keeps_every_metric_and_the_charts_are_drawn_from_it() {
    use exsearch_train::charts::draw_all;
    use exsearch_train::estep::EStepSummary;
    use exsearch_train::store::{EvalRow, RunStore};
    use exsearch_train::{Phase, StepRecord};

    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = RunStore::open(dir.path()).expect("store");
        for (phase, n) in [
            (Phase::Warmup, 5),
            (Phase::Round(1), 4),
            (Phase::Round(2), 4),
        ] {
            for step in 1..=n {
                let record = StepRecord {
                    step,
                    total_steps: n,
                    epoch: 1,
                    loss: 3.0 / step as f64,
                    lr: 1e-3,
                    grad_norm: 1.0,
                    tokens: 100,
                };
                store.add_step(phase, &record).expect("step");
            }
        }
        for (phase, split, em) in [
            (Phase::Warmup, "test", 10.0),
            (Phase::Round(1), "test", 30.0),
            (Phase::Round(2), "test", 45.0),
            (Phase::Round(1), "valid", 28.0),
            (Phase::Control, "test", 12.0),
        ] {
            let row = EvalRow {
                phase,
                split: split.into(),
                em,
                f1: em,
                acc: em,
                recall: Some(50.0),
                questions: 100,
            };
            store.add_eval(&row).expect("eval");
        }
        for (round, bound) in [(1, -4.0), (2, -2.5)] {
            let summary = EStepSummary {
                questions: 10,
                used: 9,
                sample_em: 0.2 * round as f64,
                bound,
                ess: 1.5,
                seconds: 1.0,
                failed: round - 1,
            };
            store.add_round(round, &summary).expect("round");
        }
        store.add_epoch(Phase::Warmup, 1, 2.5).expect("epoch");
    }
    // Reopened: nothing lost.
    let store = RunStore::open(dir.path()).expect("store");
    assert_eq!(store.steps(None).expect("steps").len(), 13);
    assert_eq!(store.steps(Some(Phase::Round(2))).expect("steps").len(), 4);
    assert_eq!(store.last_step(Phase::Warmup).expect("last"), Some(5));
    assert_eq!(store.rounds().expect("rounds")[1].summary.bound, -2.5);
    assert_eq!(store.rounds().expect("rounds")[1].summary.failed, 1);
    assert_eq!(
        store
            .eval(Phase::Control, "test")
            .expect("eval")
            .map(|e| e.em),
        Some(12.0)
    );
    assert_eq!(store.epochs(Phase::Warmup).expect("epochs"), vec![(1, 2.5)]);

    let files = draw_all(&store, &dir.path().join("charts")).expect("charts");
    // Each chart as SVG and PNG: em, loss, bound, ess, convergence.
    assert_eq!(files.len(), 10);
    for png in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let bytes = std::fs::read(png).expect("png");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", png.display());
        // Text drawn with the embedded font, not an empty canvas: a PNG of
        // a blank 640x400 image compresses to well under 2 kB.
        assert!(
            bytes.len() > 8_000,
            "{}: {} bytes",
            png.display(),
            bytes.len()
        );
    }
    let em = std::fs::read_to_string(&files[0]).expect("svg");
    assert!(em.starts_with("<svg"));
    for label in [
        "held-out test",
        "validation",
        "E-step samples (train)",
        "control: more warm-up",
    ] {
        assert!(em.contains(label), "{label}");
    }
    let loss = std::fs::read_to_string(&files[2]).expect("svg");
    assert!(loss.contains("round 1") && loss.contains("round 2"));
    assert!(
        !loss.contains("warm-up"),
        "the M-step chart shows the rounds only"
    );
}

/// After a single round the bound and ESS charts have one point each: their
/// axes still read as scales (distinct labels), and rounds are whole numbers.
#[test]
fn one_rounds_charts_label_their_axes_with_distinct_values() {
    use exsearch_train::charts::draw_all;
    use exsearch_train::estep::EStepSummary;
    use exsearch_train::store::RunStore;

    let dir = tempfile::tempdir().expect("tmp");
    let store = RunStore::open(dir.path()).expect("store");
    let summary = EStepSummary {
        questions: 40,
        used: 40,
        sample_em: 0.13,
        bound: -11.2496,
        ess: 2.4216,
        seconds: 1014.0,
        failed: 0,
    };
    store.add_round(1, &summary).expect("round");
    draw_all(&store, &dir.path().join("charts")).expect("charts");
    for chart in ["bound", "ess"] {
        let svg =
            std::fs::read_to_string(dir.path().join(format!("charts/{chart}.svg"))).expect("svg");
        // The text of every <text> element that is a number: the axis labels.
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|part| part.rsplit('>').next())
            .map(str::trim)
            .filter(|t| t.parse::<f64>().is_ok())
            .collect();
        let distinct: std::collections::BTreeSet<&str> = labels.iter().copied().collect();
        assert!(
            distinct.len() >= 3 && distinct.len() == labels.len(),
            "{chart}: axis labels {labels:?}"
        );
        assert!(
            labels.contains(&"1"),
            "{chart}: round 1 as a whole number: {labels:?}"
        );
    }
}
