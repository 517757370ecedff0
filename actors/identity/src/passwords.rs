//! Argon2id password hashes, computed off the async runtime on a bounded
//! pool: one hash takes tens of milliseconds of CPU, so at most one runs per
//! core and the others queue for one. Eight people signing in at the same
//! second is normal and all of them wait their turn; a sign-in that could
//! not start within [`START_WITHIN`] is refused (`IdentityError::Busy`, a
//! 503) rather than answered after the client gave up, and past
//! [`WAITING_PER_CORE`] waiting per core a flood is refused at the door.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use tokio::sync::Semaphore;

use crate::error::IdentityError;

/// How long a sign-in may wait for a core before it is refused.
pub const START_WITHIN: Duration = Duration::from_secs(2);

/// Hashes waiting for a core, per core, before more are refused at once:
/// about as many as one core gets through in [`START_WITHIN`].
pub const WAITING_PER_CORE: usize = 64;

struct HashingPool {
    cores: Semaphore,
    /// Hashes running or waiting for a core.
    admitted: AtomicUsize,
    most_admitted: usize,
}

static POOL: LazyLock<HashingPool> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    HashingPool {
        cores: Semaphore::new(cores),
        admitted: AtomicUsize::new(0),
        most_admitted: cores * (1 + WAITING_PER_CORE),
    }
});

/// A place in the hashing pool: taken before a sign-in starts, so a flood is
/// refused at the door rather than queued; given back when dropped.
pub struct HashSlot(());

impl Drop for HashSlot {
    fn drop(&mut self) {
        POOL.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A place in the pool, or `Busy` when too many hashes wait already.
pub fn admit() -> Result<HashSlot, IdentityError> {
    let pool = &*POOL;
    if pool.admitted.fetch_add(1, Ordering::AcqRel) >= pool.most_admitted {
        pool.admitted.fetch_sub(1, Ordering::AcqRel);
        metrics::counter!("taskflow_password_hashes_refused_total").increment(1);
        return Err(IdentityError::Busy);
    }
    Ok(HashSlot(()))
}

impl HashSlot {
    /// Runs `work` on a core of the pool.
    async fn run<T: Send + 'static>(
        self,
        work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let Ok(core) = tokio::time::timeout(START_WITHIN, POOL.cores.acquire()).await else {
            metrics::counter!("taskflow_password_hashes_refused_total").increment(1);
            return Err(IdentityError::Busy);
        };
        let _core = core.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| IdentityError::Hashing(error.to_string()))?
    }

    pub async fn hash(self, password: String) -> Result<String, IdentityError> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| IdentityError::Hashing(error.to_string()))
        })
        .await
    }

    /// True when `password` matches `stored`. With no stored hash (unknown
    /// email) it still does the work of one check, so timing tells nothing.
    pub async fn verify(
        self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, IdentityError> {
        self.run(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| DECOY.clone());
            let parsed = PasswordHash::new(&stored)
                .map_err(|error| IdentityError::Hashing(error.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
                && known)
        })
        .await
    }
}

/// The hash of a random string nobody knows, made with the same parameters
/// as real hashes so that checking against it costs the same.
static DECOY: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(uuid::Uuid::new_v4().as_bytes())
        .expect("hashing random bytes works")
        .to_string()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let slot = || admit().unwrap();
        let stored = slot().hash("correct horse".into()).await.unwrap();
        assert!(
            slot()
                .verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(
            !slot()
                .verify("wrong horse".into(), Some(stored))
                .await
                .unwrap()
        );
        assert!(!slot().verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn sign_ins_beyond_the_cores_wait_their_turn() {
        let cores = POOL.cores.available_permits();
        let sign_ins = (0..cores * 4).map(|_| {
            let slot = admit().expect("a place in the queue");
            tokio::spawn(slot.verify("wrong horse".into(), None))
        });
        for sign_in in sign_ins.collect::<Vec<_>>() {
            assert!(!sign_in.await.unwrap().expect("it waited and ran"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sign_in_that_cannot_start_in_time_is_refused() {
        let busy = POOL
            .cores
            .acquire_many(POOL.cores.available_permits() as u32)
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let refused = admit().unwrap().verify("anything".into(), None).await;
        assert!(matches!(refused, Err(IdentityError::Busy)), "{refused:?}");
        assert_eq!(started.elapsed(), START_WITHIN);
        drop(busy);
        assert!(
            admit()
                .unwrap()
                .verify("anything".into(), None)
                .await
                .is_ok()
        );
    }

    #[test]
    fn past_the_pool_s_places_a_sign_in_is_refused() {
        let held: Vec<HashSlot> = std::iter::from_fn(|| admit().ok()).take(1000).collect();
        assert_eq!(held.len(), POOL.most_admitted);
        assert!(matches!(admit(), Err(IdentityError::Busy)));
        drop(held);
        assert!(admit().is_ok());
    }
}
