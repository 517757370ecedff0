//! The recipients the notifier knows, kept from identity's `user.registered`
//! and `user.updated`: an email address and whether the user wants email.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_schemas::events::UserEventPayload;

use crate::store::{self, Recipient};

pub struct RecipientProjection;

impl EventHandler for RecipientProjection {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let Some(user) = UserEventPayload::of(&event.envelope) else {
            return Ok(());
        };
        let user = user
            .map_err(|error| HandlerError::Reject(format!("not a user event payload: {error}")))?;
        let recipient = Recipient {
            email: user.email,
            name: user.name,
            email_notifications: user.email_notifications,
        };
        store::keep_recipient(tx, user.user_id, &recipient).await?;
        Ok(())
    }
}
