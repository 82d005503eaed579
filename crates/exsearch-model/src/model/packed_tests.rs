//! Tests of `packed` and `low_bits`: every format's products against the
//! file's values times the quantized activations, activation quantization,
//! and agreement with candle; on every set of kernels this CPU has (AVX2
//! here, AVX512-VNNI too where it has them, and then the two must agree bit
//! for bit).

use candle_core::{Device, Module, Tensor};

use super::super::legacy_quants::Legacy;
use super::*;

fn random(len: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The same integer arithmetic, one value at a time.
fn reference(w: &QTensor, x: &[f32], m: usize) -> Vec<f32> {
    let (n, k) = w.shape().dims2().expect("2d");
    let data = w.data().expect("data");
    let act = Activations::quantize_scalar(x, m, k);
    let mut out = vec![0f32; m * n];
    for row in 0..m {
        for col in 0..n {
            let mut sum = 0f32;
            for b in 0..k / BLOCK {
                let blk = &data[(col * (k / BLOCK) + b) * 34..][..34];
                let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                let dot: i32 = (0..BLOCK)
                    .map(|j| blk[2 + j] as i8 as i32 * act.qs[row * k + b * BLOCK + j] as i32)
                    .sum();
                sum += dot as f32 * dw * act.d[row * (k / BLOCK) + b];
            }
            out[row * n + col] = sum;
        }
    }
    out
}

/// The kernels this CPU has, best first; none skips a test.
fn kernel_sets() -> Vec<Isa> {
    let sets: Vec<Isa> = [Isa::Avx512Vnni, Isa::Avx2]
        .into_iter()
        .filter(|&isa| has(isa))
        .collect();
    if sets.is_empty() {
        eprintln!("skipped: this CPU runs none of our kernels");
    }
    sets
}

fn quantized(n: usize, k: usize, seed: u64) -> QTensor {
    let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).expect("w");
    QTensor::quantize(&w, GgmlDType::Q8_0).expect("quantize")
}

#[test]
fn products_equal_the_integer_reference_for_every_row_count_and_ragged_tiles() {
    let sets = kernel_sets();
    if sets.is_empty() {
        return;
    }
    // 37 rows: two full tiles and a ragged one; k = 96: three blocks.
    let w = quantized(37, 96, 1);
    let packed = PackedMatrix::from_qtensor(&w).expect("pack").expect("q8_0");
    for (isa, m) in sets
        .iter()
        .flat_map(|&isa| [1, 2, 7, 8, 9, 17].map(|m| (isa, m)))
    {
        let x = random(m * 96, 10 + m as u64);
        let got = packed.matmul_on(isa, &x, m);
        if isa != sets[0] {
            let first = packed.matmul_on(sets[0], &x, m);
            assert!(
                same_bits(&got, &first),
                "{isa:?} against {:?}, m={m}",
                sets[0]
            );
        }
        let want = reference(&w, &x, m);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "m={m}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn activations_quantize_like_the_scalar_definition() {
    let mut x = random(4 * 64, 6);
    x[32..64].fill(0.0); // a zero block: scale 0, values 0
    x[70] = 1e-30;
    x[100] = 1.0; // the block's largest value: exactly 127
    for isa in kernel_sets() {
        let (v, s) = (
            Activations::quantize(isa, &x, 4, 64),
            Activations::quantize_scalar(&x, 4, 64),
        );
        assert_eq!(v.qs, s.qs, "{isa:?}");
        assert_eq!(v.d, s.d, "{isa:?}");
        assert_eq!(v.sum128, s.sum128, "{isa:?}");
        assert_eq!(v.sum16, s.sum16, "{isa:?}");
        assert_eq!(v.d[1], 0.0);
        assert_eq!(v.qs[100], 127);
    }
}

/// Whether two products are the same floats, bit for bit.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn products_match_candle_on_a_real_shape_within_activation_rounding() {
    if !available() {
        eprintln!("skipped: this CPU runs none of our kernels");
        return;
    }
    let (n, k, m) = (128, 896, 3);
    let w = quantized(n, k, 2);
    let x = random(m * k, 3);
    let packed = PackedMatrix::from_qtensor(&w).expect("pack").expect("q8_0");
    let ours = packed.matmul(&x, m);
    let dense = w.dequantize(&Device::Cpu).expect("dequantize");
    let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).expect("x");
    let exact: Vec<f32> = xt
        .matmul(&dense.t().expect("t"))
        .expect("matmul")
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec");
    let candle: Vec<f32> = candle_core::quantized::QMatMul::from_qtensor(w)
        .expect("qmatmul")
        .forward(&xt)
        .expect("forward")
        .flatten_all()
        .expect("flat")
        .to_vec1()
        .expect("vec");
    // Error against the exact product of the stored weights: activation
    // rounding only, no bigger than candle's (which rounds per 256).
    let err = |v: &[f32]| -> f32 {
        v.iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    };
    let scale = exact.iter().fold(0f32, |a, v| a.max(v.abs()));
    assert!(err(&ours) < 0.01 * scale, "ours {} of {scale}", err(&ours));
    assert!(
        err(&ours) <= err(&candle) * 1.5,
        "ours {} candle {}",
        err(&ours),
        err(&candle)
    );
}

