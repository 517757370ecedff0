//! The users' time zones, kept from identity's events: recurrence is worked
//! out in the creator's zone without asking identity.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError};
use taskflow_schemas::events::{USER_REGISTERED, USER_UPDATED, UserEventPayload};

use crate::series;

pub struct TimezoneProjection;

impl EventHandler for TimezoneProjection {
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
        if user.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(HandlerError::Reject(format!(
                "`{}` is not an IANA time zone",
                user.timezone
            )));
        }
        series::set_timezone(tx, user.user_id, &user.timezone).await?;
        Ok(())
    }
}
