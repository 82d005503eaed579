//! Attention over blocks of query rows, as one op that never holds a
//! `T x T` tensor: the training graph's attention, and prefill's.
//!
//! Written as candle ops, attention over `T` tokens keeps the raw scores,
//! the scaled scores, the masked scores, the softmax's intermediates and
//! the probabilities of every layer for the backward pass: five `T x T`
//! tensors per head and layer, each freshly allocated (the kernel zeroing
//! those pages was half of a warm-up step's time on SmolLM2) and freed.
//! This op works through blocks of query rows instead: a block's scores are
//! computed, softmaxed and multiplied by `V` in a scratch buffer, and only
//! the output is kept. The backward pass recomputes each block's
//! probabilities from `Q` and `K` (as FlashAttention does) and forms the
//! three gradients with matrix products on the same blocks. Columns that
//! the mask hides from a whole block (the causal future, keys beyond a
//! sliding window) are skipped.
//!
//! The same forward pass can run without the graph, over the KV cache's
//! views (each head's rows contiguous, heads `capacity` rows apart): no
//! scores tensor is allocated, and the products run on candle's barrier
//! pool, one block per thread, where candle's matmul would hand them to
//! rayon. The decoder does not use that for prefill yet (see
//! ARCHITECTURE.md).
//!
//! Applies to f32 CPU tensors (`q` contiguous; `k` and `v` with contiguous
//! rows); `Decoder` falls back to candle's ops for anything else.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use crate::error::Result;
use crate::model::cpu_ops::{exp_neg, f32_slice};

/// Query rows per block: a block's scores take `ROWS x tk` floats.
const ROWS: usize = 64;

/// `softmax(scale * q k^T + mask) v` with grouped-query heads folded into
/// rows: `q` is `[b, hkv, groups * t, d]` (row `g * t + i` is query `i` of
/// the group's `g`-th head), `k` and `v` are `[b, hkv, tk, d]`, `mask` an
/// additive `[b, 1, t, tk]` (none: every column visible). Returns `[b, hkv,
/// groups * t, d]`, or `None` where the op does not apply (not f32 CPU
/// tensors of those shapes and layouts). With `grad`, the result is a node
/// of the autograd graph (its inputs then must be contiguous); without, a
/// plain tensor.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f32,
    t: usize,
    grad: bool,
) -> Result<Option<Tensor>> {
    let on_cpu = q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu();
    let f32s = [q, k, v]
        .iter()
        .all(|x| x.dtype() == candle_core::DType::F32);
    let (Ok((b, hkv, rows, d)), Ok((kb, kh, tk, kd))) = (q.dims4(), k.dims4()) else {
        return Ok(None);
    };
    if !on_cpu || !f32s || t == 0 || rows % t != 0 || (kb, kh, kd) != (b, hkv, d) {
        return Ok(None);
    }
    let layouts_fit = match grad {
        true => [q, k, v].iter().all(|x| x.is_contiguous()),
        false => {
            q.is_contiguous()
                && head_stride(k, hkv, d).is_some()
                && head_stride(k, hkv, d) == head_stride(v, hkv, d)
        }
    };
    if v.dims() != k.dims() || !layouts_fit {
        return Ok(None);
    }
    let (values, spans) = match mask {
        None => (None, vec![(0, tk); b * t]),
        Some(m) => {
            if m.dims() != [b, 1, t, tk] || m.dtype() != candle_core::DType::F32 {
                return Ok(None);
            }
            match f32_slice(&m.contiguous()?, |m| (m.to_vec(), visible_spans(m, tk))) {
                Some((values, spans)) => (Some(values), spans),
                None => return Ok(None),
            }
        }
    };
    let op = Attention {
        shape: Dims {
            b,
            hkv,
            groups: rows / t,
            t,
            tk,
            d,
        },
        scale,
        mask: values,
        spans,
    };
    Ok(Some(match grad {
        true => q.apply_op3(k, v, op)?,
        false => q.apply_op3_no_bwd(k, v, &op)?,
    }))
}

/// The elements between consecutive heads of a `[b, h, rows, d]` view whose
/// rows are contiguous and whose heads are evenly spaced (a KV cache's
/// narrowed buffer, or a contiguous tensor).
fn head_stride(x: &Tensor, heads: usize, d: usize) -> Option<usize> {
    match *x.stride() {
        [s0, s1, s2, 1] if s2 == d && s0 == heads * s1 => Some(s1),
        _ => None,
    }
}

