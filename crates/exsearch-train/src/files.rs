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
