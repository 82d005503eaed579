//! The ExSearch agent (METHOD.md, section 1): a local or remote language
//! model answers a question by searching the library step by step,
//! recording the evidence it finds, and citing the passages it used.
//!
//! - [`Agent`] runs the loop (and the `rag` and `direct` baselines) over a
//!   [`Retriever`] with a [`Generator`], streaming [`AgentEvent`]s;
//! - [`generator`] holds the backends: a local model, an OpenAI-compatible
//!   endpoint, and playbacks for tests and measurements;
//! - [`ChatStore`] keeps conversations in SQLite;
//! - [`eval`] scores methods on QA files.

mod agent;
pub mod chats;
mod citations;
pub mod encoder;
mod error;
pub mod eval;
pub mod generator;
pub mod parse;
pub mod prompt;
mod settings;
mod trajectory;

pub use agent::{Agent, AgentEvent, Question, Retriever};
pub use chats::{Asked, ChatStore, Conversation, ConversationSummary, Turn, TurnStatus};
pub use error::{Error, Result};
pub use generator::{Generated, Generator, Prompt};
pub use prompt::Exchange;
pub use settings::{AgentSettings, Method, Tags};
pub use trajectory::{Citation, EndReason, SideCall, Step, Timing, Trajectory};
