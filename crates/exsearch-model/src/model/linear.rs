//! A linear layer with three interchangeable weight kinds and a LoRA slot.
//!
//! Dense weights run through candle's matmul and are differentiable; GGUF
//! weights run through candle's quantized matmul (inference only). Either kind
//! can carry a low-rank adapter `scale * B(A x)`, added after the base
//! projection, which is what the self-training rounds optimise.

use std::sync::Arc;

use candle_core::quantized::QMatMul;
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
}

#[derive(Clone, Debug)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    lora: Option<LoraAdapter>,
    in_features: usize,
    out_features: usize,
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
        })
    }

    pub fn quantized(weight: QMatMul, shape: (usize, usize), bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Quantized(Arc::new(weight)),
            bias,
            lora: None,
            in_features: shape.1,
            out_features: shape.0,
        }
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
            Weight::Quantized(q) => q.forward(x)?,
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(l) = &self.lora {
            let low = x.broadcast_matmul(&l.a.t()?)?.broadcast_matmul(&l.b.t()?)?;
            y = (y + (low * l.scale)?)?;
        }
        Ok(y)
    }
}
