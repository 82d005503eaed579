//! The E-step: sample K trajectories per training question with the current
//! model, score the gold answer after each by teacher forcing, and weight
//! them (METHOD.md, section 2). The M-step learns from the weighted
//! trajectories with the model's own final answer replaced by the gold one.

use exsearch_agent::eval::{score_answer, QaItem};
use exsearch_agent::generator::Local;
use exsearch_agent::{Agent, AgentEvent, EndReason, Method, Prompt, Question, Trajectory};
use exsearch_core::{CancelToken, Quiet};
use exsearch_model::{ChatMessage, ScorePair};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::importance::{importance_weights, AnswerScore, WeightRule, Weighted};
use crate::supervised::Example;

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
    /// A question none of whose samples gives the whole gold answer at
    /// least this probability is left out of the M-step: none of its
    /// searches found the answer, and its weights would only spread over
    /// failures and lucky guesses (a guess among a few dozen cities scores
    /// a few percent; an answer read from the right passage, most of the
    /// mass). 0 keeps every question.
    pub min_answer_prob: f64,
}

impl Default for EStepOptions {
    fn default() -> Self {
        Self {
            samples: crate::defaults::ESTEP_SAMPLES,
            rule: WeightRule::SelfNormalized,
            max_empty_evidence: 2,
            batch: crate::defaults::ESTEP_BATCH,
            min_answer_prob: 0.0,
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
    /// Samples whose model call failed (after the backend's retries):
    /// dropped like degenerate ones, the other samples and questions kept.
    #[serde(default)]
    pub failed: usize,
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
    let end_of_turn = codec.end_of_turn();
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
        // A failed sample is not scored (its context may be what failed).
        let mut pairs = Vec::with_capacity(trajectories.len());
        for (item, samples) in batch.iter().zip(trajectories.chunks(k)) {
            let mut target = codec.encode_rendered(gold(item))?;
            target.extend(end_of_turn);
            for t in samples.iter().filter(|t| t.end != EndReason::Failed) {
                pairs.push(ScorePair {
                    context: model.tokenize(&Prompt::new(answer_context(t).to_vec()))?,
                    target: target.clone(),
                });
            }
        }
        let mut logps = model.handle().score(pairs, cancel.clone())?.into_iter();
        let mut trajectories = trajectories.into_iter();
        for item in batch {
            let mut samples: Vec<Sample> = Vec::with_capacity(k);
            for _ in 0..k {
                let Some(trajectory) = trajectories.next() else {
                    break;
                };
                let failed = trajectory.end == EndReason::Failed;
                let lp = if failed {
                    Vec::new()
                } else {
                    let Some(lp) = logps.next() else { break };
                    lp
                };
                let empty = trajectory
                    .steps
                    .iter()
                    .filter(|s| s.evidence.as_deref().is_none_or(|e| e.trim().is_empty()))
                    .count();
                let score = if failed || empty > options.max_empty_evidence {
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
            let (weighted, trained) = weigh(&scores, options);
            for (s, &x) in samples.iter_mut().zip(&trained) {
                s.weight = x;
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

/// One question's weights: the bound term and ESS over its usable samples,
/// and the weights the M-step trains with (all 0 when no sample reaches
/// `min_answer_prob`).
pub fn weigh(scores: &[AnswerScore], options: &EStepOptions) -> (Option<Weighted>, Vec<f64>) {
    let weighted = importance_weights(scores, options.rule);
    let found = scores
        .iter()
        .any(|s| s.tokens > 0 && s.sum.exp() >= options.min_answer_prob);
    let trained = match &weighted {
        Some(w) if found => w.weights.clone(),
        _ => vec![0.0; scores.len()],
    };
    (weighted, trained)
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
        failed: all
            .iter()
            .filter(|s| s.trajectory.end == EndReason::Failed)
            .count(),
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

/// Weights below this (relative to a plain example's 1) add nothing an
/// optimizer step would notice; their trajectories are not trained on.
pub const NEGLIGIBLE_WEIGHT: f32 = 1e-4;

/// The M-step's examples: every weighted trajectory, ending in the gold
/// answer. Self-normalised weights are multiplied by K so that uniform
/// weights train like plain fine-tuning on every sample. Trajectories with a
/// negligible weight are left out (under the reference rule, those after
/// which the gold answer is all but impossible).
pub fn m_step_examples(questions: &[QuestionSamples], rule: WeightRule) -> Vec<Example> {
    let mut out = Vec::new();
    for q in questions {
        let scale = match rule {
            WeightRule::SelfNormalized => q.samples.len() as f64,
            WeightRule::Reference { .. } => 1.0,
        };
        for s in &q.samples {
            let weight = (s.weight * scale) as f32;
            if !(weight >= NEGLIGIBLE_WEIGHT && weight.is_finite()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn score(prob_per_token: f64, tokens: usize) -> AnswerScore {
        AnswerScore {
            sum: prob_per_token.ln() * tokens as f64,
            tokens,
        }
    }

    #[test]
    fn questions_whose_samples_all_miss_the_answer_are_left_out_of_the_m_step() {
        let options = EStepOptions {
            min_answer_prob: 0.5,
            ..EStepOptions::default()
        };
        // Every search failed: the bound still counts the question...
        let (w, trained) = weigh(&[score(0.01, 3), score(0.02, 3)], &options);
        let w = w.expect("usable");
        assert!(w.log_mean < -10.0);
        assert_eq!(w.weights.len(), 2);
        // ...but nothing is trained on.
        assert_eq!(trained, [0.0, 0.0]);
        // A guess right on each token 80% of the time is still a guess: 0.8^4 < 0.5.
        let (_, trained) = weigh(&[score(0.8, 4), score(0.7, 4)], &options);
        assert_eq!(trained, [0.0, 0.0]);
        // One sample found it: the weights as usual, nearly all on it.
        let (w, trained) = weigh(&[score(0.01, 3), score(0.95, 3)], &options);
        assert_eq!(trained, w.expect("usable").weights);
        assert!(trained[1] > 0.99);
        // 0 keeps every question.
        let (_, trained) = weigh(&[score(0.01, 3), score(0.02, 3)], &EStepOptions::default());
        assert!(trained.iter().all(|&x| x > 0.0));
    }
}
