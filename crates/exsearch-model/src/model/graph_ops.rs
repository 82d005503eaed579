//! Nodes of the training graph for the CPU, with candle's arithmetic:
//! attention from `q`, `k`, `v` ([`attention_op`]) and dropout
//! ([`dropout`]).
//!
//! Written as candle's ops, these kept `T x T` tensors (attention) or a
//! mask (dropout) for the backward pass, and candle's backward pass
//! allocated, zeroed and added dozens more. Each is one custom op here that
//! keeps its inputs and computes what its backward pass needs again. The
//! attention's values and gradients equal candle's composed ops' to the
//! bit, so training takes the same path it did with them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::cpu_ops::{
    candle_sum, f32_slice, for_each_row, mask_row, softmax_inputs, softmax_rows, Dims4,
};
use crate::error::Result;

/// Attention in the training graph, `softmax(q k^T * scale + mask) v`, as
/// one node: `q` is `[b, kv_heads, rows, d]` (the query heads that share a
/// K/V head folded into the rows, row `r` being query position `r % t`),
/// `k` and `v` `[b, kv_heads, tk, d]`, `mask` `[b, 1, t, tk]`.
///
/// Written as candle's ops, the graph kept the scores and the
/// probabilities (two `T x T` tensors per head and layer: 2.3 GB for
/// SmolLM2 over 1,024 tokens), and candle's backward pass allocated and
/// zeroed about 25 more per head and layer. This node keeps `q`, `k`, `v`;
/// its backward pass computes the scores and the probabilities again. Its
/// arithmetic is candle's to the bit: the same matmuls on the same layouts
/// (candle's, so the same kernels and order), the softmax with candle's
/// arithmetic in one pass per row, and candle's backward arithmetic through
/// those ops ([`softmax_grad_rows`]). So values and gradients equal the
/// composed ops' (a test checks), and training follows the same path.
/// `None` (then the caller composes candle's ops) off the CPU, for other
/// dtypes, non-contiguous inputs, or a mask of another shape.
pub fn attention_op(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    mask: Option<&Tensor>,
    t: usize,
) -> Result<Option<Tensor>> {
    // Other ranks are for candle's ops, as other dtypes are.
    let (Ok((b, kv_heads, rows, _)), Ok((_, _, tk, _))) = (q.dims4(), k.dims4()) else {
        return Ok(None);
    };
    let Some((_, values)) = softmax_inputs((b, kv_heads, rows, tk), mask, t) else {
        return Ok(None);
    };
    let plain = |x: &&Tensor| x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous();
    if ![q, k, v].iter().all(plain) {
        return Ok(None);
    }
    let node = Attention { scale, values, t };
    Ok(Some(q.apply_op3(k, v, node)?))
}

