//! The log-probability of each target token as one graph node.
//!
//! `log_softmax` then `gather` over a vocabulary of 150k words keeps about
//! eight logits-sized tensors for the backward pass (the shifted logits,
//! their exponentials, the log-probabilities and the gradient of each);
//! PyTorch's fused cross-entropy keeps one. This op keeps only its input,
//! the logits, and computes its gradient `g (onehot - softmax)` from them in
//! one pass, row by row.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use exsearch_model::model::cpu_ops::exp_neg;

use crate::error::Result;

/// `log softmax(logits)[i, targets[i]]` for `logits` `[n, vocab]`, as an
/// `[n]` tensor whose gradient reaches `logits`.
pub fn target_log_probs(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let (n, vocab) = logits.dims2()?;
    if n != targets.len() || targets.iter().any(|&t| t as usize >= vocab) {
        let message = format!(
            "{} targets for {n} rows of a {vocab}-word vocabulary",
            targets.len()
        );
        return Err(candle_core::Error::Msg(message).into());
    }
    let logits = logits.to_dtype(candle_core::DType::F32)?.contiguous()?;
    if !logits.device().is_cpu() {
        let logp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let index = Tensor::from_slice(targets, (n, 1), logits.device())?;
        return Ok(logp.gather(&index, 1)?.squeeze(1)?);
    }
    Ok(logits.apply_op1(TargetLogProbs {
        targets: targets.to_vec(),
    })?)
}

struct TargetLogProbs {
    targets: Vec<u32>,
}

/// The row's maximum and `log sum exp(x - max)`.
fn log_normalizer(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|&x| exp_neg(max - x)).sum();
    (max, sum.ln())
}

fn rows_in_parallel(n: usize, f: impl Fn(usize) + Sync) {
    candle_core::utils::barrier_pool().execute_chunked(n, |range| range.for_each(&f));
}

impl CustomOp1 for TargetLogProbs {
    fn name(&self) -> &'static str {
        "target-log-probs"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, vocab) = l.shape().dims2()?;
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("target-log-probs: contiguous logits expected");
        };
        let logits = &s.as_slice::<f32>()?[a..b];
        let out: Vec<std::sync::atomic::AtomicU32> = (0..n)
            .map(|_| std::sync::atomic::AtomicU32::new(0))
            .collect();
        rows_in_parallel(n, |i| {
            let row = &logits[i * vocab..][..vocab];
            let (max, lse) = log_normalizer(row);
            let v = row[self.targets[i] as usize] - max - lse;
            out[i].store(v.to_bits(), std::sync::atomic::Ordering::Relaxed);
        });
        let out = out
            .into_iter()
            .map(|v| f32::from_bits(v.into_inner()))
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, vocab) = logits.dims2()?;
        let g = grad.to_vec1::<f32>()?;
        let x = logits.detach().flatten_all()?.to_vec1::<f32>()?;
        let mut dx = vec![0f32; n * vocab];
        let dst = dx.as_mut_ptr() as usize;
        rows_in_parallel(n, |i| {
            let row = &x[i * vocab..][..vocab];
            // SAFETY: row `i` of `dx` is written by this call alone, and
            // `dx` outlives the parallel region.
            #[allow(unsafe_code)]
            let out =
                unsafe { std::slice::from_raw_parts_mut((dst as *mut f32).add(i * vocab), vocab) };
            let (max, lse) = log_normalizer(row);
            let shift = max + lse;
            for (o, &v) in out.iter_mut().zip(row) {
                *o = -g[i] * exp_neg(shift - v);
            }
            out[self.targets[i] as usize] += g[i];
        });
        Ok(Some(Tensor::from_vec(dx, (n, vocab), logits.device())?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var, D};

    use super::*;

    type R<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn max_diff(a: &Tensor, b: &Tensor) -> R<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    /// Values and the logits' gradient equal candle's `log_softmax` and
    /// `gather`, with targets weighted differently per row.
    #[test]
    fn matches_log_softmax_and_gather() -> R<()> {
        let dev = Device::Cpu;
        let (n, vocab) = (37, 1000);
        let logits = Var::randn(0f32, 3.0, (n, vocab), &dev)?;
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 97 + 5) % vocab as u32).collect();
        let weights = Tensor::randn(0f32, 1.0, n, &dev)?;
        let ours = target_log_probs(&logits, &targets)?;
        let index = Tensor::from_slice(&targets, (n, 1), &dev)?;
        let theirs = candle_nn::ops::log_softmax(&logits, D::Minus1)?
            .gather(&index, 1)?
            .squeeze(1)?;
        assert!(max_diff(&ours, &theirs)? < 1e-4, "log-probabilities differ");
        let g1 = (ours * &weights)?.sum_all()?.backward()?;
        let g2 = (theirs * &weights)?.sum_all()?.backward()?;
        let (a, b) = (
            g1.get(&logits).ok_or("no gradient")?,
            g2.get(&logits).ok_or("no gradient")?,
        );
        let diff = max_diff(a, b)?;
        assert!(diff < 1e-5, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn a_target_outside_the_vocabulary_is_an_error() -> R<()> {
        let logits = Tensor::zeros((2, 10), candle_core::DType::F32, &Device::Cpu)?;
        assert!(target_log_probs(&logits, &[1, 10]).is_err());
        assert!(target_log_probs(&logits, &[1]).is_err());
        Ok(())
    }
}
