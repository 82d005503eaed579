//! E-step importance weights over a question's K sampled trajectories.
//!
//! `s_k = log p(y | x, z_k)` is the teacher-forced log-probability of the
//! gold answer after trajectory k. The posterior `p(z | x, y)` is
//! approximated by self-normalised importance weights
//! `w_k = exp(s_k) / sum_j exp(s_j)`, computed with log-sum-exp so scores of
//! -2000 are as safe as scores of -2. The reference code's rule, an
//! unnormalised `c * exp(mean token log-prob)`, is offered as an option.

use serde::{Deserialize, Serialize};

/// The gold answer's score after one trajectory.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerScore {
    /// Sum of the answer tokens' log-probabilities.
    pub sum: f64,
    /// Number of answer tokens.
    pub tokens: usize,
}

impl AnswerScore {
    fn usable(&self) -> bool {
        self.tokens > 0 && self.sum.is_finite()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum WeightRule {
    /// `exp(s_k) / sum_j exp(s_j)` (the paper's estimator).
    #[default]
    SelfNormalized,
    /// `c * exp(s_k / tokens_k)` (the reference code; c = 4 there).
    Reference { c: f64 },
}

/// The weights of one question's samples and what the round records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    /// One per sample; 0 for samples that cannot be scored (NaN, no tokens).
    pub weights: Vec<f64>,
    /// `log mean_k p(y | x, z_k)` over the usable samples: this question's
    /// term of the bound the EM rounds raise.
    pub log_mean: f64,
    /// Effective sample size of the normalised weights, `1 / sum_k w_k^2`
    /// (between 1 and the number of usable samples).
    pub ess: f64,
}

/// Weights for one question's samples; `None` when no sample is usable.
pub fn importance_weights(scores: &[AnswerScore], rule: WeightRule) -> Option<Weighted> {
    let usable: Vec<usize> = (0..scores.len()).filter(|&k| scores[k].usable()).collect();
    if usable.is_empty() {
        return None;
    }
    let s: Vec<f64> = usable.iter().map(|&k| scores[k].sum).collect();
    let lse = log_sum_exp(&s);
    let normalized: Vec<f64> = s.iter().map(|x| (x - lse).exp()).collect();
    let ess = 1.0 / normalized.iter().map(|w| w * w).sum::<f64>();
    let mut weights = vec![0.0; scores.len()];
    for (slot, &k) in usable.iter().enumerate() {
        weights[k] = match rule {
            WeightRule::SelfNormalized => normalized[slot],
            WeightRule::Reference { c } => c * (scores[k].sum / scores[k].tokens as f64).exp(),
        };
    }
    Some(Weighted {
        weights,
        log_mean: lse - (usable.len() as f64).ln(),
        ess,
    })
}

/// `log sum_i exp(x_i)`, exact for any finite scores.
pub fn log_sum_exp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + x.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sum: f64, tokens: usize) -> AnswerScore {
        AnswerScore { sum, tokens }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_weights() {
        // exp(-1), exp(-2), exp(-3) normalised.
        let w = importance_weights(&[s(-1.0, 2), s(-2.0, 2), s(-3.0, 2)], WeightRule::default())
            .expect("usable");
        let z = (-1f64).exp() + (-2f64).exp() + (-3f64).exp();
        assert!(close(w.weights[0], (-1f64).exp() / z));
        assert!(close(w.weights[2], (-3f64).exp() / z));
        assert!(close(w.log_mean, (z / 3.0).ln()));
        let sq: f64 = w.weights.iter().map(|x| x * x).sum();
        assert!(close(w.ess, 1.0 / sq));
    }

    #[test]
    fn extreme_scores_do_not_underflow() {
        // exp(-2000) is 0 in f64; log-sum-exp keeps the ratio exp(-1) : 1.
        let w = importance_weights(&[s(-2000.0, 5), s(-2001.0, 5)], WeightRule::default())
            .expect("usable");
        let e = (-1f64).exp();
        assert!(close(w.weights[0], 1.0 / (1.0 + e)));
        assert!(close(w.weights[1], e / (1.0 + e)));
        assert!(close(w.log_mean, -2000.0 + ((1.0 + e) / 2.0).ln()));
        assert!(w.weights.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn one_sample_and_equal_scores() {
        let one = importance_weights(&[s(-7.5, 3)], WeightRule::default()).expect("usable");
        assert_eq!(one.weights, vec![1.0]);
        assert!(close(one.log_mean, -7.5));
        assert!(close(one.ess, 1.0));
        let equal = importance_weights(&[s(-4.0, 2); 4], WeightRule::default()).expect("usable");
        assert!(equal.weights.iter().all(|&x| close(x, 0.25)));
        assert!(close(equal.ess, 4.0));
        assert!(close(equal.log_mean, -4.0));
    }

    #[test]
    fn unusable_samples_get_no_weight() {
        let w = importance_weights(
            &[s(f64::NAN, 2), s(-1.0, 2), s(-1.0, 0), s(-1.0, 2)],
            WeightRule::default(),
        )
        .expect("usable");
        assert_eq!(w.weights[0], 0.0);
        assert_eq!(w.weights[2], 0.0);
        assert!(close(w.weights[1], 0.5) && close(w.weights[3], 0.5));
        assert!(importance_weights(&[s(f64::NAN, 1)], WeightRule::default()).is_none());
        assert!(importance_weights(&[], WeightRule::default()).is_none());
    }

    #[test]
    fn reference_rule_is_unnormalised_mean_token_probability() {
        let w = importance_weights(&[s(-2.0, 4), s(-1.0, 1)], WeightRule::Reference { c: 4.0 })
            .expect("usable");
        assert!(close(w.weights[0], 4.0 * (-0.5f64).exp()));
        assert!(close(w.weights[1], 4.0 * (-1f64).exp()));
    }
}
