//! The scanned image of a PDF page, as a file Tesseract reads: a scanner's
//! JPEG or JPEG 2000 passed as it is, a fax page's CCITT data wrapped in a
//! TIFF, and raw samples (Flate, LZW, none; gray, RGB, CMYK, indexed, any
//! depth) converted to an 8-bit grayscale PGM.

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::{deref, number};

/// Smaller images are icons and rules, not scanned pages.
const MIN_PIXELS: i64 = 100_000;
/// Larger ones are refused rather than decoded (a 1.2-gigapixel page).
const MAX_PIXELS: i64 = 200_000_000;

/// The page's largest image, encoded for OCR; `None` when it has none big
/// enough or none in a form we can hand over.
pub(super) fn page_image(doc: &Document, page: ObjectId) -> Option<Vec<u8>> {
    let page_dict = doc.get_dictionary(page).ok()?;
    let resources = inherited(doc, page_dict, b"Resources")?;
    let xobjects = deref(doc, resources.get(b"XObject").ok()?).as_dict().ok()?;
    let mut best: Option<(i64, &Stream)> = None;
    for (_, object) in xobjects.iter() {
        let Ok(stream) = deref(doc, object).as_stream() else {
            continue;
        };
        let dict = &stream.dict;
        if !dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|s| s == b"Image")
        {
            continue;
        }
        let pixels = int(doc, dict, b"Width").unwrap_or(0) * int(doc, dict, b"Height").unwrap_or(0);
        if (MIN_PIXELS..=MAX_PIXELS).contains(&pixels) && best.is_none_or(|(p, _)| pixels > p) {
            best = Some((pixels, stream));
        }
    }
    encode(doc, best?.1)
}

fn encode(doc: &Document, image: &Stream) -> Option<Vec<u8>> {
    let dict = &image.dict;
    let filters: Vec<Vec<u8>> = match dict.get(b"Filter").map(|f| deref(doc, f)) {
        Ok(Object::Name(name)) => vec![name.clone()],
        Ok(Object::Array(list)) => list
            .iter()
            .filter_map(|f| deref(doc, f).as_name().ok().map(<[u8]>::to_vec))
            .collect(),
        _ => Vec::new(),
    };
    let width = int(doc, dict, b"Width")?;
    let height = int(doc, dict, b"Height")?;
    match filters.as_slice() {
        [only] if only == b"DCTDecode" || only == b"JPXDecode" => Some(image.content.clone()),
        [only] if only == b"CCITTFaxDecode" => {
            let params = dict
                .get(b"DecodeParms")
                .ok()
                .map(|p| deref(doc, p))
                .and_then(|p| match p {
                    Object::Array(a) => a.first().map(|p| deref(doc, p)),
                    other => Some(other),
                })
                .and_then(|p| p.as_dict().ok());
            let k = params.and_then(|p| int(doc, p, b"K")).unwrap_or(0);
            let black_is_1 = params
                .and_then(|p| p.get(b"BlackIs1").ok())
                .is_some_and(|b| matches!(b, Object::Boolean(true)));
            Some(ccitt_tiff(&image.content, width, height, k, black_is_1))
        }
        _ => {
            let samples = image.decompressed_content().ok()?;
            raw_to_pgm(doc, dict, &samples, width, height)
        }
    }
}

