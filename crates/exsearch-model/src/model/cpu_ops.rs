//! Fused CPU kernels for inference: the gated activation and one-token
//! attention over the KV cache.
//!
//! candle runs these as chains of small ops, each allocating its output, and
//! its matmul parallelises through rayon, whose threads then compete with
//! the spinning workers of candle's barrier pool on which the quantized
//! products run. Decoding a batch spends more time in that contention than
//! in the arithmetic. These kernels do the same arithmetic in one pass, on
//! the barrier pool, in f32. They apply to contiguous f32 CPU tensors with
//! the fused (inference) kernels; everything else takes candle's ops.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Tensor};

use crate::error::Result;

/// `e^-y` for `y >= 0` (`+inf` included, giving 0), to `2e-7 (1 + y)`
/// relative, without branches so that loops over it vectorize: the power of
/// two is built in the exponent bits, the rest by a polynomial.
#[inline(always)]
pub fn exp_neg(y: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // Below 2^-125 the result is 0 for every use here.
    let t = (-y * LOG2_E).max(-125.0);
    let n = (t + 0.5).floor();
    let f = t - n; // in [-0.5, 0.5]
                   // 2^f = e^(f ln 2), Taylor to degree 6 (error < 1.3e-7 on [-0.5, 0.5]).
    let x = f * std::f32::consts::LN_2;
    let p = 1.0
        + x * (1.0
            + x * (0.5
                + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if y > 86.0 {
        0.0
    } else {
        p * scale
    }
}

/// `f` of a contiguous f32 CPU tensor's values, or `None` for any other
/// tensor.
pub(crate) fn f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.is_contiguous() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let data = cpu.as_slice::<f32>().ok()?;
    Some(f(&data[layout.start_offset()..][..t.elem_count()]))
}

/// `silu(gate) * up`, for two tensors of one shape.
pub fn silu_mul(gate: &Tensor, up: &Tensor, fused: bool) -> Result<Tensor> {
    match fused.then(|| gated(gate, up, |x| x)).flatten() {
        Some(out) => out,
        None => Ok((gate.silu()? * up)?),
    }
}

/// `gelu(gate) * up` with GELU's tanh form (Gemma's MLP), for two tensors of
/// one shape. `0.5 x (1 + tanh(u))` is `x * sigmoid(2 u)`, so it runs on the
/// same vectorized exponential as SiLU instead of libm's `tanhf` per value.
pub fn gelu_tanh_mul(gate: &Tensor, up: &Tensor, fused: bool) -> Result<Tensor> {
    // 2 u = 2 sqrt(2 / pi) (x + 0.044715 x^3).
    const A: f32 = 1.595_769_2;
    const B: f32 = A * 0.044_715;
    match fused
        .then(|| gated(gate, up, |x| x * (A + B * x * x)))
        .flatten()
    {
        Some(out) => out,
        None => Ok((gate.gelu()? * up)?),
    }
}

/// `erf(x)` to 5e-7 in f32 (Abramowitz and Stegun 7.1.26, 1.5e-7 in exact
/// arithmetic), without branches on the value, on [`exp_neg`]: loops over
/// it vectorize, where libm's `erff` costs a tenth of a BERT encoder's time.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_72,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * exp_neg(ax * ax)).copysign(x)
}

/// GELU in its exact form, `x (1 + erf(x / sqrt 2)) / 2` (BERT's MLP), in
/// one vectorized pass over a contiguous f32 CPU tensor; candle's op
/// elsewhere.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    let out = f32_slice(x, |v| {
        v.iter()
            .map(|&v| 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2)))
            .collect::<Vec<f32>>()
    });
    match out {
        Some(out) => Ok(Tensor::from_vec(out, x.shape(), x.device())?),
        None => Ok(x.gelu_erf()?),
    }
}

