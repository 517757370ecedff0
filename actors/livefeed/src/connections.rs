//! How many live-feed connections a process holds, in all and per user: a
//! connection takes a place when it opens (in all) and when it is
//! authenticated (per user), and gives it back when it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

pub struct Connections {
    open: AtomicUsize,
    per_user: Mutex<HashMap<Uuid, usize>>,
    max_open: usize,
    max_per_user: usize,
}

/// A place in all connections; given back when dropped.
pub struct OpenSlot(Arc<Connections>);

/// A place among one user's connections; given back when dropped.
pub struct UserSlot(Arc<Connections>, Uuid);

impl Connections {
    pub fn new(max_open: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            per_user: Mutex::new(HashMap::new()),
            max_open,
            max_per_user,
        })
    }

    /// A place for one more connection, unless the process holds its most.
    pub fn open(self: &Arc<Self>) -> Option<OpenSlot> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_open {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(OpenSlot(self.clone()))
    }

    /// A place for one more connection of `user`, unless they hold their most.
    pub fn for_user(self: &Arc<Self>, user: Uuid) -> Option<UserSlot> {
        let mut per_user = self.per_user.lock().expect("never poisoned");
        let held = per_user.entry(user).or_default();
        if *held >= self.max_per_user {
            return None;
        }
        *held += 1;
        Some(UserSlot(self.clone(), user))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut per_user = self.0.per_user.lock().expect("never poisoned");
        if let Some(held) = per_user.get_mut(&self.1) {
            *held -= 1;
            if *held == 0 {
                per_user.remove(&self.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_and_given_back() {
        let connections = Connections::new(3, 2);
        let ada = Uuid::now_v7();
        let first = connections.for_user(ada).unwrap();
        let _second = connections.for_user(ada).unwrap();
        assert!(connections.for_user(ada).is_none());
        assert!(connections.for_user(Uuid::now_v7()).is_some());
        drop(first);
        assert!(connections.for_user(ada).is_some());

        let open: Vec<OpenSlot> = std::iter::from_fn(|| connections.open()).take(10).collect();
        assert_eq!(open.len(), 3);
        drop(open);
        assert!(connections.open().is_some());
    }
}