/// The gradient of candle's `softmax(x * scale + mask)` with respect to
/// `x`, given the probabilities' gradient `g`: the values candle's backward
/// pass through its own ops gives, computed in one pass per row.
///
/// candle's pass runs about 25 `T x T` ops per head and layer, each
/// allocating and zeroing its output; each step below is one of them, per
/// element, in its order (`0.0 + v` is a gradient accumulated into candle's
/// zeros; it turns `-0.0` into `0.0`, so it is kept). The graph, from the
/// scores: `a = x * scale + 0` (affine), `s = a + mask`, `m = max(s)`,
/// `d = s - m`, `e = exp(d)`, `z = sum(e)`, `p = e / z`, and the loss
/// `sum(p * g)`.
fn softmax_grad_rows(
    x: &[f32],
    g: &[f32],
    shape: Dims4,
    scale: f32,
    mask_values: &[f32],
    t: usize,
) -> Vec<f32> {
    let tk = shape.3;
    let mut out = vec![0f32; x.len()];
    // Per thread: the exponentials and one row of gradients to sum.
    let init = || (vec![0f32; tk], vec![0f32; tk]);
    for_each_row(&mut out, tk, init, |(e, terms), r, row| {
        let (x, g) = (&x[r * tk..][..tk], &g[r * tk..][..tk]);
        let mask = mask_row(mask_values, shape, t, r);
        // `s`, the masked scores.
        for (j, o) in row.iter_mut().enumerate() {
            *o = x[j] * scale + 0.0;
            if let Some(m) = mask {
                *o += m[j];
            }
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for (e, &s) in e.iter_mut().zip(row.iter()) {
            *e = (s - max).exp();
        }
        let z = candle_sum(e);
        // The division's gradient for its denominator (`0 - g e / z^2` per
        // element), summed over the broadcast back to `z`.
        for ((term, &g), &e) in terms.iter_mut().zip(g).zip(e.iter()) {
            let gp = 0.0 + 1.0 * g;
            *term = 0.0 - (gp * e) / (z * z);
        }
        let gz = 0.0 + candle_sum(terms);
        // `e`'s gradient (the division's numerator, then the sum's
        // broadcast), through `exp`: `d`'s gradient, kept in `e`; and the
        // subtraction's gradient for `m`, summed back to it.
        for ((e, term), &g) in e.iter_mut().zip(terms.iter_mut()).zip(g) {
            let gp = 0.0 + 1.0 * g;
            let ge = (0.0 + gp / z) + gz;
            *e = 0.0 + ge * *e;
            *term = 0.0 - *e;
        }
        let gm = 0.0 + candle_sum(terms);
        // `s`'s gradient: the subtraction's, plus the max's where `s` is
        // the maximum; back through the mask's addition and the affine.
        for (o, &gd) in row.iter_mut().zip(e.iter()) {
            let at_max = if *o == max { 1.0f32 } else { 0.0 };
            let gs = (0.0 + gd) + at_max * gm;
            *o = 0.0 + ((0.0 + gs) * scale + 0.0);
        }
    });
    out
}

/// The graph node of [`attention_op`].
struct Attention {
    scale: f64,
    /// The mask's values, or none.
    values: Vec<f32>,
    t: usize,
}

impl Attention {
    /// The scores `q k^T` and the probabilities, as candle's ops compute
    /// them (`q` `[b, kv_heads, rows, d]`, `k` `[b, kv_heads, tk, d]`).
    fn probabilities(&self, q: &Tensor, k: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let raw = q.matmul(&k.t()?)?;
        let shape = raw.dims4()?;
        // candle's affine multiplies by the scale as an f32.
        let probs = f32_slice(&raw, |x| {
            softmax_rows::<true>(x, shape, self.scale as f32, &self.values, self.t)
        })
        .expect("a matmul's product is a contiguous f32 CPU tensor");
        let probs = Tensor::from_vec(probs, raw.shape(), raw.device())?;
        Ok((raw, probs))
    }
}

/// A custom op's input's values (contiguous f32), or an error naming `op`.
fn op_values<'a>(
    op: &str,
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<&'a [f32]> {
    let candle_core::CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 input expected");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: contiguous input expected");
    };
    Ok(&data[start..end])
}

