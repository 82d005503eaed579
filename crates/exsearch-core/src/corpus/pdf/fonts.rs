//! Font dictionaries mended before pdf-extract reads them, where its reading
//! departs from the PDF specification and from what poppler shows:
//!
//! - A CID font's `/W` widths in the range form `first last width` were read
//!   as nothing, so every glyph in such a range had width zero and a
//!   Google Docs export came out with a space after every few letters.
//!   Ranges are rewritten in the list form `first [w w ...]`.
//! - A compact (CFF) Type 1 font with no `/Encoding` (TeX's math and
//!   diagram fonts) had no fallback for a code its charset does not name,
//!   and the first such glyph ended the page's text. It gets the Windows
//!   encoding as that fallback; the font's own glyph names still come first.
//! - A CID font whose encoding is a predefined CMap other than Identity
//!   (`GBK-EUC-H`, `90ms-RKSJ-H`, `UniGB-UCS2-H`...: Chinese, Japanese and
//!   Korean text from producers that embed no font) was refused outright.
//!   Each of those CMaps reads a legacy multi-byte encoding (GBK, Shift_JIS,
//!   Big5, EUC-JP, EUC-KR/UHC) or UTF-16, so the font gets an embedded CMap
//!   with that encoding's code-space ranges (character id = code) and, for
//!   the codes the document shows, a ToUnicode map decoded by encoding_rs.

use std::collections::BTreeSet;

use encoding_rs::Encoding;
use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::{deref, number};

/// The most glyphs one `/W` range may expand to (the CID space is 16-bit).
const MAX_RANGE: i64 = 65_536;

pub(super) fn mend(doc: &mut Document) {
    let mut widths: Vec<(ObjectId, Vec<Object>)> = Vec::new();
    let mut encodings: Vec<ObjectId> = Vec::new();
    let mut predefined: Vec<(ObjectId, &'static LegacyCmap)> = Vec::new();
    for (&id, object) in &doc.objects {
        let Ok(dict) = object.as_dict() else { continue };
        if !dict
            .get(b"Type")
            .and_then(Object::as_name)
            .is_ok_and(|t| t == b"Font")
        {
            continue;
        }
        match dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"CIDFontType0" | b"CIDFontType2") => {
                let Some(w) = dict
                    .get(b"W")
                    .ok()
                    .and_then(|w| deref(doc, w).as_array().ok())
                else {
                    continue;
                };
                if let Some(listed) = list_form(doc, w) {
                    widths.push((id, listed));
                }
            }
            Ok(b"Type1" | b"MMType1")
                if dict.get(b"Encoding").is_err() && has_compact_font(doc, dict) =>
            {
                encodings.push(id);
            }
            Ok(b"Type0") => {
                if let Some(cmap) = dict
                    .get(b"Encoding")
                    .and_then(Object::as_name)
                    .ok()
                    .and_then(LegacyCmap::named)
                {
                    predefined.push((id, cmap));
                }
            }
            _ => {}
        }
    }
    for (id, w) in widths {
        if let Ok(Object::Dictionary(dict)) = doc.get_object_mut(id) {
            dict.set("W", Object::Array(w));
        }
    }
    for id in encodings {
        if let Ok(Object::Dictionary(dict)) = doc.get_object_mut(id) {
            dict.set("Encoding", Object::Name(b"WinAnsiEncoding".to_vec()));
        }
    }
    if !predefined.is_empty() {
        let shown = shown_strings(doc);
        for (id, cmap) in predefined {
            mend_predefined(doc, id, cmap, &shown);
        }
    }
}

/// A predefined CMap and the byte encoding it reads.
struct LegacyCmap {
    /// CMap names start with one of these (H and V variants alike).
    prefixes: &'static [&'static str],
    /// `None`: UTF-16BE.
    encoding: Option<&'static Encoding>,
    /// One-byte and two-byte code ranges.
    one_byte: &'static [(u8, u8)],
    two_byte: &'static [(u16, u16)],
}

