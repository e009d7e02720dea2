//! The per-thread reactor: one epoll instance with every socket registered once,
//! edge-triggered, plus the timers of the thread's tasks.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, Timespec, eventfd};
use rustix::io::Errno;

/// Readiness to read (data, end of stream, error or a pending connection).
pub(crate) const READ: u32 = 1;
/// Readiness to write (buffer space, a finished connect, or an error).
pub(crate) const WRITE: u32 = 2;
/// The peer finished sending or the socket failed: reads will not block again, so
/// unlike [`READ`] this is never cleared (an end of stream that arrived with the last
/// data raises no further edge after a read that took the data).
const READ_CLOSED: u32 = 4;
/// The connection is gone or failed: writes will not block again (never cleared).
const WRITE_CLOSED: u32 = 8;
/// Added to a source's state for every event, so that clearing readiness after a
/// `WouldBlock` never erases an event that arrived after the attempt.
const TICK: u32 = 16;
/// The epoll key of the eventfd that wakes a sleeping loop.
const ROUSE: u64 = u64::MAX;
/// The longest single `epoll_wait`, well inside the millisecond count it takes.
const LONGEST_WAIT: Duration = Duration::from_secs(3600);
/// Events taken per `epoll_wait`.
const EVENTS: usize = 256;

thread_local! {
    static CURRENT: OnceCell<Arc<Reactor>> = const { OnceCell::new() };
}

/// One thread's epoll instance, sockets and timers.
pub(crate) struct Reactor {
    epoll: OwnedFd,
    rouser: OwnedFd,
    /// Set while the owning thread is (about to be) blocked in `epoll_wait`: only then
    /// does a wake-up need the eventfd.
    sleeping: AtomicBool,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Registered sources by epoll key; freed keys are reused.
    sources: Vec<Option<Arc<Source>>>,
    free: Vec<usize>,
    /// Wakers of pending timers by (deadline, unique id).
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
}

/// Buffers one [`Reactor::turn`] reuses from call to call.
#[derive(Default)]
pub(crate) struct Turn {
    events: Vec<epoll::Event>,
    wake: Vec<Waker>,
}

/// The readiness of one registered descriptor and the tasks waiting on it.
pub(crate) struct Source {
    key: usize,
    /// `READ | WRITE` bits plus a count of events in multiples of [`TICK`].
    state: AtomicU32,
    /// The reader's and the writer's wakers (one task each way, as `Transport` allows).
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl Reactor {
    /// This thread's reactor, created on first use.
    pub(crate) fn current() -> io::Result<Arc<Reactor>> {
        CURRENT.with(|cell| {
            if let Some(r) = cell.get() {
                return Ok(r.clone());
            }
            let r = Arc::new(Reactor::new()?);
            Ok(cell.get_or_init(|| r).clone())
        })
    }

    fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let rouser = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let flags = EventFlags::IN | EventFlags::ET;
        epoll::add(&epoll, &rouser, EventData::new_u64(ROUSE), flags)?;
        Ok(Reactor {
            epoll,
            rouser,
            sleeping: AtomicBool::new(false),
            table: Mutex::new(Table::default()),
        })
    }

