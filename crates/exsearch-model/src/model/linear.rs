//! A linear layer with three interchangeable weight kinds and a LoRA slot.
//!
//! Dense weights run through candle's matmul and are differentiable; GGUF
//! weights run through our packed kernels where the CPU has them
//! ([`super::packed`]) and through candle's quantized matmul otherwise. Any
//! kind can carry a low-rank adapter `scale * B(A x)`, added after the base
//! projection, which is what the self-training rounds optimise.
//!
//! Training adapters over a quantized model (as QLoRA does) needs the
//! gradient of the frozen product with respect to its input, `dy W`: a
//! model loaded for training keeps each matrix's file bits beside the
//! packed copy, and the backward pass dequantizes them a slice of rows at a
//! time, so no dense copy of the model is ever held.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use super::cpu_ops;
use super::graph_ops;
use super::packed::{self, PackedMatrix};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
enum Weight {
    /// `[out, in]`, as stored by Hugging Face.
    Dense(Tensor),
    Quantized(Arc<QMatMul>),
    /// Q8_0, the other 32-value formats and the K-quants in our tiled
    /// layout, on CPUs with AVX512-VNNI.
    Packed(Arc<PackedMatrix>),
}

/// A low-rank adapter: `a` is `[rank, in]`, `b` is `[out, rank]`.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
    /// Dropout on the adapter's input while training; `None` at inference.
    pub dropout: Option<graph_ops::TrainingDropout>,
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
    /// The file's quantized matrix `(out, in)`, kept when the model is
    /// loaded for training: the backward pass reads it.
    source: Option<Arc<QTensor>>,
}

/// Row length candle's repacked CPU kernels (AVX512-VNNI / AVX-VNNI tiles,
/// used for decode and prefill) require.
const KERNEL_ROW: usize = 256;

