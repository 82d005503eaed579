//! The search loop (METHOD.md, section 1) and the two baselines.
//!
//! Runs advance in lockstep, so one model call serves every run at the same
//! step: K samples of a question share its first prompt (the runtime
//! computes it once), later steps batch one prompt per run. Per step a run
//! writes `<FACT> evidence` for its previous sub-query and then `<QUERY>
//! next sub-query` or `<FINAL>`; the engine retrieves and inserts the
//! passages. A step without a sub-query is re-prompted once with the tags
//! primed; a repeated sub-query, a second failure or the step budget end
//! the search, and the answer is always asked for.

mod budget;
mod calls;
mod retrieve;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use exsearch_core::{CancelToken, EventSink, Hit, Library};
use exsearch_model::ChatMessage;
use serde::Serialize;

use self::budget::{Block, REPAIR_MARGIN};
use self::calls::fail;
use crate::citations;
use crate::error::{Error, Result};
use crate::generator::{Generator, Prompt};
use crate::parse::{parse_step, query_key, Action, ParsedStep};
use crate::prompt::{self, Detail, Exchange};
use crate::settings::{AgentSettings, Method};
use crate::trajectory::{Citation, EndReason, SideCall, Step, Timing, Trajectory};

/// Finds passages for a sub-query.
pub trait Retriever {
    fn retrieve(&self, query: &str, k: usize) -> Result<Vec<Hit>>;
}

impl Retriever for Library {
    fn retrieve(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        Ok(self.search(query, k)?)
    }
}

/// A question, with the conversation it continues.
#[derive(Clone, Debug, Default)]
pub struct Question {
    pub text: String,
    pub history: Vec<Exchange>,
}

impl Question {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            history: Vec::new(),
        }
    }
}

/// What happens, as it happens. `run` tells concurrent runs apart
/// (question index × samples + sample); steps count from 1.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    Started {
        run: usize,
        question: String,
        method: Method,
    },
    /// Text of a search step as the model writes it.
    StepText {
        run: usize,
        step: usize,
        text: String,
    },
    SubQuery {
        run: usize,
        step: usize,
        query: String,
        repaired: bool,
    },
    /// The sub-query was asked before: the search ends.
    Repeated {
        run: usize,
        step: usize,
        query: String,
    },
    Retrieved {
        run: usize,
        step: usize,
        passages: Vec<Hit>,
    },
    /// The re-ranking call kept these candidates, 1-based as shown to it.
    Reranked {
        run: usize,
        step: usize,
        kept: Vec<usize>,
    },
    Evidence {
        run: usize,
        step: usize,
        text: String,
    },
    AnswerDelta {
        run: usize,
        text: String,
    },
    Finished {
        run: usize,
        answer: String,
        citations: Vec<Citation>,
        end: EndReason,
    },
    /// The backend or the library failed; the run has no answer.
    Failed {
        run: usize,
        code: String,
        error: String,
    },
}

pub struct Agent<'a> {
    pub generator: &'a dyn Generator,
    pub retriever: &'a dyn Retriever,
    pub settings: &'a AgentSettings,
}

#[derive(PartialEq)]
enum Phase {
    Searching,
    Answering,
    Done,
}

struct Run {
    question: usize,
    messages: Vec<ChatMessage>,
    history_turns: usize,
    steps: Vec<Step>,
    side_calls: Vec<SideCall>,
    seen: HashSet<String>,
    phase: Phase,
    end: EndReason,
    answer: String,
    tokens: usize,
    calls: usize,
    /// Why the run failed (`EndReason::Failed`): its model call failed
    /// while the other runs of the batch went on.
    failure: Failure,
    /// The passage blocks among `messages`, oldest first, and how much of
    /// them is shown: shortened when the conversation outgrows the context.
    blocks: Vec<Block>,
    /// Times a block was shortened.
    context_trims: usize,
}

/// Why a run failed, if it did; shared by the runs of one failed prompt.
type Failure = Option<Arc<Error>>;

/// A run's parsed step waiting for its retrieval.
struct Pending {
    run: usize,
    query: String,
    repaired: bool,
}

