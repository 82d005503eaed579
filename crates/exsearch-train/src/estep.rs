//! The E-step: sample K trajectories per training question with the current
//! model, score the gold answer after each by teacher forcing, and weight
//! them (METHOD.md, section 2). The M-step learns from the weighted
//! trajectories with the model's own final answer replaced by the gold one.

use exsearch_agent::eval::{score_answer, QaItem};
use exsearch_agent::generator::Local;
use exsearch_agent::{Agent, AgentEvent, Method, Prompt, Question, Trajectory};
use exsearch_core::{CancelToken, Quiet};
use exsearch_model::{ChatMessage, ScorePair};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::examples::Example;
use crate::weights::{importance_weights, AnswerScore, WeightRule};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EStepOptions {
    /// Trajectories per question (K).
    pub samples: usize,
    pub rule: WeightRule,
    /// A trajectory with more steps than this without evidence is dropped
    /// (the reference code's filter).
    pub max_empty_evidence: usize,
    /// Questions run in lockstep.
    pub batch: usize,
}

impl Default for EStepOptions {
    fn default() -> Self {
        Self {
            samples: 4,
            rule: WeightRule::SelfNormalized,
            max_empty_evidence: 2,
            batch: 8,
        }
    }
}

/// One sampled trajectory and what the E-step made of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub trajectory: Trajectory,
    pub score: AnswerScore,
    pub weight: f64,
    /// EM of the model's own answer.
    pub em: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuestionSamples {
    pub id: String,
    pub answer: String,
    pub samples: Vec<Sample>,
    /// `log mean_k p(y | x, z_k)`; `None` when no sample could be scored.
    pub log_mean: Option<f64>,
    pub ess: Option<f64>,
}

/// What a round records about its E-step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EStepSummary {
    pub questions: usize,
    /// Questions with at least one usable sample.
    pub used: usize,
    /// Mean EM of all samples' own answers.
    pub sample_em: f64,
    /// Mean over used questions of `log mean_k p(y | x, z_k)`.
    pub bound: f64,
    /// Mean effective sample size.
    pub ess: f64,
    pub seconds: f64,
}

/// Runs the E-step over `items`. `on_progress(done, total)` after each batch.
pub fn e_step(
    agent: &Agent<'_>,
    model: &Local,
    items: &[QaItem],
    options: &EStepOptions,
    on_progress: &mut dyn FnMut(usize, usize),
    cancel: &CancelToken,
) -> Result<(Vec<QuestionSamples>, EStepSummary)> {
    let started = std::time::Instant::now();
    let k = options.samples.max(1);
    let codec = model.handle().codec().clone();
    let end_of_turn = codec.eos_ids().first().copied();
    let mut out = Vec::with_capacity(items.len());
    for batch in items.chunks(options.batch.max(1)) {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let questions: Vec<Question> = batch.iter().map(|i| Question::new(&i.question)).collect();
        let trajectories = agent.run(
            &questions,
            k,
            Method::Exsearch,
            &Quiet as &dyn exsearch_core::EventSink<AgentEvent>,
            cancel,
        )?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        // One scoring call for the whole batch: gold answer after each trajectory.
        // The gold answer is tokenized once per question, not once per sample.
        let mut pairs = Vec::with_capacity(trajectories.len());
        for (item, samples) in batch.iter().zip(trajectories.chunks(k)) {
            let mut target = codec.encode_rendered(gold(item))?;
            target.extend(end_of_turn);
            for t in samples {
                pairs.push(ScorePair {
                    context: model.tokenize(&Prompt::new(answer_context(t).to_vec()))?,
                    target: target.clone(),
                });
            }
        }
        let logps = model.handle().score(pairs, cancel.clone())?;
        let mut trajectories = trajectories.into_iter();
        let mut logps = logps.into_iter();
        for item in batch {
            let mut samples: Vec<Sample> = Vec::with_capacity(k);
            for _ in 0..k {
                let (Some(trajectory), Some(lp)) = (trajectories.next(), logps.next()) else {
                    break;
                };
                let empty = trajectory
                    .steps
                    .iter()
                    .filter(|s| s.evidence.as_deref().is_none_or(|e| e.trim().is_empty()))
                    .count();
                let score = if empty > options.max_empty_evidence {
                    AnswerScore {
                        sum: f64::NAN,
                        tokens: lp.len(),
                    }
                } else {
                    AnswerScore {
                        sum: lp.iter().map(|&x| x as f64).sum(),
                        tokens: lp.len(),
                    }
                };
                let em = score_answer(&trajectory.answer, &item.answers).em;
                samples.push(Sample {
                    trajectory,
                    score,
                    weight: 0.0,
                    em,
                });
            }
            let scores: Vec<AnswerScore> = samples.iter().map(|s| s.score).collect();
            let weighted = importance_weights(&scores, options.rule);
            if let Some(w) = &weighted {
                for (s, &x) in samples.iter_mut().zip(&w.weights) {
                    s.weight = x;
                }
            }
            out.push(QuestionSamples {
                id: item.id.clone(),
                answer: gold(item).to_string(),
                samples,
                log_mean: weighted.as_ref().map(|w| w.log_mean),
                ess: weighted.as_ref().map(|w| w.ess),
            });
        }
        on_progress(out.len(), items.len());
    }
    let summary = summarize(&out, started.elapsed().as_secs_f64());
    Ok((out, summary))
}

