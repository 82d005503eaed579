//! Plain text and source code, in whatever encoding the file is in.
//!
//! A byte-order mark decides first (UTF-8, UTF-16LE, UTF-16BE); a NUL byte
//! near the start marks a binary file, which is refused; valid UTF-8 is
//! taken as it is; anything else is decoded from the encoding the file
//! declares (HTML's `charset`, XML's `encoding`) or, without a declaration,
//! the one `chardetng` (the detector Firefox uses) finds: Windows-1252 and
//! the other Latin encodings, Shift_JIS, EUC-JP, GBK, Big5, EUC-KR, the
//! Cyrillic and Greek code pages. Decoding through `encoding_rs` never fails:
//! a byte the encoding has no character for becomes U+FFFD.

use encoding_rs::{Encoding, UTF_8};

use super::{ExtractedDocument, Section, Skip};

/// How much of a file is checked for NUL bytes, as git and ripgrep do.
const BINARY_SNIFF_BYTES: usize = 8192;

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    Ok(ExtractedDocument {
        title: None,
        sections: vec![Section {
            ocr: false,
            page: None,
            text: decode(bytes)?,
        }],
    })
}

/// Decodes a text file with no declared encoding, refusing binary content.
pub(super) fn decode(bytes: &[u8]) -> Result<String, Skip> {
    decode_declared(bytes, None)
}

/// Decodes a text file that may declare its encoding. A valid UTF-8 file is
/// read as UTF-8 even when it declares another encoding: such declarations
/// are common copy-paste leftovers, while legacy text that happens to be
/// valid UTF-8 is vanishingly rare beyond ASCII, where both agree.
pub(super) fn decode_declared(
    bytes: &[u8],
    declared: Option<&'static Encoding>,
) -> Result<String, Skip> {
    if let Some((encoding, bom)) = Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return Ok(text.into_owned());
    }
    let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if let Some(offset) = sniff.iter().position(|&b| b == 0) {
        return Err(Skip::Binary { offset });
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(text.to_owned());
    }
    let encoding = declared
        .filter(|&e| e != UTF_8)
        .unwrap_or_else(|| detect(bytes));
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Ok(text.into_owned())
}

/// The legacy encoding of bytes that are not UTF-8.
fn detect(bytes: &[u8]) -> &'static Encoding {
    use chardetng::{EncodingDetector, Iso2022JpDetection, Utf8Detection};
    // ISO-2022-JP is 7-bit, so valid UTF-8: it never reaches detection.
    let mut detector = EncodingDetector::new(Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    detector.guess(None, Utf8Detection::Deny)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str, label: &str) -> Vec<u8> {
        let encoding = Encoding::for_label(label.as_bytes()).expect("known label");
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{label} cannot hold {text}");
        bytes.into_owned()
    }

    #[test]
    fn utf8_with_bom_is_read_without_the_bom() {
        assert_eq!(decode(b"\xEF\xBB\xBFhello").as_deref(), Ok("hello"));
    }

    #[test]
    fn utf16_with_bom_is_decoded_in_both_byte_orders() {
        let mut little = vec![0xFF, 0xFE];
        let mut big = vec![0xFE, 0xFF];
        for u in "héllo wörld".encode_utf16() {
            little.extend_from_slice(&u.to_le_bytes());
            big.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(decode(&little).as_deref(), Ok("héllo wörld"));
        assert_eq!(decode(&big).as_deref(), Ok("héllo wörld"));
    }

    #[test]
    fn binary_is_refused_with_the_offset_of_its_first_nul() {
        assert_eq!(decode(b"ab\0cd"), Err(Skip::Binary { offset: 2 }));
    }

    #[test]
    fn legacy_encodings_are_detected_without_a_declaration() {
        let cases = [
            (
                "windows-1252",
                "Le café de la gare servait un crème brûlée à la façade naïve; \
                 l'été dernier, Noël et Hélène y étaient déjà.",
            ),
            (
                "shift_jis",
                "東京都は日本の首都であり、世界で最も人口の多い都市圏のひとつです。\
                 多くの企業の本社が置かれています。",
            ),
            (
                "gbk",
                "北京是中华人民共和国的首都，也是全国的政治中心和文化中心。\
                 这座城市有三千多年的历史。",
            ),
            (
                "windows-1251",
                "Москва является столицей России и крупнейшим городом страны, \
                 в ней живёт более двенадцати миллионов человек.",
            ),
        ];
        for (label, text) in cases {
            let bytes = encode(text, label);
            assert!(std::str::from_utf8(&bytes).is_err(), "{label} is not UTF-8");
            assert_eq!(decode(&bytes).as_deref(), Ok(text), "{label}");
        }
    }

    #[test]
    fn a_declared_encoding_wins_over_detection_but_not_over_valid_utf8() {
        // Two bytes that detection alone would read as Latin text.
        let latin2 = encode("Zażółć gęślą jaźń", "iso-8859-2");
        let declared = Encoding::for_label(b"iso-8859-2");
        assert_eq!(
            decode_declared(&latin2, declared).as_deref(),
            Ok("Zażółć gęślą jaźń")
        );
        let utf8 = "naïve café".as_bytes();
        assert_eq!(
            decode_declared(utf8, Encoding::for_label(b"iso-8859-1")).as_deref(),
            Ok("naïve café")
        );
    }
}