/// `x * sigmoid(z(x)) * u` over two f32 tensors of one shape in one pass, or
/// `None` where the tensors are not contiguous f32 on the CPU.
#[inline(always)]
fn gated(gate: &Tensor, up: &Tensor, z: impl Fn(f32) -> f32) -> Option<Result<Tensor>> {
    if gate.shape() != up.shape() {
        return None;
    }
    let out = f32_slice(gate, |g| {
        f32_slice(up, |u| {
            g.iter()
                .zip(u)
                .map(|(&x, &u)| {
                    let z = z(x);
                    let e = exp_neg(z.abs());
                    let sigmoid = if z >= 0.0 {
                        1.0 / (1.0 + e)
                    } else {
                        e / (1.0 + e)
                    };
                    x * sigmoid * u
                })
                .collect::<Vec<f32>>()
        })
    })
    .flatten()?;
    Some(Tensor::from_vec(out, gate.shape(), gate.device()).map_err(Into::into))
}

/// `softmax(scores * scale + mask)` over the last dimension, in one pass per
/// row on the barrier pool, for prefill attention: `scores` is `[b, heads,
/// rows, tk]` (contiguous f32; row `r` of a head is query position `r % t`)
/// and `mask` an additive `[b, 1, t, tk]`. candle's three ops allocate twice
/// and exponentiate with libm's `expf` (9% of an ExSearch eval). A row whose
/// every column is masked gets zeros. `None` where the inputs are not
/// contiguous f32 CPU tensors of those shapes (then candle's ops run).
pub fn scaled_masked_softmax(
    scores: &Tensor,
    scale: f32,
    mask: Option<&Tensor>,
    t: usize,
) -> Result<Option<Tensor>> {
    let Some((shape, mask)) = softmax_inputs(scores.dims4()?, mask, t) else {
        return Ok(None);
    };
    let out = f32_slice(scores, |x| softmax_rows::<false>(x, shape, scale, &mask, t));
    match out {
        Some(out) => Ok(Some(Tensor::from_vec(out, shape, scores.device())?)),
        None => Ok(None),
    }
}

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
    let (b, kv_heads, rows, _) = q.dims4()?;
    let Some((_, values)) = softmax_inputs((b, kv_heads, rows, k.dim(2)?), mask, t) else {
        return Ok(None);
    };
    let plain = |x: &&Tensor| x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous();
    if ![q, k, v].iter().all(plain) {
        return Ok(None);
    }
    let node = Attention { scale, values, t };
    Ok(Some(q.apply_op3(k, v, node)?))
}

/// The scores' shape and the mask's values (empty without a mask), if the
/// fused softmax takes them.
fn softmax_inputs(scores: Dims4, mask: Option<&Tensor>, t: usize) -> Option<(Dims4, Vec<f32>)> {
    let (b, heads, rows, tk) = scores;
    if t == 0 || rows % t != 0 {
        return None;
    }
    let values = match mask {
        Some(m) if m.dims() == [b, 1, t, tk] => f32_slice(m, |m| m.to_vec())?,
        Some(_) => return None,
        None => Vec::new(),
    };
    Some(((b, heads, rows, tk), values))
}

/// `[b, heads, rows, tk]`.
type Dims4 = (usize, usize, usize, usize);

/// Calls `f(scratch, r, row)` for every row `r` of `out` (`width` values
/// each): rows in chunks of 16 (so that threads do not contend on the
/// counter) on candle's barrier pool, `scratch` made by `init` once per
/// thread.
fn for_each_row<S>(
    out: &mut [f32],
    width: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [f32]) + Sync,
) {
    if width == 0 {
        return;
    }
    let total_rows = out.len() / width;
    let dst = out.as_mut_ptr() as usize;
    let next = AtomicUsize::new(0);
    let work = |_| {
        let mut scratch = init();
        loop {
            let first = next.fetch_add(16, Ordering::Relaxed);
            if first >= total_rows {
                break;
            }
            for r in first..(first + 16).min(total_rows) {
                // SAFETY: each row is written by the one thread that took
                // it; `out` outlives the parallel region.
                let row = unsafe {
                    std::slice::from_raw_parts_mut((dst as *mut f32).add(r * width), width)
                };
                f(&mut scratch, r, row);
            }
        }
    };
    if total_rows > 16 {
        candle_core::utils::barrier_pool().execute(work);
    } else {
        work(0);
    }
}

