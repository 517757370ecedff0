//! The notifier's effector, over `REMINDERS` and `TASKS`: each event's
//! notices become notifications, one per recipient and channel, stored once.
//! An in-app one is sent as it is stored (`notification.sent` on `AUDIT`,
//! which the live feed pushes to the recipient); an email one is a delivery
//! the runtime performs after the commit, with retries, and whose every try
//! is kept on the notification (`pending` → `sent` | `failed`, attempts,
//! last error), ending in `notification.sent` or `notification.failed`.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use taskflow_runtime::access::{self, TaskReaders};
use taskflow_runtime::consumer::effector::{EffectError, Effector, Settlement};
use taskflow_runtime::consumer::{ConsumedEvent, HandlerError, created_task};
use taskflow_runtime::outbox::{self, RelayHandle};
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::events::{
    NOTIFICATION_FAILED, NOTIFICATION_SENT, REMINDER_DUE, ReminderDuePayload, TaskEventPayload,
};
use taskflow_schemas::notification::{
    Channel, Notification, NotificationEventPayload, NotificationStatus,
};
use taskflow_schemas::subjects::audit_subject;
use taskflow_schemas::task::Task;
use uuid::Uuid;

use crate::mailer::{Mail, Mailer};
use crate::notices::{self, Notice};
use crate::store::{self, NewNotification};

pub struct Notifier {
    /// None when SMTP is not configured: in-app notifications only.
    pub mailer: Option<Mailer>,
    pub relay: RelayHandle,
}

/// An email to send, recorded with the event that asked for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Email {
    pub notification_id: Uuid,
    pub to: String,
    pub name: String,
    pub message: String,
}

impl Effector for Notifier {
    type Effect = Email;