#[test]
fn the_other_32_value_formats_are_carried_over_exactly() {
    if !available() {
        eprintln!("skipped: this CPU runs none of our kernels");
        return;
    }
    let (n, k) = (37, 96);
    let w = Tensor::from_vec(random(n * k, 4), (n, k), &Device::Cpu).expect("w");
    for (dtype, small) in [
        (GgmlDType::Q4_0, Legacy::Q4_0),
        (GgmlDType::Q4_1, Legacy::Q4_1),
        (GgmlDType::Q5_0, Legacy::Q5_0),
        (GgmlDType::Q5_1, Legacy::Q5_1),
    ] {
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        let dense: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1())
            .expect("dequantize");
        // The Q8_0 blocks (and minimums) hold exactly the file's values.
        let (q8, mins) = small
            .to_q8_0(&q.data().expect("data"), n * k / BLOCK)
            .expect("carried over");
        for (b, blk) in q8.chunks_exact(2 + BLOCK).enumerate() {
            let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
            let m = mins
                .as_ref()
                .map_or(0.0, |m| half::f16::from_bits(m[b]).to_f32());
            for (j, &v) in blk[2..].iter().enumerate() {
                assert_eq!(d * v as i8 as f32 + m, dense[b * BLOCK + j], "{dtype:?}");
            }
        }
        // Products are the dense product up to activation rounding.
        let packed = PackedMatrix::from_qtensor(&q)
            .expect("pack")
            .expect("packed");
        assert_eq!((packed.rows(), packed.cols()), (n, k));
        for m in [1, 3, 9] {
            let x = random(m * k, 20 + m as u64);
            let got = packed.matmul(&x, m);
            for row in 0..m {
                for col in 0..n {
                    let want: f32 = (0..k).map(|j| x[row * k + j] * dense[col * k + j]).sum();
                    let g = got[row * n + col];
                    assert!((g - want).abs() < 0.05, "{dtype:?} m={m}: {g} vs {want}");
                }
            }
        }
    }
    let q3k = QTensor::quantize(
        &Tensor::from_vec(random(16 * 256, 5), (16, 256), &Device::Cpu).expect("w"),
        GgmlDType::Q3K,
    )
    .expect("q3k");
    assert!(PackedMatrix::from_qtensor(&q3k).expect("checked").is_none());
}

#[test]
fn low_bit_products_are_the_file_values_times_the_quantized_activations() {
    let sets = kernel_sets();
    if sets.is_empty() {
        return;
    }
    // 37 rows: two full tiles and a ragged one; two super-blocks a row.
    let (n, k) = (37, 512);
    let mut w = random(n * k, 7);
    for (i, v) in w.iter_mut().enumerate() {
        *v += ((i / k) % 5) as f32 * 0.2; // minimums of either sign
    }
    let w = Tensor::from_vec(w, (n, k), &Device::Cpu).expect("w");
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        let dense: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all()?.to_vec1())
            .expect("dequantize");
        // Q4_1 and Q5_1 minimums multiply the f16 block sum, as
        // llama.cpp's Q8_1 activations hold it.
        let mins = match dtype {
            GgmlDType::Q4_1 => Legacy::Q4_1.to_q8_0(&q.data().expect("data"), n * k / BLOCK),
            GgmlDType::Q5_1 => Legacy::Q5_1.to_q8_0(&q.data().expect("data"), n * k / BLOCK),
            _ => Ok((Vec::new(), None)),
        }
        .expect("decoded")
        .1;
        let packed = PackedMatrix::from_qtensor(&q)
            .expect("pack")
            .expect("packed");
        assert!(format!("{packed:?}")
            .contains(&format!("{:?}", LowBitFormat::of(dtype).expect("low bits"))));
        for (isa, m) in sets.iter().flat_map(|&isa| [1, 3, 8, 9].map(|m| (isa, m))) {
            let x = random(m * k, 30 + m as u64);
            let act = Activations::quantize_scalar(&x, m, k);
            let got = packed.matmul_on(isa, &x, m);
            if isa != sets[0] {
                let first = packed.matmul_on(sets[0], &x, m);
                assert!(same_bits(&got, &first), "{dtype:?} {isa:?}, m={m}");
            }
            for row in 0..m {
                for col in 0..n {
                    // The file's values times the activations as quantized.
                    let mut want: f64 = (0..k)
                        .map(|j| {
                            let a = act.d[(row * k + j) / BLOCK] * act.qs[row * k + j] as f32;
                            dense[col * k + j] as f64 * a as f64
                        })
                        .sum();
                    if let Some(mins) = &mins {
                        for b in 0..k / BLOCK {
                            let m = half::f16::from_bits(mins[col * k / BLOCK + b]).to_f32();
                            let at = row * k / BLOCK + b;
                            want += m as f64 * (act.s[at] - act.exact_sum[at]) as f64;
                        }
                    }
                    let g = got[row * n + col] as f64;
                    assert!(
                        (g - want).abs() < 1e-4 * want.abs().max(1.0),
                        "{dtype:?} m={m} ({row}, {col}): {g} vs {want}"
                    );
                }
            }
        }
    }
}
