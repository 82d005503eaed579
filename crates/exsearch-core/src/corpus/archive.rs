//! Zip containers (DOCX, EPUB, OpenDocument, PPTX, XLSX): parts read with
//! a cap on how far they may expand, errors that name the format, Office
//! package relationships, and the XML helpers the readers share.

use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::Skip;

/// The value of attribute `name` (matched by local name, any prefix) on an
/// XML element, entities resolved.
pub(super) fn attribute(element: &BytesStart<'_>, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Guards against zip bombs: XML compresses about 10x, so a part that
/// expands past this ratio of the whole file (or 256 MiB) is refused.
const MAX_EXPANSION: u64 = 64;
const MAX_PART_BYTES: u64 = 256 * 1024 * 1024;

pub(super) struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    limit: u64,
    kind: &'static str,
}

pub(super) fn corrupt(kind: &'static str, detail: impl ToString) -> Skip {
    Skip::Corrupt {
        kind,
        detail: detail.to_string(),
    }
}

/// Appends the text of the XML entity reference `&name;`, or the reference
/// as written when it names no entity XML predefines.
pub(super) fn push_entity(out: &mut String, name: &str) {
    let entity = format!("&{name};");
    match quick_xml::escape::unescape(&entity) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str(&entity),
    }
}

impl<'a> Archive<'a> {
    /// Opens `bytes` as the zip container of a `kind` file.
    pub(super) fn open(bytes: &'a [u8], kind: &'static str) -> Result<Self, Skip> {
        if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            // An OLE container: office suites wrap password-protected
            // documents so, and it is also the older binary format.
            return Err(corrupt(
                kind,
                "an OLE container, not a zip archive (password-protected, or the older binary format)",
            ));
        }
        Ok(Self {
            zip: zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(kind, e))?,
            limit: (bytes.len() as u64 * MAX_EXPANSION).clamp(1 << 20, MAX_PART_BYTES),
            kind,
        })
    }

    pub(super) fn corrupt(&self, detail: impl ToString) -> Skip {
        corrupt(self.kind, detail)
    }

    /// The bytes of part `name`, or `None` when the archive has no such part.
    pub(super) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, Skip> {
        let (kind, limit) = (self.kind, self.limit);
        let file = match self.zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(corrupt(kind, format!("{name}: {e}"))),
        };
        let mut out = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| corrupt(kind, format!("{name}: {e}")))?;
        if out.len() as u64 > limit {
            return Err(corrupt(
                kind,
                format!("{name} expands past {limit} bytes (a zip bomb?)"),
            ));
        }
        Ok(Some(out))
    }

    /// Part `name` as text (XML parts are UTF-8 in all three formats).
    pub(super) fn read_string(&mut self, name: &str) -> Result<Option<String>, Skip> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| self.corrupt(format!("{name}: {e}"))),
        }
    }
}

/// `(id, archive path)` of the relationships of part `part`.
pub(super) fn relationships(
    archive: &mut Archive<'_>,
    part: &str,
) -> Result<Vec<(String, String)>, Skip> {
    let (folder, name) = part.rsplit_once('/').unwrap_or(("", part));
    let rels_path = format!("{folder}/_rels/{name}.rels");
    let Some(xml) = archive.read_string(&rels_path)? else {
        return Ok(Vec::new());
    };
    let mut reader = Reader::from_str(&xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let external = attribute(&e, "TargetMode").is_some_and(|m| m == "External");
                if let (Some(id), Some(target), false) =
                    (attribute(&e, "Id"), attribute(&e, "Target"), external)
                {
                    out.push((id, resolve(folder, &target)));
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(archive.corrupt(format!("{rels_path}: {e}"))),
        }
    }
    Ok(out)
}

/// An href relative to a folder of the archive, as an archive path: fragment
/// dropped, percent-escapes decoded, `.` and `..` folded.
pub(super) fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or_default();
    let mut decoded = Vec::with_capacity(href.len());
    let bytes = href.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                decoded.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let href = String::from_utf8_lossy(&decoded);
    let mut parts: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in href.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Builds a zip archive of `(name, content)` parts, stored uncompressed,
/// for tests here and in other modules.
#[cfg(test)]
pub(crate) fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, content) in parts {
            zip.start_file(*name, opts).expect("zip");
            zip.write_all(content.as_bytes()).expect("zip");
        }
        zip.finish().expect("zip");
    }
    buf.into_inner()
}
