//! Property tests of everything that reads model output: random mixtures of
//! tags (in any case, cut short, repeated), multi-byte text, brackets and
//! digits never make the parsers or the loop panic, and what they extract
//! keeps its invariants.

mod common;

use exsearch_agent::generator::Scripted;
use exsearch_agent::parse::{parse_ranking, parse_step, Action};
use exsearch_agent::{Agent, AgentSettings, EndReason, Method, Question, Tags};
use exsearch_core::{CancelToken, Quiet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FRAGMENTS: &[&str] = &[
    "<QUERY>",
    "<query>",
    "<QuErY>",
    "<FACT>",
    "<fact>",
    "<FINAL>",
    "<final>",
    "<SEARCH>",
    "<USER QUERY>",
    "<QUE",
    "RY>",
    "<",
    ">",
    "[",
    "]",
    "[1]",
    "[0]",
    "[99]",
    " > ",
    "\n",
    " ",
    "\t",
    "  ",
    "who",
    "founded",
    "Velcora",
    "é",
    "中文",
    "🙂",
    "\u{0}",
    "\u{200b}",
    "İ",
    "ß",
    "12",
    "9999999999999999999999",
    "?",
    ".",
];

fn random_text(rng: &mut StdRng) -> String {
    let n = rng.random_range(0..40);
    let mut s = String::new();
    for _ in 0..n {
        if rng.random_bool(0.15) {
            s.push(char::from_u32(rng.random_range(0..0x2_0000)).unwrap_or('x'));
        } else {
            s.push_str(FRAGMENTS[rng.random_range(0..FRAGMENTS.len())]);
        }
    }
    s
}

fn contains_tag(s: &str, tags: &Tags) -> bool {
    let lower = s.to_ascii_lowercase();
    [
        &tags.query,
        &tags.fact,
        &tags.finish,
        &tags.search,
        &tags.question,
    ]
    .iter()
    .any(|t| lower.contains(&t.to_ascii_lowercase()))
}

#[test]
fn the_step_parser_never_panics_and_extracts_clean_fields() {
    let tags = Tags::default();
    let mut rng = StdRng::seed_from_u64(7);
    let mut queries = 0;
    for _ in 0..50_000 {
        let text = random_text(&mut rng);
        let p = parse_step(&text, &tags);
        if let Action::Query(q) = &p.action {
            queries += 1;
            assert!(!q.is_empty() && q.trim() == q, "{text:?} -> {q:?}");
            assert!(
                !q.contains('\n') && q.chars().count() <= 300,
                "{text:?} -> {q:?}"
            );
            assert!(!contains_tag(q, &tags), "{text:?} -> {q:?}");
        }
        if let Some(e) = &p.evidence {
            assert!(
                !e.is_empty() && !contains_tag(e, &tags),
                "{text:?} -> {e:?}"
            );
        }
        let k = rng.random_range(0..8);
        let ranking = parse_ranking(&text, k);
        assert!(ranking.iter().all(|&i| i < k), "{text:?} -> {ranking:?}");
        let mut unique = ranking.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ranking.len());
    }
    // The generator does reach the interesting cases.
    assert!(queries > 5_000, "{queries}");
}

#[test]
fn the_loop_survives_random_model_output_and_always_answers() {
    let dir = tempfile::tempdir().expect("tmp");
    let library = common::library(
        dir.path(),
        &[("a.md", "# Velcora\n\nVelcora was founded by Ada Lind.\n")],
    );
    let settings = AgentSettings {
        max_steps: 4,
        rerank: true,
        ..AgentSettings::default()
    };
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..300 {
        let turns: Vec<String> = (0..40).map(|_| random_text(&mut rng)).collect();
        let model = Scripted::new(turns);
        let agent = Agent {
            generator: &model,
            retriever: &library,
            settings: &settings,
        };
        let t = agent
            .answer(
                &Question::new("Who founded Velcora?"),
                Method::Exsearch,
                &Quiet,
                &CancelToken::new(),
            )
            .expect("answers");
        assert_ne!(t.end, EndReason::Cancelled);
        assert!(t.steps.len() <= 4);
        assert_eq!(
            t.transcript.last().map(|m| m.role.as_str()),
            Some("assistant")
        );
        for c in &t.citations {
            assert!(t.steps[c.step - 1].passages.contains(&c.passage));
        }
    }
}