/// The mask's row for row `r` of `[b, heads, rows, tk]` scores (the mask's
/// values being `[b, t, tk]`), or none without a mask.
fn mask_row(
    mask_values: &[f32],
    (_, heads, rows, tk): Dims4,
    t: usize,
    r: usize,
) -> Option<&[f32]> {
    let batch = r / (heads * rows);
    (!mask_values.is_empty()).then(|| &mask_values[(batch * t + r % rows % t) * tk..][..tk])
}

/// candle's sum of a row (`sum_keepdim` over the last dimension).
fn candle_sum(row: &[f32]) -> f32 {
    let mut total = 0f32;
    // SAFETY: `row` holds `row.len()` values.
    unsafe {
        <f32 as candle_core::cpu::kernels::VecOps>::vec_reduce_sum(
            row.as_ptr(),
            &mut total,
            row.len(),
        )
    };
    total
}

/// The fused softmax of `x` (`[b, heads, rows, tk]` values) with the mask's
/// values (`[b, t, tk]`, or none).
///
/// `CANDLE`: candle's arithmetic (`exp` of the difference, candle's row sum,
/// a division) rather than ours (our exponential, our sum, a product by the
/// inverse).
fn softmax_rows<const CANDLE: bool>(
    x: &[f32],
    shape: Dims4,
    scale: f32,
    mask_values: &[f32],
    t: usize,
) -> Vec<f32> {
    let tk = shape.3;
    let mut out = vec![0f32; x.len()];
    for_each_row(
        &mut out,
        tk,
        || (),
        |_, r, row| {
            let src = &x[r * tk..][..tk];
            match mask_row(mask_values, shape, t, r) {
                None => row.iter_mut().zip(src).for_each(|(o, &s)| *o = s * scale),
                Some(m) => {
                    for ((o, &s), &m) in row.iter_mut().zip(src).zip(m) {
                        *o = s * scale + m;
                    }
                }
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if CANDLE {
                for v in row.iter_mut() {
                    *v = (*v - max).exp();
                }
                let total = candle_sum(row);
                row.iter_mut().for_each(|v| *v /= total);
                return;
            }
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                return;
            }
            // Separate passes, so each one vectorizes.
            for v in row.iter_mut() {
                *v = exp_neg(max - *v);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        },
    );
    out
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

/// Dropout on `x` while training: each value kept with probability `1 - p`
/// and scaled by `1 / (1 - p)` (candle's `dropout`: the same scale, as an
/// f32, and a product per value), in one pass. candle's draws an f32 per
/// value, compares, converts and multiplies in four ops and keeps the mask
/// for the backward pass; LoRA's dropout on every adapted projection's
/// input was a tenth of a SmolLM2 training step's main thread. This node
/// keeps a seed: whether value `i` is kept is a hash of the seed and `i`,
/// so its backward pass draws the same mask again. Off the CPU, for other
/// dtypes and non-contiguous tensors, candle's `dropout`.
pub fn dropout(x: &Tensor, p: f32) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        let message = format!("dropout probability {p} is not in [0, 1)");
        return Err(crate::error::Error::InvalidOption(message));
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 || !x.is_contiguous() || x.rank() == 0 {
        return Ok(candle_nn::ops::dropout(x, p)?);
    }
    let node = Dropout {
        threshold: (p as f64 * 2f64.powi(32)) as u64,
        scale: (1.0 / (1.0 - p as f64)) as f32,
        seed: rand::random(),
    };
    Ok(x.apply_op1(node)?)
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
                    // splitmix64's finaliser of the seed and the value's index.
                    let mut z = self
                        .seed
                        .wrapping_add((first + j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
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

/// The strides of a `[b, h, t, d]` view whose last dimension is contiguous.
fn strides4(t: &Tensor) -> Option<[usize; 3]> {
    match t.stride() {
        &[s0, s1, s2, 1] => Some([s0, s1, s2]),
        _ => None,
    }
}

/// Attention of one new token per row: `q` is `[b, hq, 1, d]` (contiguous),
/// `k` and `v` are `[b, hkv, tk, d]` views of the cache, `mask` an additive
/// `[b, 1, 1, tk]`. Returns `[b, 1, hq * d]`, or `None` where the fused
/// kernel does not apply (then candle's ops run).
pub fn decode_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
) -> Result<Option<Tensor>> {
    let (b, hq, t, d) = q.dims4()?;
    let (_, hkv, tk, _) = k.dims4()?;
    let on_cpu = q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu();
    if t != 1 || !on_cpu || k.dtype() != DType::F32 || v.dtype() != DType::F32 || hq % hkv != 0 {
        return Ok(None);
    }
    let (Some(ks), Some(vs)) = (strides4(k), strides4(v)) else {
        return Ok(None);
    };
    let mask = match mask {
        Some(m) => match f32_slice(&m.contiguous()?, <[f32]>::to_vec) {
            Some(m) if m.len() == b * tk => Some(m),
            _ => return Ok(None),
        },
        None => None,
    };
    let groups = hq / hkv;
    let (k_store, k_layout) = k.storage_and_layout();
    let (v_store, v_layout) = v.storage_and_layout();
    let (candle_core::Storage::Cpu(kc), candle_core::Storage::Cpu(vc)) = (&*k_store, &*v_store)
    else {
        return Ok(None);
    };
    let (kd, vd) = (kc.as_slice::<f32>()?, vc.as_slice::<f32>()?);
    let (k0, v0) = (k_layout.start_offset(), v_layout.start_offset());
    let out = f32_slice(q, |qd| {
        let mut out = vec![0f32; b * hq * d];
        let dst = out.as_mut_ptr() as usize;
        // One unit per (row, kv head): its query heads read the same keys.
        let units = b * hkv;
        let next = AtomicUsize::new(0);
        let work = |_| {
            let mut scores = vec![0f32; tk];
            loop {
                let unit = next.fetch_add(1, Ordering::Relaxed);
                if unit >= units {
                    break;
                }
                let (row, h) = (unit / hkv, unit % hkv);
                let key = |j: usize| &kd[k0 + row * ks[0] + h * ks[1] + j * ks[2]..][..d];
                let value = |j: usize| &vd[v0 + row * vs[0] + h * vs[1] + j * vs[2]..][..d];
                for g in 0..groups {
                    let head = h * groups + g;
                    let qh = &qd[(row * hq + head) * d..][..d];
                    for (j, s) in scores.iter_mut().enumerate() {
                        *s = dot(qh, key(j)) * scale;
                    }
                    if let Some(m) = &mask {
                        for (s, m) in scores.iter_mut().zip(&m[row * tk..][..tk]) {
                            *s += m;
                        }
                    }
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    // Separate passes, so each one vectorizes.
                    for s in scores.iter_mut() {
                        *s = exp_neg(max - *s);
                    }
                    let total = sum(&scores);
                    // SAFETY: each (row, head) output is written by the one
                    // unit that owns it; `out` outlives the parallel region.
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(
                            (dst as *mut f32).add((row * hq + head) * d),
                            d,
                        )
                    };
                    for (j, &p) in scores.iter().enumerate() {
                        let p = p / total;
                        for (o, &x) in o.iter_mut().zip(value(j)) {
                            *o += p * x;
                        }
                    }
                }
            }
        };
        if units > 1 {
            candle_core::utils::barrier_pool().execute(work);
        } else {
            work(0);
        }
        out
    });
    drop((k_store, v_store));
    match out {
        Some(out) => Ok(Some(Tensor::from_vec(out, (b, 1, hq * d), q.device())?)),
        None => Ok(None),
    }
}

/// A sum in 16 independent lanes, so it vectorizes.
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = a.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for i in 0..16 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A dot product in 16 independent lanes, so it vectorizes.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_erf_matches_libm() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let exact = candle_core::cpu::erf::erf_f64(f64::from(x));
            worst = worst.max((f64::from(super::erf(x)) - exact).abs());
        }
        assert!(worst < 1e-6, "max |erf - exact| {worst}");
    }

    use candle_core::{Device, D};

    use super::*;
    use crate::model::max_abs_diff;

    /// candle's scale, mask and softmax: what [`attention_op`] computes
    /// between its two products.
    fn candle_softmax(
        scores: &Tensor,
        scale: f64,
        mask: Option<&Tensor>,
        t: usize,
    ) -> Result<Tensor> {
        let (b, heads, rows, tk) = scores.dims4()?;
        let mut x = (scores * scale)?;
        if let Some(mask) = mask {
            x = x
                .reshape((b, heads, rows / t, t, tk))?
                .broadcast_add(&mask.unsqueeze(2)?)?
                .reshape((b, heads, rows, tk))?;
        }
        Ok(candle_nn::ops::softmax(&x, candle_core::D::Minus1)?)
    }

    #[test]
    fn the_fast_exponential_tracks_libm_and_vanishes_far_below() {
        for i in 0..=200_000 {
            let y = i as f32 * 4e-4; // 0 ..= 80
            let (got, want) = (exp_neg(y), (-y).exp());
            // Rounding `y log2 e` to f32 costs relative error growing with y.
            let tolerance = 2e-7 * (1.0 + y) * want;
            assert!((got - want).abs() <= tolerance, "e^-{y}: {got} vs {want}");
        }
        assert_eq!(exp_neg(f32::INFINITY), 0.0);
        assert_eq!(exp_neg(100.0), 0.0);
        assert_eq!(exp_neg(0.0), 1.0);
    }

    #[test]
    fn the_fused_gates_equal_candles_silu_and_gelu_times_up() {
        let dev = Device::Cpu;
        let gate = Tensor::randn(0f32, 4.0, (3, 1, 100), &dev).expect("gate");
        let up = Tensor::randn(0f32, 1.0, (3, 1, 100), &dev).expect("up");
        let fused = silu_mul(&gate, &up, true).expect("fused");
        let plain = (gate.silu().expect("silu") * &up).expect("mul");
        assert!(max_abs_diff(&fused, &plain) < 1e-5);
        let fused = gelu_tanh_mul(&gate, &up, true).expect("fused");
        let plain = (gate.gelu().expect("gelu") * &up).expect("mul");
        assert!(max_abs_diff(&fused, &plain) < 1e-5);
        // Far out on both sides: 0 and x * up, no NaN.
        let far = Tensor::new(&[[-200f32, -12.0, 12.0, 200.0]], &dev).expect("far");
        let ones = far.ones_like().expect("ones");
        let got: Vec<f32> = gelu_tanh_mul(&far, &ones, true)
            .and_then(|t| Ok(t.flatten_all()?.to_vec1()?))
            .expect("values");
        assert_eq!(got, vec![0.0, 0.0, 12.0, 200.0]);
    }

    /// `[b, 1, t, tk]`: causal over the last `t` columns, and batch 1
    /// left-padded by 2 columns.
    fn padded_causal_mask(b: usize, t: usize, tk: usize) -> Tensor {
        let mut m = vec![0f32; b * t * tk];
        for batch in 0..b {
            for i in 0..t {
                for j in 0..tk {
                    let padded = batch == 1 && j < 2;
                    if j > tk - t + i || padded {
                        m[(batch * t + i) * tk + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Tensor::from_vec(m, (b, 1, t, tk), &Device::Cpu).expect("mask")
    }

    #[test]
    fn the_fused_softmax_equals_candles_scale_mask_and_softmax() {
        let dev = Device::Cpu;
        let (b, heads, groups, t, tk) = (2, 3, 2, 5, 9);
        let scores = Tensor::randn(0f32, 3.0, (b, heads, groups * t, tk), &dev).expect("scores");
        let mask = padded_causal_mask(b, t, tk);
        let fused = scaled_masked_softmax(&scores, 0.125, Some(&mask), t)
            .expect("softmax")
            .expect("applies");
        let plain = candle_softmax(&scores, 0.125, Some(&mask), t).expect("candle's softmax");
        assert!(max_abs_diff(&fused, &plain) < 1e-6);
        // Without a mask, and a fully masked row gives zeros, not NaN.
        let unmasked = scaled_masked_softmax(&scores, 1.0, None, t)
            .expect("softmax")
            .expect("applies");
        let plain = candle_nn::ops::softmax_last_dim(&scores).expect("softmax");
        assert!(max_abs_diff(&unmasked, &plain) < 1e-6);
        let all = Tensor::full(f32::NEG_INFINITY, (1, 1, 1, 4), &dev).expect("all");
        let zeros: Vec<f32> = scaled_masked_softmax(&all, 1.0, None, 1)
            .expect("softmax")
            .expect("applies")
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values");
        assert_eq!(zeros, vec![0.0; 4]);
    }

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
        let out = dropout(var.as_tensor(), 0.25).expect("dropout");
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
        // Each call draws its own mask; p = 0 keeps everything; p = 1 is refused.
        let again = values(&dropout(&x, 0.25).expect("dropout"));
        assert!(again
            .iter()
            .zip(&outs)
            .any(|(a, o)| (*a == 0.0) != (*o == 0.0)));
        assert_eq!(values(&dropout(&x, 0.0).expect("dropout")), xs);
        let err = dropout(&x, 1.0).expect_err("p = 1").to_string();
        assert!(
            err.contains("dropout probability 1 is not in [0, 1)"),
            "{err}"
        );
    }

    #[test]
    fn one_token_attention_equals_the_matmul_softmax_form_on_cache_views() {
        let dev = Device::Cpu;
        let (b, hq, hkv, tk, d, cap) = (3, 6, 2, 9, 16, 32);
        let q = Tensor::randn(0f32, 1.0, (b, hq, 1, d), &dev).expect("q");
        // Views of a larger cache, as `KvCache::append` returns them.
        let k = Tensor::randn(0f32, 1.0, (b, hkv, cap, d), &dev)
            .expect("k")
            .narrow(2, 0, tk)
            .expect("view");
        let v = Tensor::randn(0f32, 1.0, (b, hkv, cap, d), &dev)
            .expect("v")
            .narrow(2, 0, tk)
            .expect("view");
        // Row 1 is left-padded by 4 columns.
        let mut m = vec![0f32; b * tk];
        m[tk..tk + 4].fill(f32::NEG_INFINITY);
        let mask = Tensor::from_vec(m, (b, 1, 1, tk), &dev).expect("mask");
        let scale = 0.25;
        let fused = decode_attention(&q, &k, &v, Some(&mask), scale)
            .expect("attention")
            .expect("applies");
        let groups = hq / hkv;
        let qg = q.reshape((b, hkv, groups, d)).expect("q");
        let scores = (qg.matmul(&k.t().expect("t")).expect("qk") * scale as f64)
            .expect("scale")
            .broadcast_add(&mask)
            .expect("mask");
        let probs = candle_nn::ops::softmax(&scores, D::Minus1).expect("softmax");
        let plain = probs
            .matmul(&v.contiguous().expect("c"))
            .expect("pv")
            .reshape((b, 1, hq * d))
            .expect("shape");
        assert!(max_abs_diff(&fused, &plain) < 1e-5);
        // Prefill (several tokens) is left to candle.
        let q2 = Tensor::randn(0f32, 1.0, (b, hq, 2, d), &dev).expect("q2");
        assert!(decode_attention(&q2, &k, &v, None, scale)
            .expect("ok")
            .is_none());
    }
}