/// 8-bit grayscale PGM from raw samples in the image's color space.
fn raw_to_pgm(
    doc: &Document,
    dict: &Dictionary,
    samples: &[u8],
    width: i64,
    height: i64,
) -> Option<Vec<u8>> {
    let mask = dict
        .get(b"ImageMask")
        .is_ok_and(|m| matches!(m, Object::Boolean(true)));
    let bits = if mask {
        1
    } else {
        int(doc, dict, b"BitsPerComponent").unwrap_or(8)
    };
    if ![1, 2, 4, 8, 16].contains(&bits) {
        return None;
    }
    // How one sample tuple becomes a gray level.
    let space = if mask {
        Space::Gray
    } else {
        Space::of(doc, dict.get(b"ColorSpace").ok()?)?
    };
    let components = space.components();
    let (w, h) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
    let row_bytes = (w * components * bits as usize).div_ceil(8);
    if samples.len() < row_bytes * h {
        return None;
    }
    // 16-bit samples are read by their high byte.
    let depth = bits.min(8) as usize;
    let max = ((1u32 << depth) - 1) as f32;
    let mut out = format!("P5\n{w} {h}\n255\n").into_bytes();
    out.reserve(w * h);
    let mut tuple = vec![0u8; components];
    for row in samples.chunks_exact(row_bytes).take(h) {
        for x in 0..w {
            for (c, value) in tuple.iter_mut().enumerate() {
                let i = x * components + c;
                *value = match bits {
                    8 => row[i],
                    16 => row[2 * i],
                    _ => {
                        let bit = i * depth;
                        (row[bit / 8] >> (8 - depth - bit % 8)) & ((1u16 << depth) - 1) as u8
                    }
                };
            }
            let mut gray = space.gray(&tuple, max);
            if mask {
                // A stencil paints where the sample is 0: black ink.
                gray = 1.0 - gray;
            }
            out.push((gray.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }
    Some(out)
}

enum Space {
    Gray,
    Rgb,
    Cmyk,
    /// A palette of colors in `base`, one byte-quantized tuple per entry.
    Indexed {
        base: Box<Space>,
        high: usize,
        table: Vec<u8>,
    },
}

impl Space {
    fn of(doc: &Document, object: &Object) -> Option<Space> {
        match deref(doc, object) {
            Object::Name(name) => match name.as_slice() {
                b"DeviceGray" | b"CalGray" | b"G" => Some(Space::Gray),
                b"DeviceRGB" | b"CalRGB" | b"RGB" => Some(Space::Rgb),
                b"DeviceCMYK" | b"CMYK" => Some(Space::Cmyk),
                _ => None,
            },
            Object::Array(parts) => {
                let family = deref(doc, parts.first()?).as_name().ok()?;
                match family {
                    b"ICCBased" => {
                        let stream = deref(doc, parts.get(1)?).as_stream().ok()?;
                        match int(doc, &stream.dict, b"N")? {
                            1 => Some(Space::Gray),
                            3 => Some(Space::Rgb),
                            4 => Some(Space::Cmyk),
                            _ => None,
                        }
                    }
                    b"Indexed" | b"I" => {
                        let base = Space::of(doc, parts.get(1)?)?;
                        let high = match deref(doc, parts.get(2)?) {
                            Object::Integer(i) => usize::try_from(*i).ok()?,
                            _ => return None,
                        };
                        let table = match deref(doc, parts.get(3)?) {
                            Object::String(bytes, _) => bytes.clone(),
                            Object::Stream(s) => s.decompressed_content().ok()?,
                            _ => return None,
                        };
                        Some(Space::Indexed {
                            base: Box::new(base),
                            high,
                            table,
                        })
                    }
                    b"CalGray" => Some(Space::Gray),
                    b"CalRGB" => Some(Space::Rgb),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn components(&self) -> usize {
        match self {
            Space::Gray | Space::Indexed { .. } => 1,
            Space::Rgb => 3,
            Space::Cmyk => 4,
        }
    }

    /// Luminance in 0..=1 of one pixel's raw samples, each at most `max`
    /// (for an indexed space, the one sample is the palette index).
    fn gray(&self, samples: &[u8], max: f32) -> f32 {
        let c = |i: usize| f32::from(samples[i]) / max;
        match self {
            Space::Gray => c(0),
            Space::Rgb => 0.299 * c(0) + 0.587 * c(1) + 0.114 * c(2),
            Space::Cmyk => {
                let k = c(3);
                let [r, g, b] = [c(0), c(1), c(2)].map(|v| (1.0 - v) * (1.0 - k));
                0.299 * r + 0.587 * g + 0.114 * b
            }
            Space::Indexed { base, high, table } => {
                let index = usize::from(samples[0]).min(*high);
                let n = base.components();
                let entry: Vec<u8> = (0..n)
                    .map(|c| table.get(index * n + c).copied().unwrap_or(0))
                    .collect();
                base.gray(&entry, 255.0)
            }
        }
    }
}

/// A one-strip TIFF around CCITT group 3 or 4 data, as PDF's
/// CCITTFaxDecode parameters describe it.
fn ccitt_tiff(data: &[u8], width: i64, height: i64, k: i64, black_is_1: bool) -> Vec<u8> {
    let compression: u32 = if k < 0 { 4 } else { 3 };
    let t_options: u32 = u32::from(k > 0);
    // TIFF readers take CCITT runs as 1 = black (WhiteIsZero); PDF's
    // BlackIs1 false means the image's 0 samples are black, the same picture.
    let photometric: u32 = if black_is_1 { 1 } else { 0 };
    let width = u32::try_from(width).unwrap_or(0);
    let height = u32::try_from(height).unwrap_or(0);
    let mut entries: Vec<(u16, u16, u32)> = vec![
        (256, 4, width),             // ImageWidth
        (257, 4, height),            // ImageLength
        (258, 3, 1),                 // BitsPerSample
        (259, 3, compression),       // Compression
        (262, 3, photometric),       // PhotometricInterpretation
        (273, 4, 0),                 // StripOffsets (set below)
        (277, 3, 1),                 // SamplesPerPixel
        (278, 4, height),            // RowsPerStrip
        (279, 4, data.len() as u32), // StripByteCounts
    ];
    if compression == 3 {
        entries.push((292, 4, t_options)); // T4Options
    } else {
        entries.push((293, 4, 0)); // T6Options
    }
    let ifd_len = 2 + entries.len() * 12 + 4;
    let data_at = (8 + ifd_len) as u32;
    for entry in &mut entries {
        if entry.0 == 273 {
            entry.2 = data_at;
        }
    }
    let mut out = Vec::with_capacity(data_at as usize + data.len());
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        if kind == 3 {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn int(doc: &Document, dict: &Dictionary, key: &[u8]) -> Option<i64> {
    number(doc, dict.get(key).ok()?).map(|n| n as i64)
}

/// A page attribute, looked up the page tree as the spec allows.
fn inherited<'a>(doc: &'a Document, page: &'a Dictionary, key: &[u8]) -> Option<&'a Dictionary> {
    let mut node = page;
    for _ in 0..64 {
        if let Ok(value) = node.get(key) {
            return deref(doc, value).as_dict().ok();
        }
        node = doc
            .get_dictionary(node.get(b"Parent").ok()?.as_reference().ok()?)
            .ok()?;
    }
    None
}
