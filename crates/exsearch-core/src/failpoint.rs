//! Crash points for the durability tests: when `EXSEARCH_CRASH_AT` names a
//! point, the process aborts there, as `kill -9` would at the worst moment.
//! Unset (always, for users) it costs one cached lookup.

use std::sync::OnceLock;

pub(crate) const CRASH_ENV: &str = "EXSEARCH_CRASH_AT";

pub(crate) fn crash_point(name: &str) {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| std::env::var(CRASH_ENV).ok());
    if chosen.as_deref() == Some(name) {
        eprintln!("{CRASH_ENV}={name}: aborting");
        std::process::abort();
    }
}
