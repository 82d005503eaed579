//! The packed kernels ([`super::packed`], [`super::low_bits`]) for x86 CPUs
//! with AVX2 but without AVX512-VNNI: most laptops' and desktops' Intel
//! CPUs, and AMD's before Zen 4.
//!
//! Same tiles, same activations, same arithmetic, so a product equals the
//! AVX512 kernels' bit for bit. A 256-bit register holds 8 of a tile's 16
//! rows, so each tile runs as two halves. AVX2 has no `vpdpbusd`;
//! `vpmaddubsw` (unsigned bytes times signed bytes, pairs summed to i16,
//! saturating) then `vpmaddwd` by ones (pairs summed to i32) take its place.
//! Saturation cannot happen: quantized activations lie in -127..=127 and
//! the low-bit formats' unsigned values below 64, so two `vpmaddubsw`
//! results added stay within 4 * 63 * 127 = 32,004. Q8_0's stored bytes are
//! offset by +128, too large for that: they are turned back into signed
//! bytes and multiplied as llama.cpp's AVX2 kernel does, their absolute
//! value times the activation carrying their sign, which needs no offset
//! correction.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::low_bits::{LowBitFormat, LowBits, PER_SUPER};
use super::packed::{Activations, BLOCK, MAX_ROWS, TILE, TILE_BYTES};

/// Rows per register.
const HALF: usize = TILE / 2;

/// Calls `$kernel::<R, ..>(args)` with `R = $rows` clamped to 1..=8.
macro_rules! by_rows {
    ($rows:expr, $kernel:ident $(::<$f:tt>)? ($($arg:expr),*)) => {
        match $rows {
            8 => $kernel::<8 $(, $f)?>($($arg),*),
            7 => $kernel::<7 $(, $f)?>($($arg),*),
            6 => $kernel::<6 $(, $f)?>($($arg),*),
            5 => $kernel::<5 $(, $f)?>($($arg),*),
            4 => $kernel::<4 $(, $f)?>($($arg),*),
            3 => $kernel::<3 $(, $f)?>($($arg),*),
            2 => $kernel::<2 $(, $f)?>($($arg),*),
            _ => $kernel::<1 $(, $f)?>($($arg),*),
        }
    };
}

/// `rows` activation rows from `row` against one Q8_0 tile (`qs`, `d`
/// cover its `blocks` blocks); 16 values per row into `out`.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `qs` and `d` cover `blocks` blocks of
/// one tile; `act` has rows `row .. row + rows`.
pub(super) unsafe fn q8_0(
    qs: *const u8,
    d: *const u16,
    blocks: usize,
    act: &Activations,
    row: usize,
    rows: usize,
    out: &mut [f32; TILE * MAX_ROWS],
) {
    by_rows!(rows, q8_0_rows(qs, d, blocks, act, row, out))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_rows<const R: usize>(
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
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for b in 0..blocks {
        let wp = qs.add(b * TILE_BYTES);
        for (h, dh) in [0, HALF].into_iter().enumerate() {
            let dw = f16s(d.add(b * TILE + dh));
            let mut w = [_mm256_setzero_si256(); 8];
            for (g, w) in w.iter_mut().enumerate() {
                let x = _mm256_load_si256(wp.add(g * 64 + h * 32) as *const __m256i);
                *w = _mm256_xor_si256(x, flip);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let ap = aq.add(r * k + b * BLOCK) as *const i32;
                let mut s = _mm256_setzero_si256();
                for (g, &w) in w.iter().enumerate() {
                    let a = _mm256_set1_epi32(ap.add(g).read_unaligned());
                    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
                    s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
                }
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(*ad.add(r * (k / BLOCK) + b)));
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[h]);
            }
        }
    }
    store(&acc, out);
}

