//! Quantized matrices packed for our own x86 kernels (AVX512-VNNI here,
//! AVX2 in [`super::avx2`]): Q8_0 here, the formats of 4 to 6 bits a value
//! in [`super::low_bits`].
//!
//! candle's fastest x86 kernels quantize activations in 256-value blocks, so
//! they need rows of a multiple of 256 values; Qwen2.5-0.5B's are 896 long
//! and had to be padded, which cost decode 14% more bytes per token. These
//! kernels work on Q8_0's own 32-value blocks, as llama.cpp does: no padding,
//! and activations are rounded the same way llama.cpp rounds them.
//!
//! Layout: rows are grouped in tiles of 16. For each tile and each 32-value
//! block of the row, 512 bytes of weights, `[k4 group (8)][row (16)][4 bytes]`
//! and stored offset by +128 as unsigned bytes, so that one `vpdpbusd`
//! (unsigned weights times signed activations) gives 16 rows 4 products each;
//! and 16 f16 scales. A tile's blocks are contiguous, so a thread that owns a
//! range of tiles streams its weights in order.
//!
//! The other formats real files use (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
//! Q6_K) keep their own bits in the same tiles ([`super::low_bits`]), so a
//! product reads the file's bytes and computes the file's own arithmetic.
//!
//! One product: activations are quantized once per call (`amax / 127` per
//! 32 values, the scale kept as f16 as llama.cpp keeps it), every thread
//! takes a contiguous range of tiles, and each tile runs up to 8 activation
//! rows at once so the weights are read once per 8 rows (decode of a batch,
//! prefill).
#![allow(unsafe_code)]

use candle_core::quantized::{GgmlDType, QTensor};

use super::low_bits::{LowBitFormat, LowBits};
use crate::error::{Error, Result};

/// Rows per tile: one 512-bit register of i32 lanes.
pub(super) const TILE: usize = 16;
/// Values per Q8_0 block.
pub(super) const BLOCK: usize = 32;
/// Weight bytes per (tile, block).
pub(super) const TILE_BYTES: usize = TILE * BLOCK;
/// Activation rows one kernel call handles (registers: 8 weights + 2 per row).
pub(super) const MAX_ROWS: usize = 8;

/// 64 bytes aligned to a cache line, so weight loads never split lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line(pub(super) [u8; 64]);

/// A quantized matrix of logical shape `(n, k)` in the tiled layout.
pub struct PackedMatrix {
    n: usize,
    k: usize,
    blocks: Blocks,
}

enum Blocks {
    Q8 {
        /// `tiles * blocks * 8` lines.
        qs: Vec<Line>,
        /// f16 bits, `tiles * blocks * 16`.
        d: Vec<u16>,
    },
    /// Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K in their own bits.
    LowBits(LowBits),
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match &self.blocks {
            Blocks::Q8 { .. } => "Q8_0".to_string(),
            Blocks::LowBits(lb) => format!("{:?}", lb.format),
        };
        write!(f, "PackedMatrix({}x{} {format})", self.n, self.k)
    }
}

/// The instructions the packed kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX512F/BW with VNNI (`vpdpbusd`): Intel since Ice Lake (servers)
    /// and Tiger Lake, AMD since Zen 4.
    Avx512Vnni,
    /// AVX2, FMA and F16C ([`super::avx2`]): x86 CPUs of the last decade.
    Avx2,
}

/// The kernels this CPU runs, checked once at run time (so a portable build
/// uses the best ones the CPU has); `None` where there are none (not x86,
/// or x86 older than AVX2), and candle's quantized kernels take over.
/// `EXSEARCH_KERNELS=avx2` picks the AVX2 kernels on a CPU that has
/// AVX512-VNNI, to run as an AVX2-only CPU would, and `EXSEARCH_KERNELS=candle`
/// turns ours off (how the benchmark measures what they bring).
pub fn isa() -> Option<Isa> {
    static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| match std::env::var("EXSEARCH_KERNELS").as_deref() {
        Ok("candle") => None,
        Ok("avx2") => avx2().then_some(Isa::Avx2),
        _ => detect(),
    })
}

fn detect() -> Option<Isa> {
    [Isa::Avx512Vnni, Isa::Avx2]
        .into_iter()
        .find(|&isa| has(isa))
}

