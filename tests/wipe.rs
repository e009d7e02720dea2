//! No heap block is freed with key material still in it: a global allocator looks
//! through every block as it is freed (and every block a reallocation leaves) for the
//! bytes of a key, while the code under test builds, uses and drops its keys. And a key
//! that a reload removes leaves a running daemon's memory, read whole from outside.
//!
//! The allocator is process-wide: no other test here may build keys of its own in this
//! process (the daemon test builds none: its keys live in the daemon it starts).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use std::fs;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use common::{
    Addr, Daemon, EXCHANGE_DEADLINE, Impl, Mode as Serving, Target, Transport, assert_echo,
    key_file, poll, root, temp_dir,
};
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

/// How many times `needle` appears in the writable memory of process `pid` (heap,
/// stacks, anonymous mappings), read through `/proc/PID/mem`.
fn occurrences(pid: i32, needle: &[u8; 32]) -> usize {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut found = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut bytes = vec![0u8; (end - start) as usize];
        // A mapping the kernel will not let be read (a guard page) holds no key.
        if mem.read_exact_at(&mut bytes, start).is_ok() {
            found += bytes.windows(32).filter(|w| w == needle).count();
        }
    }
    found
}

/// The key `K` of the key file at `path`, as bytes to look for.
fn hashed(path: &Path) -> [u8; 32] {
    *Key::from_file_contents(&fs::read(path).unwrap()).as_bytes()
}

/// A reload removes the older of two keys while a session of that key is open; once that
/// session has closed, the daemon's memory holds the key nowhere (not in the settings
/// the accept loop waits with, not past the end of the remaining keys' vector), and
/// still nowhere after 20 sessions on the remaining key. Reading another process's
/// memory needs root (or ptrace rights) in CI.
#[test]
fn a_key_removed_by_a_reload_leaves_the_daemons_memory() {
    if !root() {
        return;
    }
    let dir = temp_dir();
    let d = dir.path();
    // The file and its keys in a directory of their own, which the sandbox lets a
    // reload read again (see SECURITY.md).
    let etc = d.join("etc");
    fs::create_dir(&etc).unwrap();
    let new = key_file(&etc, "new", b"the key that stays after the reload");
    let old = key_file(&etc, "old", b"the key that the reload removes");
    let target = Target::start(Transport::Tcp, d, Serving::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = etc.join("spiped.conf");
    let write = |keys: &[&Path]| {
        let list: Vec<String> = keys
            .iter()
            .map(|k| format!("{:?}", k.display().to_string()))
            .collect();
        // In place: the directory holds more than the configuration names, so the
        // sandbox allows reading the file that existed at start only.
        fs::write(
            &conf,
            format!(
                "[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\ntarget = \"{}\"\nkey = [{}]\n",
                source.arg(),
                target.addr.arg(),
                list.join(", ")
            ),
        )
        .unwrap();
    };
    write(&[&new, &old]);
    let daemon = Daemon::spawn(Impl::Ours, "d", d, &source, &["-c", conf.to_str().unwrap()]);
    let client = |label: &str, key: &Path| {
        Daemon::encrypting(
            Impl::Ours,
            label,
            d,
            &source.arg(),
            key.to_str().unwrap(),
            &[],
        )
    };
    let (with_old, with_new) = (client("old", &old), client("new", &new));
    let needle = hashed(&old);
    assert!(
        occurrences(with_old.pid(), &needle) > 0,
        "the scan finds a key where it is held"
    );

    let mut held = with_old.source.connect().unwrap();
    std::io::Write::write_all(&mut held, b"open across the reload").unwrap();
    held.read_exact_within(22, EXCHANGE_DEADLINE).unwrap();
    write(&[&new]);
    daemon.signal(libc::SIGHUP);
    daemon.wait_stderr("reloaded:", EXCHANGE_DEADLINE).unwrap();
    held.shutdown(std::net::Shutdown::Both).unwrap();
    target.wait_idle(EXCHANGE_DEADLINE).unwrap();
    // The daemon closes its side of the session just after the target's.
    let settled = poll(EXCHANGE_DEADLINE, || {
        (occurrences(daemon.pid(), &needle) == 0).then_some(())
    });
    assert!(
        settled.is_some(),
        "the removed key is still in the daemon's memory after its last session closed"
    );
    for i in 0..20u8 {
        assert_echo(&with_new.source, &[i; 100]);
    }
    assert_eq!(
        occurrences(daemon.pid(), &needle),
        0,
        "the removed key is back in the daemon's memory after 20 sessions"
    );
}

/// A key file's contents are the key too (`K` is their hash). A reload reads the key
/// files again on a worker thread; afterwards no copy of a 32-byte file's contents is
/// left in the daemon's memory (the hash state used to leave one on that thread's
/// stack, which nothing later overwrote).
#[test]
fn a_reload_leaves_no_key_file_contents_behind() {
    if !root() {
        return;
    }
    const CONTENTS: [u8; 32] = *b"\x8c\xe9the contents of a key file\xad\xf0\x05\x8f";
    let dir = temp_dir();
    let d = dir.path();
    let key = key_file(d, "key", &CONTENTS);
    let target = Target::start(Transport::Tcp, d, Serving::Echo);
    let source = Addr::fresh(Transport::Tcp, d, "s");
    let conf = d.join("spiped.conf");
    fs::write(
        &conf,
        format!(
            "[[pipe]]\nname = \"p\"\ndecrypt = true\nsource = \"{}\"\ntarget = \"{}\"\nkey = {:?}\n",
            source.arg(),
            target.addr.arg(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let daemon = Daemon::spawn(Impl::Ours, "d", d, &source, &["-c", conf.to_str().unwrap()]);
    daemon.signal(libc::SIGHUP);
    daemon.wait_stderr("reloaded:", EXCHANGE_DEADLINE).unwrap();
    assert_eq!(
        occurrences(daemon.pid(), &CONTENTS),
        0,
        "the key file's contents are in the daemon's memory after a reload"
    );
}
