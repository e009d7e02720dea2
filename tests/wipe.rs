//! No heap block is freed with key material still in it: a global allocator looks
//! through every block as it is freed (and every block a reallocation leaves) for the
//! bytes of a key, while the code under test builds, uses and drops its keys.
//!
//! This binary holds one test only: the allocator is process-wide, and another test
//! running at the same time could free a copy of its own that looks like ours.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use spiped_proto::{Handshake, Key, Mode, Role};

/// The bytes looked for, set before arming.
static NEEDLE: [AtomicU8; 32] = [const { AtomicU8::new(0) }; 32];
/// Whether freed blocks are searched.
static ARMED: AtomicBool = AtomicBool::new(false);
/// Blocks freed with the needle in them.
static FOUND: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, zero-filling every block it hands out (so that every byte of a
/// block has been written when it is searched) and searching each block it frees.
struct Searching;

impl Searching {
    /// Counts `block` if it holds the needle.
    fn search(block: &[u8]) {
        let first = NEEDLE[0].load(Ordering::Relaxed);
        let found = block.windows(32).any(|w| {
            w[0] == first
                && w.iter()
                    .zip(&NEEDLE)
                    .all(|(b, n)| *b == n.load(Ordering::Relaxed))
        });
        if found {
            FOUND.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's layout, so the contract
// GlobalAlloc demands (blocks of the layout's size and alignment, freed once) is
// System's. `realloc` is an allocation, a copy of the smaller size and a free, which is
// what GlobalAlloc's own default `realloc` does.
unsafe impl GlobalAlloc for Searching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, which it promises is non-zero-sized.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes (the caller frees it
            // only now), each byte zeroed at allocation or since written by its owner.
            Self::search(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        }
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: as in `dealloc`; the old block is freed only on success.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[global_allocator]
static ALLOC: Searching = Searching;

/// A server given further keys for rotation (its key vector then grows) builds, runs
/// a handshake with a client of each key, and drops everything: no freed block held any
/// of the keys.
#[test]
fn rotation_keys_never_freed_unwiped() {
    let files: [&[u8]; 3] = [b"first key file", b"second key file", b"third key file"];
    let keys: Vec<Key> = files.iter().map(|f| Key::from_file_contents(f)).collect();
    for (i, k) in keys.iter().enumerate() {
        for (n, b) in NEEDLE.iter().zip(k.as_bytes()) {
            n.store(*b, Ordering::Relaxed);
        }
        ARMED.store(true, Ordering::SeqCst);
        for client_key in &keys {
            let fast = Mode {
                fast: true,
                ..Mode::default()
            };
            let mut s = Handshake::new(Role::Server, fast, &keys[0])
                .unwrap()
                .accepting_also(&keys[1..]);
            let mut c = Handshake::new(Role::Client, fast, client_key).unwrap();
            spiped_proto::drive(&mut c, &mut s).expect("handshake");
            assert!(c.finish().is_some() && s.finish().is_some());
        }
        ARMED.store(false, Ordering::SeqCst);
        assert_eq!(FOUND.load(Ordering::SeqCst), 0, "key {i} freed unwiped");
    }
}