/// Whether this CPU has `isa`'s instructions.
#[cfg(target_arch = "x86_64")]
fn has(isa: Isa) -> bool {
    use std::arch::is_x86_feature_detected as has;
    avx2() && (isa == Isa::Avx2 || has!("avx512f") && has!("avx512bw") && has!("avx512vnni"))
}

#[cfg(not(target_arch = "x86_64"))]
fn has(_isa: Isa) -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx2") && has!("fma") && has!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2() -> bool {
    false
}

/// The kernels a [`PackedMatrix`] runs on: one exists only where there are
/// some.
fn kernels() -> Isa {
    isa().unwrap_or_else(|| unreachable!("a PackedMatrix exists only where `isa()` is some"))
}

/// Whether this CPU runs the packed kernels (see [`isa`]).
pub fn available() -> bool {
    isa().is_some()
}

impl PackedMatrix {
    /// Packs a quantized `(n, k)` matrix: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
    /// Q4_K, Q5_K and Q6_K, each in its own bits. `None` for other formats
    /// (Q2_K, Q3_K, the IQ formats, floats), which candle's own kernels
    /// handle, and on CPUs without the kernels' instructions ([`isa`]).
    pub fn from_qtensor(t: &QTensor) -> Result<Option<Self>> {
        let (n, k) = t.shape().dims2()?;
        if !available() || !k.is_multiple_of(BLOCK) {
            return Ok(None);
        }
        let data = t.data()?;
        if t.dtype() == GgmlDType::Q8_0 {
            return Ok(Some(Self::from_q8_0_blocks(n, k, &data)?));
        }
        let Some(format) = LowBitFormat::of(t.dtype()) else {
            return Ok(None);
        };
        let blocks = Blocks::LowBits(LowBits::pack(format, n, k, &data)?);
        Ok(Some(Self { n, k, blocks }))
    }

    /// Packs raw GGML Q8_0 blocks (`f16 scale, 32 x i8`, row after row).
    /// Refused on a CPU without the kernels' instructions, so that a packed
    /// matrix always has a CPU that can run it.
    pub fn from_q8_0_blocks(n: usize, k: usize, data: &[u8]) -> Result<Self> {
        const BLOCK_BYTES: usize = 2 + BLOCK;
        if !available() {
            return Err(Error::Unsupported(
                "packed Q8_0 kernels need an x86 CPU with AVX2 or AVX512-VNNI".into(),
            ));
        }
        let blocks = k / BLOCK;
        if !k.is_multiple_of(BLOCK) || data.len() != n * blocks * BLOCK_BYTES {
            return Err(Error::Unsupported(format!(
                "a {n}x{k} Q8_0 matrix needs {} bytes, got {}",
                n * blocks * BLOCK_BYTES,
                data.len()
            )));
        }
        let tiles = n.div_ceil(TILE);
        // Rows past `n` in the last tile: scale 0, weight 0 (stored as 128).
        let mut qs = vec![Line([128; 64]); tiles * blocks * 8];
        let mut d = vec![0u16; tiles * blocks * TILE];
        for row in 0..n {
            let (tile, r) = (row / TILE, row % TILE);
            for b in 0..blocks {
                let src = &data[(row * blocks + b) * BLOCK_BYTES..][..BLOCK_BYTES];
                let at = tile * blocks + b;
                d[at * TILE + r] = u16::from_le_bytes([src[0], src[1]]);
                for g in 0..BLOCK / 4 {
                    let line = &mut qs[at * 8 + g].0;
                    for j in 0..4 {
                        line[r * 4 + j] = (src[2 + g * 4 + j] as i8 as i16 + 128) as u8;
                    }
                }
            }
        }
        Ok(Self {
            n,
            k,
            blocks: Blocks::Q8 { qs, d },
        })
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    pub fn cols(&self) -> usize {
        self.k
    }

    fn tiles(&self) -> usize {
        self.n.div_ceil(TILE)
    }

    /// `x W^T` for `m` rows of `x` (`m * k` values): `m * n` values.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.matmul_into(x, m, &mut out);
        out
    }

    /// [`PackedMatrix::matmul`] into a buffer the caller keeps between calls
    /// (decode writes 152k logits per row per step: a fresh buffer would be
    /// fresh pages, faulted in and zeroed every step).
    pub fn matmul_into(&self, x: &[f32], m: usize, out: &mut Vec<f32>) {
        out.resize(m * self.n, 0.0);
        Self::products(kernels(), &[self], x, m, &mut [out.as_mut_slice()]);
    }

