//! A fixed set of worker actors. Work about one key always goes to the same
//! worker, so one task's commands run in order while others run in parallel.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ractor::ActorRef;

pub struct KeyedPool<M> {
    /// Shared: the pool is cloned into every caller.
    workers: Arc<[ActorRef<M>]>,
    next: Arc<AtomicUsize>,
}

impl<M> Clone for KeyedPool<M> {
    fn clone(&self) -> Self {
        Self {
            workers: self.workers.clone(),
            next: self.next.clone(),
        }
    }
}

impl<M> KeyedPool<M> {
    pub fn new(workers: Vec<ActorRef<M>>) -> Self {
        assert!(!workers.is_empty(), "a pool needs at least one worker");
        Self {
            workers: workers.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The worker for `key`, or the next in turn when there is no key.
    pub fn route(&self, key: Option<impl Hash>) -> &ActorRef<M> {
        let index = match key {
            Some(key) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut hasher);
                hasher.finish() as usize
            }
            None => self.next.fetch_add(1, Ordering::Relaxed),
        };
        &self.workers[index % self.workers.len()]
    }
}
