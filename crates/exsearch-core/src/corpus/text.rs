//! Plain text and source code: validated UTF-8 (or UTF-16 with a byte-order
//! mark), indexed as it is so passage offsets point into the file itself.

use super::{ExtractedDocument, Section, Skip};

/// How much of a file is checked for NUL bytes, as git and ripgrep do.
const BINARY_SNIFF_BYTES: usize = 8192;

pub(super) fn extract(bytes: &[u8]) -> Result<ExtractedDocument, Skip> {
    Ok(ExtractedDocument {
        title: None,
        sections: vec![Section {
            page: None,
            text: decode(bytes)?,
        }],
    })
}

/// Decodes a text file, refusing binary content and invalid UTF-8.
pub(super) fn decode(bytes: &[u8]) -> Result<String, Skip> {
    if let Some(text) = decode_utf16_with_bom(bytes) {
        return text;
    }
    let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if let Some(offset) = sniff.iter().position(|&b| b == 0) {
        return Err(Skip::Binary { offset });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(Skip::NotUtf8 {
            offset: e.valid_up_to(),
        }),
    }
}

fn decode_utf16_with_bom(bytes: &[u8]) -> Option<Result<String, Skip>> {
    let little_endian = match bytes.get(..2)? {
        [0xFF, 0xFE] => true,
        [0xFE, 0xFF] => false,
        _ => return None,
    };
    let body = &bytes[2..];
    let units = body.chunks_exact(2).map(|c| {
        if little_endian {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    let mut out = String::with_capacity(body.len() / 2);
    for (i, ch) in char::decode_utf16(units).enumerate() {
        match ch {
            Ok(c) => out.push(c),
            Err(_) => return Some(Err(Skip::NotUtf8 { offset: 2 + 2 * i })),
        }
    }
    Some(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_bom_is_read_without_the_bom() {
        assert_eq!(decode(b"\xEF\xBB\xBFhello").as_deref(), Ok("hello"));
    }

    #[test]
    fn utf16_with_bom_is_decoded() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "héllo".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&bytes).as_deref(), Ok("héllo"));
    }

    #[test]
    fn binary_and_latin1_are_refused_with_the_offset() {
        assert_eq!(decode(b"ab\0cd"), Err(Skip::Binary { offset: 2 }));
        assert_eq!(decode(b"caf\xE9 au lait"), Err(Skip::NotUtf8 { offset: 3 }));
    }
}