    /// `x W_i^T` for several matrices with the same `k`: the activations are
    /// quantized once and all products share one parallel region.
    pub fn matmul_many(mats: &[&PackedMatrix], x: &[f32], m: usize) -> Vec<Vec<f32>> {
        let mut outs: Vec<Vec<f32>> = mats.iter().map(|w| vec![0f32; m * w.n]).collect();
        let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        Self::products(kernels(), mats, x, m, &mut slices);
        outs
    }

    /// [`PackedMatrix::matmul`] on the given kernels, which this CPU must
    /// have: what tests compare the kernels by.
    #[cfg(test)]
    fn matmul_on(&self, isa: Isa, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * self.n];
        Self::products(isa, &[self], x, m, &mut [out.as_mut_slice()]);
        out
    }

    /// Writes `x W_i^T` into `outs[i]` (`m * n_i` values each), on the
    /// kernels of `isa`.
    fn products(isa: Isa, mats: &[&PackedMatrix], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
        let Some(first) = mats.first() else {
            return;
        };
        let k = first.k;
        assert!(has(isa), "this CPU has no {isa:?} instructions");
        assert!(mats.iter().all(|w| w.k == k), "matrices share k");
        assert_eq!(x.len(), m * k, "x is m rows of k values");
        assert!(
            outs.iter().zip(mats).all(|(o, w)| o.len() == m * w.n),
            "an output of m * n values per matrix"
        );
        let act = Activations::quantize(isa, x, m, k);
        // Work units are tiles, numbered across the matrices.
        let starts: Vec<usize> = mats
            .iter()
            .scan(0, |acc, w| {
                let s = *acc;
                *acc += w.tiles();
                Some(s)
            })
            .collect();
        let total = starts.last().copied().unwrap_or(0) + mats.last().map_or(0, |w| w.tiles());
        let dsts: Vec<usize> = outs.iter_mut().map(|o| o.as_mut_ptr() as usize).collect();
        let run = |units: std::ops::Range<usize>| {
            for unit in units {
                let i = starts.partition_point(|&s| s <= unit) - 1;
                // SAFETY: every unit writes the 16 columns of its own tile,
                // in all m rows of its own matrix's output (checked above to
                // hold m * n values); units are disjoint, and the outputs
                // outlive the parallel region.
                unsafe { mats[i].tile_product(isa, unit - starts[i], &act, dsts[i] as *mut f32) };
            }
        };
        let pool = candle_core::utils::barrier_pool();
        let threads = pool.n_workers() + 1;
        if threads == 1 || total * m < 8 {
            run(0..total);
        } else {
            // Equal contiguous ranges: every tile costs the same, and each
            // thread streams its weights in order.
            let chunk = total.div_ceil(threads);
            pool.execute(|tid| {
                let start = (tid * chunk).min(total);
                run(start..(start + chunk).min(total));
            });
        }
    }

    /// All `act.m` rows of tile `tile`, written to `dst` (`m x n`, row-major).
    ///
    /// # Safety
    /// The CPU has `isa`'s instructions; `dst` points to `act.m * self.n`
    /// writable values, and nothing else writes columns
    /// `tile * 16 .. tile * 16 + 16` meanwhile.
    unsafe fn tile_product(&self, isa: Isa, tile: usize, act: &Activations, dst: *mut f32) {
        let col = tile * TILE;
        let width = TILE.min(self.n - col);
        let mut row = 0;
        while row < act.m {
            let rows = MAX_ROWS.min(act.m - row);
            let mut out = [0f32; TILE * MAX_ROWS];
            match &self.blocks {
                Blocks::Q8 { qs, d } => {
                    let blocks = self.k / BLOCK;
                    let qs = qs.as_ptr().add(tile * blocks * 8) as *const u8;
                    let d = d.as_ptr().add(tile * blocks * TILE);
                    kernel(isa, qs, d, blocks, act, row..row + rows, &mut out)
                }
                Blocks::LowBits(lb) => {
                    low_bits_kernel(isa, lb, tile, act, row..row + rows, &mut out)
                }
            }
            for r in 0..rows {
                let to = dst.add((row + r) * self.n + col);
                std::ptr::copy_nonoverlapping(out.as_ptr().add(r * TILE), to, width);
            }
            row += rows;
        }
    }
}

