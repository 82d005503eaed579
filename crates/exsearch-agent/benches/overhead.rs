//! The agent's own cost per step (retrieval, prompt assembly, parsing,
//! events, storage of the conversation), measured on the hotpotqa-dev-500
//! corpus with the oracle generator, whose turns cost nothing, so all that
//! is left is the agent. The peer, run side by side on the same sub-queries,
//! is the bare BM25 search the step cannot avoid.
//!
//!     cargo bench -p exsearch-agent --bench overhead
//!
//! `EXSEARCH_BENCH_DATA` points at another QA file with contexts.

use std::path::PathBuf;
use std::time::Instant;

use exsearch_agent::eval::{self, score};
use exsearch_agent::generator::Oracle;
use exsearch_agent::{Agent, AgentSettings, ChatStore, Method, Question};
use exsearch_core::{CancelToken, Quiet};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let data = std::env::var_os("EXSEARCH_BENCH_DATA").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/datasets/hotpotqa-dev-500/questions.jsonl")
        },
        PathBuf::from,
    );
    let items = eval::load(&data)?;
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let library = eval::corpus_from_contexts(
        &items,
        &dir.path().join("corpus"),
        None,
        &Quiet,
        &CancelToken::new(),
    )?;
    let status = library.status()?;
    println!(
        "corpus: {} questions, {} documents, {} passages, indexed in {:.1} s",
        items.len(),
        status.documents,
        status.passages,
        t.elapsed().as_secs_f64()
    );
    let settings = AgentSettings::default();
    let oracle = Oracle::for_items(settings.tags.clone(), &items);
    let agent = Agent {
        generator: &oracle,
        retriever: &library,
        settings: &settings,
    };
    let store = ChatStore::open_at(&dir.path().join("chats.sqlite"))?;
    let cancel = CancelToken::new();
    let (mut per_step, mut search_ms, mut recall) = (Vec::new(), Vec::new(), Vec::new());
    for item in &items {
        let started = Instant::now();
        let conversation = store.create(&item.question)?;
        let turn = store.begin_turn(conversation, &item.question, Method::Exsearch, "oracle")?;
        let t = agent.answer(
            &Question::new(item.question.clone()),
            Method::Exsearch,
            &Quiet,
            &cancel,
        )?;
        store.finish_turn(turn, &t)?;
        let agent_ms = started.elapsed().as_secs_f64() * 1e3 - t.timing.model_ms;
        per_step.push(agent_ms / t.steps.len().max(1) as f64);
        // The peer: the same sub-queries through the bare search.
        for step in &t.steps {
            let s = Instant::now();
            std::hint::black_box(library.search(&step.query, settings.k)?);
            search_ms.push(s.elapsed().as_secs_f64() * 1e3);
        }
        recall.extend(score(item, t).recall);
    }
    per_step.sort_by(f64::total_cmp);
    search_ms.sort_by(f64::total_cmp);
    let p50 = percentile(&per_step, 0.5);
    println!(
        "agent overhead per step (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (target: p50 < 5)",
        p50,
        percentile(&per_step, 0.9),
        percentile(&per_step, 0.99),
        per_step[per_step.len() - 1]
    );
    let s50 = percentile(&search_ms, 0.5);
    println!(
        "bare BM25 search per sub-query (ms): p50 {:.3}  p90 {:.3}; overhead / search at p50: {:.2}x",
        s50,
        percentile(&search_ms, 0.9),
        p50 / s50.max(1e-9)
    );
    println!(
        "oracle recall@{} of supporting passages: {:.1}% over {} questions",
        settings.k,
        100.0 * recall.iter().sum::<f64>() / recall.len().max(1) as f64,
        recall.len()
    );
    Ok(())
}
