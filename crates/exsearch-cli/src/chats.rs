//! `exsearch chats list|show|delete`: the conversations `ask` kept.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use exsearch_agent::{ChatStore, TurnStatus};
use exsearch_core::Home;

use crate::output;

#[derive(Subcommand)]
pub enum ChatsCommand {
    /// List conversations, most recent first
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a conversation with its trajectories and citations
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Delete a conversation
    Delete { id: i64 },
}

pub fn run(home: &Home, cmd: Option<ChatsCommand>) -> Result<ExitCode> {
    let store = ChatStore::open(home)?;
    match cmd.unwrap_or(ChatsCommand::List { json: false }) {
        ChatsCommand::List { json } => {
            let list = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no conversations yet: ask with `exsearch ask \"QUESTION\"`");
            } else {
                for c in list {
                    println!("{:>5}  {:>3} turns  {}", c.id, c.turns, c.title);
                }
            }
        }
        ChatsCommand::Show { id, json } => {
            let conversation = store.conversation(id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&conversation)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("conversation {}: {}", conversation.id, conversation.title);
            for turn in &conversation.turns {
                println!("\nQ: {}  ({}, {})", turn.question, turn.method, turn.model);
                if let Some(t) = &turn.trajectory {
                    for (i, step) in t.steps.iter().enumerate() {
                        println!("  [{}] search: {}", i + 1, step.query);
                        if let Some(e) = &step.evidence {
                            println!("      evidence: {e}");
                        }
                    }
                }
                match turn.status {
                    TurnStatus::Answered => println!("A: {}", turn.answer),
                    TurnStatus::Cancelled => println!("A: {} (cancelled)", turn.answer),
                    TurnStatus::Failed => {
                        println!(
                            "failed: {}",
                            turn.error.as_deref().unwrap_or("unknown error")
                        )
                    }
                    TurnStatus::Running => println!("no answer (still running, or interrupted)"),
                }
                if let Some(t) = &turn.trajectory {
                    output::print_citations(&t.citations);
                }
            }
        }
        ChatsCommand::Delete { id } => {
            store.delete(id)?;
            println!("deleted conversation {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
