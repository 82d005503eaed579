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
    use candle_core::{Device, D};

    use super::*;
    use crate::model::max_abs_diff;

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
