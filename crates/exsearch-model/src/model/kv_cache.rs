//! Key/value caches for a batch of sequences.
//!
//! A cache holds, per layer, K and V as `[batch, kv_heads, capacity, head_dim]`
//! with the first `len` columns filled. Rows of different lengths share one
//! cache by left padding: row `b` starts at column `pad[b]`, and the attention
//! mask hides the columns before it. Prompts are prefilled once at batch size
//! one and then copied into as many rows as there are samples, which is how K
//! samples of one prompt share its prefix.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

const GROW: usize = 256;

#[derive(Clone, Debug)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    len: usize,
    /// Left padding of each row; empty until the batch size is known.
    pad: Vec<usize>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            pad: Vec::new(),
        }
    }

    /// Columns filled so far (the same for every row, padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn batch(&self) -> usize {
        self.pad.len()
    }

    /// Left padding of each row.
    pub fn pad(&self) -> &[usize] {
        &self.pad
    }

    /// Whether any row carries padding (then a mask is needed).
    pub fn padded(&self) -> bool {
        self.pad.iter().any(|&p| p > 0)
    }

    /// Appends `k`, `v` (`[b, h, t, d]`) for `layer` at column `len` and returns
    /// views of everything cached for that layer, new columns included. The
    /// caller calls [`KvCache::advance`] once all layers have appended.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, h, t, d) = k.dims4()?;
        if self.pad.is_empty() {
            self.pad = vec![0; b];
        }
        let needed = self.len + t;
        let slot = &mut self.layers[layer];
        let capacity = slot.as_ref().map_or(0, |kv| kv.k.dim(2).unwrap_or(0));
        if needed > capacity {
            let new_capacity = needed.max(capacity * 2).div_ceil(GROW) * GROW;
            let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                let fresh = Tensor::zeros((b, h, new_capacity, d), k.dtype(), k.device())?;
                if let Some(old) = old {
                    fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(fresh)
            };
            let grown = LayerKv {
                k: grow(slot.as_ref().map(|kv| &kv.k))?,
                v: grow(slot.as_ref().map(|kv| &kv.v))?,
            };
            *slot = Some(grown);
        }
        let kv = slot.as_ref().expect("allocated above");
        kv.k.slice_set(&k.contiguous()?, 2, self.len)?;
        kv.v.slice_set(&v.contiguous()?, 2, self.len)?;
        // Views, not copies: each (row, head) block is contiguous, which is
        // all the attention matmuls need.
        Ok((kv.k.narrow(2, 0, needed)?, kv.v.narrow(2, 0, needed)?))
    }

    /// A single-row cache holding a copy of this one's first `len` columns,
    /// with room for `extra` more: it shares no storage with this one, so
    /// both can be extended apart.
    pub fn prefix_copy(&self, len: usize, extra: usize) -> Result<Self> {
        let capacity = (len + extra).div_ceil(GROW) * GROW;
        let mut layers = Vec::with_capacity(self.layers.len());
        for slot in &self.layers {
            let Some(kv) = slot else {
                layers.push(None);
                continue;
            };
            let copy = |x: &Tensor| -> Result<Tensor> {
                let (b, h, _, d) = x.dims4()?;
                let fresh = Tensor::zeros((b, h, capacity, d), x.dtype(), x.device())?;
                fresh.slice_set(&x.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                Ok(fresh)
            };
            layers.push(Some(LayerKv {
                k: copy(&kv.k)?,
                v: copy(&kv.v)?,
            }));
        }
        Ok(Self {
            layers,
            len,
            pad: self.pad.clone(),
        })
    }

    /// Bytes of key and value storage held (capacity, not only filled columns).
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|kv| (kv.k.elem_count() + kv.v.elem_count()) * kv.k.dtype().size_in_bytes())
            .sum()
    }

    /// Marks `t` more columns as filled.
    pub fn advance(&mut self, t: usize) {
        self.len += t;
    }

    fn filled(&self, layer: usize) -> Option<(Tensor, Tensor)> {
        let kv = self.layers[layer].as_ref()?;
        Some((
            kv.k.narrow(2, 0, self.len).ok()?,
            kv.v.narrow(2, 0, self.len).ok()?,
        ))
    }

    /// Keeps only the rows in `rows` (in that order); used to drop finished
    /// sequences from a running batch.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let Some(device) = self.device() else {
            return Ok(());
        };
        let index = Tensor::new(rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), &device)?;
        for slot in self.layers.iter_mut().flatten() {
            slot.k = slot.k.index_select(&index, 0)?;
            slot.v = slot.v.index_select(&index, 0)?;
        }
        self.pad = rows.iter().map(|&r| self.pad[r]).collect();
        Ok(())
    }

    fn device(&self) -> Option<Device> {
        self.layers
            .iter()
            .flatten()
            .next()
            .map(|kv| kv.k.device().clone())
    }

    /// Builds one batch from single-row caches, each row repeated `copies[i]`
    /// times, left-padded to the longest. Capacity leaves room for `extra` more
    /// columns so decoding does not reallocate at once.
    pub fn batch_of(parts: &[(&KvCache, usize)], extra: usize) -> Result<Self> {
        let num_layers = parts.first().map_or(0, |(c, _)| c.layers.len());
        let len = parts.iter().map(|(c, _)| c.len).max().unwrap_or(0);
        let capacity = (len + extra).div_ceil(GROW) * GROW;
        let mut pad = Vec::new();
        for (cache, copies) in parts {
            pad.extend(std::iter::repeat_n(len - cache.len, *copies));
        }
        let mut layers = Vec::with_capacity(num_layers);
        for layer in 0..num_layers {
            let mut ks = Vec::new();
            let mut vs = Vec::new();
            for (cache, copies) in parts {
                let (k, v) = cache
                    .filled(layer)
                    .ok_or_else(|| candle_core::Error::Msg("empty cache in batch".into()))?;
                let (_, h, t, d) = k.dims4()?;
                let place = |x: &Tensor| -> Result<Tensor> {
                    let row = Tensor::zeros((1, h, capacity, d), x.dtype(), x.device())?;
                    row.slice_set(&x.contiguous()?, 2, len - t)?;
                    Ok(row.repeat((*copies, 1, 1, 1))?)
                };
                ks.push(place(&k)?);
                vs.push(place(&v)?);
            }
            layers.push(Some(LayerKv {
                k: Tensor::cat(&ks, 0)?,
                v: Tensor::cat(&vs, 0)?,
            }));
        }
        Ok(Self { layers, len, pad })
    }
}

