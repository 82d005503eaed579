//! Choosing the next token from logits: greedy, or temperature with top-k and
//! top-p, from a per-sequence seeded generator (so a sequence draws the same
//! tokens whether it runs alone or in a batch).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::cpu_ops::exp_neg;

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
    /// Scratch reused between steps: (token, weight) candidates, and every
    /// token's weight and mass bin.
    candidates: Vec<(u32, f32)>,
    weights: Vec<f32>,
    bins: Vec<u16>,
    /// Four interleaved tables of `BINS + 1` masses.
    mass: Vec<f64>,
    boundary: Vec<(u32, f32)>,
    /// The mass of the last nucleus drawn from.
    nucleus_mass: f64,
}

/// Nucleus bins per unit of scaled logit below the maximum (a bin spans a
/// factor of e^(1/64) in probability); tokens further than 32 units below
/// the maximum (probability ratio < 1e-14) share the last bin.
const BINS_PER_UNIT: f32 = 64.0;
const BINS: usize = 32 * 64;

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
            weights: Vec::new(),
            bins: Vec::new(),
            mass: vec![0.0; 4 * (BINS + 1)],
            boundary: Vec::new(),
            nucleus_mass: 0.0,
        }
    }

    pub fn sample(&mut self, logits: &[f32], p: &SamplingParams) -> u32 {
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        let inv_t = 1.0 / p.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let c = &mut self.candidates;
        c.clear();
        if p.top_k > 0 {
            // Top-k first (k is small), then top-p within it by sorting.
            c.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
            if p.top_k < c.len() {
                c.select_nth_unstable_by(p.top_k - 1, |a, b| b.1.total_cmp(&a.1));
                c.truncate(p.top_k);
            }
            for x in c.iter_mut() {
                x.1 = ((x.1 - max) * inv_t).exp();
            }
            c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            let total: f64 = c.iter().map(|x| x.1 as f64).sum();
            let cut = nucleus(c, p.top_p as f64 * total);
            c.truncate(cut);
        } else if p.top_p < 1.0 {
            return self.nucleus_by_bins(logits, max, inv_t, p.top_p as f64);
        } else {
            c.extend(
                logits
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (i as u32, ((l - max) * inv_t).exp())),
            );
        }
        self.draw()
    }

    /// Draws from the exact top-p nucleus in linear time: bin every token by
    /// how far its scaled logit lies below the maximum, find the bin where
    /// the running mass crosses `top_p`, keep every token in the bins before
    /// it and sort only that one bin; then draw in one scan in token order.
    fn nucleus_by_bins(&mut self, logits: &[f32], max: f32, inv_t: f32, top_p: f64) -> u32 {
        let limit = self.bin_nucleus(logits, max, inv_t, top_p);
        let mut r = self.rng.random::<f64>() * self.nucleus_mass;
        let mut last = 0;
        for (i, (&w, &bin)) in self.weights.iter().zip(&self.bins).enumerate() {
            if bin <= limit {
                r -= w as f64;
                last = i as u32;
                if r <= 0.0 {
                    break;
                }
            }
        }
        last
    }

    /// Fills `weights` and `bins` for `logits` and returns the limit: the
    /// nucleus is every token whose `bins` entry is at most the limit. Bins
    /// are stored one up (1 ..= BINS) so that 0 marks the members of the
    /// boundary bin that make the nucleus. Sets `nucleus_mass`.
    fn bin_nucleus(&mut self, logits: &[f32], max: f32, inv_t: f32, top_p: f64) -> u16 {
        let n = logits.len();
        self.weights.resize(n, 0.0);
        self.bins.resize(n, 0);
        // One branch-free pass the compiler vectorizes.
        for ((w, bin), &l) in self.weights.iter_mut().zip(&mut self.bins).zip(logits) {
            let below = (max - l) * inv_t;
            *w = exp_neg(below);
            *bin = 1 + (below * BINS_PER_UNIT).min((BINS - 1) as f32) as u16;
        }
        // Four interleaved tables, so a run of one bin is not one chain of
        // dependent additions.
        self.mass.iter_mut().for_each(|m| *m = 0.0);
        for (w4, b4) in self.weights.chunks(4).zip(self.bins.chunks(4)) {
            for (lane, (&w, &bin)) in w4.iter().zip(b4).enumerate() {
                self.mass[lane * (BINS + 1) + bin as usize] += w as f64;
            }
        }
        let mass =
            |bin: usize| -> f64 { (0..4).map(|lane| self.mass[lane * (BINS + 1) + bin]).sum() };
        let total: f64 = (1..=BINS).map(mass).sum();
        let target = top_p * total;
        let (mut acc, mut cut) = (0.0, BINS);
        for bin in 1..=BINS {
            let m = mass(bin);
            if acc + m >= target {
                cut = bin;
                break;
            }
            acc += m;
        }
        let cut = cut as u16;
        let boundary = &mut self.boundary;
        boundary.clear();
        boundary.extend(
            self.bins
                .iter()
                .zip(&self.weights)
                .enumerate()
                .filter(|(_, (&bin, _))| bin == cut)
                .map(|(i, (_, &w))| (i as u32, w)),
        );
        boundary.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let take = nucleus(boundary, target - acc);
        for &(id, w) in &boundary[..take] {
            self.bins[id as usize] = 0;
            acc += w as f64;
        }
        self.nucleus_mass = acc;
        cut - 1
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

    #[cfg(test)]
    fn nucleus_ids(&mut self, logits: &[f32], p: &SamplingParams) -> Vec<u32> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let limit = self.bin_nucleus(logits, max, 1.0 / p.temperature, p.top_p as f64);
        (0..logits.len() as u32)
            .filter(|&i| self.bins[i as usize] <= limit)
            .collect()
    }
}

