//! Context budgets: a run's conversation kept within the model's context
//! by re-rendering its passage blocks shorter, oldest first, then by
//! leaving out the conversation's oldest exchanges.

use exsearch_core::Hit;
use exsearch_model::ChatMessage;

use super::{Agent, Run};
use crate::error::Result;
use crate::generator::Prompt;
use crate::prompt::{self, Detail};

/// A user turn holding passages: a search block or the RAG turn.
pub(super) struct Block {
    /// Its index in `Run::messages`.
    pub(super) message: usize,
    pub(super) hits: Vec<Hit>,
    /// The question, for the RAG turn (which names it); `None` for a
    /// search block.
    pub(super) rag_question: Option<String>,
    pub(super) detail: Detail,
}

/// Room kept in a step's reply budget for a repair's primed tags.
pub(super) const REPAIR_MARGIN: usize = 24;

impl Agent<'_> {
    /// Shortens `run`'s passage blocks until its conversation and a reply
    /// of `reply` tokens fit `context`: the least shortened block first,
    /// oldest first (passages cut short, then to their titles), sparing the
    /// newest block when `keep_last`; then leaves out the earlier
    /// exchanges of the conversation, oldest first. `Err(tokens needed)`
    /// when nothing more can be cut.
    pub(super) fn fit(
        &self,
        run: &mut Run,
        reply: usize,
        context: usize,
        keep_last: bool,
    ) -> Result<std::result::Result<(), usize>> {
        loop {
            let needed = self
                .generator
                .prompt_tokens(&Prompt::new(run.messages.clone()))?
                + reply;
            if needed <= context {
                return Ok(Ok(()));
            }
            let spared = if keep_last { 1 } else { 0 };
            let open = run.blocks.len().saturating_sub(spared);
            let Some(block) = run.blocks[..open]
                .iter_mut()
                .filter(|b| b.detail < Detail::Titles)
                .min_by_key(|b| (b.detail, b.message))
            else {
                if run.history_turns < 2 {
                    return Ok(Err(needed));
                }
                // The oldest exchange (its question and answer) goes.
                run.messages.drain(..2);
                run.history_turns -= 2;
                for block in &mut run.blocks {
                    block.message -= 2;
                }
                run.context_trims += 1;
                continue;
            };
            block.detail = match block.detail {
                Detail::Full => Detail::Short,
                _ => Detail::Titles,
            };
            let text = match &block.rag_question {
                Some(q) => prompt::rag_turn_at(self.settings, q, &block.hits, block.detail),
                None => prompt::search_turn_at(self.settings, &block.hits, block.detail),
            };
            run.messages[block.message] = ChatMessage::user(text);
            run.context_trims += 1;
        }
    }
}