/// The additive attention mask for `t` new columns after `past` cached ones:
/// `[b, 1, t, past + t]`, zero where row `b`'s query may look, `-inf` elsewhere.
/// A padded query column (before its row starts) looks at itself only, so its
/// softmax stays finite; its output is never read.
pub fn attention_mask(
    pad: &[usize],
    past: usize,
    t: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = past + t;
    let mut data = vec![f32::NEG_INFINITY; pad.len() * t * total];
    for (b, &start) in pad.iter().enumerate() {
        for i in 0..t {
            let column = past + i;
            let row = &mut data[(b * t + i) * total..(b * t + i + 1) * total];
            if column < start {
                row[column] = 0.0;
            } else {
                row[start..=column].fill(0.0);
            }
        }
    }
    Ok(Tensor::from_vec(data, (pad.len(), 1, t, total), device)?.to_dtype(dtype)?)
}

/// The mask of a sliding-window layer: `base` (the padding and causal mask,
/// `[b, 1, t, past + t]`; causal when absent) with keys more than `window`
/// columns before each query hidden too. Within one row the cached columns
/// are consecutive positions, so column distance is position distance.
pub fn sliding_mask(
    base: Option<&Tensor>,
    batch: usize,
    past: usize,
    t: usize,
    window: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = past + t;
    let mut band = vec![0f32; t * total];
    for i in 0..t {
        let query = past + i;
        let row = &mut band[i * total..(i + 1) * total];
        // Keys at or before `query - window` are out of reach; a causal
        // mask is added below when there is no base to carry it.
        row[..(query + 1).saturating_sub(window)].fill(f32::NEG_INFINITY);
        if base.is_none() {
            row[query + 1..].fill(f32::NEG_INFINITY);
        }
    }
    let band = Tensor::from_vec(band, (1, 1, t, total), device)?.to_dtype(dtype)?;
    Ok(match base {
        Some(base) => base.broadcast_add(&band)?,
        None => band.broadcast_as((batch, 1, t, total))?.contiguous()?,
    })
}
