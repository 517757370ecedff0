//! The users the projects service knows exist, from identity's
//! `user.registered`: a member must be one.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError, user_profile};

use crate::store;

pub struct KnownUsers;

impl EventHandler for KnownUsers {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let Some(user) = user_profile(event)? else {
            return Ok(());
        };
        store::know_user(tx, user.user_id).await?;
        Ok(())
    }
}
