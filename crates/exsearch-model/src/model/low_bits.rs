//! Quantized formats of 4 to 6 bits a value kept in their own bits, laid
//! out for the packed kernels of [`super::packed`]: llama.cpp's 32-value
//! formats (Q4_0, Q4_1, Q5_0, Q5_1) and its K-quants (Q4_K, Q5_K, Q6_K).
//!
//! Q4_0 and Q5_0 values are `d * (q - 8)` and `d * (q - 16)`, Q4_1 and Q5_1
//! `d * q + m`, with an f16 `d` (and `m`) per 32 values. A K-quant
//! super-block holds 256 values of one row: Q4_K and Q5_K values are
//! `d * sc_j * q - dmin * m_j`, with a 6-bit scale `sc_j` and minimum `m_j`
//! per 32 values; Q6_K values are `d * sc_j * (q - 32)` with an i8 scale per
//! 16 values. Packing keeps the unsigned `q` and the scales, so a product
//! reads about the file's bytes (Q4_K 4.625 bits a weight against the
//! file's 4.5, Q5_K 5.625 against 5.5, the others the file's own) and
//! computes the file's own arithmetic: an integer dot product per 32 values
//! (per 16 for Q6_K), less the offset times the activations' integer sum,
//! times the block's scale, plus the minimum times the activations' sum.
//!
//! Layout, per tile of 16 rows and 32-value block (so the kernel keeps
//! [`super::packed`]'s tiles, threads and activation rows):
//! - 4 lines of low nibbles: line `l`, byte `4 r + j`, holds value `8 l + j`
//!   of row `r` in its low nibble and value `8 l + 4 + j` in its high one, so
//!   a mask and a shift give the unsigned bytes `vpdpbusd` takes for 4-value
//!   groups `2 l` and `2 l + 1`;
//! - 5-bit formats: 1 line whose byte `4 r + j` has, in bit `g`, the fifth
//!   bit of value `4 g + j`; Q6_K: 2 lines whose byte `4 r + j` has, in bits
//!   `2 (g mod 4)`, the top two bits of value `4 g + j` (line `g / 4`);
//! - the 32-value formats' f16 `d` (and `m`) per block; the K-quants' scales
//!   per block (16 i8, or 32 for Q6_K's two halves) and minimums (16 u8),
//!   and their super-block's f16 `d` and `dmin`.

#![allow(unsafe_code)]

use candle_core::quantized::GgmlDType;

use super::legacy_quants::Legacy;
use super::packed::{Line, BLOCK, TILE};
use crate::error::{Error, Result};

/// Values per super-block.
pub(crate) const SUPER: usize = 256;
/// 32-value blocks per super-block.
pub(super) const PER_SUPER: usize = SUPER / BLOCK;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum LowBitFormat {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4K,
    Q5K,
    Q6K,
}

