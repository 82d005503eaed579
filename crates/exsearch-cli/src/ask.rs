//! `exsearch ask`: the agent searches the library and answers with
//! citations, streaming its steps; conversations continue with --chat.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use clap::Args;
use exsearch_agent::{Agent, AgentEvent, Asked, ChatStore, EndReason, Method};
use exsearch_core::{Home, Library};

use crate::backend::{AgentArgs, BackendArgs};
use crate::output;

#[derive(Args)]
pub struct AskArgs {
    /// The question
    #[arg(required = true)]
    question: Vec<String>,
    /// Continue conversation ID (a follow-up sees its earlier answers)
    #[arg(long, value_name = "ID")]
    chat: Option<i64>,
    /// Continue the most recent conversation
    #[arg(long = "continue", conflicts_with = "chat")]
    continue_latest: bool,
    /// Print the whole trajectory as JSON
    #[arg(long)]
    json: bool,
    /// Rank passages with `hybrid` (BM25 fused with the sentence encoder)
    /// or `bm25` alone, for this question [default: the library's setting]
    #[arg(long)]
    retrieval: Option<exsearch_core::Retrieval>,
    #[command(flatten)]
    backend: BackendArgs,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(home: &Home, args: AskArgs) -> Result<ExitCode> {
    let trained = crate::backend::trained_settings(home, &args.backend)?;
    let settings = args.agent.settings_with(trained)?;
    let question = args.question.join(" ");
    let mut library = Library::open(home)?;
    crate::retrieval::prepare_for_search(&mut library, args.retrieval)?;
    let chats = ChatStore::open(home)?;
    let conversation = match (args.chat, args.continue_latest) {
        (Some(id), _) => Some(id),
        (None, true) => chats.latest()?,
        (None, false) => None,
    };
    if let Some(id) = conversation {
        chats.history(id)?; // an unknown conversation fails before the model loads
    }
    let method = args.agent.method;
    if method != Method::Direct && library.status()?.documents == 0 && !args.json {
        eprintln!("note: the library is empty; add documents with `exsearch library add DIR`");
    }
    let generator = crate::backend::generator(home, &args.backend)?;
    let cancel = crate::cancel_on_ctrl_c("stopping (Ctrl-C again to quit now)")?;
    let agent = Agent {
        generator: generator.as_ref(),
        retriever: &library,
        settings: &settings,
    };
    let printer = StepPrinter::default();
    let show = |event: AgentEvent| {
        if !args.json {
            printer.print(&event);
        }
    };
    let Asked {
        conversation,
        turn,
        trajectory,
    } = chats.ask(&agent, conversation, &question, method, &show, &cancel)?;
    if args.json {
        let out = serde_json::json!({
            "conversation": conversation, "turn": turn, "trajectory": trajectory,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        output::print_citations(&trajectory.citations);
        eprintln!(
            "conversation {conversation}: follow up with `exsearch ask --chat {conversation} \"...\"`"
        );
    }
    Ok(if trajectory.end == EndReason::Cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints each step as it happens.
#[derive(Default)]
struct StepPrinter {
    answering: Mutex<bool>,
}

impl StepPrinter {
    fn print(&self, event: &AgentEvent) {
        let mut out = std::io::stdout().lock();
        let _ = match event {
            AgentEvent::SubQuery {
                step,
                query,
                repaired,
                ..
            } => {
                let note = if *repaired { " (after a repair)" } else { "" };
                writeln!(out, "[{step}] search: {query}{note}")
            }
            AgentEvent::Retrieved { passages, .. } => {
                let titles: Vec<String> = passages
                    .iter()
                    .map(|h| exsearch_agent::prompt::title_of(h).to_string())
                    .collect();
                writeln!(out, "    found {}: {}", passages.len(), titles.join("; "))
            }
            AgentEvent::Reranked { kept, .. } => writeln!(out, "    re-ranked: kept {kept:?}"),
            AgentEvent::Evidence { text, .. } => writeln!(out, "    evidence: {text}"),
            AgentEvent::Repeated { query, .. } => {
                writeln!(out, "    repeated search {query:?}: answering now")
            }
            AgentEvent::AnswerDelta { text, .. } => {
                let mut answering = self.answering.lock().unwrap_or_else(|e| e.into_inner());
                if !*answering {
                    *answering = true;
                    let _ = write!(out, "answer: ");
                }
                write!(out, "{text}").and_then(|()| out.flush())
            }
            AgentEvent::Finished { end, answer, .. } => {
                let answering = *self.answering.lock().unwrap_or_else(|e| e.into_inner());
                if !answering {
                    let _ = write!(out, "answer: {answer}");
                }
                let note = match end {
                    EndReason::Finished => "",
                    EndReason::Budget => "  (step budget reached)",
                    EndReason::Unparsable => "  (the model stopped writing searches)",
                    EndReason::Repeated => "  (the model repeated a search)",
                    EndReason::Cancelled => "  (cancelled)",
                    EndReason::Failed => "  (failed)",
                    EndReason::ContextFull => "  (the model's context was full)",
                };
                writeln!(out, "{note}")
            }
            // The error itself is printed by main.
            AgentEvent::Started { .. }
            | AgentEvent::StepText { .. }
            | AgentEvent::Failed { .. } => Ok(()),
        };
    }
}