/// For each mask row, the range of columns that are not `-inf`: `(start,
/// end)`, empty when the row hides everything.
fn visible_spans(mask: &[f32], tk: usize) -> Vec<(usize, usize)> {
    mask.chunks_exact(tk)
        .map(|row| {
            let start = row.iter().position(|&m| m > f32::NEG_INFINITY);
            match start {
                None => (0, 0),
                Some(s) => {
                    let end = tk
                        - row
                            .iter()
                            .rev()
                            .position(|&m| m > f32::NEG_INFINITY)
                            .unwrap_or(0);
                    (s, end)
                }
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    hkv: usize,
    groups: usize,
    t: usize,
    tk: usize,
    d: usize,
}

impl Dims {
    fn row_blocks(&self) -> usize {
        self.t.div_ceil(ROWS)
    }

    /// Work items: one per batch row, K/V head, grouped head and block of
    /// query rows.
    fn tasks(&self) -> usize {
        self.b * self.hkv * self.groups * self.row_blocks()
    }

    fn q_len(&self) -> usize {
        self.b * self.hkv * self.groups * self.t * self.d
    }

    fn kv_len(&self) -> usize {
        self.b * self.hkv * self.tk * self.d
    }
}

/// One block of query rows: where its rows and its K/V head start, which
/// mask rows apply, and the columns any of its rows can see.
struct Block {
    batch: usize,
    first: usize,
    rows: usize,
    q_offset: usize,
    kv_offset: usize,
    cols: (usize, usize),
}

struct Attention {
    shape: Dims,
    scale: f32,
    mask: Option<Vec<f32>>,
    spans: Vec<(usize, usize)>,
}

impl Attention {
    /// Block `task`, with K/V heads `kv_stride` elements apart.
    fn block(&self, task: usize, kv_stride: usize) -> Block {
        let s = self.shape;
        let blocks = s.row_blocks();
        let rb = task % blocks;
        let head = task / blocks; // over b * hkv * groups
        let kv_head = head / s.groups; // over b * hkv
        let batch = kv_head / s.hkv;
        let first = rb * ROWS;
        let rows = ROWS.min(s.t - first);
        let spans = &self.spans[batch * s.t + first..][..rows];
        let start = spans
            .iter()
            .filter(|(a, b)| a < b)
            .map(|s| s.0)
            .min()
            .unwrap_or(0);
        let end = spans.iter().map(|s| s.1).max().unwrap_or(0).max(start);
        Block {
            batch,
            first,
            rows,
            q_offset: (head * s.t + first) * s.d,
            kv_offset: kv_head * kv_stride,
            cols: (start, end),
        }
    }

    /// The block's probabilities into `p` (`rows x n`, `n` its visible
    /// columns), from its queries `q` and the keys.
    fn probabilities(&self, blk: &Block, q: &[f32], k: &[f32], p: &mut [f32]) {
        let s = self.shape;
        let (c0, c1) = blk.cols;
        let n = c1 - c0;
        // SAFETY: the pointers cover `rows x d`, `n x d` and `rows x n`
        // elements at the strides given.
        unsafe {
            product(
                (blk.rows, n, s.d),
                (p.as_mut_ptr(), n, false),
                Operand::rows(q.as_ptr().add(blk.q_offset), s.d),
                Operand::transposed(k.as_ptr().add(blk.kv_offset + c0 * s.d), s.d),
                self.scale,
            );
        }
        for (r, row) in p.chunks_exact_mut(n).enumerate() {
            if let Some(mask) = &self.mask {
                let m = &mask[(blk.batch * s.t + blk.first + r) * s.tk + c0..][..n];
                row.iter_mut().zip(m).for_each(|(x, &m)| *x += m);
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            for x in row.iter_mut() {
                *x = exp_neg(max - *x);
            }
            let inv = 1.0 / row.iter().sum::<f32>();
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }

    fn forward(&self, q: &[f32], k: &[f32], v: &[f32], kv_stride: usize) -> Vec<f32> {
        let s = self.shape;
        let mut out = vec![0f32; s.q_len()];
        let dst = SharedMut(out.as_mut_ptr());
        parallel(s.tasks(), |task| {
            let blk = self.block(task, kv_stride);
            let n = blk.cols.1 - blk.cols.0;
            if n == 0 {
                return; // every row hidden: zeros
            }
            let mut p = vec![0f32; blk.rows * n];
            self.probabilities(&blk, q, k, &mut p);
            // SAFETY: each block's output rows belong to its task alone.
            unsafe {
                product(
                    (blk.rows, s.d, n),
                    (dst.at(blk.q_offset), s.d, false),
                    Operand::rows(p.as_ptr(), n),
                    Operand::rows(v.as_ptr().add(blk.kv_offset + blk.cols.0 * s.d), s.d),
                    1.0,
                );
            }
        });
        out
    }

    /// Gradients of `q`, `k` and `v` given the output `o` and its gradient
    /// `go`. `dq` rows belong to one block each; `dk` and `dv` sum over every
    /// block that reads a key, so each thread sums into its own copy.
    fn backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        o: &[f32],
        go: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let s = self.shape;
        let mut dq = vec![0f32; s.q_len()];
        let dq_ptr = SharedMut(dq.as_mut_ptr());
        let threads = candle_core::utils::barrier_pool().n_workers() + 1;
        let partial: Vec<Mutex<Option<KvGrads>>> = (0..threads).map(|_| Mutex::new(None)).collect();
        parallel_by_thread(s.tasks(), |tid, task| {
            let blk = self.block(task, s.tk * s.d);
            let (c0, c1) = blk.cols;
            let n = c1 - c0;
            if n == 0 {
                return;
            }
            let rows = blk.rows;
            let mut p = vec![0f32; rows * n];
            self.probabilities(&blk, q, k, &mut p);
            // dP = dO V^T over the block's columns.
            let mut ds = vec![0f32; rows * n];
            let go_blk = &go[blk.q_offset..][..rows * s.d];
            let o_blk = &o[blk.q_offset..][..rows * s.d];
            let kv = blk.kv_offset + c0 * s.d;
            // SAFETY (all products below): each pointer covers the rows and
            // columns given at its strides; `dq`'s rows belong to this task.
            unsafe {
                product(
                    (rows, n, s.d),
                    (ds.as_mut_ptr(), n, false),
                    Operand::rows(go_blk.as_ptr(), s.d),
                    Operand::transposed(v.as_ptr().add(kv), s.d),
                    1.0,
                );
            }
            // dS = P (dP - rowsum(dO o O)), the softmax's backward pass.
            for r in 0..rows {
                let gr = &go_blk[r * s.d..][..s.d];
                let or = &o_blk[r * s.d..][..s.d];
                let dot: f32 = gr.iter().zip(or).map(|(a, b)| a * b).sum();
                let pr = &p[r * n..][..n];
                ds[r * n..][..n]
                    .iter_mut()
                    .zip(pr)
                    .for_each(|(x, &pv)| *x = pv * (*x - dot));
            }
            let mut slot = partial[tid].lock().expect("gradient slot");
            let (dk, dv) =
                slot.get_or_insert_with(|| (vec![0f32; s.kv_len()], vec![0f32; s.kv_len()]));
            unsafe {
                // dQ = scale dS K
                product(
                    (rows, s.d, n),
                    (dq_ptr.at(blk.q_offset), s.d, false),
                    Operand::rows(ds.as_ptr(), n),
                    Operand::rows(k.as_ptr().add(kv), s.d),
                    self.scale,
                );
                // dK += scale dS^T Q
                product(
                    (n, s.d, rows),
                    (dk.as_mut_ptr().add(kv), s.d, true),
                    Operand::transposed(ds.as_ptr(), n),
                    Operand::rows(q.as_ptr().add(blk.q_offset), s.d),
                    self.scale,
                );
                // dV += P^T dO
                product(
                    (n, s.d, rows),
                    (dv.as_mut_ptr().add(kv), s.d, true),
                    Operand::transposed(p.as_ptr(), n),
                    Operand::rows(go_blk.as_ptr(), s.d),
                    1.0,
                );
            }
        });
        let mut sums = partial
            .into_iter()
            .filter_map(|m| m.into_inner().ok().flatten());
        let (mut dk, mut dv) = sums
            .next()
            .unwrap_or_else(|| (vec![0f32; s.kv_len()], vec![0f32; s.kv_len()]));
        for (k2, v2) in sums {
            dk.iter_mut().zip(&k2).for_each(|(a, b)| *a += b);
            dv.iter_mut().zip(&v2).for_each(|(a, b)| *a += b);
        }
        (dq, dk, dv)
    }
}

/// A matrix operand of [`product`]: its first element and the strides, in
/// elements, between its rows and between its columns.
#[derive(Clone, Copy)]
struct Operand {
    ptr: *const f32,
    row: usize,
    col: usize,
}

impl Operand {
    /// A row-major matrix whose rows are `stride` apart.
    fn rows(ptr: *const f32, stride: usize) -> Self {
        Self {
            ptr,
            row: stride,
            col: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows are `stride` apart.
    fn transposed(ptr: *const f32, stride: usize) -> Self {
        Self {
            ptr,
            row: 1,
            col: stride,
        }
    }
}

/// `dst = beta lhs rhs` (or `dst += beta lhs rhs` when `accumulate`) on
/// this thread, for `(m, n, k)`: an `m x k` `lhs`, a `k x n` `rhs`, and a
/// row-major `m x n` `dst` whose rows are `dst.1` apart.
///
/// # Safety
/// Each operand covers its elements at its strides, and no other thread
/// touches `dst`'s.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_stride, accumulate): (*mut f32, usize, bool),
    lhs: Operand,
    rhs: Operand,
    beta: f32,
) {
    let alpha = if accumulate { 1.0 } else { 0.0 };
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_stride as isize,
        accumulate,
        lhs.ptr,
        lhs.col as isize,
        lhs.row as isize,
        rhs.ptr,
        rhs.col as isize,
        rhs.row as isize,
        alpha,
        beta,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

/// One thread's sums of the gradients of `k` and `v`.
type KvGrads = (Vec<f32>, Vec<f32>);

/// A pointer that worker threads write disjoint parts of.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every use writes a range no other task writes.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// # Safety
    /// `offset` is within the buffer, and the caller owns what it writes.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// `f(task)` for every task on candle's barrier pool, one task at a time
/// from a shared counter (blocks differ in width under a causal mask).
fn parallel(tasks: usize, f: impl Fn(usize) + Sync) {
    parallel_by_thread(tasks, |_, task| f(task));
}

fn parallel_by_thread(tasks: usize, f: impl Fn(usize, usize) + Sync) {
    let next = AtomicUsize::new(0);
    let work = |tid: usize| loop {
        let task = next.fetch_add(1, Ordering::Relaxed);
        if task >= tasks {
            break;
        }
        f(tid, task);
    };
    if tasks > 1 {
        candle_core::utils::barrier_pool().execute(work);
    } else {
        work(0);
    }
}

fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("blocked attention: queries must be contiguous"),
    }
}

/// A K or V view's data from its first element, and its head stride.
fn cpu_kv<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<(&'a [f32], usize)> {
    let data = s.as_slice::<f32>()?;
    match *l.stride() {
        [_, s1, _, 1] => Ok((&data[l.start_offset()..], s1)),
        _ => candle_core::bail!("blocked attention: keys and values need contiguous rows"),
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "exsearch-blocked-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = cpu_f32(s1, l1)?;
        let ((k, kv_stride), (v, _)) = (cpu_kv(s2, l2)?, cpu_kv(s3, l3)?);
        let out = self.forward(q, k, v, kv_stride);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let inputs = [q, k, v, res, &grad].map(|x| x.detach());
        let slices: Vec<Vec<f32>> = inputs
            .iter()
            .map(|x| x.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let (dq, dk, dv) =
            self.backward(&slices[0], &slices[1], &slices[2], &slices[3], &slices[4]);
        let device = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), device)?),
            Some(Tensor::from_vec(dk, k.shape(), device)?),
            Some(Tensor::from_vec(dv, v.shape(), device)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var, D};

    use super::*;
    use crate::model::kv_cache::{attention_mask, sliding_mask};

    type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// candle's ops, as the decoder runs them without this op.
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        scale: f64,
        t: usize,
    ) -> R<Tensor> {
        let (b, hkv, rows, _) = q.dims4()?;
        let tk = k.dim(2)?;
        let scores = (q.matmul(&k.t()?)? * scale)?
            .reshape((b, hkv, rows / t, t, tk))?
            .broadcast_add(&mask.unsqueeze(2)?)?
            .reshape((b, hkv, rows, tk))?;
        Ok(candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(v)?)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> R<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    /// Values and all three gradients equal candle's, over two batch rows
    /// (one left-padded), two query heads per K/V head, more query rows than
    /// one block, a causal mask and a sliding window.
    #[test]
    fn matches_candles_ops_and_their_gradients() -> R<()> {
        let dev = Device::Cpu;
        let (b, hkv, groups, t, d) = (2, 2, 2, 150, 16);
        let causal = attention_mask(&[0, 7], 0, t, candle_core::DType::F32, &dev)?;
        let window = sliding_mask(Some(&causal), b, 0, t, 40, candle_core::DType::F32, &dev)?;
        for mask in [causal, window] {
            let var = |rows: usize| Var::randn(0f32, 1.0, (b, hkv, rows, d), &dev);
            let (q, k, v) = (var(groups * t)?, var(t)?, var(t)?);
            // A weighting of the outputs, so each output element's gradient differs.
            let w = Tensor::randn(0f32, 1.0, (b, hkv, groups * t, d), &dev)?;
            let scale = 0.25;
            let ours = attention(&q, &k, &v, Some(&mask), scale as f32, t, true)?
                .ok_or("applies to contiguous f32 CPU tensors")?;
            let theirs = reference(&q, &k, &v, &mask, scale, t)?;
            assert!(max_diff(&ours, &theirs)? < 1e-5, "values differ");
            let g1 = (ours * &w)?.sum_all()?.backward()?;
            let g2 = (theirs * &w)?.sum_all()?.backward()?;
            for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, b) = (
                    g1.get(x).ok_or("no gradient")?,
                    g2.get(x).ok_or("no gradient")?,
                );
                let diff = max_diff(a, b)?;
                assert!(diff < 1e-4, "gradient of {name} differs by {diff}");
            }
        }
        Ok(())
    }

    /// Prefill after cached columns: keys and values are views of a larger
    /// buffer (as the KV cache hands them out), the mask has `past + t`
    /// columns, and the graph is not built.
    #[test]
    fn reads_the_kv_caches_views() -> R<()> {
        let dev = Device::Cpu;
        let (b, hkv, groups, past, t, d, capacity) = (2, 3, 3, 50, 70, 8, 256);
        let tk = past + t;
        let mask = attention_mask(&[0, 20], past, t, candle_core::DType::F32, &dev)?;
        let q = Tensor::randn(0f32, 1.0, (b, hkv, groups * t, d), &dev)?;
        let buffer = |_| Tensor::randn(0f32, 1.0, (b, hkv, capacity, d), &dev);
        let (kb, vb) = (buffer(0)?, buffer(1)?);
        let (k, v) = (kb.narrow(2, 0, tk)?, vb.narrow(2, 0, tk)?);
        assert!(!k.is_contiguous());
        let ours = attention(&q, &k, &v, Some(&mask), 0.3, t, false)?
            .ok_or("applies to the cache's views")?;
        let theirs = reference(&q, &k.contiguous()?, &v.contiguous()?, &mask, 0.3, t)?;
        assert!(max_diff(&ours, &theirs)? < 1e-5, "values differ");
        // The graph needs contiguous inputs: the views are refused there.
        assert!(attention(&q, &k, &v, Some(&mask), 0.3, t, true)?.is_none());
        Ok(())
    }

    #[test]
    fn other_tensors_fall_back() -> R<()> {
        let dev = Device::Cpu;
        let q = Tensor::zeros((1, 1, 4, 8), candle_core::DType::F16, &dev)?;
        assert!(attention(&q, &q, &q, None, 1.0, 4, true)?.is_none());
        let q = Tensor::zeros((1, 1, 8, 4), candle_core::DType::F32, &dev)?.t()?;
        assert!(attention(&q, &q, &q, None, 1.0, 8, true)?.is_none());
        Ok(())
    }
}
