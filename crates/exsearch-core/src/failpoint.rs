//! Fault points for the durability tests. When `EXSEARCH_CRASH_AT` names a
//! crash point, the process aborts there, as `kill -9` would at the worst
//! moment. When `EXSEARCH_FAIL_AT` names a write point (`name`, or `name:N`
//! for its N-th pass), the write there fails as on a full disk. Only builds
//! with the `test-support` feature have them (the test suite's binaries);
//! in a release build they are nothing at all.

#[cfg(feature = "test-support")]
pub(crate) fn crash_point(name: &str) {
    use std::sync::OnceLock;
    const CRASH_ENV: &str = "EXSEARCH_CRASH_AT";
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(CRASH_ENV).ok());
    if chosen.as_deref() == Some(name) {
        eprintln!("{CRASH_ENV}={name}: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-support"))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// A write about to happen at `name`: fails with "No space left on device"
/// when `EXSEARCH_FAIL_AT` names this pass of it.
#[cfg(feature = "test-support")]
pub fn write_fault(name: &str) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    static CHOSEN: OnceLock<Option<(String, usize)>> = OnceLock::new();
    static PASSES: AtomicUsize = AtomicUsize::new(0);
    let chosen = CHOSEN.get_or_init(|| {
        let spec = std::env::var("EXSEARCH_FAIL_AT").ok()?;
        Some(match spec.split_once(':') {
            Some((point, n)) => (point.to_owned(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        })
    });
    match chosen {
        Some((point, n)) if point == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n => {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("No space left on device (EXSEARCH_FAIL_AT={name})"),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(not(feature = "test-support"))]
#[inline(always)]
pub fn write_fault(_name: &str) -> std::io::Result<()> {
    Ok(())
}
