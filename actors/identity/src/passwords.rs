//! Argon2id password hashes, computed off the async runtime on a bounded
//! pool: one hash takes tens of milliseconds of CPU, so at most one runs per
//! core, a few more wait, and past that a sign-in is refused at once
//! (`IdentityError::Busy`, a 503) instead of holding a command worker, and
//! everything queued behind it, for seconds.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use tokio::sync::Semaphore;

use crate::error::IdentityError;

/// Hashes waiting for a core, per core, before more are refused.
const WAITING_PER_CORE: usize = 2;

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
        let _core = POOL
            .cores
            .acquire()
            .await
            .expect("the semaphore is never closed");
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

    #[test]
    fn past_the_pool_s_places_a_sign_in_is_refused() {
        let held: Vec<HashSlot> = std::iter::from_fn(|| admit().ok()).take(1000).collect();
        assert_eq!(held.len(), POOL.most_admitted);
        assert!(matches!(admit(), Err(IdentityError::Busy)));
        drop(held);
        assert!(admit().is_ok());
    }
}
