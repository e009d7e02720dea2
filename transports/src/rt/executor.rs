//! [`Executor`]: the tasks of one event-loop thread.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use async_task::{Runnable, Task};

/// Tasks run per poll of [`Executor::run`] before the loop collects socket events again,
/// so that a few busy tasks cannot starve the sockets of the others.
const BUDGET: usize = 64;

/// Runs tasks on the thread of the event loop that polls [`Executor::run`] (inside
/// [`block_on`](super::block_on)); tasks may be woken from any thread.
///
/// Why not async-executor's `LocalExecutor`: it is its multi-threaded executor with
/// work stealing underneath, and on the `-f` connection path its queues, tickers and
/// sleeper bookkeeping cost several microseconds per connection. Here a run queue behind
/// one uncontended lock does the job; a wake-up from the loop's own thread while it is
/// running tasks costs no wake-up of the loop.
pub struct Executor {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
}

struct State {
    queue: VecDeque<Runnable>,
    /// Whether [`Executor::run`] is draining the queue right now: it will see new
    /// tasks without being woken.
    running: bool,
    /// The waker of the future polling [`Executor::run`].
    runner: Option<Waker>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

impl Executor {
    /// An executor with no tasks.
    pub fn new() -> Executor {
        Executor {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    running: false,
                    runner: None,
                }),
            }),
        }
    }

    /// Starts `future` as a task; it runs while [`Executor::run`] is polled. Dropping
    /// the returned handle cancels the task, unless it is detached.
    ///
    /// Panics if the task is later polled on another thread than this one (it never is:
    /// only `run` on this thread polls it).
    pub fn spawn<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Task<T> {
        let shared = self.shared.clone();
        let (runnable, task) = async_task::spawn_local(future, move |r| shared.schedule(r));
        runnable.schedule();
        task
    }

    /// Runs the tasks until `main` completes, and returns its output.
    pub async fn run<T>(&self, main: impl Future<Output = T>) -> T {
        let mut main = pin!(main);
        poll_fn(|cx| {
            {
                let mut state = self.shared.lock();
                if !state
                    .runner
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.runner = Some(cx.waker().clone());
                }
                state.running = true;
            }
            for _ in 0..BUDGET {
                let Some(runnable) = self.shared.lock().queue.pop_front() else {
                    break;
                };
                runnable.run();
            }
            if let Poll::Ready(v) = main.as_mut().poll(cx) {
                self.shared.lock().running = false;
                return Poll::Ready(v);
            }
            let mut state = self.shared.lock();
            state.running = false;
            if !state.queue.is_empty() {
                // Left over by the budget, or queued from another thread just now.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }
}

impl Shared {
    /// Locks the state. Runnables and wakers are only pushed and popped under it, so a
    /// panic elsewhere cannot leave it inconsistent: a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(&self, runnable: Runnable) {
        let runner = {
            let mut state = self.lock();
            state.queue.push_back(runnable);
            match state.running {
                true => None,
                false => state.runner.clone(),
            }
        };
        if let Some(w) = runner {
            w.wake();
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Queued runnables hold the scheduler, which holds the queue: dropping them here
        // (which cancels their tasks) breaks that cycle. Tasks waiting on an event are
        // dropped when their waker is.
        let queued = std::mem::take(&mut self.shared.lock().queue);
        drop(queued);
    }
}
