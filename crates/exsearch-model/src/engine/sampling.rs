//! Choosing the next token from logits: greedy, or temperature with top-k and
//! top-p, from a per-sequence seeded generator (so a sequence draws the same
//! tokens whether it runs alone or in a batch).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 keeps every token.
    pub top_k: usize,
    pub seed: u64,
    pub max_tokens: usize,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 0,
            seed: 0,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_tokens,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::InvalidOption(format!(
                "temperature {} must be >= 0",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::InvalidOption(format!(
                "top_p {} must be in (0, 1]",
                self.top_p
            )));
        }
        if self.max_tokens == 0 {
            return Err(Error::InvalidOption("max_tokens must be at least 1".into()));
        }
        Ok(())
    }
}

/// The sampler of one sequence.
pub struct Sampler {
    rng: StdRng,
    /// Scratch for (token, weight) candidates, reused between steps.
    candidates: Vec<(u32, f32)>,
}

/// Candidates examined before falling back to a full sort for top-p.
const NUCLEUS_WINDOW: usize = 1024;

impl Sampler {
    /// A generator seeded from the request seed and the sequence's place, so
    /// results do not depend on batch composition.
    pub fn new(seed: u64, prompt: usize, sample: usize) -> Self {
        let mixed = seed
            ^ (prompt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (sample as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        Self {
            rng: StdRng::seed_from_u64(mixed),
            candidates: Vec::new(),
        }
    }

    pub fn sample(&mut self, logits: &[f32], p: &SamplingParams) -> u32 {
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / p.temperature;
        let c = &mut self.candidates;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let window = match (p.top_k, p.top_p < 1.0) {
            (0, true) => NUCLEUS_WINDOW,
            (0, false) => c.len(),
            (k, _) => k,
        };
        if window < c.len() {
            c.select_nth_unstable_by(window - 1, by_logit);
            c.truncate(window);
        }
        // Probabilities over the window, normalised by the full softmax mass
        // so a truncated window still measures top-p correctly.
        let max = c.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
        let total: f64 = logits
            .iter()
            .map(|&l| ((l * inv_t - max) as f64).exp())
            .sum();
        let mut kept_total = 0.0f64;
        for x in c.iter_mut() {
            x.1 = ((x.1 - max) as f64).exp() as f32;
            kept_total += x.1 as f64;
        }
        let mass = if p.top_k > 0 { kept_total } else { total };
        if p.top_p < 1.0 {
            c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            let cut = nucleus(c, p.top_p as f64 * mass);
            if cut == c.len() && p.top_k == 0 && window < logits.len() {
                // The nucleus is wider than the window: redo over everything.
                let full = SamplingParams {
                    top_k: logits.len(),
                    ..p.clone()
                };
                return self.sample_sorted(logits, &full);
            }
            c.truncate(cut);
        }
        self.draw()
    }

    fn sample_sorted(&mut self, logits: &[f32], p: &SamplingParams) -> u32 {
        let inv_t = 1.0 / p.temperature;
        let c = &mut self.candidates;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        c.truncate(p.top_k.max(1));
        let max = c[0].1;
        let mut total = 0.0f64;
        for x in c.iter_mut() {
            x.1 = (x.1 - max).exp();
            total += x.1 as f64;
        }
        let cut = nucleus(c, p.top_p as f64 * total);
        c.truncate(cut);
        self.draw()
    }

    fn draw(&mut self) -> u32 {
        let total: f64 = self.candidates.iter().map(|x| x.1 as f64).sum();
        let mut r = self.rng.random::<f64>() * total;
        for &(id, w) in &self.candidates {
            r -= w as f64;
            if r <= 0.0 {
                return id;
            }
        }
        self.candidates.last().map_or(0, |x| x.0)
    }
}

/// How many of the weight-sorted candidates it takes to reach `target` mass
/// (all of them when they never do).
fn nucleus(sorted: &[(u32, f32)], target: f64) -> usize {
    let mut acc = 0.0;
    for (i, x) in sorted.iter().enumerate() {
        acc += x.1 as f64;
        if acc >= target {
            return i + 1;
        }
    }
    sorted.len()
}

pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_one_is_greedy_and_top_p_excludes_the_tail() {
        let logits = [0.0, 3.0, 1.0, 2.9, -1.0];
        let mut s = Sampler::new(7, 0, 0);
        let k1 = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..Default::default()
        };
        assert!((0..50).all(|_| s.sample(&logits, &k1) == 1));
        // Tokens 1 and 3 hold about 86% of the mass: top_p 0.8 keeps only them.
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.8,
            ..Default::default()
        };
        let drawn: std::collections::HashSet<u32> =
            (0..400).map(|_| s.sample(&logits, &p)).collect();
        assert_eq!(drawn, [1, 3].into_iter().collect());
    }

    #[test]
    fn the_same_seed_and_place_draw_the_same_tokens() {
        let logits: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 113) as f32 / 30.0)
            .collect();
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            ..Default::default()
        };
        let draw = |prompt, sample| {
            let mut s = Sampler::new(42, prompt, sample);
            (0..20).map(|_| s.sample(&logits, &p)).collect::<Vec<_>>()
        };
        assert_eq!(draw(0, 1), draw(0, 1));
        assert_ne!(draw(0, 1), draw(0, 2));
    }
}
