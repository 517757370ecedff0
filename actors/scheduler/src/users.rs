//! The users' time zones, kept from identity's events: recurrence is worked
//! out in the creator's zone without asking identity.

use sqlx::PgConnection;
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler, HandlerError, user_profile};

use crate::series;

pub struct TimezoneProjection;

impl EventHandler for TimezoneProjection {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        let Some(user) = user_profile(event)? else {
            return Ok(());
        };
        if user.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(HandlerError::Reject(format!(
                "`{}` is not an IANA time zone",
                user.timezone
            )));
        }
        series::set_timezone(tx, user.user_id, &user.timezone, user.version).await?;
        Ok(())
    }
}
