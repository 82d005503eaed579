//! A linear layer with three interchangeable weight kinds and a LoRA slot.
//!
//! Dense weights run through candle's matmul and are differentiable; GGUF
//! weights run through candle's quantized matmul (inference only). Either kind
//! can carry a low-rank adapter `scale * B(A x)`, added after the base
//! projection, which is what the self-training rounds optimise.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
enum Weight {
    /// `[out, in]`, as stored by Hugging Face.
    Dense(Tensor),
    Quantized(Arc<QMatMul>),
}

/// A low-rank adapter: `a` is `[rank, in]`, `b` is `[out, rank]`.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    /// Dropout on the adapter's input while training; 0 at inference.
    pub dropout: f32,
}

#[derive(Clone, Debug)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
    in_features: usize,
    out_features: usize,
    /// Zero columns appended to quantized rows (see [`pad_for_cpu_kernels`]).
    pad: usize,
}

/// Row length candle's repacked CPU kernels (AVX512-VNNI / AVX-VNNI tiles,
/// used for decode and prefill) require.
const KERNEL_ROW: usize = 256;

/// Makes a quantized matrix usable by candle's fastest x86 kernels, which
/// need rows of a multiple of 256 values (Qwen2.5-0.5B's hidden size is 896):
/// rows are extended with zero blocks, and 32-value formats other than Q8_0
/// (Q4_0, Q5_0, ... which GGUF writers use where K-quants do not fit) are
/// re-encoded as Q8_0, which is exact for their values up to Q8_0's rounding.
/// Returns the matrix and the number of zero columns added.
pub fn pad_for_cpu_kernels(t: QTensor, device: &candle_core::Device) -> Result<(QTensor, usize)> {
    let (n, k) = t.shape().dims2()?;
    if !device.is_cpu() || k % KERNEL_ROW == 0 || k % 32 != 0 {
        return Ok((t, 0));
    }
    let padded = k.div_ceil(KERNEL_ROW) * KERNEL_ROW;
    match t.dtype() {
        GgmlDType::Q8_0 => {
            let block = GgmlDType::Q8_0.type_size();
            let data = t.data()?;
            let extra = (padded - k) / 32 * block;
            let mut out = Vec::with_capacity(n * padded / 32 * block);
            for row in data.chunks_exact(k / 32 * block) {
                out.extend_from_slice(row);
                // An all-zero block has scale 0: it adds nothing.
                out.resize(out.len() + extra, 0);
            }
            let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
                GgmlDType::Q8_0,
                &out,
                vec![n, padded],
                device,
            )?;
            Ok((q, padded - k))
        }
        GgmlDType::Q4_0 | GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 => {
            let dense = t.dequantize(device)?.pad_with_zeros(1, 0, padded - k)?;
            Ok((QTensor::quantize(&dense, GgmlDType::Q8_0)?, padded - k))
        }
        _ => Ok((t, 0)),
    }
}

impl Linear {
    pub fn dense(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let (out_features, in_features) = weight.dims2()?;
        Ok(Self {
            weight: Weight::Dense(weight),
            bias,
            lora: None,
            in_features,
            out_features,
            pad: 0,
        })
    }

    /// A quantized matrix of logical shape `(out, in)`, its rows stored with
    /// `pad` extra zero columns.
    pub fn quantized(
        weight: QMatMul,
        shape: (usize, usize),
        pad: usize,
        bias: Option<Tensor>,
    ) -> Self {
        Self {
            weight: Weight::Quantized(Arc::new(weight)),
            bias,
            lora: None,
            in_features: shape.1,
            out_features: shape.0,
            pad,
        }
    }

    /// Applies several layers to the same input. When all are plain quantized
    /// matrices (no LoRA) of one format, the input is quantized once and the
    /// products run in one parallel region (q/k/v, gate/up).
    pub fn forward_shared(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        let plain: Option<Vec<&QTensor>> = layers
            .iter()
            .map(|l| match (&l.weight, &l.lora) {
                (Weight::Quantized(q), None) if l.pad == layers[0].pad => match q.as_ref() {
                    QMatMul::QTensor(t) => Some(t.as_ref()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if let Some(tensors) = plain {
            let input = layers[0].padded(x)?.contiguous()?;
            if let Some(outs) = QTensor::gemv_fused_shared_lhs(&tensors, &input)? {
                return outs
                    .into_iter()
                    .zip(layers)
                    .map(|(y, l)| match &l.bias {
                        Some(b) => Ok(y.broadcast_add(b)?),
                        None => Ok(y),
                    })
                    .collect();
            }
        }
        layers.iter().map(|l| l.forward(x)).collect()
    }

    fn padded(&self, x: &Tensor) -> Result<Tensor> {
        Ok(if self.pad > 0 {
            x.pad_with_zeros(candle_core::D::Minus1, 0, self.pad)?
        } else {
            x.clone()
        })
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The dense weight, when this layer has one (training reads it).
    pub fn dense_weight(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Dense(w) => Some(w),
            Weight::Quantized(_) => None,
        }
    }

    /// The dense weight and bias, for training and merging in place.
    pub(crate) fn dense_parts_mut(&mut self) -> Option<(&mut Tensor, Option<&mut Tensor>)> {
        match &mut self.weight {
            Weight::Dense(w) => Some((w, self.bias.as_mut())),
            Weight::Quantized(_) => None,
        }
    }

    pub fn lora(&self) -> Option<&LoraAdapter> {
        self.lora.as_ref()
    }

    /// Attaches (or replaces) a low-rank adapter after checking its shapes.
    pub fn set_lora(&mut self, adapter: Option<LoraAdapter>) -> Result<()> {
        if let Some(l) = &adapter {
            let (rank, input) = l.a.dims2()?;
            let (output, rank_b) = l.b.dims2()?;
            if input != self.in_features || output != self.out_features || rank != rank_b {
                return Err(Error::InvalidOption(format!(
                    "LoRA shapes a={:?} b={:?} do not fit a {}x{} linear layer",
                    l.a.shape(),
                    l.b.shape(),
                    self.out_features,
                    self.in_features
                )));
            }
        }
        self.lora = adapter;
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = match &self.weight {
            Weight::Dense(w) => {
                // Fold the leading dims so gemm sees one [n, in] x [in, out] product.
                let dims = x.dims();
                let n: usize = dims[..dims.len() - 1].iter().product();
                let y = x.reshape((n, self.in_features))?.matmul(&w.t()?)?;
                let mut out_dims = dims.to_vec();
                *out_dims.last_mut().unwrap_or(&mut 0) = self.out_features;
                y.reshape(out_dims)?
            }
            Weight::Quantized(q) => q.forward(&self.padded(x)?)?,
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = &self.lora {
            let x = if l.dropout > 0.0 {
                candle_nn::ops::dropout(x, l.dropout)?
            } else {
                x.clone()
            };
            let low = x.broadcast_matmul(&l.a.t()?)?.broadcast_matmul(&l.b.t()?)?;
            y = (y + (low * l.scale)?)?;
        }
        Ok(y)
    }
}
