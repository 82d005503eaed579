//! Keeping freed memory in the process while a model trains.
//!
//! A training step allocates and frees tensors of tens to hundreds of
//! megabytes (activations kept for the backward pass, their gradients, the
//! logits). The binaries allocate through mimalloc, which by default hands
//! freed memory back to the OS 10 ms later ("purging"), so every step's
//! tensors fault in fresh pages that the kernel must zero: a third of an
//! M-step's time at the Qwen2.5-0.5B shape. While a [`HeldMemory`] lives,
//! nothing is purged: freed memory is reused by the next step. The process
//! then stays near the step's peak, which it reaches at every step anyway.
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

/// Guards alive, and the purge delay to restore when none is.
static HELD: Mutex<(usize, i64)> = Mutex::new((0, 0));

/// While alive, memory freed by this process stays in it for reuse.
pub struct HeldMemory(());

impl HeldMemory {
    pub fn new() -> Self {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            // SAFETY: mimalloc's option calls are thread-safe.
            held.1 = unsafe { mi_option_get(PURGE_DELAY) } as i64;
            unsafe { mi_option_set(PURGE_DELAY, -1) };
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