/// A custom op's input as a tensor outside the graph (contiguous f32; a
/// copy).
pub(crate) fn op_input(
    op: &str,
    storage: &candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> candle_core::Result<Tensor> {
    let values = op_values(op, storage, layout)?;
    Tensor::from_slice(values, layout.shape(), &candle_core::Device::Cpu)
}

impl candle_core::CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        q: &candle_core::CpuStorage,
        q_layout: &candle_core::Layout,
        k: &candle_core::CpuStorage,
        k_layout: &candle_core::Layout,
        v: &candle_core::CpuStorage,
        v_layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        // Copies: `q`, `k` and `v` are small next to the scores.
        let (q, k, v) = (
            op_input(self.name(), q, q_layout)?,
            op_input(self.name(), k, k_layout)?,
            op_input(self.name(), v, v_layout)?,
        );
        let (_, probs) = self.probabilities(&q, &k)?;
        let out = probs.matmul(&v)?;
        let values = f32_slice(&out, <[f32]>::to_vec)
            .expect("a matmul's product is a contiguous f32 CPU tensor");
        Ok((candle_core::CpuStorage::F32(values), out.shape().clone()))
    }

    /// candle's backward pass through its ops: for `probs.matmul(v)`, the
    /// gradients `grad v^T` and `probs^T grad`; the softmax's; for
    /// `q.matmul(k^T)`, `grad_scores k` and `(q^T grad_scores)^T`.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let (raw, probs) = self.probabilities(&q, &k)?;
        let grad_probs = grad.matmul(&v.t()?)?;
        let grad_v = probs.t()?.matmul(grad)?;
        drop(probs);
        let shape = raw.dims4()?;
        let grad_scores = f32_slice(&raw, |x| {
            f32_slice(&grad_probs, |g| {
                softmax_grad_rows(x, g, shape, self.scale as f32, &self.values, self.t)
            })
        })
        .flatten()
        .expect("matmul products are contiguous f32 CPU tensors");
        drop(grad_probs);
        let grad_scores = Tensor::from_vec(grad_scores, raw.shape(), raw.device())?;
        let grad_q = grad_scores.matmul(&k)?;
        let grad_k = q.t()?.matmul(&grad_scores)?.t()?;
        Ok((Some(grad_q), Some(grad_k), Some(grad_v)))
    }
}

/// LoRA's dropout in a training graph: the probability, and where each
/// mask's seed comes from.
#[derive(Clone, Debug)]
pub struct TrainingDropout {
    pub p: f32,
    pub seeds: DropoutSeeds,
}

/// A stream of dropout seeds shared by the adapters of one training
/// decoder: each [`dropout`] call takes the next. The graph is built in
/// one order, so a stream started again from the same seed draws the same
/// masks; the trainer starts it from its run's seed and the step before
/// each batch, which makes a run repeatable and a resumed run draw the
/// masks an uninterrupted one would.
#[derive(Clone, Debug, Default)]
pub struct DropoutSeeds(Arc<AtomicU64>);

impl DropoutSeeds {
    /// Starts the stream again from a seed made of `keys` (a run's seed,
    /// its step, ...).
    pub fn restart(&self, keys: &[u64]) {
        let seed = keys.iter().fold(0, |seed, &key| splitmix64(seed ^ key));
        self.0.store(seed, Ordering::Relaxed);
    }

    /// The next mask's seed (splitmix64's sequence).
    pub fn next_seed(&self) -> u64 {
        splitmix64(self.0.fetch_add(GOLDEN_GAMMA, Ordering::Relaxed))
    }
}

/// splitmix64's increment.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's finaliser: a well-mixed 64-bit hash of `z`.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dropout on `x` while training: each value kept with probability `1 - p`
/// and scaled by `1 / (1 - p)` (candle's `dropout`: the same scale, as an
/// f32, and a product per value), in one pass. candle's draws an f32 per
/// value, compares, converts and multiplies in four ops and keeps the mask
/// for the backward pass; LoRA's dropout on every adapted projection's
/// input was a tenth of a SmolLM2 training step's main thread. This node
/// keeps `seed`: whether value `i` is kept is a hash of the seed and `i`,
/// so its backward pass draws the same mask again, and the same seed gives
/// the same mask. Off the CPU and for other dtypes, candle's `dropout`
/// (whose masks come from the OS, not from `seed`).
pub fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        let message = format!("dropout probability {p} is not in [0, 1)");
        return Err(crate::error::Error::InvalidOption(message));
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() == 0 {
        return Ok(candle_nn::ops::dropout(x, p)?);
    }
    let node = Dropout {
        threshold: (p as f64 * 2f64.powi(32)) as u64,
        scale: (1.0 / (1.0 - p as f64)) as f32,
        seed,
    };
    Ok(x.contiguous()?.apply_op1(node)?)
}

