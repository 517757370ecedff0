//! The recipients the notifier knows, kept from identity's `user.registered`
//! and `user.updated`: an email address and whether the user wants email.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_schemas::events::{USER_REGISTERED, USER_UPDATED, UserEventPayload};

use crate::store::{self, Recipient};

pub struct RecipientProjection;

impl EventHandler for RecipientProjection {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let envelope = &event.envelope;
        if envelope.event_type != USER_REGISTERED && envelope.event_type != USER_UPDATED {
            return Ok(());
        }
        let user: UserEventPayload = serde_json::from_value(envelope.payload.clone())
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
