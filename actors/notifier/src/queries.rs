//! The notifier's commands: `ListNotifications` and `MarkNotificationRead`,
//! each over the user's own notifications.

use sqlx::PgPool;
use taskflow_runtime::access::Reader;
use taskflow_runtime::store::cursor;
use taskflow_schemas::commands::{Page, Principal, page_size};
use taskflow_schemas::notification::{Notification, NotificationQuery, NotificationRef};
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::store;

pub struct NotificationQueries {
    pool: PgPool,
}

impl NotificationQueries {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn list(
        &self,
        user: Principal,
        query: NotificationQuery,
    ) -> Result<Page<Notification>, ErrorBody> {
        let limit = page_size(query.limit)?;
        let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
        let reader = Reader::of(&self.pool, user.id)
            .await
            .map_err(database_error)?;
        let limit_plus_one = i64::from(limit) + 1;
        let listed = store::list(&self.pool, &reader, user.id, &query, after, limit_plus_one)
            .await
            .map_err(database_error)?;
        Ok(Page::cut(listed, limit as usize, |notification| {
            cursor::encode(notification.created_at, notification.id)
        }))
    }

    pub async fn mark_read(
        &self,
        user: Principal,
        reference: NotificationRef,
    ) -> Result<Notification, ErrorBody> {
        store::mark_read(&self.pool, user.id, reference.notification_id)
            .await
            .map_err(database_error)?
            .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "notification not found"))
    }
}

fn database_error(error: sqlx::Error) -> ErrorBody {
    taskflow_runtime::store::postgres::error_body("notifier", &error)
}
