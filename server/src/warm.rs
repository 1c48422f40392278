//! Keeps the runtime's worker polling for a short while after a message,
//! instead of letting it block in `epoll_wait` the moment it runs out of
//! work.
//!
//! On a virtual machine, a thread that blocks lets its CPU go idle, and
//! waking an idle CPU costs tens of microseconds. Under load a session's
//! next event (the committer's reply, the client's next message) usually
//! comes within a few hundred microseconds of its last one, so that wake-up
//! sits on the path of every commit. [`keep_warm`] is a task that, for a
//! window (`brikk serve --idle-poll-us`, 300 µs by default) after the last
//! message any connection received, yields in a loop: the worker stays
//! runnable, checks its sockets without blocking, and picks up woken tasks
//! at once. It also yields the CPU between polls, so the clients' and the
//! committer's threads still get it. The committer does the same while its
//! queue is empty (`brikk_storage::log::commit`).
//!
//! Paired runs on a 2-core VM (docs/benchmarks.md): at one connection,
//! prepared point lookups 11k → 20k/s, upserts 4.2k → 5.5k/s; at 16
//! connections, upserts ≈ +8%; consume+commit ≈ +12%.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// When connections last received a message: shared by every connection
/// (which calls [`Warm::touch`]) and the [`keep_warm`] task.
#[derive(Debug)]
pub struct Warm {
    epoch: Instant,
    /// Microseconds since `epoch` of the last message.
    last: AtomicU64,
    /// The task is waiting for a message rather than polling.
    asleep: AtomicBool,
    wake: Notify,
    window: Duration,
}

impl Warm {
    pub fn new(window: Duration) -> Arc<Warm> {
        Arc::new(Warm {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            asleep: AtomicBool::new(true),
            wake: Notify::new(),
            window,
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A connection received a message.
    pub fn touch(&self) {
        if self.window.is_zero() {
            return;
        }
        self.last.store(self.now(), Ordering::Relaxed);
        // Under load the task is polling: a plain load, not a write to the
        // shared flag on every message.
        if self.asleep.load(Ordering::Acquire) && self.asleep.swap(false, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }
}

/// Runs until the runtime stops; see the module docs.
pub async fn keep_warm(warm: Arc<Warm>) {
    if warm.window.is_zero() {
        return;
    }
    let window = warm.window.as_micros() as u64;
    loop {
        let woken = warm.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if warm.asleep.load(Ordering::Acquire) {
            woken.await;
        }
        while warm.now().saturating_sub(warm.last.load(Ordering::Relaxed)) < window {
            tokio::task::yield_now().await;
            std::thread::yield_now();
        }
        warm.asleep.store(true, Ordering::Release);
        // A message between the last check and the store above would find
        // `asleep` false and not notify: look once more before waiting.
        if warm.now().saturating_sub(warm.last.load(Ordering::Relaxed)) < window {
            warm.asleep.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task polls while messages come, sleeps once they stop for the
    /// window, and a message wakes it again.
    #[tokio::test(flavor = "current_thread")]
    async fn polls_after_a_message_and_sleeps_after_the_window() {
        let warm = Warm::new(Duration::from_millis(200));
        let task = tokio::spawn(keep_warm(warm.clone()));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(warm.asleep.load(Ordering::Acquire), "no message yet: asleep");
        warm.touch();
        assert!(!warm.asleep.load(Ordering::Acquire), "a message wakes it");
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!warm.asleep.load(Ordering::Acquire), "polling within the window");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(warm.asleep.load(Ordering::Acquire), "asleep once the window passed");
        warm.touch();
        assert!(!warm.asleep.load(Ordering::Acquire));
        task.abort();
    }

    #[tokio::test]
    async fn a_zero_window_never_polls() {
        let warm = Warm::new(Duration::ZERO);
        warm.touch();
        assert!(warm.asleep.load(Ordering::Acquire));
        keep_warm(warm).await; // returns at once
    }
}
