//! `Idempotency-Key` on creates: the key is taken in the write's own
//! transaction, and a retry gets the first response, as in the IETF draft.

use sqlx::PgConnection;
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::error::TasksError;
use crate::store::{self, IdempotentCreate};

/// Takes `create`'s key for this transaction; the first response when the
/// key was used before with the same request, `None` when this is the first.
pub async fn first_response(
    tx: &mut PgConnection,
    create: &IdempotentCreate<'_>,
) -> Result<Option<serde_json::Value>, TasksError> {
    if !store::lock_key(&mut *tx, create.user, create.key).await? {
        return Err(ErrorBody::new(
            ErrorCode::IdempotencyKeyInFlight,
            "a request with this Idempotency-Key is still in progress",
        )
        .into());
    }
    match store::used_key(tx, create.user, create.key).await? {
        None => Ok(None),
        Some(used) if used.request != *create.request => Err(ErrorBody::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )
        .into()),
        // A claim without a response is from before claims were
        // transactional: its request never committed, so this one goes ahead.
        Some(used) => Ok(used.response),
    }
}