const LEGACY_CMAPS: &[LegacyCmap] = &[
    LegacyCmap {
        prefixes: &[
            "GB-EUC-",
            "GBpc-EUC-",
            "GBK-EUC-",
            "GBKp-EUC-",
            "GBK2K-",
            "GBT-EUC-",
        ],
        encoding: Some(encoding_rs::GBK),
        one_byte: &[(0x00, 0x80)],
        two_byte: &[(0x8140, 0xFEFE)],
    },
    LegacyCmap {
        prefixes: &["B5pc-", "ETen-B5-", "ETenms-B5-", "HKscs-B5-", "CNS-EUC-"],
        encoding: Some(encoding_rs::BIG5),
        one_byte: &[(0x00, 0x80)],
        two_byte: &[(0x8140, 0xFEFE)],
    },
    LegacyCmap {
        prefixes: &[
            "90ms-RKSJ-",
            "90msp-RKSJ-",
            "90pv-RKSJ-",
            "83pv-RKSJ-",
            "Add-RKSJ-",
            "Ext-RKSJ-",
        ],
        encoding: Some(encoding_rs::SHIFT_JIS),
        one_byte: &[(0x00, 0x80), (0xA0, 0xDF)],
        two_byte: &[(0x8140, 0x9FFC), (0xE040, 0xFCFC)],
    },
    LegacyCmap {
        prefixes: &["EUC-", "Add-"],
        encoding: Some(encoding_rs::EUC_JP),
        one_byte: &[(0x00, 0x80)],
        two_byte: &[(0x8EA0, 0x8EDF), (0xA1A1, 0xFEFE)],
    },
    LegacyCmap {
        prefixes: &["KSC-EUC-", "KSCms-UHC-", "KSCpc-EUC-"],
        encoding: Some(encoding_rs::EUC_KR),
        one_byte: &[(0x00, 0x80)],
        two_byte: &[(0x8141, 0xFEFE)],
    },
    LegacyCmap {
        prefixes: &[
            "UniGB-UCS2-",
            "UniGB-UTF16-",
            "UniCNS-UCS2-",
            "UniCNS-UTF16-",
            "UniJIS-UCS2-",
            "UniJIS-UTF16-",
            "UniJIS2004-UTF16-",
            "UniKS-UCS2-",
            "UniKS-UTF16-",
        ],
        encoding: None,
        one_byte: &[],
        two_byte: &[(0x0000, 0xFFFF)],
    },
];

impl LegacyCmap {
    fn named(name: &[u8]) -> Option<&'static LegacyCmap> {
        let name = std::str::from_utf8(name).ok()?;
        if name.starts_with("Identity") {
            return None;
        }
        LEGACY_CMAPS
            .iter()
            .find(|c| c.prefixes.iter().any(|p| name.starts_with(p)))
    }

    /// The codes of `bytes`, split by this encoding's code space.
    fn codes(&self, bytes: &[u8]) -> Vec<u16> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.one_byte.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) {
                out.push(u16::from(b));
                i += 1;
            } else if let Some(&next) = bytes.get(i + 1) {
                out.push(u16::from_be_bytes([b, next]));
                i += 2;
            } else {
                break;
            }
        }
        out
    }

    /// The text of one code, if the encoding defines it.
    fn text(&self, code: u16) -> Option<String> {
        let bytes = if code <= 0xFF
            && self
                .one_byte
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&(code as u8)))
        {
            vec![code as u8]
        } else {
            code.to_be_bytes().to_vec()
        };
        match self.encoding {
            None => char::from_u32(u32::from(code)).map(String::from),
            Some(encoding) => encoding
                .decode_without_bom_handling_and_without_replacement(&bytes)
                .map(|s| s.into_owned())
                .filter(|s| s.chars().count() == 1),
        }
    }

    /// An embedded CMap with this encoding's code space, every code its own
    /// character id. adobe-cmap-parser 0.4 reads a code-space range's width
    /// as half its hex string's byte count, so each bound is written with
    /// leading zero bytes to twice its width (a test reads a GBK file
    /// through it, so an upgrade that changes this is caught).
    fn encoding_cmap(&self) -> Vec<u8> {
        let mut ranges = String::new();
        for &(lo, hi) in self.one_byte {
            ranges.push_str(&format!("<00{lo:02X}> <00{hi:02X}>\n"));
        }
        for &(lo, hi) in self.two_byte {
            ranges.push_str(&format!("<0000{lo:04X}> <0000{hi:04X}>\n"));
        }
        format!(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CMapName /ExSearch-Legacy def\n{} begincodespacerange\n{ranges}endcodespacerange\n\
             1 begincidrange\n<0000> <FFFF> 0\nendcidrange\nendcmap\n\
             CMapName currentdict /CMap defineresource pop\nend\nend\n",
            self.one_byte.len() + self.two_byte.len()
        )
        .into_bytes()
    }
}

/// Every string a content stream of the document shows (pages and form
/// XObjects), so a ToUnicode map is written for the codes in use only.
fn shown_strings(doc: &Document) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut collect = |content: &[u8]| {
        let Ok(content) = Content::decode(content) else {
            return;
        };
        for op in content.operations {
            if !matches!(op.operator.as_str(), "Tj" | "TJ" | "'" | "\"") {
                continue;
            }
            for operand in op.operands {
                match operand {
                    Object::String(bytes, _) => out.push(bytes),
                    Object::Array(items) => out.extend(items.into_iter().filter_map(|i| match i {
                        Object::String(bytes, _) => Some(bytes),
                        _ => None,
                    })),
                    _ => {}
                }
            }
        }
    };
    for (_, page) in doc.get_pages() {
        if let Ok(content) = doc.get_page_content(page) {
            collect(&content);
        }
    }
    for object in doc.objects.values() {
        if let Object::Stream(stream) = object {
            if stream
                .dict
                .get(b"Subtype")
                .and_then(Object::as_name)
                .is_ok_and(|s| s == b"Form")
            {
                if let Ok(content) = stream.decompressed_content() {
                    collect(&content);
                }
            }
        }
    }
    out
}