/// The graph node of [`dropout`].
struct Dropout {
    /// Value `i` is kept when the high 32 bits of its hash are at least this.
    threshold: u64,
    scale: f32,
    seed: u64,
}

impl Dropout {
    /// `x` times the mask: `x[i] * scale` where value `i` is kept, `x[i] * 0`
    /// elsewhere (as candle's product with its mask).
    fn masked(&self, x: &[f32], width: usize) -> Vec<f32> {
        let mut out = vec![0f32; x.len()];
        for_each_row(
            &mut out,
            width,
            || (),
            |_, r, row| {
                let first = (r * width) as u64;
                for (j, (o, &x)) in row.iter_mut().zip(&x[r * width..]).enumerate() {
                    // The seed's splitmix64 sequence at the value's index.
                    let index = first + j as u64;
                    let z = splitmix64(self.seed.wrapping_add(index.wrapping_mul(GOLDEN_GAMMA)));
                    let keep = if z >> 32 >= self.threshold {
                        self.scale
                    } else {
                        0.0
                    };
                    *o = x * keep;
                }
            },
        );
        out
    }
}

impl candle_core::CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let values = op_values(self.name(), storage, layout)?;
        let width = layout.dims().last().copied().unwrap_or(1).max(1);
        let out = self.masked(values, width);
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _out: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let width = x.dims().last().copied().unwrap_or(1).max(1);
        let out = f32_slice(&grad, |g| self.masked(g, width)).ok_or_else(|| {
            candle_core::Error::Msg("dropout: an f32 CPU gradient expected".into())
        })?;
        Ok(Some(Tensor::from_vec(out, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::model::cpu_ops::tests::{candle_softmax, padded_causal_mask};

    #[test]
    fn the_attention_op_is_candles_attention_to_the_bit_forward_and_backward() {
        let dev = Device::Cpu;
        // Three query heads per K/V head, folded into the rows.
        let (b, kv_heads, groups, t, d) = (2, 2, 3, 4, 8);
        let tk = 37;
        let mask = padded_causal_mask(b, t, tk);
        let randn = |shape: (usize, usize, usize, usize)| {
            Tensor::randn(0f32, 1.0, shape, &dev).expect("randn")
        };
        let (q, k, v) = (
            randn((b, kv_heads, groups * t, d)),
            randn((b, kv_heads, tk, d)),
            randn((b, kv_heads, tk, d)),
        );
        // Whole numbers: scores whose row maximum is reached more than once.
        let whole = |x: &Tensor| (x * 2.0).and_then(|x| x.round()).expect("round");
        // A loss that weighs every output differently.
        let weights = randn((b, kv_heads, groups * t, d));
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1()).expect("values");
            v.into_iter().map(f32::to_bits).collect()
        };
        let run = |(q, k, v): (&Tensor, &Tensor, &Tensor), mask: Option<&Tensor>, op: bool| {
            let vars = [q, k, v].map(|x| candle_core::Var::from_tensor(x).expect("var"));
            let [q, k, v] = vars.each_ref().map(|x| x.as_tensor());
            let out = match op {
                true => attention_op(q, k, v, 0.3, mask, t)
                    .expect("op")
                    .expect("applies"),
                false => {
                    let raw = q.matmul(&k.t().expect("t")).expect("scores");
                    let probs = candle_softmax(&raw, 0.3, mask, t).expect("candle's");
                    probs.matmul(v).expect("out")
                }
            };
            let loss = (&out * &weights).and_then(|l| l.sum_all()).expect("loss");
            let grads = loss.backward().expect("backward");
            let grad = |x: &Tensor| bits(grads.get(x).expect("a gradient"));
            (bits(&out), [grad(q), grad(k), grad(v)])
        };
        let (wq, wk) = (whole(&q), whole(&k));
        for (name, qkv, mask) in [
            ("masked", (&q, &k, &v), Some(&mask)),
            ("ties", (&wq, &wk, &v), Some(&mask)),
            ("unmasked", (&q, &k, &v), None),
        ] {
            let ((out, grads), (plain_out, plain_grads)) =
                (run(qkv, mask, true), run(qkv, mask, false));
            assert!(out == plain_out, "{name}: the outputs differ");
            for (which, (grad, plain)) in ["q", "k", "v"].iter().zip(grads.iter().zip(&plain_grads))
            {
                assert!(grad == plain, "{name}: the gradients of {which} differ");
                assert!(
                    grad.iter().any(|&x| f32::from_bits(x).abs() > 1e-3),
                    "{name}, {which}"
                );
            }
        }
        // Masked keys get no gradient: batch 1 masks its first two.
        let (_, [_, grad_k, _]) = run((&q, &k, &v), Some(&mask), true);
        let first = (b - 1) * kv_heads * tk * d;
        assert!(grad_k[first..first + 2 * d]
            .iter()
            .all(|&x| f32::from_bits(x) == 0.0));
    }

    #[test]
    fn dropout_keeps_values_with_their_probability_and_backpropagates_the_same_mask() {
        let dev = Device::Cpu;
        let x = Tensor::rand(1f32, 2f32, (64, 1000), &dev).expect("x");
        let var = candle_core::Var::from_tensor(&x).expect("var");
        let out = dropout(var.as_tensor(), 0.25, 7).expect("dropout");
        let values =
            |t: &Tensor| -> Vec<f32> { t.flatten_all().and_then(|t| t.to_vec1()).expect("values") };
        let (xs, outs) = (values(&x), values(&out));
        let scale = (1.0 / 0.75f64) as f32;
        let kept = outs.iter().filter(|&&o| o != 0.0).count() as f64 / outs.len() as f64;
        assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
        for (&x, &o) in xs.iter().zip(&outs) {
            assert!(o == 0.0 || o == x * scale, "{x} became {o}");
        }
        // The gradient of `sum(out)` is the mask: the scale where a value
        // was kept, zero where it was dropped.
        let grads = out.sum_all().and_then(|l| l.backward()).expect("backward");
        let grad = values(grads.get(var.as_tensor()).expect("a gradient"));
        for (&g, &o) in grad.iter().zip(&outs) {
            assert_eq!(g, if o == 0.0 { 0.0 } else { scale });
        }
        // The same seed draws the same mask, another seed another one; p = 0
        // keeps everything; p = 1 is refused.
        assert_eq!(values(&dropout(&x, 0.25, 7).expect("dropout")), outs);
        let other = values(&dropout(&x, 0.25, 8).expect("dropout"));
        assert!(other
            .iter()
            .zip(&outs)
            .any(|(a, o)| (*a == 0.0) != (*o == 0.0)));
        assert_eq!(values(&dropout(&x, 0.0, 7).expect("dropout")), xs);
        let err = dropout(&x, 1.0, 7).expect_err("p = 1").to_string();
        assert!(
            err.contains("dropout probability 1 is not in [0, 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_restarted_seed_stream_draws_the_same_seeds() {
        let seeds = DropoutSeeds::default();
        seeds.restart(&[3, 1]);
        let first: Vec<u64> = (0..4).map(|_| seeds.next_seed()).collect();
        assert_eq!(
            first.iter().collect::<std::collections::HashSet<_>>().len(),
            4
        );
        seeds.restart(&[3, 1]);
        assert_eq!((0..4).map(|_| seeds.next_seed()).collect::<Vec<_>>(), first);
        // A clone shares the stream: the adapters of one decoder draw in turn.
        let shared = seeds.clone();
        seeds.restart(&[3, 2]);
        let other = shared.next_seed();
        assert!(!first.contains(&other));
        seeds.restart(&[3, 2]);
        assert_eq!(seeds.next_seed(), other);
    }
}
