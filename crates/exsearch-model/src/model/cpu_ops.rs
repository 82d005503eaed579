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
    let inputs = scores
        .dims4()
        .ok()
        .and_then(|dims| softmax_inputs(dims, mask, t));
    let Some((shape, mask)) = inputs else {
        return Ok(None);
    };
    let out = f32_slice(scores, |x| softmax_rows::<false>(x, shape, scale, &mask, t));
    match out {
        Some(out) => Ok(Some(Tensor::from_vec(out, shape, scores.device())?)),
        None => Ok(None),
    }
}

/// The scores' shape and the mask's values (empty without a mask), if the
/// fused softmax takes them.
pub(super) fn softmax_inputs(
    scores: Dims4,
    mask: Option<&Tensor>,
    t: usize,
) -> Option<(Dims4, Vec<f32>)> {
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
pub(super) type Dims4 = (usize, usize, usize, usize);

/// Calls `f(scratch, r, row)` for every row `r` of `out` (`width` values
/// each): rows in chunks of 16 (so that threads do not contend on the
/// counter) on candle's barrier pool, `scratch` made by `init` once per
/// thread.
pub(super) fn for_each_row<S>(
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
pub(super) fn mask_row(
    mask_values: &[f32],
    (_, heads, rows, tk): Dims4,
    t: usize,
    r: usize,
) -> Option<&[f32]> {
    let batch = r / (heads * rows);
    (!mask_values.is_empty()).then(|| &mask_values[(batch * t + r % rows % t) * tk..][..tk])
}

/// candle's sum of a row (`sum_keepdim` over the last dimension).
pub(super) fn candle_sum(row: &[f32]) -> f32 {
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
pub(super) fn softmax_rows<const CANDLE: bool>(
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
pub(super) mod tests {
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

    /// candle's scale, mask and softmax: what `graph_ops::attention_op` computes
    /// between its two products.
    pub(in crate::model) fn candle_softmax(
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
    pub(in crate::model) fn padded_causal_mask(b: usize, t: usize, tk: usize) -> Tensor {
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