impl Agent<'_> {
    /// Answers one question.
    pub fn answer(
        &self,
        question: &Question,
        method: Method,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<Trajectory> {
        let (mut runs, mut failures) =
            self.run_isolated(std::slice::from_ref(question), 1, method, events, cancel)?;
        // One question: its failure is the call's error.
        if let Some(failure) = failures.pop().flatten() {
            return Err(Error::Shared(failure));
        }
        runs.pop().ok_or(Error::Cancelled)
    }

    /// Runs `samples` trajectories per question, all in lockstep. Returns
    /// them question-major. A cancel ends every run at once with what it
    /// has (`EndReason::Cancelled`). A model call that fails for some runs
    /// ends those (`EndReason::Failed`, with the error) and the others go
    /// on; any other failure (the library) is an error.
    pub fn run(
        &self,
        questions: &[Question],
        samples: usize,
        method: Method,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<Vec<Trajectory>> {
        Ok(self
            .run_isolated(questions, samples, method, events, cancel)?
            .0)
    }

    /// `run`, with each failed run's error beside its trajectory.
    fn run_isolated(
        &self,
        questions: &[Question],
        samples: usize,
        method: Method,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<(Vec<Trajectory>, Vec<Failure>)> {
        self.settings.validate()?;
        let started = Instant::now();
        let samples = samples.max(1);
        let mut runs: Vec<Run> = Vec::with_capacity(questions.len() * samples);
        for (q, question) in questions.iter().enumerate() {
            for _ in 0..samples {
                let messages = prompt::history(self.settings, &question.history);
                events.emit(AgentEvent::Started {
                    run: runs.len(),
                    question: question.text.clone(),
                    method,
                });
                runs.push(Run {
                    question: q,
                    history_turns: messages.len(),
                    messages,
                    steps: Vec::new(),
                    side_calls: Vec::new(),
                    seen: HashSet::new(),
                    phase: Phase::Searching,
                    end: EndReason::Finished,
                    answer: String::new(),
                    tokens: 0,
                    calls: 0,
                    failure: None,
                    blocks: Vec::new(),
                    context_trims: 0,
                });
            }
        }
        let mut model_ms = 0.0;
        let outcome = match method {
            Method::Exsearch => {
                self.search_loop(questions, samples, &mut runs, &mut model_ms, events, cancel)
            }
            Method::Rag => self.rag(questions, samples, &mut runs, events),
            Method::Direct => self.direct(questions, &mut runs),
        }
        .and_then(|()| {
            self.final_answers(questions, &mut runs, method, &mut model_ms, events, cancel)
        });
        match outcome {
            Ok(()) => {}
            Err(Error::Cancelled) => {
                for run in runs.iter_mut().filter(|r| r.phase != Phase::Done) {
                    run.phase = Phase::Done;
                    run.end = EndReason::Cancelled;
                }
            }
            Err(e) => {
                for (run, _) in runs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.phase != Phase::Done)
                {
                    events.emit(AgentEvent::Failed {
                        run,
                        code: e.code().to_string(),
                        error: e.to_string(),
                    });
                }
                return Err(e);
            }
        }
        let total_ms = started.elapsed().as_secs_f64() * 1e3;
        let failures: Vec<Failure> = runs.iter().map(|r| r.failure.clone()).collect();
        let trajectories = runs
            .into_iter()
            .enumerate()
            .map(|(i, run)| {
                let citations = match method {
                    Method::Exsearch => citations::for_search(&run.steps, &run.answer),
                    Method::Rag => citations::for_answer(&run.steps, &run.answer),
                    Method::Direct => Vec::new(),
                };
                // A failed run's last event was its `Failed`.
                if run.failure.is_none() {
                    events.emit(AgentEvent::Finished {
                        run: i,
                        answer: run.answer.clone(),
                        citations: citations.clone(),
                        end: run.end.clone(),
                    });
                }
                Trajectory {
                    question: questions[run.question].text.clone(),
                    method,
                    steps: run.steps,
                    answer: run.answer,
                    citations,
                    end: run.end,
                    transcript: run.messages,
                    history_turns: run.history_turns,
                    side_calls: run.side_calls,
                    generated_tokens: run.tokens,
                    model_calls: run.calls,
                    timing: Timing { total_ms, model_ms },
                    error: run.failure.map(|e| e.to_string()),
                    context_trims: run.context_trims,
                }
            })
            .collect();
        Ok((trajectories, failures))
    }

    fn search_loop(
        &self,
        questions: &[Question],
        samples: usize,
        runs: &mut [Run],
        model_ms: &mut f64,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let settings = self.settings;
        for run in runs.iter_mut() {
            let first = prompt::first_turn(settings, &questions[run.question].text);
            run.messages.push(ChatMessage::user(first));
        }
        let step_params = settings.step_sampling();
        let context = self.generator.context_tokens();
        for round in 0..settings.max_steps {
            // A step that would not fit ends the search: older passages are
            // shortened first; the newest block stays whole for the step
            // that reads it.
            if let Some(context) = context {
                for run in runs.iter_mut().filter(|r| r.phase == Phase::Searching) {
                    let reply = step_params.max_tokens + REPAIR_MARGIN;
                    if self.fit(run, reply, context, true)?.is_err() {
                        run.phase = Phase::Answering;
                        run.end = EndReason::ContextFull;
                    }
                }
            }
            let active: Vec<usize> = (0..runs.len())
                .filter(|&r| runs[r].phase == Phase::Searching)
                .collect();
            if active.is_empty() {
                break;
            }
            let step = round + 1;
            // Streams a call's text to its runs: (prompt, sample) -> run.
            let stream = |owner: &[usize], per_prompt: usize| {
                let owner = owner.to_vec();
                move |p: usize, s: usize, text: &str| {
                    let run = owner[p * per_prompt + s];
                    events.emit(AgentEvent::StepText {
                        run,
                        step,
                        text: text.to_string(),
                    });
                }
            };
            // The first step of every sample of a question is the same
            // prompt (runs are question-major, all active in round 0).
            let per_prompt = if round == 0 { samples } else { 1 };
            let prompts: Vec<Prompt> = active
                .iter()
                .step_by(per_prompt)
                .map(|&r| Prompt::new(runs[r].messages.clone()))
                .collect();
            let on_delta = stream(&active, per_prompt);
            let texts = self.call(
                &prompts,
                per_prompt,
                &step_params,
                &active,
                runs,
                model_ms,
                &on_delta,
                events,
                cancel,
            )?;

            // (run, full text, parsed, repaired)
            let mut parsed: Vec<(usize, String, ParsedStep, bool)> = Vec::new();
            let mut to_repair: Vec<Prompt> = Vec::new();
            let mut repair_owners: Vec<usize> = Vec::new();
            for (&r, g) in active.iter().zip(texts) {
                let Some(g) = g else { continue }; // failed: ended above
                let p = parse_step(&g.text, &settings.tags);
                if p.action == Action::Unparsable {
                    let t = &settings.tags;
                    let prefill = if round == 0 {
                        format!("{} ", t.query)
                    } else {
                        format!(
                            "{} {}\n{} ",
                            t.fact,
                            p.evidence.unwrap_or_default(),
                            t.query
                        )
                    };
                    to_repair.push(Prompt {
                        messages: runs[r].messages.clone(),
                        prefill,
                    });
                    repair_owners.push(r);
                } else {
                    parsed.push((r, g.text, p, false));
                }
            }
            if !to_repair.is_empty() {
                let (prompts, owners) = (to_repair, repair_owners);
                let on_delta = stream(&owners, 1);
                let texts = self.call(
                    &prompts,
                    1,
                    &step_params,
                    &owners,
                    runs,
                    model_ms,
                    &on_delta,
                    events,
                    cancel,
                )?;
                for ((r, prompt), g) in owners.into_iter().zip(prompts).zip(texts) {
                    let Some(g) = g else { continue };
                    let text = prompt.prefill + &g.text;
                    let p = parse_step(&text, &settings.tags);
                    parsed.push((r, text, p, true));
                }
            }
            parsed.sort_by_key(|p| p.0);

            let mut pending: Vec<Pending> = Vec::new();
            for (r, text, p, repaired) in parsed {
                let run = &mut runs[r];
                if let (Some(evidence), Some(last)) = (&p.evidence, run.steps.last_mut()) {
                    last.evidence = Some(evidence.clone());
                    events.emit(AgentEvent::Evidence {
                        run: r,
                        step: step - 1,
                        text: evidence.clone(),
                    });
                }
                run.messages
                    .push(ChatMessage::assistant(text.trim().to_string()));
                match p.action {
                    Action::Finish => {
                        run.phase = Phase::Answering;
                        run.end = EndReason::Finished;
                    }
                    Action::Unparsable => {
                        run.phase = Phase::Answering;
                        run.end = EndReason::Unparsable;
                    }
                    Action::Query(query) => {
                        if !run.seen.insert(query_key(&query)) {
                            events.emit(AgentEvent::Repeated {
                                run: r,
                                step,
                                query,
                            });
                            run.phase = Phase::Answering;
                            run.end = EndReason::Repeated;
                        } else {
                            events.emit(AgentEvent::SubQuery {
                                run: r,
                                step,
                                query: query.clone(),
                                repaired,
                            });
                            pending.push(Pending {
                                run: r,
                                query,
                                repaired,
                            });
                        }
                    }
                }
            }
            self.retrieve(step, pending, runs, model_ms, events, cancel)?;
        }
        for run in runs.iter_mut().filter(|r| r.phase == Phase::Searching) {
            run.phase = Phase::Answering;
            run.end = EndReason::Budget;
        }
        Ok(())
    }

    fn rag(
        &self,
        questions: &[Question],
        samples: usize,
        runs: &mut [Run],
        events: &dyn EventSink<AgentEvent>,
    ) -> Result<()> {
        for (q, question) in questions.iter().enumerate() {
            let hits = self.retriever.retrieve(&question.text, self.settings.k)?;
            let turn = prompt::rag_turn(self.settings, &question.text, &hits);
            for (r, run) in runs.iter_mut().enumerate().skip(q * samples).take(samples) {
                events.emit(AgentEvent::Retrieved {
                    run: r,
                    step: 1,
                    passages: hits.clone(),
                });
                run.blocks.push(Block {
                    message: run.messages.len(),
                    hits: hits.clone(),
                    rag_question: Some(question.text.clone()),
                    detail: Detail::Full,
                });
                run.messages.push(ChatMessage::user(turn.clone()));
                run.steps.push(Step {
                    query: question.text.clone(),
                    passages: hits.clone(),
                    evidence: None,
                    repaired: false,
                    rerank: None,
                });
                run.phase = Phase::Answering;
            }
        }
        Ok(())
    }

    fn direct(&self, questions: &[Question], runs: &mut [Run]) -> Result<()> {
        for run in runs.iter_mut() {
            let turn = prompt::direct_turn(self.settings, &questions[run.question].text);
            run.messages.push(ChatMessage::user(turn));
            run.phase = Phase::Answering;
        }
        Ok(())
    }

    /// Asks every run still answering for its final answer, in one call.
    fn final_answers(
        &self,
        questions: &[Question],
        runs: &mut [Run],
        method: Method,
        model_ms: &mut f64,
        events: &dyn EventSink<AgentEvent>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let owners: Vec<usize> = (0..runs.len())
            .filter(|&r| runs[r].phase == Phase::Answering)
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        if method == Method::Exsearch {
            for &r in &owners {
                let request =
                    prompt::final_request(self.settings, &questions[runs[r].question].text);
                runs[r].messages.push(ChatMessage::user(request));
            }
        }
        // The answer must fit too: every block may be shortened now, and a
        // run that still does not fit fails alone.
        let mut owners = owners;
        if let Some(context) = self.generator.context_tokens() {
            let reply = self.settings.answer_tokens;
            let mut fitting = Vec::with_capacity(owners.len());
            for r in owners {
                match self.fit(&mut runs[r], reply, context, false)? {
                    Ok(()) => fitting.push(r),
                    Err(needed) => {
                        let e = Arc::new(Error::ContextFull { needed, context });
                        fail(r, &mut runs[r], e, events);
                    }
                }
            }
            owners = fitting;
            if owners.is_empty() {
                return Ok(());
            }
        }
        let prompts: Vec<Prompt> = owners
            .iter()
            .map(|&r| Prompt::new(runs[r].messages.clone()))
            .collect();
        let on_delta = |p: usize, _s: usize, text: &str| {
            events.emit(AgentEvent::AnswerDelta {
                run: owners[p],
                text: text.to_string(),
            })
        };
        let params = self.settings.answer_sampling();
        let texts = self.call(
            &prompts, 1, &params, &owners, runs, model_ms, &on_delta, events, cancel,
        )?;
        for (&r, g) in owners.iter().zip(texts) {
            let Some(g) = g else { continue };
            let run = &mut runs[r];
            run.answer = g.text.trim().to_string();
            run.messages
                .push(ChatMessage::assistant(run.answer.clone()));
            run.phase = Phase::Done;
        }
        Ok(())
    }
}