    async fn plan(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<Vec<Email>, HandlerError> {
        let envelope = &event.envelope;
        let Some((task, notices)) = notices_of(envelope)? else {
            return Ok(Vec::new());
        };
        let readers = TaskReaders::of(&task);
        access::keep(tx, std::slice::from_ref(&readers)).await?;
        let notices = readers_only(tx, &readers, notices).await?;
        let mut emails = Vec::new();
        for notice in notices {
            let mut new = NewNotification {
                recipient: notice.recipient,
                task_id: envelope.task_id,
                kind: notice.kind,
                channel: Channel::InApp,
                message: &notice.message,
                source_event_id: envelope.event_id,
                correlation_id: &envelope.correlation_id,
            };
            if let Some(in_app) = store::insert(tx, &new).await? {
                announce(tx, &in_app, envelope).await?;
            }
            if self.mailer.is_none() {
                continue;
            }
            let Some(recipient) = store::recipient(tx, notice.recipient).await? else {
                continue;
            };
            if !recipient.email_notifications {
                continue;
            }
            new.channel = Channel::Email;
            if let Some(email) = store::insert(tx, &new).await? {
                emails.push(Email {
                    notification_id: email.id,
                    to: recipient.email,
                    name: recipient.name,
                    message: notice.message.clone(),
                });
            }
        }
        Ok(emails)
    }

    fn ignores(&self, event: &ConsumedEvent) -> bool {
        let envelope = &event.envelope;
        created_task(event).is_some_and(|payload| {
            notices::is_silent_creation(&envelope.event_type, envelope.actor_id, &payload)
        })
    }

    async fn perform(&self, _delivery: i64, email: &Email) -> Result<(), EffectError> {
        let Some(mailer) = &self.mailer else {
            return Err(EffectError::Permanent(
                "SMTP is no longer configured".into(),
            ));
        };
        let body = format!(
            "Hello {},\n\n{}\n\n-- TaskFlow\n",
            email.name, email.message
        );
        let mail = Mail {
            to: &email.to,
            subject: &email.message,
            body,
            message_id: format!("<{}@taskflow>", email.notification_id),
        };
        mailer.send(mail).await
    }

    async fn settled(
        &self,
        tx: &mut PgConnection,
        email: &Email,
        attempts: i32,
        settlement: Settlement<'_>,
    ) -> Result<(), sqlx::Error> {
        // SMTP errors are short, but a notification's event must stay small.
        let bounded = |reason: &str| -> String { reason.chars().take(1_000).collect() };
        let (status, error) = match settlement {
            Settlement::Done => (NotificationStatus::Sent, None),
            Settlement::Retrying { reason } => (NotificationStatus::Pending, Some(bounded(reason))),
            Settlement::Failed { reason } => (NotificationStatus::Failed, Some(bounded(reason))),
        };
        let error = error.as_deref();
        let settled = store::settle(tx, email.notification_id, status, attempts, error).await?;
        if let Some(notification) = settled.filter(|n| n.status != NotificationStatus::Pending) {
            let cause = source_of(tx, &notification).await?;
            announce_settled(tx, &notification, cause).await?;
        }
        Ok(())
    }

    fn after_settled(&self) {
        self.relay.wake();
    }

    fn committed(&self) {
        self.relay.wake();
    }
}

/// Only the notices whose recipient may read the task now, by the access
/// rule: a creator who left the task's project is not told of it.
async fn readers_only(
    tx: &mut PgConnection,
    task: &TaskReaders,
    notices: Vec<Notice>,
) -> Result<Vec<Notice>, sqlx::Error> {
    let recipients: Vec<Uuid> = notices.iter().map(|notice| notice.recipient).collect();
    let readers = access::readers_among(tx, &task.access, &recipients).await?;
    Ok(notices
        .into_iter()
        .filter(|notice| readers.contains(&notice.recipient))
        .collect())
}

/// The task an event is about and the notices it makes; `None` for events
/// that concern no task.
fn notices_of(envelope: &EventEnvelope) -> Result<Option<(Task, Vec<Notice>)>, HandlerError> {
    let unreadable = |error: serde_json::Error| {
        HandlerError::Reject(format!("not a {} payload: {error}", envelope.event_type))
    };
    if envelope.event_type == REMINDER_DUE {
        let reminder: ReminderDuePayload =
            serde_json::from_value(envelope.payload.clone()).map_err(unreadable)?;
        if envelope.task_id != Some(reminder.task.id) {
            return Err(HandlerError::Reject(
                "the envelope's task_id is not the reminder's task".into(),
            ));
        }
        let notices = notices::for_reminder(&reminder);
        return Ok(Some((reminder.task, notices)));
    }
    if envelope.event_type.starts_with("task.") {
        let task: TaskEventPayload =
            serde_json::from_value(envelope.payload.clone()).map_err(unreadable)?;
        if envelope.task_id != Some(task.task.id) {
            return Err(HandlerError::Reject(
                "the envelope's task_id is not its task's id".into(),
            ));
        }
        let notices = notices::for_task_event(&envelope.event_type, envelope.actor_id, &task);
        return Ok(Some((task.task, notices)));
    }
    Ok(None)
}

/// `notification.sent` for an in-app notification, caused by its source.
async fn announce(
    tx: &mut PgConnection,
    notification: &Notification,
    source: &EventEnvelope,
) -> Result<(), HandlerError> {
    let cause = Cause {
        event_id: source.event_id,
        correlation_id: source.correlation_id.clone(),
    };
    announce_settled(tx, notification, cause)
        .await
        .map_err(HandlerError::from)
}

struct Cause {
    event_id: Uuid,
    correlation_id: String,
}

/// The source event of a notification, as stored with it.
async fn source_of(
    tx: &mut PgConnection,
    notification: &Notification,
) -> Result<Cause, sqlx::Error> {
    let correlation_id: String =
        sqlx::query_scalar("SELECT correlation_id FROM notifications WHERE id = $1")
            .bind(notification.id)
            .fetch_one(tx)
            .await?;
    Ok(Cause {
        event_id: notification.source_event_id,
        correlation_id,
    })
}

/// `notification.sent` or `notification.failed` on `AUDIT`, with the
/// notification as it now stands.
async fn announce_settled(
    tx: &mut PgConnection,
    notification: &Notification,
    cause: Cause,
) -> Result<(), sqlx::Error> {
    let event_type = match notification.status {
        NotificationStatus::Failed => NOTIFICATION_FAILED,
        _ => NOTIFICATION_SENT,
    };
    let payload = NotificationEventPayload {
        notification: notification.clone(),
    };
    let mut event = EventEnvelope::new(
        event_type,
        notification.task_id,
        None,
        cause.correlation_id,
        serde_json::to_value(payload).expect("a payload serializes"),
    );
    event.causation_id = Some(cause.event_id);
    let record = outbox::OutboxRecord::new(audit_subject(event_type), &event)
        .expect("a notification event is small");
    outbox::enqueue_record(tx, &record).await
}
