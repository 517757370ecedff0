//! The recipients the notifier knows, kept from identity's `user.registered`
//! and `user.updated`: an email address and whether the user wants email.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError, user_profile};

use crate::store::{self, Recipient};

pub struct RecipientProjection;

impl EventHandler for RecipientProjection {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let Some(user) = user_profile(event)? else {
            return Ok(());
        };
        let recipient = Recipient {
            email: user.email,
            name: user.name,
            email_notifications: user.email_notifications,
        };
        store::keep_recipient(tx, user.user_id, &recipient, user.version).await?;
        Ok(())
    }
}