impl LowBitFormat {
    pub(crate) fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_0 => Some(Self::Q4_0),
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q5_0 => Some(Self::Q5_0),
            GgmlDType::Q5_1 => Some(Self::Q5_1),
            GgmlDType::Q4K => Some(Self::Q4K),
            GgmlDType::Q5K => Some(Self::Q5K),
            GgmlDType::Q6K => Some(Self::Q6K),
            _ => None,
        }
    }

    /// The 32-value format this is, if it is one.
    fn legacy(self) -> Option<Legacy> {
        match self {
            Self::Q4_0 => Some(Legacy::Q4_0),
            Self::Q4_1 => Some(Legacy::Q4_1),
            Self::Q5_0 => Some(Legacy::Q5_0),
            Self::Q5_1 => Some(Legacy::Q5_1),
            Self::Q4K | Self::Q5K | Self::Q6K => None,
        }
    }

    /// Values per unit of the file (block or super-block).
    pub(crate) const fn unit(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 => BLOCK,
            Self::Q4K | Self::Q5K | Self::Q6K => SUPER,
        }
    }

    /// The format whose `as u8` is `code` (the kernels' const parameter).
    pub(crate) const fn from_u8(code: u8) -> Self {
        const ALL: [LowBitFormat; 7] = [
            LowBitFormat::Q4_0,
            LowBitFormat::Q4_1,
            LowBitFormat::Q5_0,
            LowBitFormat::Q5_1,
            LowBitFormat::Q4K,
            LowBitFormat::Q5K,
            LowBitFormat::Q6K,
        ];
        ALL[code as usize]
    }

    /// Bytes of one K-quant super-block in the file.
    fn block_bytes(self) -> usize {
        match self {
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
            _ => unreachable!("only K-quants have super-blocks"),
        }
    }

    /// Weight lines per (tile, block).
    pub(crate) const fn lines(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q4K => 4,
            Self::Q5_0 | Self::Q5_1 | Self::Q5K => 5,
            Self::Q6K => 6,
        }
    }

    /// Scales per (tile, block): one per row, two for Q6_K's 16-value
    /// halves, none for the 32-value formats (whose `d` is per block).
    pub(crate) const fn scales(self) -> usize {
        match self {
            Self::Q6K => 2 * TILE,
            Self::Q4K | Self::Q5K => TILE,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 => 0,
        }
    }

    /// What the stored `q` is offset by (`value = d * (q - offset)`).
    pub(crate) const fn offset(self) -> i32 {
        match self {
            Self::Q4_0 => 8,
            Self::Q5_0 => 16,
            Self::Q6K => 32,
            Self::Q4_1 | Self::Q5_1 | Self::Q4K | Self::Q5K => 0,
        }
    }

    /// Whether blocks have a minimum (`dmin * m_j`, or `m`).
    pub(crate) const fn has_min(self) -> bool {
        matches!(self, Self::Q4_1 | Self::Q5_1 | Self::Q4K | Self::Q5K)
    }

    /// One K-quant super-block's integers.
    fn decode(self, src: &[u8]) -> SuperBlock {
        let f16 = |at: usize| u16::from_le_bytes([src[at], src[at + 1]]);
        let mut sb = SuperBlock {
            d: 0,
            dmin: 0,
            q: [0; SUPER],
            sc: [0; 16],
            mn: [0; PER_SUPER],
        };
        match self {
            Self::Q4K | Self::Q5K => {
                sb.d = f16(0);
                sb.dmin = f16(2);
                let scales: &[u8; 12] = src[4..16].try_into().expect("12 scale bytes");
                for j in 0..PER_SUPER {
                    let (sc, mn) = scale_min_k4(j, scales);
                    sb.sc[j] = sc as i8;
                    sb.mn[j] = mn;
                }
                let (qh, ql) = match self {
                    Self::Q5K => (Some(&src[16..48]), &src[48..176]),
                    _ => (None, &src[16..144]),
                };
                // 64 values per 32 bytes: low nibbles, then high nibbles;
                // Q5_K's fifth bits are bit 2c (low) and 2c + 1 (high) of qh.
                for c in 0..4 {
                    for l in 0..32 {
                        let byte = ql[32 * c + l];
                        let (hi_lo, hi_hi) = qh.map_or((0, 0), |qh| {
                            ((qh[l] >> (2 * c)) & 1, (qh[l] >> (2 * c + 1)) & 1)
                        });
                        sb.q[64 * c + l] = (byte & 0xF) | hi_lo << 4;
                        sb.q[64 * c + 32 + l] = (byte >> 4) | hi_hi << 4;
                    }
                }
            }
            Self::Q6K => {
                let (ql, qh, scales) = (&src[..128], &src[128..192], &src[192..208]);
                sb.d = f16(208);
                for (s, &b) in sb.sc.iter_mut().zip(scales) {
                    *s = b as i8;
                }
                for h in 0..2 {
                    let (ql, qh, q) = (&ql[64 * h..], &qh[32 * h..], &mut sb.q[128 * h..]);
                    for l in 0..32 {
                        q[l] = (ql[l] & 0xF) | (qh[l] & 3) << 4;
                        q[l + 32] = (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4;
                        q[l + 64] = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
                        q[l + 96] = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
                    }
                }
            }
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 => {
                unreachable!("32-value blocks are decoded by `Legacy`")
            }
        }
        sb
    }
}

/// llama.cpp's `get_scale_min_k4`: the 6-bit scale and minimum of block `j`.
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// A super-block's integers: unsigned `q` per value, scales per 32 values
/// (Q4_K, Q5_K: `sc[..8]`) or per 16 (Q6_K), minimums per 32.
struct SuperBlock {
    d: u16,
    dmin: u16,
    q: [u8; SUPER],
    sc: [i8; 16],
    mn: [u8; PER_SUPER],
}

