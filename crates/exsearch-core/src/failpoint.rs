//! Crash points for the durability tests: when `EXSEARCH_CRASH_AT` names a
//! point, the process aborts there, as `kill -9` would at the worst moment.
//! Only builds with the `test-support` feature have them (the test suite's
//! binaries); in a release build a crash point is nothing at all.

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