/// Makes a quantized matrix usable by candle's fastest x86 kernels, which
/// need rows of a multiple of 256 values (Qwen2.5-0.5B's hidden size is 896):
/// rows are extended with zero blocks, and the other 32-value formats (which
/// GGUF writers use where K-quants do not fit) become Q8_0: Q4_0 and Q5_0
/// exactly, Q4_1 and Q5_1 (whose minimum a Q8_0 block cannot hold) up to
/// Q8_0's rounding.
/// Returns the matrix and the number of zero columns added.
///
/// Only where [`Linear::from_qtensor`] cannot use the packed kernels.
fn pad_for_cpu_kernels(t: QTensor, device: &candle_core::Device) -> Result<(QTensor, usize)> {
    let (n, k) = t.shape().dims2()?;
    if !device.is_cpu() || k % KERNEL_ROW == 0 || k % 32 != 0 {
        return Ok((t, 0));
    }
    let padded = k.div_ceil(KERNEL_ROW) * KERNEL_ROW;
    // Q4_0 and Q5_0 are Q8_0 blocks with small integers: carried over exactly.
    let exact = match t.dtype() {
        GgmlDType::Q8_0 => Some(t.data()?.into_owned()),
        _ => super::legacy_quants::exact_q8_0_blocks(&t)?,
    };
    match exact {
        Some(data) => {
            let block = GgmlDType::Q8_0.type_size();
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
        None => match t.dtype() {
            // A minimum does not fit a Q8_0 block: re-encoded, Q8_0's rounding.
            GgmlDType::Q4_1 | GgmlDType::Q5_1 => {
                let dense = t.dequantize(device)?.pad_with_zeros(1, 0, padded - k)?;
                Ok((QTensor::quantize(&dense, GgmlDType::Q8_0)?, padded - k))
            }
            _ => Ok((t, 0)),
        },
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
            source: None,
        })
    }

    /// A quantized `(out, in)` matrix from a GGUF file: packed for our
    /// kernels when the device is a CPU that has them and the format is one
    /// they compute (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), else
    /// through candle's quantized matmul (its rows padded for candle's
    /// fastest CPU kernels where that applies).
    pub fn from_qtensor(
        t: QTensor,
        bias: Option<Tensor>,
        device: &candle_core::Device,
    ) -> Result<Self> {
        Self::quantized(t, bias, device, device.is_cpu() && packed::available())
    }

    /// As [`Linear::from_qtensor`], keeping the file's bits for the
    /// backward pass (adapters trained over a quantized model): memory for
    /// the matrix twice in its own format, never dense.
    pub fn trainable_from_qtensor(
        t: QTensor,
        bias: Option<Tensor>,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let source = Arc::new(QTensor::new(
            candle_core::quantized::QStorage::from_data(
                std::borrow::Cow::Owned(t.data()?.into_owned()),
                device,
                t.dtype(),
            )?,
            t.shape().clone(),
        )?);
        let mut layer = Self::from_qtensor(t, bias, device)?;
        layer.source = Some(source);
        Ok(layer)
    }

    /// As [`Linear::from_qtensor`], with the choice of kernels made by the
    /// caller (tests run candle's path on CPUs that have ours).
    fn quantized(
        t: QTensor,
        bias: Option<Tensor>,
        device: &candle_core::Device,
        packed: bool,
    ) -> Result<Self> {
        let (out_features, in_features) = t.shape().dims2()?;
        let (weight, pad) = match packed {
            true => match PackedMatrix::from_qtensor(&t)? {
                Some(packed) => (Weight::Packed(Arc::new(packed)), 0),
                None => (Weight::Quantized(Arc::new(QMatMul::from_qtensor(t)?)), 0),
            },
            false => {
                let (t, pad) = pad_for_cpu_kernels(t, device)?;
                (Weight::Quantized(Arc::new(QMatMul::from_qtensor(t)?)), pad)
            }
        };
        Ok(Self {
            weight,
            bias,
            lora: None,
            in_features,
            out_features,
            pad,
            source: None,
        })
    }

    /// Applies several layers to the same input. When all are plain quantized
    /// matrices (no LoRA) of one format, the input is quantized once and the
    /// products run in one parallel region (q/k/v, gate/up).
    pub fn forward_shared(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        // In a training graph every product must carry its gradient.
        let tracked = x.track_op();
        let packed: Option<Vec<&PackedMatrix>> = layers
            .iter()
            .map(|l| match (&l.weight, &l.lora) {
                (Weight::Packed(p), None) if !tracked => Some(p.as_ref()),
                _ => None,
            })
            .collect();
        if let Some(mats) = packed {
            let outs = packed_products(&mats, x)?;
            return outs
                .into_iter()
                .zip(layers)
                .map(|(y, l)| l.add_bias(y))
                .collect();
        }
        let plain: Option<Vec<&QTensor>> = layers
            .iter()
            .map(|l| match (&l.weight, &l.lora) {
                (Weight::Quantized(q), None) if !tracked && l.pad == layers[0].pad => {
                    match q.as_ref() {
                        QMatMul::QTensor(t) => Some(t.as_ref()),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect();
        if let Some(tensors) = plain {
            let input = layers[0].padded(x)?.contiguous()?;
            if let Some(outs) = QTensor::gemv_fused_shared_lhs(&tensors, &input)? {
                return outs
                    .into_iter()
                    .zip(layers)
                    .map(|(y, l)| l.add_bias(y))
                    .collect();
            }
        }
        layers.iter().map(|l| l.forward(x)).collect()
    }

    /// `x W^T` into `out` (`[rows, out]` row-major), reusing its memory
    /// where the weight is packed and plain (no bias, no adapter); other
    /// layers compute a tensor and copy it out.
    pub fn forward_into(&self, x: &Tensor, out: &mut Vec<f32>) -> Result<()> {
        if let (Weight::Packed(p), None, None, false) =
            (&self.weight, &self.bias, &self.lora, x.track_op())
        {
            let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
            let m = x.elem_count().checked_div(p.cols()).unwrap_or(0);
            if cpu_ops::f32_slice(&x, |data| p.matmul_into(data, m, out)).is_some() {
                return Ok(());
            }
        }
        *out = self
            .forward(x)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        Ok(())
    }

    fn add_bias(&self, y: Tensor) -> Result<Tensor> {
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
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
            Weight::Quantized(_) | Weight::Packed(_) => None,
        }
    }

    /// The dense weight and bias, for training and merging in place.
    pub(crate) fn dense_parts_mut(&mut self) -> Option<(&mut Tensor, Option<&mut Tensor>)> {
        match &mut self.weight {
            Weight::Dense(w) => Some((w, self.bias.as_mut())),
            Weight::Quantized(_) | Weight::Packed(_) => None,
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
                let x2 = x.reshape((n, self.in_features))?;
                // In a training graph, a frozen weight needs no gradient;
                // candle's matmul backward would compute one anyway.
                let frozen = x.track_op()
                    && !w.is_variable()
                    && w.device().is_cpu()
                    && w.dtype() == candle_core::DType::F32
                    && x.dtype() == candle_core::DType::F32;
                let y = if frozen {
                    x2.apply_op1_arc(Arc::new(Box::new(FrozenMatmul { w: w.clone() })))?
                } else {
                    x2.matmul(&w.t()?)?
                };
                let mut out_dims = dims.to_vec();
                *out_dims.last_mut().unwrap_or(&mut 0) = self.out_features;
                y.reshape(out_dims)?
            }
            _ if x.track_op() => self.frozen_quantized_product(x)?,
            _ => self.quantized_product(x)?,
        };
        y = self.add_bias(y)?;
        if let Some(l) = &self.lora {
            let x = match &l.dropout {
                Some(d) if d.p > 0.0 => graph_ops::dropout(x, d.p, d.seeds.next_seed())?,
                _ => x.clone(),
            };
            let low = x.broadcast_matmul(&l.a.t()?)?.broadcast_matmul(&l.b.t()?)?;
            y = (y + (low * l.scale)?)?;
        }
        Ok(y)
    }
}

impl Linear {
    /// `x W^T` through the quantized kernels (no gradient).
    fn quantized_product(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match &self.weight {
            Weight::Quantized(q) => q.forward(&self.padded(x)?)?,
            Weight::Packed(p) => packed_products(&[p.as_ref()], x)?
                .pop()
                .expect("one matrix in, one product out"),
            Weight::Dense(w) => x.broadcast_matmul(&w.t()?)?,
        })
    }

    /// `x W^T` for a frozen quantized `W` in a training graph: the same
    /// kernels forward, `dy W` backward from the file's bits.
    fn frozen_quantized_product(&self, x: &Tensor) -> Result<Tensor> {
        let source = self.source.clone().ok_or_else(|| {
            Error::Unsupported(
                "training over quantized (GGUF) weights needs the model loaded for training \
                 (LoadedModel::load_trainable)"
                    .into(),
            )
        })?;
        let op = FrozenQuantized {
            layer: Self {
                lora: None,
                bias: None,
                source: None,
                ..self.clone()
            },
            source,
        };
        Ok(x.to_dtype(candle_core::DType::F32)?
            .contiguous()?
            .apply_op1_arc(Arc::new(Box::new(op)))?)
    }
}

