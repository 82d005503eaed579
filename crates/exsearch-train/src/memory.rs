//! Keeping freed memory in the process while a model trains.
//!
//! A training step allocates and frees tensors of tens to hundreds of
//! megabytes (activations kept for the backward pass, their gradients, the
//! logits). The binaries allocate through mimalloc, which by default hands
//! freed memory back to the OS 10 ms later ("purging"), so every step's
//! tensors fault in fresh pages that the kernel must zero: a third of an
//! M-step's time at the Qwen2.5-0.5B shape. While a [`HeldMemory`] lives,
//! freed memory is purged after [`HELD_DELAY_MS`] instead: what a step frees
//! and allocates again (most of its tensors, within milliseconds) is reused.
//! It used to be never purged, and a real model then went past the machine's
//! memory: SmolLM2-135M's warm-up steps (attention over up to 1,024 tokens
//! per sequence, each step its own tensor sizes) reached 14.5 GB in the
//! first step and went on growing, 22 GB in the second, until the kernel
//! killed the run at 24 GB; with the delay the process stays near the
//! largest step's peak.
//! When the last guard drops, the previous setting is restored and mimalloc
//! collects, so the memory goes back once training ends (the desktop app
//! lives on after a run). Without mimalloc as the global allocator (some
//! test binaries) the calls configure an allocator nothing uses.
#![allow(unsafe_code)]

use std::sync::Mutex;

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3): milliseconds before
/// freed memory is purged, -1 for never.
const PURGE_DELAY: mi_option_t = 15;

/// How long freed memory stays for reuse while a [`HeldMemory`] lives
/// (mimalloc's default is 10 ms).
pub const HELD_DELAY_MS: i64 = 10_000;

/// Guards alive, and the purge delay to restore when none is.
static HELD: Mutex<(usize, i64)> = Mutex::new((0, 0));

/// While alive, memory freed by this process stays in it for reuse, for
/// [`HELD_DELAY_MS`].
pub struct HeldMemory(());

impl HeldMemory {
    pub fn new() -> Self {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            // SAFETY: mimalloc's option calls are thread-safe.
            held.1 = unsafe { mi_option_get(PURGE_DELAY) } as i64;
            unsafe { mi_option_set(PURGE_DELAY, HELD_DELAY_MS as _) };
        }
        held.0 += 1;
        Self(())
    }
}

impl Default for HeldMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for HeldMemory {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            // SAFETY: as above; a forced collect returns freed memory now.
            unsafe {
                mi_option_set(PURGE_DELAY, held.1 as _);
                mi_collect(true);
            }
        }
    }
}
