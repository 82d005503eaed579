//! The files and folders training writes: whole files only (a kill never
//! leaves half of one under its final name), under names that are safe as
//! folder names.

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file and a rename, so a kill
/// never leaves a half-written file under the final name.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads the JSON file `path` as a `T`, or `None` when there is no such
/// file (a report or record not written yet); a file that does not parse
/// is an error naming it.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::bad_file(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A name that becomes a folder (a run, an adapter, a demonstration):
/// letters, digits, `-`, `_` and `.`, not starting with a dot.
pub fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSetting(format!(
            "`{name}` is not a valid {kind} name (letters, digits, '-', '_', '.')"
        )))
    }
}
