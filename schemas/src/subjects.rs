//! Stream names, event subjects and the headers of commands, in one place;
//! command subjects live with their types in [`crate::catalogue`].

use uuid::Uuid;

pub const TASKS_STREAM: &str = "TASKS";
pub const REMINDERS_STREAM: &str = "REMINDERS";
pub const AUDIT_STREAM: &str = "AUDIT";
pub const DLQ_STREAM: &str = "DLQ";

/// The header that carries a request's id through NATS.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// The header that carries a command's deadline (Unix time in milliseconds):
/// a service drops a command whose caller has already given up.
pub const DEADLINE_HEADER: &str = "Taskflow-Deadline";

/// The header that makes a command's retry safe: the same key with the same
/// request gets the first reply again, and changes nothing more.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The header naming the event that made a service send a command: the
/// events the command writes carry it as their `causation_id`.
pub const CAUSATION_ID_HEADER: &str = "Taskflow-Causation-Id";

/// A stream every service may create or update at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subjects: &'static [&'static str],
    pub description: &'static str,
}

/// The four streams of the contract, as in `nats/streams/*.json`.
pub const STREAMS: [StreamSpec; 4] = [
    StreamSpec {
        name: TASKS_STREAM,
        subjects: &["tasks.>"],
        description: "task.created, task.updated, task.completed, task.deleted",
    },
    StreamSpec {
        name: REMINDERS_STREAM,
        subjects: &["reminders.>"],
        description: "reminder.due",
    },
    StreamSpec {
        name: AUDIT_STREAM,
        subjects: &["audit.>"],
        description: "events of the other domains: users, projects, notifications",
    },
    StreamSpec {
        name: DLQ_STREAM,
        subjects: &["dlq.>"],
        description: "messages a consumer gave up on, with the reason in headers",
    },
];

/// `tasks.<verb>.<task_id>` for a `task.<verb>` event.
pub fn task_event_subject(event_type: &str, task_id: Uuid) -> String {
    let verb = event_type.strip_prefix("task.").unwrap_or(event_type);
    format!("tasks.{verb}.{task_id}")
}

/// `reminders.due.<task_id>`: where a task's reminder fires.
pub fn reminder_subject(task_id: Uuid) -> String {
    format!("reminders.due.{task_id}")
}

/// `audit.<domain>.<event>` for a `<domain>.<event>` event.
pub fn audit_subject(event_type: &str) -> String {
    format!("audit.{event_type}")
}

/// `dlq.<consumer>`: where a consumer parks what it gave up on.
pub fn dlq_subject(consumer: &str) -> String {
    format!("dlq.{consumer}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_subjects_use_the_verb_of_the_event_type() {
        let id = Uuid::nil();
        assert_eq!(
            task_event_subject("task.completed", id),
            format!("tasks.completed.{id}")
        );
        assert_eq!(audit_subject("user.registered"), "audit.user.registered");
    }
}
