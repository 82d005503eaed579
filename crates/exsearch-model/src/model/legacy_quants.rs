//! llama.cpp's "legacy" 32-value formats (Q4_0, Q4_1, Q5_0, Q5_1) as Q8_0
//! blocks holding the same values: Q4_0 and Q5_0 are `d` times a small
//! integer, Q4_1 and Q5_1 that plus a per-block minimum, kept beside.

use candle_core::quantized::{GgmlDType, QTensor};

use crate::error::{Error, Result};

/// Values per block.
const BLOCK: usize = 32;

/// The Q8_0 blocks of a Q4_0 or Q5_0 matrix, which hold its values exactly
/// (`None` for other formats). candle's kernels take these on CPUs without
/// ours.
pub(crate) fn exact_q8_0_blocks(t: &QTensor) -> Result<Option<Vec<u8>>> {
    let small = match t.dtype() {
        GgmlDType::Q4_0 => Legacy::Q4_0,
        GgmlDType::Q5_0 => Legacy::Q5_0,
        _ => return Ok(None),
    };
    let blocks = t.shape().elem_count() / BLOCK;
    Ok(Some(small.to_q8_0(&t.data()?, blocks)?.0))
}

/// The 32-value formats carried over into Q8_0 blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Legacy {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
}

impl Legacy {
    /// Bytes per block, and whether a block has a minimum.
    fn layout(self) -> (usize, bool) {
        match self {
            Legacy::Q4_0 => (18, false),
            Legacy::Q4_1 => (20, true),
            Legacy::Q5_0 => (22, false),
            Legacy::Q5_1 => (24, true),
        }
    }

    /// Q8_0 blocks (`f16 d, 32 x i8`) holding the same values, and the
    /// minimums (f16 bits) when the format has them. Exact: every value
    /// is `d` times a small integer (plus the minimum).
    pub(crate) fn to_q8_0(self, data: &[u8], blocks: usize) -> Result<(Vec<u8>, Option<Vec<u16>>)> {
        let (size, has_min) = self.layout();
        if data.len() != blocks * size {
            return Err(Error::Unsupported(format!(
                "{blocks} blocks need {} bytes, got {}",
                blocks * size,
                data.len()
            )));
        }
        let mut out = Vec::with_capacity(blocks * (2 + BLOCK));
        let mut mins = has_min.then(|| Vec::with_capacity(blocks));
        for src in data.chunks_exact(size) {
            out.extend_from_slice(&src[..2]);
            let mut at = 2;
            if let Some(mins) = &mut mins {
                mins.push(u16::from_le_bytes([src[2], src[3]]));
                at = 4;
            }
            let high = match self {
                Legacy::Q5_0 | Legacy::Q5_1 => {
                    let qh = u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
                    at += 4;
                    qh
                }
                Legacy::Q4_0 | Legacy::Q4_1 => 0,
            };
            let offset = match self {
                Legacy::Q4_0 => 8,
                Legacy::Q5_0 => 16,
                Legacy::Q4_1 | Legacy::Q5_1 => 0,
            };
            let nibbles = &src[at..at + BLOCK / 2];
            // Value j is the low nibble of byte j, value j + 16 the high one;
            // Q5 formats add bit j of `qh` as the fifth bit.
            for half in 0..2 {
                for (j, &byte) in nibbles.iter().enumerate() {
                    let i = half * BLOCK / 2 + j;
                    let q = (byte >> (4 * half)) & 0xF | (((high >> i) & 1) as u8) << 4;
                    out.push((q as i8 - offset) as u8);
                }
            }
        }
        Ok((out, mins))
    }
}