/// Activation rows quantized to Q8_0: per 32 values a scale, the sum of
/// the quantized values times 128 (which undoes the weights' offset), the
/// sums of each 16-value half (which undo Q6_K's offset), and the block's
/// value sum `d * sum` (what a minimum multiplies; Q8_1's `s`). Scales and
/// Q8_1's sums are rounded to f16, as llama.cpp stores them; K-quant
/// minimums multiply the exact sum of the quantized values, as llama.cpp's
/// Q8_K sums are exact.
pub(super) struct Activations {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) qs: Vec<i8>,
    pub(super) d: Vec<f32>,
    sum128: Vec<i32>,
    /// Two per block.
    pub(super) sum16: Vec<i32>,
    pub(super) s: Vec<f32>,
    /// `d * sum` with `d` already rounded, unrounded itself.
    pub(super) exact_sum: Vec<f32>,
}

/// `x` rounded to the nearest f16.
fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

impl Activations {
    fn zeroed(m: usize, k: usize) -> Self {
        let blocks = m * k / BLOCK;
        Self {
            m,
            k,
            qs: vec![0i8; m * k],
            d: vec![0f32; blocks],
            sum128: vec![0i32; blocks],
            sum16: vec![0i32; 2 * blocks],
            s: vec![0f32; blocks],
            exact_sum: vec![0f32; blocks],
        }
    }

    /// `x` quantized on the kernels of `isa`, which this CPU has.
    fn quantize(isa: Isa, x: &[f32], m: usize, k: usize) -> Self {
        assert!(has(isa), "this CPU has no {isa:?} instructions");
        let mut act = Self::zeroed(m, k);
        // SAFETY: the CPU has the features `quantize_blocks` enables
        // (checked above); the slices have `blocks` blocks each.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match isa {
                Isa::Avx512Vnni => {
                    avx512::quantize_blocks(x, &mut act.qs, &mut act.d, &mut act.sum16)
                }
                Isa::Avx2 => {
                    super::avx2::quantize_blocks(x, &mut act.qs, &mut act.d, &mut act.sum16)
                }
            }
        };
        act.round_scales();
        act
    }

    /// The block sums from the halves' sums and the exact scales, then both
    /// rounded to f16.
    fn round_scales(&mut self) {
        for (b, (d, s)) in self.d.iter_mut().zip(&mut self.s).enumerate() {
            let sum = self.sum16[2 * b] + self.sum16[2 * b + 1];
            self.sum128[b] = 128 * sum;
            *s = f16_round(*d * sum as f32);
            *d = f16_round(*d);
            self.exact_sum[b] = *d * sum as f32;
        }
    }

    /// The same quantization, one value at a time (what the vector code
    /// must equal).
    #[cfg(test)]
    fn quantize_scalar(x: &[f32], m: usize, k: usize) -> Self {
        let mut act = Self::zeroed(m, k);
        for (((src, q), d), halves) in x
            .chunks_exact(BLOCK)
            .zip(act.qs.chunks_exact_mut(BLOCK))
            .zip(&mut act.d)
            .zip(act.sum16.chunks_exact_mut(2))
        {
            let amax = src.iter().fold(0f32, |a, &v| a.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            for (i, (q, &v)) in q.iter_mut().zip(src).enumerate() {
                *q = (v * inv).round_ties_even() as i8;
                halves[i / 16] += *q as i32;
            }
            *d = scale;
        }
        act.round_scales();
        act
    }
}

/// Calls `$kernel::<R>(args)` with `R = $rows` clamped to 1..=8, so each
/// row count runs its own unrolled kernel.
macro_rules! for_rows {
    ($rows:expr, $kernel:ident($($arg:expr),*)) => {
        match $rows {
            8 => $kernel::<8>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            _ => $kernel::<1>($($arg),*),
        }
    };
}

