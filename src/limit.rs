//! Back-pressure for inference: at most `concurrency` inferences at once (one per core: more
//! only share the same cores and make every request slower), at most `queue` requests waiting
//! for one, and none waiting past `queue_timeout`.
//!
//! A request that cannot start in time is refused *on arrival*, not after waiting: the limit
//! keeps a moving average of how long an inference holds its slot, and a request whose
//! expected wait (the requests ahead of it times that average, shared over the slots) is past
//! the deadline is refused at once. Refused requests become `503 overloaded` with
//! `Retry-After`, so a client or load balancer backs off early instead of every request
//! queueing behind every other one.
//!
//! In Lambda an instance serves one request at a time: a slot is always free, nothing waits,
//! and the limit never refuses.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How the limit is set (`INFERENCE_CONCURRENCY`, `INFERENCE_QUEUE`,
/// `INFERENCE_QUEUE_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    /// Inferences at once; 0 turns the limit off (every request runs at once, as before).
    pub concurrency: usize,
    /// Requests that may wait for a slot.
    pub queue: usize,
    /// The longest a request waits for a slot.
    pub queue_timeout: Duration,
}

/// Why a request was refused.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Overloaded {
    #[error("{waiting} requests are already waiting for inference (the limit is {queue})")]
    QueueFull { waiting: usize, queue: usize },
    #[error("inference could not start within {} ms", .0.as_millis())]
    WouldWaitTooLong(Duration),
}

/// The limit, shared by every request of a process.
#[derive(Debug)]
pub struct InferenceLimit {
    settings: LimitSettings,
    slots: Option<Arc<Semaphore>>,
    waiting: AtomicUsize,
    /// Moving average of how long a slot is held per message, in microseconds (0 until
    /// measured).
    hold_micros: AtomicU64,
}

/// A held inference slot; dropping it frees the slot and records how long it was held.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    limit: Arc<InferenceLimit>,
    since: Instant,
    messages: u64,
}

impl Slot {
    /// The messages this slot's inference runs: the average is kept per message, so that one
    /// 64-message batch does not make the next single messages look 64 times slower.
    pub fn set_messages(&mut self, messages: usize) {
        self.messages = u64::try_from(messages.max(1)).unwrap_or(u64::MAX);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        let held = elapsed / self.messages;
        // Exponential moving average with weight 1/8: follows a change of load within a few
        // dozen requests; races between slots only blur it, which is harmless.
        let old = self.limit.hold_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            held
        } else {
            old - old / 8 + held / 8
        };
        self.limit.hold_micros.store(new, Ordering::Relaxed);
    }
}

/// Decrements the waiting count however the wait ends (slot, timeout, or a dropped request).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InferenceLimit {
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            slots: (settings.concurrency > 0)
                .then(|| Arc::new(Semaphore::new(settings.concurrency))),
            waiting: AtomicUsize::new(0),
            hold_micros: AtomicU64::new(0),
        })
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// A slot, now or within the deadline; or at once the reason it cannot be had in time.
    pub async fn acquire(self: &Arc<Self>) -> Result<Slot, Overloaded> {
        let slot = |permit| Slot {
            _permit: permit,
            limit: Arc::clone(self),
            since: Instant::now(),
            messages: 1,
        };
        let Some(slots) = &self.slots else {
            return Ok(slot(None));
        };
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Ok(slot(Some(permit)));
        }
        // Take a place in the queue only if one is free: a refused request never counts as
        // waiting, so it cannot crowd out the next one.
        let queue = self.settings.queue;
        let ahead = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < queue).then_some(w + 1)
            })
            .map_err(|waiting| Overloaded::QueueFull { waiting, queue })?;
        let _waiting = Waiting(&self.waiting);
        if self.expected_wait(ahead) > self.settings.queue_timeout {
            // A slot may have come free since the first try.
            return match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => Ok(slot(Some(permit))),
                Err(_) => Err(Overloaded::WouldWaitTooLong(self.settings.queue_timeout)),
            };
        }
        match tokio::time::timeout(
            self.settings.queue_timeout,
            Arc::clone(slots).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(slot(Some(permit))),
            // The semaphore is never closed; treat it as a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(Overloaded::WouldWaitTooLong(self.settings.queue_timeout)),
        }
    }

    /// The expected wait of a request with `ahead` requests waiting before it: every slot is
    /// busy, so it starts after `ahead + 1` slot releases, `concurrency` of them at a time,
    /// each after about one message's hold (the common case; a batch waits like a message).
    fn expected_wait(&self, ahead: usize) -> Duration {
        let hold = self.hold_micros.load(Ordering::Relaxed);
        let releases = u64::try_from(ahead + 1).unwrap_or(u64::MAX);
        let slots = u64::try_from(self.settings.concurrency.max(1)).unwrap_or(1);
        Duration::from_micros(hold.saturating_mul(releases) / slots)
    }
}

/// One slot per core this process may use.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(concurrency: usize, queue: usize, timeout_ms: u64) -> Arc<InferenceLimit> {
        InferenceLimit::new(LimitSettings {
            concurrency,
            queue,
            queue_timeout: Duration::from_millis(timeout_ms),
        })
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let l = limit(1, 1, 10_000);
        let held = l.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let l = Arc::clone(&l);
            async move { l.acquire().await.map(|_| ()) }
        });
        while l.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let refused = l.acquire().await.unwrap_err();
        assert_eq!(
            refused,
            Overloaded::QueueFull {
                waiting: 1,
                queue: 1
            }
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(l.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_is_refused_on_arrival() {
        let l = limit(1, 10, 50);
        // Slots have been held 40 ms on average: one request ahead -> about 80 ms to wait.
        l.hold_micros.store(40_000, Ordering::Relaxed);
        let _held = l.acquire().await.unwrap();
        let first = tokio::spawn({
            let l = Arc::clone(&l);
            async move { l.acquire().await.map(|_| ()) }
        });
        while l.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        assert_eq!(
            l.acquire().await.unwrap_err(),
            Overloaded::WouldWaitTooLong(Duration::from_millis(50))
        );
        assert!(started.elapsed() < Duration::from_millis(40));
        // The first waiter (expected 40 ms) was admitted; with the slot never freed it gives up
        // at the deadline.
        assert_eq!(
            first.await.unwrap(),
            Err(Overloaded::WouldWaitTooLong(Duration::from_millis(50)))
        );
    }

    #[tokio::test]
    async fn zero_concurrency_never_limits() {
        let l = limit(0, 0, 10);
        let slots: Vec<Slot> = futures_join(&l, 50).await;
        assert_eq!(slots.len(), 50);
    }

    async fn futures_join(l: &Arc<InferenceLimit>, n: usize) -> Vec<Slot> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(l.acquire().await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_batch_counts_per_message() {
        let l = limit(1, 4, 100);
        let mut slot = l.acquire().await.unwrap();
        slot.set_messages(64);
        tokio::time::sleep(Duration::from_millis(64)).await;
        drop(slot);
        let per_message = l.hold_micros.load(Ordering::Relaxed);
        assert!((1_000..20_000).contains(&per_message), "{per_message} us");
    }

    #[tokio::test]
    async fn the_hold_average_follows_the_slots() {
        let l = limit(2, 4, 100);
        let slot = l.acquire().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(slot);
        let first = l.hold_micros.load(Ordering::Relaxed);
        assert!(first >= 5_000, "held {first} us");
        assert_eq!(l.expected_wait(1), Duration::from_micros(first));
    }
}