/// The product with a frozen quantized matrix as one graph node: forward
/// through the layer's kernels, backward `dy W` with `W` dequantized from
/// the file's bits a slice of rows at a time (at most [`BACKWARD_SLICE`]
/// bytes of f32), summed into the input's gradient.
struct FrozenQuantized {
    /// The layer without its bias or adapter (both stay in the graph).
    layer: Linear,
    source: Arc<QTensor>,
}

/// The most f32 bytes of a matrix the backward pass dequantizes at once.
const BACKWARD_SLICE: usize = 16 << 20;

impl candle_core::CustomOp1 for FrozenQuantized {
    fn name(&self) -> &'static str {
        "frozen-quantized-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = graph_ops::op_input(self.name(), storage, layout)?;
        let y = self
            .layer
            .quantized_product(&x)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let shape = y.shape().clone();
        let out = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((candle_core::CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (rows, cols) = self.source.shape().dims2()?;
        let dtype = self.source.dtype();
        let row_bytes = cols / dtype.block_size() * dtype.type_size();
        let bits = self.source.data()?;
        let m = grad_res.elem_count() / rows;
        let grad = grad_res.reshape((m, rows))?;
        let slice = (BACKWARD_SLICE / (cols * 4)).clamp(1, rows);
        let mut total: Option<Tensor> = None;
        for first in (0..rows).step_by(slice) {
            let n = slice.min(rows - first);
            let w = candle_core::quantized::ggml_file::qtensor_from_ggml(
                dtype,
                &bits[first * row_bytes..(first + n) * row_bytes],
                vec![n, cols],
                &candle_core::Device::Cpu,
            )?
            .dequantize(&candle_core::Device::Cpu)?;
            let part = grad.narrow(1, first, n)?.contiguous()?.matmul(&w)?;
            total = Some(match total {
                Some(t) => (t + part)?,
                None => part,
            });
        }
        let total = total.expect("a matrix has rows");
        Ok(Some(total.reshape(arg.shape())?))
    }
}

/// `x W_i^T` through the packed kernels, for `x` of shape `[.., in]` (f32).
fn packed_products(mats: &[&PackedMatrix], x: &Tensor) -> Result<Vec<Tensor>> {
    let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let dims = x.dims().to_vec();
    let k = *dims.last().unwrap_or(&0);
    let m = x.elem_count().checked_div(k).unwrap_or(0);
    let outs = cpu_ops::f32_slice(&x, |data| PackedMatrix::matmul_many(mats, data, m))
        .ok_or_else(|| Error::Unsupported("packed Q8_0 weights run on the CPU only".into()))?;
    outs.into_iter()
        .zip(mats)
        .map(|(y, w)| {
            let mut shape = dims.clone();
            *shape.last_mut().unwrap_or(&mut 0) = w.rows();
            Ok(Tensor::from_vec(y, shape, x.device())?)
        })
        .collect()
}

/// `x W^T` for a weight that does not train: the backward pass returns the
/// input's gradient `g W` only, where candle's matmul would also compute
/// (and keep until the step ends) a gradient for `W`. CPU and f32 only.
struct FrozenMatmul {
    /// `(out, in)`.
    w: Tensor,
}

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let x = graph_ops::op_input(self.name(), storage, layout)?;
        let y = x.matmul(&self.w.t()?)?;
        let shape = y.shape().clone();
        let out = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((candle_core::CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.w)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::max_abs_diff;

    #[test]
    fn packed_and_padded_candle_layers_compute_the_same_products() {
        // k = 96 is not a multiple of 256: candle's path pads the rows (and
        // the input), ours does not. Q4_0 is carried over into Q8_0 in both.
        let dev = Device::Cpu;
        let seeded = |shape: &[usize], seed: u64| {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let values = (0..shape.iter().product()).map(|_| rng.random_range(-2.0f32..2.0));
            Tensor::from_iter(values, &dev)
                .and_then(|t| t.reshape(shape))
                .expect("seeded")
        };
        let (w, bias, x) = (
            seeded(&[40, 96], 1),
            seeded(&[40], 2),
            seeded(&[2, 3, 96], 3),
        );
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0] {
            let layer = |packed: bool| {
                let q = QTensor::quantize(&w, dtype).expect("quantize");
                Linear::quantized(q, Some(bias.clone()), &dev, packed).expect("layer")
            };
            let candle = layer(false);
            assert_eq!(candle.pad, 160);
            let want = candle.forward(&x).expect("candle");
            assert_eq!(want.dims(), [2, 3, 40]);
            if !packed::available() {
                eprintln!("packed half skipped: this CPU runs none of our kernels");
                continue;
            }
            let ours = layer(true);
            assert!(matches!(ours.weight, Weight::Packed(_)) && ours.pad == 0);
            let got = ours.forward(&x).expect("packed");
            let shared = Linear::forward_shared(&[&ours, &ours], &x).expect("shared");
            let diff = |a: &Tensor| max_abs_diff(a, &want);
            // Both quantize the input per 32 values, candle dividing by the
            // scale and ours multiplying by its inverse, so a value on a
            // rounding boundary may land one step apart: products of about
            // 10 in size agree to one step (at most 2/127 times a weight
            // of at most 2) plus the f16 scales' roundings.
            let bound = 2.0 / 127.0 * 2.0 + 0.01;
            assert!(diff(&got) < bound, "{dtype:?}: {}", diff(&got));
            assert!(diff(&shared[1]) < bound);
            let mut into = Vec::new();
            ours.forward_into(&x.reshape((6, 96)).expect("rows"), &mut into)
                .expect("into");
            let plain = Linear::quantized(
                QTensor::quantize(&w, dtype).expect("quantize"),
                None,
                &dev,
                true,
            )
            .expect("layer");
            let mut plain_into = Vec::new();
            plain
                .forward_into(&x.reshape((6, 96)).expect("rows"), &mut plain_into)
                .expect("into");
            // With a bias, `forward_into` takes the tensor path; without,
            // the buffer path: the same products either way.
            let unbiased: Vec<f32> = plain
                .forward(&x)
                .expect("forward")
                .flatten_all()
                .expect("flat")
                .to_vec1()
                .expect("vec");
            assert_eq!(plain_into, unbiased);
            assert_eq!(into.len(), 6 * 40);
        }
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_the_input_the_same_one() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (5, 3), &dev).expect("w");
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3), &dev).expect("x")).expect("x");
        let linear = Linear::dense(w.clone(), None).expect("linear");
        let y = linear.forward(x.as_tensor()).expect("forward");
        let plain = x.as_tensor().matmul(&w.t().expect("t")).expect("matmul");
        let diff = (&y - &plain).expect("diff").abs().expect("abs");
        assert!(
            diff.max_all()
                .expect("max")
                .to_scalar::<f32>()
                .expect("scalar")
                < 1e-5
        );
        let grads = y
            .sqr()
            .expect("sqr")
            .sum_all()
            .expect("sum")
            .backward()
            .expect("backward");
        let expected = plain
            .sqr()
            .expect("sqr")
            .sum_all()
            .expect("sum")
            .backward()
            .expect("backward");
        let (g, e) = (
            grads.get(x.as_tensor()).expect("input gradient"),
            expected.get(x.as_tensor()).expect("input gradient"),
        );
        let diff = (g - e).expect("diff").abs().expect("abs");
        assert!(
            diff.max_all()
                .expect("max")
                .to_scalar::<f32>()
                .expect("scalar")
                < 1e-4
        );
        // Candle's matmul also leaves a weight-sized gradient (for W^T) in
        // the store; the frozen product leaves the input's only.
        assert_eq!(grads.get_ids().count(), 1);
        assert_eq!(expected.get_ids().count(), 2);
        let sizes = |g: &candle_core::backprop::GradStore| -> Vec<usize> {
            let mut v: Vec<usize> = g
                .get_ids()
                .filter_map(|id| g.get_id(*id))
                .map(|t| t.elem_count())
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(sizes(&grads), [12]);
        assert_eq!(sizes(&expected), [12, 15]);
    }
}
