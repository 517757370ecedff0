//! Who is told what about an event: pure rules, free of IO.
//!
//! - `reminder.due`: the task's assignee and its creator.
//! - a task assigned to someone (at creation or by a change) by somebody
//!   else: the new assignee.
//! - `task.completed` by someone: the task's creator and observers, except
//!   whoever completed it.

use taskflow_schemas::events::{
    ReminderDuePayload, TASK_COMPLETED, TASK_CREATED, TASK_UPDATED, TaskEventPayload,
};
use taskflow_schemas::notification::NotificationKind;
use uuid::Uuid;

/// One person to tell about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub recipient: Uuid,
    pub kind: NotificationKind,
    pub message: String,
}

/// A new task nobody is told of leaves the notifier nothing to keep: its
/// readers are recorded with its first notification, by a later event.
/// Any other task event may change who reads a notified task.
pub fn is_silent_creation(event_type: &str, actor: Option<Uuid>, event: &TaskEventPayload) -> bool {
    event_type == TASK_CREATED && for_task_event(event_type, actor, event).is_empty()
}

pub fn for_reminder(reminder: &ReminderDuePayload) -> Vec<Notice> {
    let task = &reminder.task;
    let people = task.assignee_id.into_iter().chain([task.creator_id]);
    notices(
        people,
        None,
        NotificationKind::Reminder,
        format!("Reminder: {}", task.title),
    )
}

pub fn for_task_event(
    event_type: &str,
    actor: Option<Uuid>,
    event: &TaskEventPayload,
) -> Vec<Notice> {
    let task = &event.task;
    match event_type {
        TASK_CREATED => notices(
            task.assignee_id,
            actor,
            NotificationKind::Assigned,
            format!("Assigned to you: {}", task.title),
        ),
        TASK_UPDATED => {
            let newly_assigned = event
                .changes
                .get("assignee_id")
                .and_then(|change| serde_json::from_value::<Uuid>(change.new.clone()).ok());
            notices(
                newly_assigned,
                actor,
                NotificationKind::Assigned,
                format!("Assigned to you: {}", task.title),
            )
        }
        TASK_COMPLETED => {
            let people = [task.creator_id]
                .into_iter()
                .chain(task.observer_ids.iter().copied());
            notices(
                people,
                actor,
                NotificationKind::Completed,
                format!("Completed: {}", task.title),
            )
        }
        _ => Vec::new(),
    }
}

/// The longest message kept: a task's title is at most 200 characters, but
/// an injected event may carry anything, and a notification's own event
/// must stay small.
pub const MAX_MESSAGE: usize = 300;

/// One notice per person, each once, nobody told of their own doing.
fn notices(
    people: impl IntoIterator<Item = Uuid>,
    actor: Option<Uuid>,
    kind: NotificationKind,
    message: String,
) -> Vec<Notice> {
    let message: String = message.chars().take(MAX_MESSAGE).collect();
    let mut told: Vec<Uuid> = Vec::new();
    for person in people {
        if Some(person) != actor && !told.contains(&person) {
            told.push(person);
        }
    }
    told.into_iter()
        .map(|recipient| Notice {
            recipient,
            kind,
            message: message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use taskflow_schemas::events::FieldChange;
    use taskflow_schemas::task::{Task, TaskStatus};

    fn task(creator: Uuid) -> Task {
        let now = Utc::now();
        Task {
            id: Uuid::now_v7(),
            project_id: None,
            title: "ship it".into(),
            description: None,
            status: TaskStatus::Pending,
            priority: Default::default(),
            labels: vec![],
            creator_id: creator,
            assignee_id: None,
            observer_ids: vec![],
            due_date: None,
            reminder_time: None,
            reminder_offset_minutes: None,
            recurrence: None,
            series_id: None,
            version: 1,
            created_at: now,
            updated_at: now,
            completed_at: None,
        }
    }

    fn recipients(notices: &[Notice]) -> Vec<Uuid> {
        notices.iter().map(|notice| notice.recipient).collect()
    }

    #[test]
    fn a_reminder_tells_the_assignee_and_the_creator_once_each() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut reminded = task(ada);
        reminded.assignee_id = Some(bob);
        let payload = ReminderDuePayload {
            reminder_id: Uuid::now_v7(),
            fire_at: Utc::now(),
            task: reminded.clone(),
        };
        let notices = for_reminder(&payload);
        assert_eq!(recipients(&notices), [bob, ada]);
        assert_eq!(notices[0].message, "Reminder: ship it");
        reminded.assignee_id = Some(ada);
        let payload = ReminderDuePayload {
            task: reminded,
            ..payload
        };
        assert_eq!(recipients(&for_reminder(&payload)), [ada]);
    }

    #[test]
    fn an_assignment_tells_the_new_assignee_unless_they_made_it() {
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut assigned = task(ada);
        assigned.assignee_id = Some(bob);
        let created = TaskEventPayload {
            task: assigned.clone(),
            changes: Default::default(),
        };
        let notices = for_task_event(TASK_CREATED, Some(ada), &created);
        assert_eq!(recipients(&notices), [bob]);
        assert_eq!(notices[0].kind, NotificationKind::Assigned);
        assert!(for_task_event(TASK_CREATED, Some(bob), &created).is_empty());
        assert!(!is_silent_creation(TASK_CREATED, Some(ada), &created));
        assert!(is_silent_creation(TASK_CREATED, Some(bob), &created));
        assert!(!is_silent_creation(TASK_UPDATED, Some(bob), &created));

        let mut changes = taskflow_schemas::events::Changes::new();
        changes.insert(
            "assignee_id".into(),
            FieldChange {
                old: json!(null),
                new: json!(bob),
            },
        );
        let updated = TaskEventPayload {
            task: assigned,
            changes,
        };
        assert_eq!(
            recipients(&for_task_event(TASK_UPDATED, Some(ada), &updated)),
            [bob]
        );
        let retitled = TaskEventPayload {
            changes: Default::default(),
            ..updated
        };
        assert!(for_task_event(TASK_UPDATED, Some(ada), &retitled).is_empty());
    }

    #[test]
    fn a_completion_tells_the_creator_and_observers_but_not_who_completed_it() {
        let (ada, bob, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut done = task(ada);
        done.observer_ids = vec![bob, cy, ada];
        let completed = TaskEventPayload {
            task: done,
            changes: Default::default(),
        };
        assert_eq!(
            recipients(&for_task_event(TASK_COMPLETED, Some(bob), &completed)),
            [ada, cy]
        );
        assert_eq!(
            recipients(&for_task_event(TASK_COMPLETED, Some(ada), &completed)),
            [bob, cy]
        );
        assert!(for_task_event("task.deleted", Some(bob), &completed).is_empty());
    }

    #[test]
    fn a_huge_title_makes_a_bounded_message() {
        let ada = Uuid::now_v7();
        let mut huge = task(ada);
        huge.title = "x".repeat(100_000);
        let payload = ReminderDuePayload {
            reminder_id: Uuid::now_v7(),
            fire_at: Utc::now(),
            task: huge,
        };
        let notices = for_reminder(&payload);
        assert_eq!(notices[0].message.chars().count(), MAX_MESSAGE);
    }
}