impl SuperBlock {
    /// Value `i` as llama.cpp's dequantization computes it.
    #[cfg(test)]
    fn value(&self, format: LowBitFormat, i: usize) -> f32 {
        let d = half::f16::from_bits(self.d).to_f32();
        match format {
            LowBitFormat::Q6K => d * self.sc[i / 16] as f32 * (self.q[i] as i32 - 32) as f32,
            LowBitFormat::Q4K | LowBitFormat::Q5K => {
                let dmin = half::f16::from_bits(self.dmin).to_f32();
                let j = i / BLOCK;
                d * self.sc[j] as f32 * self.q[i] as f32 - dmin * self.mn[j] as f32
            }
            _ => unreachable!("only K-quants have super-blocks"),
        }
    }
}

/// A `(n, k)` matrix of one of these formats in the tiled layout (see the
/// module docs).
pub(crate) struct LowBits {
    pub(crate) format: LowBitFormat,
    /// `tiles * blocks * lines` lines.
    qs: Vec<Line>,
    /// K-quants: `tiles * blocks * scales` scales.
    sc: Vec<i8>,
    /// Q4_K, Q5_K: `tiles * blocks * 16` minimums.
    mn: Vec<u8>,
    /// f16 bits, 16 per tile and block (32-value formats) or super-block
    /// (K-quants).
    d: Vec<u16>,
    /// f16 bits laid out as `d`: `m` (Q4_1, Q5_1) or `dmin` (Q4_K, Q5_K).
    dmin: Vec<u16>,
}

impl LowBits {
    /// Packs `n` rows of `k` values of the file's blocks.
    pub(crate) fn pack(format: LowBitFormat, n: usize, k: usize, data: &[u8]) -> Result<Self> {
        let unit = format.unit();
        if !k.is_multiple_of(unit) {
            return Err(Error::Unsupported(format!(
                "a {n}x{k} {format:?} matrix needs rows of a multiple of {unit} values"
            )));
        }
        let (tiles, blocks, units) = (n.div_ceil(TILE), k / BLOCK, k / unit);
        let (lines, scales) = (format.lines(), format.scales());
        // Rows past `n` in the last tile: weights, scales and `d` all 0.
        let mut packed = Self {
            format,
            qs: vec![Line([0; 64]); tiles * blocks * lines],
            sc: vec![0; tiles * blocks * scales],
            mn: Vec::new(),
            d: vec![0; tiles * units * TILE],
            dmin: Vec::new(),
        };
        if format.has_min() {
            packed.dmin = vec![0; tiles * units * TILE];
        }
        if let Some(legacy) = format.legacy() {
            // Q8_0 blocks of the values less the offset, and the minimums.
            let (q8, mins) = legacy.to_q8_0(data, n * blocks)?;
            let mut q = [0u8; BLOCK];
            for row in 0..n {
                let (tile, r) = (row / TILE, row % TILE);
                for b in 0..blocks {
                    let src = &q8[(row * blocks + b) * (2 + BLOCK)..][..2 + BLOCK];
                    let at = tile * blocks + b;
                    packed.d[at * TILE + r] = u16::from_le_bytes([src[0], src[1]]);
                    if let Some(mins) = &mins {
                        packed.dmin[at * TILE + r] = mins[row * blocks + b];
                    }
                    for (q, &v) in q.iter_mut().zip(&src[2..]) {
                        *q = (v as i8 as i32 + format.offset()) as u8;
                    }
                    packed.put(at, r, &q);
                }
            }
            return Ok(packed);
        }
        let bytes = format.block_bytes();
        if data.len() != n * units * bytes {
            return Err(Error::Unsupported(format!(
                "a {n}x{k} {format:?} matrix needs {} bytes, got {}",
                n * units * bytes,
                data.len()
            )));
        }
        if format.has_min() {
            packed.mn = vec![0; tiles * blocks * TILE];
        }
        for row in 0..n {
            let (tile, r) = (row / TILE, row % TILE);
            for s in 0..units {
                let sb = format.decode(&data[(row * units + s) * bytes..][..bytes]);
                packed.d[(tile * units + s) * TILE + r] = sb.d;
                if format.has_min() {
                    packed.dmin[(tile * units + s) * TILE + r] = sb.dmin;
                }
                for j in 0..PER_SUPER {
                    let at = tile * blocks + s * PER_SUPER + j;
                    if format.has_min() {
                        packed.sc[at * scales + r] = sb.sc[j];
                        packed.mn[at * TILE + r] = sb.mn[j];
                    } else {
                        packed.sc[at * scales + r] = sb.sc[2 * j];
                        packed.sc[at * scales + TILE + r] = sb.sc[2 * j + 1];
                    }
                    packed.put(
                        at,
                        r,
                        sb.q[j * BLOCK..][..BLOCK].try_into().expect("a block"),
                    );
                }
            }
        }
        Ok(packed)
    }

