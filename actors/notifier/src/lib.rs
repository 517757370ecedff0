//! The notifier service: owns the `taskflow_notifier` database, where every
//! notification is kept with its channel and status, and tells people.
//!
//! Consumes: `REMINDERS` (durable `notifier-reminders`) and `TASKS`
//! (`notifier-tasks`): a reminder that fell due, a task assigned to someone
//! by somebody else, a task completed by someone other than its creator or
//! observers (see [`notices`]); `AUDIT` `audit.user.>` (`notifier-users`):
//! each user's email address and email setting; `audit.user.>` and
//! `audit.project.>` (`notifier-directory`): who may read what. Only those
//! who may read a task are told of it, and a notification is listed while
//! its recipient may still read its task.
//! Answers: `ListNotifications`, `MarkNotificationRead`
//! (`taskflow.notifier.*`), each over the user's own notifications.
//! Publishes: `notification.sent` and `notification.failed` on `AUDIT`
//! through its outbox, caused by the event that made the notification; the
//! live feed pushes in-app ones to their recipient.
//! Sends: email over SMTP (lettre), when `TASKFLOW_SMTP_URL` is set and the
//! user wants email, with retries and backoff.

pub mod mailer;
pub mod notices;
pub mod notifier;
pub mod queries;
pub mod recipients;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::Platform;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::consumer::ConsumerSpec;
use taskflow_runtime::directory;
use taskflow_runtime::service::{ConsumerStarter, ServiceDefinition, ServiceParts};
use taskflow_schemas::catalogue::{ListNotifications, MarkNotificationRead};
use taskflow_schemas::subjects::{AUDIT_STREAM, REMINDERS_STREAM, TASKS_STREAM};

use crate::mailer::{MailSettings, Mailer};
use crate::notifier::Notifier;
use crate::queries::NotificationQueries;
use crate::recipients::RecipientProjection;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/notifier");

pub static SERVICE: ServiceDefinition<NotificationQueries> = ServiceDefinition {
    name: "notifier",
    description: "Notifier: notifications in-app and by email, once per event and recipient",
    migrator: &MIGRATOR,
    workers: 4,
    outbox: true,
    publishes_directory: false,
    check_settings: |settings| MailSettings::read(settings).map(drop),
    ops_addr: "127.0.0.1:9105",
    state: |_, parts| NotificationQueries::new(parts.pool),
    endpoints,
    consumers,
    actors: Vec::new,
};

fn endpoints() -> Endpoints<NotificationQueries> {
    Endpoints::<NotificationQueries>::new()
        .on::<ListNotifications, _, _, _>(|notifications, _, request| async move {
            notifications.list(request.user(), request.body).await
        })
        .on::<MarkNotificationRead, _, _, _>(|notifications, _, request| async move {
            notifications.mark_read(request.user(), request.body).await
        })
}

fn consumers(platform: &Platform, parts: &ServiceParts) -> Vec<ConsumerStarter> {
    let spec = |durable: &str, stream, subjects: &str, workers| ConsumerSpec {
        service: "notifier",
        durable: durable.into(),
        stream,
        subjects: vec![subjects.into()],
        workers,
    };
    let notifier = || Notifier {
        mailer: mailer(platform),
        relay: parts.relay(),
    };
    vec![
        ConsumerStarter::effector(
            spec("notifier-reminders", REMINDERS_STREAM, "reminders.>", 4),
            notifier(),
        ),
        ConsumerStarter::effector(
            spec("notifier-tasks", TASKS_STREAM, "tasks.>", 4),
            notifier(),
        ),
        ConsumerStarter::new(
            spec("notifier-users", AUDIT_STREAM, "audit.user.>", 1),
            RecipientProjection,
        ),
        directory::consumer("notifier", &parts.directory),
    ]
}

/// The SMTP transport, when `TASKFLOW_SMTP_URL` is set.
fn mailer(platform: &Platform) -> Option<Mailer> {
    // Read once at start already (`check_settings`).
    let settings = MailSettings::read(&platform.settings).ok()?;
    match Mailer::new(settings.url.as_deref()?, &settings.from) {
        Ok(mailer) => Some(mailer),
        Err(error) => {
            tracing::error!(service = "notifier", %error, "email is off: SMTP cannot be used");
            None
        }
    }
}