    /// Locks the tables. A panic elsewhere cannot leave them inconsistent (every update
    /// is a single insertion or removal), so a poisoned lock is simply taken over.
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `fd` for edge-triggered read and write readiness. `ready` is what the
    /// caller may assume before the first event (a fresh accepted socket: both; a
    /// socket still connecting: neither).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>, ready: u32) -> io::Result<Arc<Source>> {
        let mut table = self.table();
        let key = table.free.pop().unwrap_or(table.sources.len());
        let source = Arc::new(Source {
            key,
            state: AtomicU32::new(ready),
            wakers: Mutex::new([None, None]),
        });
        let interest = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if let Err(e) = epoll::add(&self.epoll, fd, EventData::new_u64(key as u64), interest) {
            table.free.push(key);
            return Err(e.into());
        }
        match table.sources.get_mut(key) {
            Some(slot) => *slot = Some(source.clone()),
            None => table.sources.push(Some(source.clone())),
        }
        Ok(source)
    }

    /// Forgets `source`. Its descriptor must be closed right after: closing is what
    /// removes it from the epoll set (saving an `epoll_ctl` per socket). An event
    /// already queued for the key reaches whatever reuses it as a spurious readiness,
    /// which costs one `WouldBlock`.
    pub(crate) fn deregister(&self, source: &Source) {
        let mut table = self.table();
        table.sources[source.key] = None;
        table.free.push(source.key);
    }

    /// Arms a timer; returns its id for [`Reactor::rearm`] and [`Reactor::cancel`].
    pub(crate) fn arm(&self, deadline: Instant, waker: &Waker) -> u64 {
        let mut table = self.table();
        let id = table.next_timer;
        table.next_timer += 1;
        table.timers.insert((deadline, id), waker.clone());
        id
    }

    /// Updates the waker of a pending timer.
    pub(crate) fn rearm(&self, deadline: Instant, id: u64, waker: &Waker) {
        if let Some(w) = self.table().timers.get_mut(&(deadline, id))
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    /// Removes a timer (fired or not).
    pub(crate) fn cancel(&self, deadline: Instant, id: u64) {
        self.table().timers.remove(&(deadline, id));
    }

    /// Wakes the owning thread if it sleeps in `epoll_wait`.
    pub(crate) fn rouse(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // Cannot fail short of a closed descriptor; an overflowing counter
            // (EAGAIN) still leaves the eventfd readable, which is all that matters.
            let _ = rustix::io::write(&self.rouser, &1u64.to_ne_bytes());
        }
    }

    /// Waits for events (not at all if `woken` is set) up to the next timer's deadline,
    /// records them in their sources and wakes the tasks waiting on them and on
    /// expired timers.
    pub(crate) fn turn(&self, woken: &AtomicBool, turn: &mut Turn) -> io::Result<()> {
        self.sleeping.store(true, Ordering::SeqCst);
        let timeout = match woken.load(Ordering::SeqCst) {
            true => Some(Timespec::default()),
            false => self.table().timers.keys().next().map(|(d, _)| until(*d)),
        };
        turn.events.clear();
        turn.events.reserve(EVENTS);
        let waited = epoll::wait(
            &self.epoll,
            spare_capacity(&mut turn.events),
            timeout.as_ref(),
        );
        self.sleeping.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        {
            let mut table = self.table();
            for event in &turn.events {
                match event.data.u64() {
                    ROUSE => {
                        let _ = rustix::io::read(&self.rouser, &mut [0u8; 8]);
                    }
                    key => {
                        if let Some(Some(source)) = table.sources.get(key as usize) {
                            source.fire(event.flags, &mut turn.wake);
                        }
                    }
                }
            }
            if !table.timers.is_empty() {
                let now = Instant::now();
                while let Some(entry) = table.timers.first_entry()
                    && entry.key().0 <= now
                {
                    turn.wake.push(entry.remove());
                }
            }
        }
        for w in turn.wake.drain(..) {
            w.wake();
        }
        Ok(())
    }
}

/// The `epoll_wait` timeout for `deadline`: rounded up to whole milliseconds (what
/// `epoll_wait` counts in) so that the loop never wakes just before a timer is due, and
/// at most [`LONGEST_WAIT`] (a far deadline is simply waited for in several turns).
fn until(deadline: Instant) -> Timespec {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    let left = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(LONGEST_WAIT);
    Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    }
}

impl Source {
    /// Ready in direction `dir` ([`READ`] or [`WRITE`]): returns the state to pass to
    /// [`Source::clear`] after an attempt. Otherwise remembers the task's waker.
    pub(crate) fn poll_ready(&self, dir: u32, cx: &mut Context<'_>) -> Poll<u32> {
        let ready = dir | closed(dir);
        let state = self.state.load(Ordering::Acquire);
        if state & ready != 0 {
            return Poll::Ready(state);
        }
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        // Again under the lock: `fire` sets the bits before taking it, so an event
        // either shows here or finds the waker below.
        let state = self.state.load(Ordering::Acquire);
        if state & ready != 0 {
            return Poll::Ready(state);
        }
        let slot = &mut wakers[slot(dir)];
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Marks direction `dir` not ready after an attempt that found the socket drained,
    /// unless an event arrived since `seen` was read.
    pub(crate) fn clear(&self, seen: u32, dir: u32) {
        let _ = self
            .state
            .compare_exchange(seen, seen & !dir, Ordering::AcqRel, Ordering::Relaxed);
    }

    fn fire(&self, flags: EventFlags, wake: &mut Vec<Waker>) {
        let failed = EventFlags::HUP | EventFlags::ERR;
        let mut bits = 0;
        if flags.intersects(EventFlags::IN) {
            bits |= READ;
        }
        if flags.intersects(EventFlags::OUT) {
            bits |= WRITE;
        }
        if flags.intersects(failed | EventFlags::RDHUP) {
            bits |= READ_CLOSED;
        }
        if flags.intersects(failed) {
            bits |= WRITE_CLOSED;
        }
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(s.wrapping_add(TICK) | bits)
            });
        let dirs = (bits | bits >> 2) & (READ | WRITE);
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        for dir in [READ, WRITE] {
            if dirs & dir != 0
                && let Some(w) = wakers[slot(dir)].take()
            {
                wake.push(w);
            }
        }
    }
}

fn slot(dir: u32) -> usize {
    usize::from(dir == WRITE)
}

/// The sticky bit that also makes direction `dir` ready.
fn closed(dir: u32) -> u32 {
    dir << 2
}