/// The next token of each row, `samplers[i]` drawing from row `i` of
/// `logits` (`samplers.len()` rows of equal length). Rows are sampled on all
/// cores; each sequence has its own generator, so a draw does not depend on
/// the thread that makes it.
pub fn sample_rows(samplers: Vec<&mut Sampler>, logits: &[f32], p: &SamplingParams) -> Vec<u32> {
    let vocab = logits.len().checked_div(samplers.len()).unwrap_or(0);
    let logits: Vec<&[f32]> = logits.chunks_exact(vocab.max(1)).collect();
    use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
    use std::sync::Mutex;
    if samplers.len() <= 1 || p.temperature == 0.0 {
        return samplers
            .into_iter()
            .zip(logits)
            .map(|(s, l)| s.sample(l, p))
            .collect();
    }
    let cells: Vec<Mutex<&mut Sampler>> = samplers.into_iter().map(Mutex::new).collect();
    let tokens: Vec<AtomicU32> = cells.iter().map(|_| AtomicU32::new(0)).collect();
    let next = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(cell) = cells.get(i) else {
            break;
        };
        // Each cell is taken by one thread only: the lock never waits.
        let mut sampler = cell.lock().unwrap_or_else(|e| e.into_inner());
        tokens[i].store(sampler.sample(logits[i], p), Ordering::Relaxed);
    });
    tokens.into_iter().map(AtomicU32::into_inner).collect()
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
    fn the_binned_nucleus_is_the_sorted_nucleus() {
        let mut rng = StdRng::seed_from_u64(3);
        for top_p in [0.5f32, 0.9, 0.99] {
            let logits: Vec<f32> = (0..50_000).map(|_| rng.random::<f32>() * 12.0).collect();
            let p = SamplingParams {
                temperature: 0.7,
                top_p,
                ..Default::default()
            };
            let mut sorted: Vec<(u32, f32)> = logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, ((l - 12.0) / 0.7).exp()))
                .collect();
            sorted.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            let total: f64 = sorted.iter().map(|x| x.1 as f64).sum();
            let cut = nucleus(&sorted, top_p as f64 * total);
            let mut want: Vec<u32> = sorted[..cut].iter().map(|x| x.0).collect();
            want.sort_unstable();
            let got = Sampler::new(0, 0, 0).nucleus_ids(&logits, &p);
            // Float sums in a different order may move the last token.
            assert!(
                got.len().abs_diff(want.len()) <= 1,
                "top_p {top_p}: {} vs {}",
                got.len(),
                want.len()
            );
            let common = got
                .iter()
                .filter(|id| want.binary_search(id).is_ok())
                .count();
            assert!(common + 1 >= want.len());
        }
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