    /// Where tile `tile`'s data starts, for rows of `k` values.
    pub(super) fn tile(&self, tile: usize, k: usize) -> TileData {
        let (blocks, units) = (k / BLOCK, k / self.format.unit());
        // `wrapping_add`: the arrays a format does not use are empty, and
        // their pointers are never read.
        TileData {
            qs: self
                .qs
                .as_ptr()
                .wrapping_add(tile * blocks * self.format.lines()) as *const u8,
            sc: self
                .sc
                .as_ptr()
                .wrapping_add(tile * blocks * self.format.scales()),
            d: self.d.as_ptr().wrapping_add(tile * units * TILE),
            dmin: self.dmin.as_ptr().wrapping_add(tile * units * TILE),
            mn: self.mn.as_ptr().wrapping_add(tile * blocks * TILE),
        }
    }

    /// Writes row `r`'s unsigned values `q` of (tile, block) `at`.
    fn put(&mut self, at: usize, r: usize, q: &[u8; BLOCK]) {
        let lines = self.format.lines();
        let lines = &mut self.qs[at * lines..][..lines];
        for g in 0..BLOCK / 4 {
            for i in 0..4 {
                let (v, byte) = (q[4 * g + i], 4 * r + i);
                lines[g / 2].0[byte] |= (v & 0xF) << (4 * (g % 2));
                match lines.len() {
                    5 => lines[4].0[byte] |= (v >> 4 & 1) << g,
                    6 => lines[4 + g / 4].0[byte] |= (v >> 4 & 3) << (2 * (g % 4)),
                    _ => {}
                }
            }
        }
    }
}

/// The start of one tile's weights, scales, `d`, `dmin` (or `m`) and
/// minimums, as the kernels read them (see [`LowBits`]).
pub(super) struct TileData {
    pub(super) qs: *const u8,
    pub(super) sc: *const i8,
    pub(super) d: *const u16,
    pub(super) dmin: *const u16,
    pub(super) mn: *const u8,
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use core::arch::x86_64::*;

    use super::super::packed::{Activations, BLOCK, MAX_ROWS, TILE};
    use super::{LowBitFormat, LowBits, PER_SUPER};

    /// `rows` activation rows from `row` against tile `tile` of `lb`; 16
    /// values per row into `out`. One kernel per format and row count, so
    /// every format test is settled at compile time.
    ///
    /// # Safety
    /// As [`rows`].
    pub(crate) unsafe fn product(
        lb: &LowBits,
        tile: usize,
        act: &Activations,
        row: usize,
        rows: usize,
        out: &mut [f32; TILE * MAX_ROWS],
    ) {
        macro_rules! by_rows {
            ($f:expr) => {
                match rows {
                    8 => self::rows::<8, { $f as u8 }>(lb, tile, act, row, out),
                    7 => self::rows::<7, { $f as u8 }>(lb, tile, act, row, out),
                    6 => self::rows::<6, { $f as u8 }>(lb, tile, act, row, out),
                    5 => self::rows::<5, { $f as u8 }>(lb, tile, act, row, out),
                    4 => self::rows::<4, { $f as u8 }>(lb, tile, act, row, out),
                    3 => self::rows::<3, { $f as u8 }>(lb, tile, act, row, out),
                    2 => self::rows::<2, { $f as u8 }>(lb, tile, act, row, out),
                    _ => self::rows::<1, { $f as u8 }>(lb, tile, act, row, out),
                }
            };
        }
        match lb.format {
            LowBitFormat::Q4_0 => by_rows!(LowBitFormat::Q4_0),
            LowBitFormat::Q4_1 => by_rows!(LowBitFormat::Q4_1),
            LowBitFormat::Q5_0 => by_rows!(LowBitFormat::Q5_0),
            LowBitFormat::Q5_1 => by_rows!(LowBitFormat::Q5_1),
            LowBitFormat::Q4K => by_rows!(LowBitFormat::Q4K),
            LowBitFormat::Q5K => by_rows!(LowBitFormat::Q5K),
            LowBitFormat::Q6K => by_rows!(LowBitFormat::Q6K),
        }
    }

