//! A search step's retrieval: the passages for every pending sub-query,
//! re-ranked in one batched call when enabled, appended as search blocks.

use exsearch_core::{CancelToken, EventSink, Hit};
use exsearch_model::ChatMessage;

use super::{Agent, AgentEvent, Block, Pending, Run};
use crate::error::Result;
use crate::generator::Prompt;
use crate::parse::parse_ranking;
use crate::prompt::{self, Detail};
use crate::trajectory::{SideCall, Step};

impl Agent<'_> {
    /// Retrieves for every pending sub-query, re-ranks the candidates in
    /// one batched call when enabled, and appends the search turns.
    pub(super) fn retrieve(
        &self,
        step: usize,
        pending: Vec<Pending>,
        runs: &mut [Run],
        model_ms: &mut f64,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let settings = self.settings;
        let mut found = Vec::with_capacity(pending.len());
        for p in &pending {
            let hits = self.retriever.retrieve(&p.query, settings.k)?;
            events.emit(AgentEvent::Retrieved {
                run: p.run,
                step,
                passages: hits.clone(),
            });
            found.push(hits);
        }
        let mut orders: Vec<Option<Vec<usize>>> = vec![None; pending.len()];
        if settings.rerank {
            // Each request fits the model's context, its passages shortened
            // if need be; one that cannot keeps the retriever's order.
            let mut which = Vec::new();
            let mut prompts = Vec::new();
            for i in (0..pending.len()).filter(|&i| found[i].len() > 1) {
                if let Some(prompt) = self.rerank_prompt(&pending[i].query, &found[i])? {
                    which.push(i);
                    prompts.push(prompt);
                }
            }
            let owners: Vec<usize> = which.iter().map(|&i| pending[i].run).collect();
            let replies = if prompts.is_empty() {
                Vec::new()
            } else {
                self.call(
                    &prompts,
                    1,
                    &settings.answer_sampling(),
                    &owners,
                    runs,
                    model_ms,
                    &|_, _, _| {},
                    events,
                    cancel,
                )?
            };
            for ((&i, prompt), reply) in which.iter().zip(prompts).zip(replies) {
                let Some(reply) = reply else { continue };
                let order = parse_ranking(&reply.text, found[i].len());
                let run = pending[i].run;
                runs[run].side_calls.push(SideCall {
                    step,
                    prompt: prompt.messages,
                    reply: reply.text,
                });
                // An unreadable ranking keeps the retriever's order.
                if !order.is_empty() {
                    events.emit(AgentEvent::Reranked {
                        run,
                        step,
                        kept: order.iter().map(|i| i + 1).collect(),
                    });
                    orders[i] = Some(order);
                }
            }
        }
        for ((p, hits), order) in pending.into_iter().zip(found).zip(orders) {
            if runs[p.run].failure.is_some() {
                continue;
            }
            let shown: Vec<Hit> = match &order {
                Some(order) => order.iter().map(|&i| hits[i].clone()).collect(),
                None => hits,
            };
            let run = &mut runs[p.run];
            run.blocks.push(Block {
                message: run.messages.len(),
                hits: shown.clone(),
                rag_question: None,
                detail: Detail::Full,
            });
            run.messages
                .push(ChatMessage::user(prompt::search_turn(settings, &shown)));
            run.steps.push(Step {
                query: p.query,
                passages: shown,
                evidence: None,
                repaired: p.repaired,
                rerank: order,
            });
        }
        Ok(())
    }
}

impl Agent<'_> {
    /// The re-ranking request for `hits`, with whole passages, else short
    /// ones, else titles, whichever first fits the model's context with
    /// room for the reply; `None` when none does.
    fn rerank_prompt(&self, query: &str, hits: &[Hit]) -> Result<Option<Prompt>> {
        let settings = self.settings;
        for detail in [Detail::Full, Detail::Short, Detail::Titles] {
            let turn = prompt::rerank_turn_at(settings, query, hits, detail);
            let prompt = Prompt::new(vec![ChatMessage::user(turn)]);
            let fits = match self.generator.context_tokens() {
                Some(context) => {
                    self.generator.prompt_tokens(&prompt)? + settings.answer_tokens <= context
                }
                None => true,
            };
            if fits {
                return Ok(Some(prompt));
            }
        }
        Ok(None)
    }
}