/// Gives the Type0 font `id` an embedded CMap for `cmap` and, unless it
/// has one, a ToUnicode map for the codes `shown`; its widths, indexed by
/// the predefined CMap's own character ids, give way to one default width.
fn mend_predefined(doc: &mut Document, id: ObjectId, cmap: &LegacyCmap, shown: &[Vec<u8>]) {
    let has_to_unicode = doc
        .get_dictionary(id)
        .is_ok_and(|font| font.has(b"ToUnicode"));
    let encoding = doc.add_object(Stream::new(Dictionary::new(), cmap.encoding_cmap()));
    let to_unicode = (!has_to_unicode).then(|| {
        let codes: BTreeSet<u16> = shown.iter().flat_map(|s| cmap.codes(s)).collect();
        doc.add_object(Stream::new(
            Dictionary::new(),
            to_unicode_cmap(cmap, &codes),
        ))
    });
    let descendant =
        doc.get_dictionary(id)
            .ok()
            .and_then(|font| match font.get(b"DescendantFonts").ok()? {
                Object::Array(list) => match list.first()? {
                    Object::Reference(r) => Some(Some(*r)),
                    _ => Some(None),
                },
                Object::Reference(r) => Some(
                    doc.get_object(*r)
                        .ok()?
                        .as_array()
                        .ok()?
                        .first()?
                        .as_reference()
                        .ok(),
                ),
                _ => None,
            });
    let plain_widths = |dict: &mut Dictionary| {
        dict.remove(b"W");
        dict.set("DW", Object::Integer(1000));
    };
    if let Ok(Object::Dictionary(font)) = doc.get_object_mut(id) {
        font.set("Encoding", Object::Reference(encoding));
        if let Some(to_unicode) = to_unicode {
            font.set("ToUnicode", Object::Reference(to_unicode));
        }
        if let Some(None) = descendant {
            if let Ok(Object::Array(list)) = font.get_mut(b"DescendantFonts") {
                if let Some(Object::Dictionary(d)) = list.first_mut() {
                    plain_widths(d);
                }
            }
        }
    }
    if let Some(Some(descendant)) = descendant {
        if let Ok(Object::Dictionary(d)) = doc.get_object_mut(descendant) {
            plain_widths(d);
        }
    }
}

fn to_unicode_cmap(cmap: &LegacyCmap, codes: &BTreeSet<u16>) -> Vec<u8> {
    let entries: Vec<(u16, String)> = codes
        .iter()
        .filter_map(|&code| Some((code, cmap.text(code)?)))
        .collect();
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CMapName /ExSearch-ToUnicode def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    for chunk in entries.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (code, text) in chunk {
            let utf16: String = text.encode_utf16().map(|u| format!("{u:04X}")).collect();
            out.push_str(&format!("<{code:04X}> <{utf16}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    out.into_bytes()
}

/// The `/W` array with every range written as a list, or `None` when it
/// has no range (nothing to mend) or is malformed (left as it is).
fn list_form(doc: &Document, w: &[Object]) -> Option<Vec<Object>> {
    let mut out = Vec::new();
    let mut ranges = false;
    let mut i = 0;
    while i < w.len() {
        let first = number(doc, &w[i])? as i64;
        match deref(doc, w.get(i + 1)?) {
            Object::Array(list) => {
                out.push(Object::Integer(first));
                out.push(Object::Array(
                    list.iter().map(|x| deref(doc, x).clone()).collect(),
                ));
                i += 2;
            }
            last => {
                let last = number(doc, last)? as i64;
                let width = number(doc, w.get(i + 2)?)?;
                if last < first || last - first >= MAX_RANGE {
                    return None;
                }
                ranges = true;
                out.push(Object::Integer(first));
                out.push(Object::Array(
                    (first..=last).map(|_| Object::Real(width as f32)).collect(),
                ));
                i += 3;
            }
        }
    }
    ranges.then_some(out)
}

fn has_compact_font(doc: &Document, font: &Dictionary) -> bool {
    font.get(b"FontDescriptor")
        .ok()
        .and_then(|d| deref(doc, d).as_dict().ok())
        .is_some_and(|d| d.has(b"FontFile3") && !d.has(b"FontFile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_ranges_become_lists_and_lists_stay() {
        let doc = Document::with_version("1.7");
        let w = vec![
            Object::Integer(0),
            Object::Array(vec![Object::Integer(750)]),
            Object::Integer(19),
            Object::Integer(21),
            Object::Real(556.0),
        ];
        let listed = list_form(&doc, &w).expect("has a range");
        assert_eq!(listed[0], Object::Integer(0));
        assert_eq!(listed[2], Object::Integer(19));
        assert_eq!(listed[3].as_array().expect("list").len(), 3);
        // Nothing to mend, and a malformed array, are left alone.
        assert!(list_form(&doc, &listed).is_none());
        assert!(list_form(&doc, &[Object::Integer(5), Object::Integer(2)]).is_none());
        let huge = [
            Object::Integer(0),
            Object::Integer(10_000_000),
            Object::Integer(1),
        ];
        assert!(list_form(&doc, &huge).is_none());
    }
}