    /// `R` activation rows from `row` against tile `tile` of `lb`, whose
    /// format is `F` (a `LowBitFormat` as u8); 16 values per row into `out`.
    ///
    /// # Safety
    /// The CPU has AVX512F/BW/VNNI; `tile` is one of `lb`'s tiles, `act`
    /// has `lb`'s row length and rows `row .. row + R`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows<const R: usize, const F: u8>(
        lb: &LowBits,
        tile: usize,
        act: &Activations,
        row: usize,
        out: &mut [f32; TILE * MAX_ROWS],
    ) {
        let format = LowBitFormat::from_u8(F);
        debug_assert_eq!(format, lb.format);
        let (lines, scales, offset) = (format.lines(), format.scales(), format.offset());
        let k = act.k;
        let blocks = k / BLOCK;
        let t = lb.tile(tile, k);
        let (qs, sc, dd, dmin, mn) = (t.qs, t.sc, t.d, t.dmin, t.mn);
        let aq = act.qs.as_ptr().add(row * k);
        let lo4 = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            // The f16 values of this block's unit (block or super-block).
            let unit = if scales == 0 { b } else { b / PER_SUPER };
            let dv = f16s(dd.add(unit * TILE));
            let wp = qs.add(b * lines * 64);
            let mut w = [_mm512_setzero_si512(); 8];
            for l in 0..4 {
                let x = _mm512_load_si512(wp.add(l * 64) as *const __m512i);
                w[2 * l] = _mm512_and_si512(x, lo4);
                w[2 * l + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(x), lo4);
            }
            if lines == 5 {
                let h = _mm512_load_si512(wp.add(4 * 64) as *const __m512i);
                let one = _mm512_set1_epi8(1);
                for (g, w) in w.iter_mut().enumerate() {
                    let bit =
                        _mm512_and_si512(_mm512_srl_epi16(h, _mm_cvtsi32_si128(g as i32)), one);
                    *w = _mm512_or_si512(*w, _mm512_slli_epi16::<4>(bit));
                }
            } else if lines == 6 {
                let three = _mm512_set1_epi8(3);
                for (g, w) in w.iter_mut().enumerate() {
                    let h = _mm512_load_si512(wp.add((4 + g / 4) * 64) as *const __m512i);
                    let shift = _mm_cvtsi32_si128(2 * (g % 4) as i32);
                    let bits = _mm512_and_si512(_mm512_srl_epi16(h, shift), three);
                    *w = _mm512_or_si512(*w, _mm512_slli_epi16::<4>(bits));
                }
            }
            if format == LowBitFormat::Q6K {
                // Two scales per block, each undoing the offset of its half.
                let sa = scales_times(sc.add(b * scales), dv);
                let sb = scales_times(sc.add(b * scales + TILE), dv);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let at = (row + r) * blocks + b;
                    let ap = aq.add(r * k + b * BLOCK) as *const i32;
                    let lo = _mm512_sub_epi32(
                        dot_groups(&w, ap, 0),
                        _mm512_set1_epi32(offset * act.sum16[2 * at]),
                    );
                    let hi = _mm512_sub_epi32(
                        dot_groups(&w, ap, 4),
                        _mm512_set1_epi32(offset * act.sum16[2 * at + 1]),
                    );
                    let x = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(hi),
                        sb,
                        _mm512_mul_ps(_mm512_cvtepi32_ps(lo), sa),
                    );
                    *acc = _mm512_fmadd_ps(x, _mm512_set1_ps(act.d[at]), *acc);
                }
                continue;
            }
            // One scale per block: the K-quants' `d * sc_j`, else `d`; and
            // the minimum, `dmin * m_j` subtracted times the exact sum, or
            // `m` added times the f16 sum (Q8_1's `s`, as llama.cpp).
            let (scale, min) = if scales == 0 {
                (dv, f16s(dmin.add(unit * TILE)))
            } else {
                let m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                    mn.add(b * TILE) as *const __m128i
                )));
                let minus = _mm512_sub_ps(_mm512_setzero_ps(), f16s(dmin.add(unit * TILE)));
                (
                    scales_times(sc.add(b * scales), dv),
                    _mm512_mul_ps(m, minus),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = (row + r) * blocks + b;
                let ap = aq.add(r * k + b * BLOCK) as *const i32;
                let mut s = _mm512_add_epi32(dot_groups(&w, ap, 0), dot_groups(&w, ap, 4));
                if offset != 0 {
                    let sum = act.sum16[2 * at] + act.sum16[2 * at + 1];
                    s = _mm512_sub_epi32(s, _mm512_set1_epi32(offset * sum));
                }
                let da = _mm512_mul_ps(scale, _mm512_set1_ps(act.d[at]));
                *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), da, *acc);
                if format.has_min() {
                    let sum = if scales == 0 {
                        act.s[at]
                    } else {
                        act.exact_sum[at]
                    };
                    *acc = _mm512_fmadd_ps(min, _mm512_set1_ps(sum), *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.as_mut_ptr().add(r * TILE), *acc);
        }
    }

    /// 16 f16 values at `p`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn f16s(p: *const u16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }

    /// 16 i8 scales at `sc`, times `d`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn scales_times(sc: *const i8, d: __m512) -> __m512 {
        let v = _mm512_cvtepi8_epi32(_mm_loadu_si128(sc as *const __m128i));
        _mm512_mul_ps(_mm512_cvtepi32_ps(v), d)
    }

    /// The 16 rows' products with the four 4-value groups from `first` of
    /// one activation block at `ap`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn dot_groups(w: &[__m512i; 8], ap: *const i32, first: usize) -> __m512i {
        let mut s = _mm512_setzero_si512();
        for (g, w) in w.iter().enumerate().skip(first).take(4) {
            s = _mm512_dpbusd_epi32(s, *w, _mm512_set1_epi32(ap.add(g).read_unaligned()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    use super::*;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn super_blocks_decode_to_llama_cpp_values() {
        let (n, k) = (3, 512);
        // Offsets per row so the minimums are not all alike.
        let mut w = random(n * k, 1);
        for (i, v) in w.iter_mut().enumerate() {
            *v += (i / k) as f32 * 0.3;
        }
        let w = Tensor::from_vec(w, (n, k), &Device::Cpu).expect("w");
        for (dtype, format) in [
            (GgmlDType::Q4K, LowBitFormat::Q4K),
            (GgmlDType::Q5K, LowBitFormat::Q5K),
            (GgmlDType::Q6K, LowBitFormat::Q6K),
        ] {
            assert_eq!(LowBitFormat::of(dtype), Some(format));
            let q = QTensor::quantize(&w, dtype).expect("quantize");
            let dense: Vec<f32> = q
                .dequantize(&Device::Cpu)
                .and_then(|t| t.flatten_all()?.to_vec1())
                .expect("dequantize");
            let data = q.data().expect("data");
            let bytes = format.block_bytes();
            assert_eq!(data.len(), n * k / SUPER * bytes);
            for (s, src) in data.chunks_exact(bytes).enumerate() {
                let sb = format.decode(src);
                for i in 0..SUPER {
                    let want = dense[s * SUPER + i];
                    let got = sb.value(format, i);
                    assert!(
                        (got - want).abs() <= 1e-6 * want.abs().max(1e-3),
                        "{format:?} block {s} value {i}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn packing_refuses_rows_that_are_not_whole_super_blocks() {
        let err = LowBits::pack(LowBitFormat::Q4K, 2, 96, &[0; 288])
            .err()
            .expect("refused");
        assert!(err.to_string().contains("multiple of 256"), "{err}");
    }
}
