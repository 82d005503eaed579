//! The evaluation harness: our metrics against the official HotpotQA
//! script's numbers, QA files in the field's formats, a corpus built from a
//! file's own paragraphs, and the summary of a run.

use std::path::Path;

use exsearch_agent::eval::{self, metrics, EvalOptions, QuestionResult};
use exsearch_agent::generator::{Oracle, Scripted};
use exsearch_agent::{Agent, AgentSettings, Method};
use exsearch_core::{CancelToken, Quiet};
use serde_json::Value;

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn metrics_match_the_official_hotpotqa_script_on_300_predictions() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cases = jsonl(&data.join("hotpot_metric_cases.jsonl"));
    let expected = jsonl(&data.join("hotpot_metric_expected.jsonl"));
    assert_eq!(cases.len() + 1, expected.len());
    let (mut em, mut f1) = (0.0, 0.0);
    for (case, want) in cases.iter().zip(&expected) {
        let prediction = case["prediction"].as_str().expect("prediction");
        let golds: Vec<String> = serde_json::from_value(case["answers"].clone()).expect("answers");
        let got = metrics::score_answer(prediction, &golds);
        let close = |a: f64, b: &Value| (a - b.as_f64().expect("number")).abs() < 1e-12;
        assert!(
            close(got.em, &want["em"]) && close(got.f1, &want["f1"]),
            "{case} -> {got:?}, official {want}"
        );
        em += got.em;
        f1 += got.f1;
    }
    let means = expected.last().expect("means");
    let n = cases.len() as f64;
    assert!((em / n - means["mean_em"].as_f64().expect("em")).abs() < 1e-12);
    assert!((f1 / n - means["mean_f1"].as_f64().expect("f1")).abs() < 1e-12);
}

const SMALL: &str = r#"{"id": "a", "question": "Where was the founder of Velcora born?", "answers": ["Oslo"], "contexts": [{"title": "Velcora", "text": "Velcora is a shipping firm founded by Ada Lind.", "supporting": true}, {"title": "Ada Lind", "text": "Ada Lind was born in Oslo in 1950.", "supporting": true}, {"title": "Ships", "text": "Ships carry containers.", "supporting": false}]}
{"id": "b", "question": "Which river flows through Brevik town?", "answers": ["the Lomma", "Lomma River"], "contexts": [{"title": "Brevik", "text": "Brevik is a town on the Lomma.", "supporting": true}, {"title": "Ships", "text": "Ships carry containers.", "supporting": false}]}

{"id": "c", "question": "Is Velcora older than Brevik?", "answers": ["no"], "contexts": [{"title": "Velcora", "text": "Velcora is a shipping firm founded by Ada Lind.", "supporting": true}, {"title": "Brevik", "text": "Brevik is a town on the Lomma.", "supporting": true}]}
"#;

#[test]
fn a_run_over_a_small_file_is_scored_and_written_per_question() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("small.jsonl");
    std::fs::write(&data, SMALL).expect("write");
    let items = eval::load(&data).expect("loads");
    assert_eq!(items.len(), 3);
    let corpus = dir.path().join("corpus");
    let library = eval::corpus_from_contexts(&items, &corpus, None, &Quiet, &CancelToken::new())
        .expect("corpus");
    assert_eq!(library.status().expect("status").documents, 4);
    drop(library);
    // Built once: a second call reopens it.
    let library = eval::corpus_from_contexts(&items, &corpus, None, &Quiet, &CancelToken::new())
        .expect("reopened");
    assert_eq!(library.status().expect("status").documents, 4);

    let settings = AgentSettings::default();
    // Direct answers, scored by hand: EM 1/3, F1 (1 + 2/3 + 0)/3.
    let model = Scripted::new(["Oslo", "Lomma river bank", "yes"]);
    let agent = Agent {
        generator: &model,
        retriever: &library,
        settings: &settings,
    };
    let out = dir.path().join("results.jsonl");
    let options = EvalOptions {
        method: Method::Direct,
        limit: None,
        batch: 2,
        out: Some(out.clone()),
    };
    let (summary, results) =
        eval::evaluate(&agent, &items, &options, &Quiet, &CancelToken::new()).expect("runs");
    assert!(summary.complete);
    assert_eq!(summary.questions, 3);
    assert!((summary.em - 100.0 / 3.0).abs() < 1e-9, "{summary:?}");
    assert!(
        (summary.f1 - 100.0 * (1.0 + 2.0 * (2.0 / 3.0) * 1.0 / (2.0 / 3.0 + 1.0)) / 3.0).abs()
            < 1e-9,
        "{summary:?}"
    );
    assert!((summary.acc - 200.0 / 3.0).abs() < 1e-9, "{summary:?}");
    // No retrieval: recall is zero, not missing.
    assert_eq!(summary.recall, Some(0.0));
    let written: Vec<QuestionResult> = std::fs::read_to_string(&out)
        .expect("out")
        .lines()
        .map(|l| serde_json::from_str(l).expect("result"))
        .collect();
    assert_eq!(written.len(), 3);
    assert_eq!(written[1].prediction, results[1].prediction);

    // The oracle searches the gold titles: every supporting passage is found.
    let oracle = Oracle::for_items(settings.tags.clone(), &items);
    let agent = Agent {
        generator: &oracle,
        ..agent
    };
    let options = EvalOptions {
        method: Method::Exsearch,
        limit: Some(2),
        out: None,
        ..options
    };
    let (summary, results) =
        eval::evaluate(&agent, &items, &options, &Quiet, &CancelToken::new()).expect("runs");
    assert_eq!(summary.questions, 2);
    assert_eq!((summary.em, summary.recall), (100.0, Some(100.0)));
    assert_eq!(results[0].steps, 2);
    assert!((summary.avg_steps - 1.5).abs() < 1e-9);
    assert!(summary.precision.expect("precision") > 0.0);
    assert!(results[0].retrieved.contains(&"Ada Lind".to_string()));
}

#[test]
fn a_broken_line_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"Q?\", \"answers\": [\"a\"]}\n\n{\"question\": \"R?\"}\n",
    )
    .expect("write");
    let e = eval::load(&data).expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: no gold answer (\"answers\", \"golden_answers\" or \"answer\")",
            data.display()
        )
    );
}
