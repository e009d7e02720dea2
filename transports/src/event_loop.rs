//! [`block_on`]: the event loop every socket, timer, signal and DNS look-up of the
//! process runs on: tokio's current-thread runtime.
//!
//! One thread polls every task and waits in `epoll_wait` for all of them; each socket
//! is registered once, edge-triggered, and timers use the `epoll_wait` timeout. Only
//! work handed to the blocking pool (`tokio::task::spawn_blocking`: bulk cryptography,
//! group-14 exponentiations, spipe's standard input and output) runs elsewhere.

use std::future::Future;
use std::io;
use std::time::Duration;

/// How long a thread of the blocking pool waits for more work before it exits. Long
/// enough that a busy daemon keeps its threads from one batch or handshake to the next
/// (a new thread costs a `clone` and its stack), short enough that an idle daemon is
/// down to its one thread a moment after the last connection (tokio's default is 10 s).
pub const POOL_KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The most threads the blocking pool runs: one per core, since what a daemon hands it
/// is computation (more threads would only take turns), but at least two, since spipe
/// hands it a read of its standard input and a write of its standard output, either of
/// which may wait for ever.
fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .max(2)
}

/// Runs `future` to completion on a new current-thread runtime on this thread, with its
/// tasks, sockets, timers and signals; returns its output. Fails only if the runtime
/// cannot be set up (out of descriptors or memory). Must not be called from inside a
/// runtime.
///
/// Threads of the blocking pool still busy at the end (a read of a terminal that may
/// never return) are left to end with the process rather than waited for.
pub fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(pool_size())
        .thread_keep_alive(POOL_KEEP_ALIVE)
        .thread_name("spiped-pool")
        .build()?;
    let output = runtime.block_on(future);
    runtime.shutdown_background();
    Ok(output)
}
