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

use lopdf::{Dictionary, Document, Object, ObjectId};

/// The most glyphs one `/W` range may expand to (the CID space is 16-bit).
const MAX_RANGE: i64 = 65_536;

pub(super) fn mend(doc: &mut Document) {
    let mut widths: Vec<(ObjectId, Vec<Object>)> = Vec::new();
    let mut encodings: Vec<ObjectId> = Vec::new();
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
                    .and_then(|w| resolve(doc, w).as_array().ok())
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
}

fn resolve<'a>(doc: &'a Document, object: &'a Object) -> &'a Object {
    match object {
        Object::Reference(id) => doc.get_object(*id).unwrap_or(object),
        other => other,
    }
}

fn number(doc: &Document, object: &Object) -> Option<f64> {
    match resolve(doc, object) {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

/// The `/W` array with every range written as a list, or `None` when it
/// has no range (nothing to mend) or is malformed (left as it is).
fn list_form(doc: &Document, w: &[Object]) -> Option<Vec<Object>> {
    let mut out = Vec::new();
    let mut ranges = false;
    let mut i = 0;
    while i < w.len() {
        let first = number(doc, &w[i])? as i64;
        match resolve(doc, w.get(i + 1)?) {
            Object::Array(list) => {
                out.push(Object::Integer(first));
                out.push(Object::Array(
                    list.iter().map(|x| resolve(doc, x).clone()).collect(),
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
        .and_then(|d| resolve(doc, d).as_dict().ok())
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