/// Activation rows `rows` (at most 8) against one Q8_0 tile, on the
/// kernels of `isa` (which [`PackedMatrix::products`] checked this CPU has);
/// 16 values per row into `out`.
fn kernel(
    isa: Isa,
    qs: *const u8,
    d: *const u16,
    blocks: usize,
    act: &Activations,
    rows: std::ops::Range<usize>,
    out: &mut [f32; TILE * MAX_ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let (row, rows) = (rows.start, rows.len());
        // SAFETY: `products` checked that the CPU has `isa`'s features; the
        // pointers cover `blocks` blocks of one tile, and the activations
        // cover rows `row .. row + rows`.
        unsafe {
            use avx512::rows as r;
            match isa {
                Isa::Avx512Vnni => for_rows!(rows, r(qs, d, blocks, act, row, out)),
                Isa::Avx2 => super::avx2::q8_0(qs, d, blocks, act, row, rows, out),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, qs, d, blocks, act, rows, out);
        unreachable!("packed kernels exist on x86_64 only; see `isa`");
    }
}

/// As [`kernel`], for a tile of 4 to 6 bits a value.
fn low_bits_kernel(
    isa: Isa,
    lb: &LowBits,
    tile: usize,
    act: &Activations,
    rows: std::ops::Range<usize>,
    out: &mut [f32; TILE * MAX_ROWS],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let (row, rows) = (rows.start, rows.len());
        // SAFETY: as in `kernel`: the CPU has `isa`'s features, `tile` is
        // one of `lb`'s tiles and the activations hold rows
        // `row .. row + rows` of its row length.
        unsafe {
            match isa {
                Isa::Avx512Vnni => super::low_bits::avx512::product(lb, tile, act, row, rows, out),
                Isa::Avx2 => super::avx2::low_bits(lb, tile, act, row, rows, out),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, lb, tile, act, rows, out);
        unreachable!("packed kernels exist on x86_64 only; see `isa`");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{Activations, BLOCK, MAX_ROWS, TILE, TILE_BYTES};

    /// # Safety
    /// The CPU has AVX512F/BW/VNNI; `qs` and `d` cover `blocks` blocks of
    /// one tile; `act` has rows `row .. row + R`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn rows<const R: usize>(
        qs: *const u8,
        d: *const u16,
        blocks: usize,
        act: &Activations,
        row: usize,
        out: &mut [f32; TILE * MAX_ROWS],
    ) {
        let k = act.k;
        let aq = act.qs.as_ptr().add(row * k);
        let ad = act.d.as_ptr().add(row * (k / BLOCK));
        let asum = act.sum128.as_ptr().add(row * (k / BLOCK));
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let wp = qs.add(b * TILE_BYTES);
            let mut w = [_mm512_setzero_si512(); 8];
            for (g, w) in w.iter_mut().enumerate() {
                *w = _mm512_load_si512(wp.add(g * 64) as *const __m512i);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(d.add(b * TILE) as *const __m256i));
            for (r, acc) in acc.iter_mut().enumerate() {
                let ap = aq.add(r * k + b * BLOCK) as *const i32;
                // Two chains, so one row's eight products are not one
                // dependency chain.
                let mut s0 = _mm512_setzero_si512();
                let mut s1 = _mm512_setzero_si512();
                for g in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(
                        s0,
                        w[g],
                        _mm512_set1_epi32(ap.add(g).read_unaligned()),
                    );
                    s1 = _mm512_dpbusd_epi32(
                        s1,
                        w[g + 1],
                        _mm512_set1_epi32(ap.add(g + 1).read_unaligned()),
                    );
                }
                let at = r * (k / BLOCK) + b;
                let s =
                    _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_set1_epi32(*asum.add(at)));
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(*ad.add(at)));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, *acc);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add(r * TILE), *acc);
        }
    }

    /// Q8_0 quantization of whole blocks: scale `amax / 127`, values
    /// rounded to nearest (ties to even), and the sums of each 16-value half.
    ///
    /// # Safety
    /// The CPU has AVX512F/BW; `qs` has `x.len()` values, `d` one per 32
    /// and `sum16` two.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_blocks(
        x: &[f32],
        qs: &mut [i8],
        d: &mut [f32],
        sum16: &mut [i32],
    ) {
        for (b, src) in x.chunks_exact(BLOCK).enumerate() {
            let lo = _mm512_loadu_ps(src.as_ptr());
            let hi = _mm512_loadu_ps(src.as_ptr().add(16));
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
            let scale = amax / 127.0;
            let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            let (qlo, qhi) = (
                _mm512_cvtps_epi32(_mm512_mul_ps(lo, inv)),
                _mm512_cvtps_epi32(_mm512_mul_ps(hi, inv)),
            );
            let to = qs.as_mut_ptr().add(b * BLOCK);
            _mm_storeu_si128(to as *mut __m128i, _mm512_cvtsepi32_epi8(qlo));
            _mm_storeu_si128(to.add(16) as *mut __m128i, _mm512_cvtsepi32_epi8(qhi));
            d[b] = scale;
            sum16[2 * b] = _mm512_reduce_add_epi32(qlo);
            sum16[2 * b + 1] = _mm512_reduce_add_epi32(qhi);
        }
    }
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
