//! Argon2id password hashes, computed off the async runtime: one hash takes
//! tens of milliseconds of CPU.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use std::sync::LazyLock;

use crate::error::IdentityError;

pub async fn hash(password: String) -> Result<String, IdentityError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| IdentityError::Hashing(error.to_string()))
    })
    .await
    .map_err(|error| IdentityError::Hashing(error.to_string()))?
}

/// True when `password` matches `stored`. With no stored hash (unknown
/// email) it still does the work of one check, so timing tells nothing.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, IdentityError> {
    tokio::task::spawn_blocking(move || {
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
    .map_err(|error| IdentityError::Hashing(error.to_string()))?
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
        let stored = hash("correct horse".into()).await.unwrap();
        assert!(
            verify("correct horse".into(), Some(stored.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(stored)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }
}
