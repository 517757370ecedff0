//! A fixed set of worker actors. Work about one key always goes to the same
//! worker, so one task's commands run in order while others run in parallel.
//!
//! Each worker's mailbox is bounded: a ractor mailbox is not, so the pool
//! counts what it handed each worker and the worker counts down as it
//! finishes; past the bound, work is refused at once instead of queueing
//! behind work that already waits too long.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ractor::ActorRef;

/// What a worker holds to say it finished one piece of work.
#[derive(Clone, Default)]
pub struct Queued(Arc<AtomicUsize>);

impl Queued {
    pub fn done(&self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why work was not handed over; the work comes back to be answered.
pub enum Refused<M> {
    /// The worker already has `bound` pieces waiting.
    Full(M),
    /// The worker is gone (the service is stopping).
    Gone,
}

pub struct KeyedPool<M> {
    /// Shared: the pool is cloned into every caller.
    workers: Arc<[(ActorRef<M>, Queued)]>,
    next: Arc<AtomicUsize>,
    bound: usize,
}

impl<M> Clone for KeyedPool<M> {
    fn clone(&self) -> Self {
        Self {
            workers: self.workers.clone(),
            next: self.next.clone(),
            bound: self.bound,
        }
    }
}

impl<M: ractor::Message> KeyedPool<M> {
    /// A pool of `workers`, each with the [`Queued`] it counts down with, and
    /// at most `bound` pieces of work waiting per worker.
    pub fn new(workers: Vec<(ActorRef<M>, Queued)>, bound: usize) -> Self {
        assert!(!workers.is_empty(), "a pool needs at least one worker");
        Self {
            workers: workers.into(),
            next: Arc::new(AtomicUsize::new(0)),
            bound,
        }
    }

    /// Hands `message` to the worker for `key` (the next in turn when there
    /// is no key), unless that worker's mailbox is full.
    pub fn try_send(&self, key: Option<impl Hash>, message: M) -> Result<(), Refused<M>> {
        let count = self.workers.len();
        let index = match key {
            Some(key) => shard(&key, count),
            None => self.next.fetch_add(1, Ordering::Relaxed) % count,
        };
        let (worker, queued) = &self.workers[index];
        if queued.0.fetch_add(1, Ordering::AcqRel) >= self.bound {
            queued.done();
            return Err(Refused::Full(message));
        }
        worker.cast(message).map_err(|_| {
            queued.done();
            Refused::Gone
        })
    }
}

/// The one of `count` workers that work about `key` always goes to.
pub fn shard(key: &impl Hash, count: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish() as usize % count
}