/// The round's figures over all its questions.
pub fn summarize(questions: &[QuestionSamples], seconds: f64) -> EStepSummary {
    let used: Vec<&QuestionSamples> = questions.iter().filter(|q| q.log_mean.is_some()).collect();
    let all: Vec<&Sample> = questions.iter().flat_map(|q| &q.samples).collect();
    let mean = |xs: &mut dyn Iterator<Item = f64>, n: usize| {
        if n == 0 {
            0.0
        } else {
            xs.sum::<f64>() / n as f64
        }
    };
    EStepSummary {
        questions: questions.len(),
        used: used.len(),
        sample_em: mean(&mut all.iter().map(|s| s.em), all.len()),
        bound: mean(&mut used.iter().filter_map(|q| q.log_mean), used.len()),
        ess: mean(&mut used.iter().filter_map(|q| q.ess), used.len()),
        seconds,
    }
}

fn gold(item: &QaItem) -> &str {
    item.answers.first().map_or("", String::as_str)
}

/// The conversation up to the final-answer request: the transcript without
/// the model's own answer.
fn answer_context(t: &Trajectory) -> &[ChatMessage] {
    match t.transcript.last() {
        Some(m) if m.role == "assistant" => &t.transcript[..t.transcript.len() - 1],
        _ => &t.transcript,
    }
}

/// The M-step's examples: every weighted trajectory, ending in the gold
/// answer. Self-normalised weights are multiplied by K so that uniform
/// weights train like plain fine-tuning on every sample.
pub fn m_step_examples(questions: &[QuestionSamples], rule: WeightRule) -> Vec<Example> {
    let mut out = Vec::new();
    for q in questions {
        let scale = match rule {
            WeightRule::SelfNormalized => q.samples.len() as f64,
            WeightRule::Reference { .. } => 1.0,
        };
        for s in &q.samples {
            let weight = (s.weight * scale) as f32;
            if !(weight > 0.0 && weight.is_finite()) {
                continue;
            }
            let mut messages = answer_context(&s.trajectory).to_vec();
            messages.push(ChatMessage::assistant(q.answer.clone()));
            out.push(Example { messages, weight });
        }
    }
    out
}

/// A trajectory as a warm-up example (weight 1, its own answer).
pub fn example_of(trajectory: &Trajectory) -> Example {
    Example {
        messages: trajectory.transcript.clone(),
        weight: 1.0,
    }
}