/// `rows` activation rows from `row` against tile `tile` of `lb`; 16
/// values per row into `out`. One kernel per format and row count, as in
/// the AVX512 kernels.
///
/// # Safety
/// The CPU has AVX2, FMA and F16C; `tile` is one of `lb`'s tiles, `act`
/// has `lb`'s row length and rows `row .. row + rows`.
pub(super) unsafe fn low_bits(
    lb: &LowBits,
    tile: usize,
    act: &Activations,
    row: usize,
    rows: usize,
    out: &mut [f32; TILE * MAX_ROWS],
) {
    use LowBitFormat as F;
    match lb.format {
        F::Q4_0 => by_rows!(rows, low_rows::<{ F::Q4_0 as u8 }>(lb, tile, act, row, out)),
        F::Q4_1 => by_rows!(rows, low_rows::<{ F::Q4_1 as u8 }>(lb, tile, act, row, out)),
        F::Q5_0 => by_rows!(rows, low_rows::<{ F::Q5_0 as u8 }>(lb, tile, act, row, out)),
        F::Q5_1 => by_rows!(rows, low_rows::<{ F::Q5_1 as u8 }>(lb, tile, act, row, out)),
        F::Q4K => by_rows!(rows, low_rows::<{ F::Q4K as u8 }>(lb, tile, act, row, out)),
        F::Q5K => by_rows!(rows, low_rows::<{ F::Q5K as u8 }>(lb, tile, act, row, out)),
        F::Q6K => by_rows!(rows, low_rows::<{ F::Q6K as u8 }>(lb, tile, act, row, out)),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn low_rows<const R: usize, const F: u8>(
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
    let lo4 = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for b in 0..blocks {
        // The f16 values of this block's unit (block or super-block).
        let unit = if scales == 0 { b } else { b / PER_SUPER };
        let wp = qs.add(b * lines * 64);
        for (h, dh) in [0, HALF].into_iter().enumerate() {
            let dv = f16s(dd.add(unit * TILE + dh));
            let line = |l: usize| _mm256_load_si256(wp.add(l * 64 + h * 32) as *const __m256i);
            let mut w = [_mm256_setzero_si256(); 8];
            for l in 0..4 {
                let x = line(l);
                w[2 * l] = _mm256_and_si256(x, lo4);
                w[2 * l + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(x), lo4);
            }
            if lines == 5 {
                let high = line(4);
                let one = _mm256_set1_epi8(1);
                for (g, w) in w.iter_mut().enumerate() {
                    let bit =
                        _mm256_and_si256(_mm256_srl_epi16(high, _mm_cvtsi32_si128(g as i32)), one);
                    *w = _mm256_or_si256(*w, _mm256_slli_epi16::<4>(bit));
                }
            } else if lines == 6 {
                let three = _mm256_set1_epi8(3);
                for (g, w) in w.iter_mut().enumerate() {
                    let shift = _mm_cvtsi32_si128(2 * (g % 4) as i32);
                    let bits = _mm256_and_si256(_mm256_srl_epi16(line(4 + g / 4), shift), three);
                    *w = _mm256_or_si256(*w, _mm256_slli_epi16::<4>(bits));
                }
            }
            if format == LowBitFormat::Q6K {
                // Two scales per block, each undoing the offset of its half.
                let sa = scales_times(sc.add(b * scales + dh), dv);
                let sb = scales_times(sc.add(b * scales + TILE + dh), dv);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let at = (row + r) * blocks + b;
                    let ap = aq.add(r * k + b * BLOCK) as *const i32;
                    let lo = _mm256_sub_epi32(
                        dot_groups(&w, ap, 0),
                        _mm256_set1_epi32(offset * act.sum16[2 * at]),
                    );
                    let hi = _mm256_sub_epi32(
                        dot_groups(&w, ap, 4),
                        _mm256_set1_epi32(offset * act.sum16[2 * at + 1]),
                    );
                    let x = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(hi),
                        sb,
                        _mm256_mul_ps(_mm256_cvtepi32_ps(lo), sa),
                    );
                    acc[h] = _mm256_fmadd_ps(x, _mm256_set1_ps(act.d[at]), acc[h]);
                }
                continue;
            }
            // As the AVX512 kernel: the block's scale, and its minimum
            // subtracted times the exact sum, or `m` added times the f16 sum.
            let (scale, min) = if scales == 0 {
                (dv, f16s(dmin.add(unit * TILE + dh)))
            } else {
                let m = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                    mn.add(b * TILE + dh) as *const __m128i,
                )));
                let minus = _mm256_sub_ps(_mm256_setzero_ps(), f16s(dmin.add(unit * TILE + dh)));
                (
                    scales_times(sc.add(b * scales + dh), dv),
                    _mm256_mul_ps(m, minus),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = (row + r) * blocks + b;
                let ap = aq.add(r * k + b * BLOCK) as *const i32;
                let mut s = _mm256_add_epi32(dot_groups(&w, ap, 0), dot_groups(&w, ap, 4));
                if offset != 0 {
                    let sum = act.sum16[2 * at] + act.sum16[2 * at + 1];
                    s = _mm256_sub_epi32(s, _mm256_set1_epi32(offset * sum));
                }
                let da = _mm256_mul_ps(scale, _mm256_set1_ps(act.d[at]));
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), da, acc[h]);
                if format.has_min() {
                    let sum = if scales == 0 {
                        act.s[at]
                    } else {
                        act.exact_sum[at]
                    };
                    acc[h] = _mm256_fmadd_ps(min, _mm256_set1_ps(sum), acc[h]);
                }
            }
        }
    }
    store(&acc, out);
}

/// Q8_0 quantization of whole blocks, as the AVX512 version: scale
/// `amax / 127`, values rounded to nearest (ties to even), and the sums of
/// each 16-value half.
///
/// # Safety
/// The CPU has AVX2; `qs` has `x.len()` values, `d` one per 32 and
/// `sum16` two.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_blocks(x: &[f32], qs: &mut [i8], d: &mut [f32], sum16: &mut [i32]) {
    let sign = _mm256_set1_ps(-0.0);
    // `packs` interleaves 128-bit lanes; this puts the bytes back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (b, src) in x.chunks_exact(BLOCK).enumerate() {
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(src.as_ptr().add(8 * i)));
        let abs = |v: __m256| _mm256_andnot_ps(sign, v);
        let m = _mm256_max_ps(
            _mm256_max_ps(abs(v[0]), abs(v[1])),
            _mm256_max_ps(abs(v[2]), abs(v[3])),
        );
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        let q: [__m256i; 4] = std::array::from_fn(|i| _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv)));
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let bytes = _mm256_permutevar8x32_epi32(bytes, order);
        _mm256_storeu_si256(qs.as_mut_ptr().add(b * BLOCK) as *mut __m256i, bytes);
        d[b] = amax / 127.0;
        sum16[2 * b] = sum_i32(_mm256_add_epi32(q[0], q[1]));
        sum16[2 * b + 1] = sum_i32(_mm256_add_epi32(q[2], q[3]));
    }
}

/// The sum of 8 i32 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_i32(v: __m256i) -> i32 {
    let x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    _mm_cvtsi128_si32(_mm_add_epi32(x, _mm_shuffle_epi32::<1>(x)))
}

/// 8 f16 values at `p`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16s(p: *const u16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// 8 i8 scales at `sc`, times `d`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn scales_times(sc: *const i8, d: __m256) -> __m256 {
    let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(sc as *const __m128i));
    _mm256_mul_ps(_mm256_cvtepi32_ps(v), d)
}

/// The 8 rows' products with the four 4-value groups from `first` of one
/// activation block at `ap` (unsigned weights below 64: see the module docs
/// for why two `vpmaddubsw` results add without saturating).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn dot_groups(w: &[__m256i; 8], ap: *const i32, first: usize) -> __m256i {
    let a = |g: usize| _mm256_set1_epi32(ap.add(g).read_unaligned());
    let pair = |g: usize| {
        _mm256_add_epi16(
            _mm256_maddubs_epi16(w[g], a(g)),
            _mm256_maddubs_epi16(w[g + 1], a(g + 1)),
        )
    };
    let ones = _mm256_set1_epi16(1);
    _mm256_add_epi32(
        _mm256_madd_epi16(pair(first), ones),
        _mm256_madd_epi16(pair(first + 2), ones),
    )
}

/// Each row's two halves into `out`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store<const R: usize>(acc: &[[__m256; 2]; R], out: &mut [f32; TILE * MAX_ROWS]) {
    for (r, halves) in acc.iter().enumerate() {
        _mm256_storeu_ps(out.as_mut_ptr().add(r * TILE), halves[0]);
        _mm256_storeu_ps(out.as_mut_ptr().add(r * TILE + HALF), halves[1]);
    }
}
