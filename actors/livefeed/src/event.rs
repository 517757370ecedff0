//! One task event as the feed sends it: decoded once from the bytes the
//! stream holds (only who may see it is read; the frame wraps the stored
//! envelope as it is), and what it means for each client: the event, a
//! `revoked` frame, or nothing. Notifications and `revoked` frames are
//! built here too.

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::access::{Participants, ReadAccess};
use taskflow_schemas::envelope::SCHEMA_VERSION;
use taskflow_schemas::events::TASK_DELETED;
use taskflow_schemas::feed::{FeedCursor, ServerFrame};
use taskflow_schemas::notification::{Channel, NotificationEventPayload};
use uuid::Uuid;

use crate::directory::FeedDirectory;

/// One event, serialized once for every client (each gets a reference to
/// the same bytes), with who may see it.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub cursor: FeedCursor,
    pub task_id: Option<Uuid>,
    /// Who may read the task once this event happened.
    pub access: ReadAccess,
    /// The project the change moved the task out of: its members who do not
    /// read it where it is now get a `revoked` frame.
    pub previous_project: Option<Uuid>,
    pub deleted: bool,
    /// Who could read the task before this event and no longer can: they get
    /// a `revoked` frame instead of the event, and nothing of it after.
    pub revoked: Vec<Uuid>,
    pub frame: Utf8Bytes,
}

/// What one event means for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event,
    Revoked(Uuid),
    Nothing,
}

impl LiveEvent {
    /// `None` for a message that is not a task event envelope (the consumers
    /// deal with those; the feed only skips them). Reads only who may see
    /// it; the frame wraps the stored bytes as they are.
    pub fn decode(seq: u64, payload: &[u8]) -> Option<Self> {
        let peek: EnvelopePeek = serde_json::from_slice(payload).ok()?;
        if peek.schema_version != SCHEMA_VERSION {
            // Like every consumer: a version this build does not know is
            // counted and skipped, never shown half-understood.
            metrics::counter!("taskflow_consumer_skipped_total", "consumer" => "livefeed", "reason" => "unknown_schema_version")
                .increment(1);
            return None;
        }
        let envelope = std::str::from_utf8(payload).ok()?;
        let cursor = FeedCursor::of_event(seq, &peek.event_id);
        let frame = format!(
            r#"{{"type":"event","cursor":{},"event":{envelope}}}"#,
            cursor.to_wire()
        );
        let project = peek.payload.task.project_id;
        let previous_project = peek
            .payload
            .changes
            .project_id
            .as_ref()
            .and_then(|change| change.old)
            .filter(|previous| Some(*previous) != project);
        let (named, revoked) = peek.payload.access();
        Some(Self {
            cursor,
            task_id: peek.task_id,
            access: ReadAccess { named, project },
            previous_project,
            deleted: peek.event_type == TASK_DELETED,
            revoked,
            frame: Utf8Bytes::from(frame),
        })
    }

    /// The event for whoever may read its task (admins, those named in it,
    /// the members of its project), `revoked` for whom it removed: an old
    /// assignee or observer, or a member of the project it left.
    pub fn delivery_to(&self, user: Uuid, directory: &FeedDirectory) -> Delivery {
        if directory.reads(user, &self.access) {
            return Delivery::Event;
        }
        let left = self.revoked.contains(&user)
            || self
                .previous_project
                .is_some_and(|previous| directory.is_member(previous, user));
        match (self.task_id, left) {
            (Some(task_id), true) => Delivery::Revoked(task_id),
            _ => Delivery::Nothing,
        }
    }
}

/// The recipient of an in-app `notification.sent` envelope and its
/// `{"type":"notification","notification":{...}}` frame; `None` for
/// anything else.
pub fn notification_frame(payload: &[u8]) -> Option<(Uuid, Utf8Bytes)> {
    let envelope: EventEnvelope = serde_json::from_slice(payload).ok()?;
    if envelope.schema_version != SCHEMA_VERSION {
        return None;
    }
    let event: NotificationEventPayload = serde_json::from_value(envelope.payload).ok()?;
    let notification = event.notification;
    if notification.channel != Channel::InApp {
        return None;
    }
    let recipient = notification.recipient_id;
    let frame = ServerFrame::Notification {
        notification: serde_json::to_value(notification).ok()?,
    };
    let text = serde_json::to_string(&frame).ok()?;
    Some((recipient, Utf8Bytes::from(text)))
}

/// A frame for a client, with the `TASKS` sequence it stands for (0 for a
/// frame that is not in the stream's order: a notification, a `revoked` of
/// a membership change). A session drops the stream frames it replayed
/// already: the hub may be behind the stream a replay read to.
#[derive(Debug, Clone)]
pub struct LiveFrame {
    pub seq: u64,
    pub text: Utf8Bytes,
}

/// `{"type":"revoked","task_id":...}`.
pub fn revoked_frame(task_id: Uuid) -> Utf8Bytes {
    Utf8Bytes::from(format!(r#"{{"type":"revoked","task_id":"{task_id}"}}"#))
}

/// The parts of an envelope the feed needs; the required fields make sure
/// it is one.
#[derive(Deserialize)]
struct EnvelopePeek {
    event_id: Uuid,
    #[serde(default)]
    task_id: Option<Uuid>,
    event_type: String,
    #[allow(dead_code)]
    occurred_at: IgnoredAny,
    schema_version: u32,
    #[serde(default)]
    payload: PayloadPeek,
}

#[derive(Deserialize, Default)]
struct PayloadPeek {
    #[serde(default)]
    task: TaskPeek,
    #[serde(default)]
    changes: ChangesPeek,
}

#[derive(Deserialize, Default)]
struct TaskPeek {
    creator_id: Option<Uuid>,
    #[serde(default)]
    project_id: Option<Uuid>,
    assignee_id: Option<Uuid>,
    #[serde(default)]
    observer_ids: Vec<Uuid>,
}

#[derive(Deserialize, Default)]
struct ChangesPeek {
    assignee_id: Option<Old<Option<Uuid>>>,
    project_id: Option<Old<Option<Uuid>>>,
    observer_ids: Option<Old<Vec<Uuid>>>,
}

#[derive(Deserialize)]
struct Old<T> {
    old: T,
}

impl PayloadPeek {
    /// Who may read the task after the change (its creator, assignee and
    /// observers), and whom the change removed (an old assignee or observer
    /// who is none of those now).
    fn access(self) -> (Vec<Uuid>, Vec<Uuid>) {
        let readers = match self.task.creator_id {
            Some(creator) => Participants {
                creator,
                project: self.task.project_id,
                assignee: self.task.assignee_id,
                observers: &self.task.observer_ids,
            }
            .readers(),
            None => Vec::new(),
        };
        let mut revoked: Vec<Uuid> = self
            .changes
            .assignee_id
            .and_then(|change| change.old)
            .into_iter()
            .chain(
                self.changes
                    .observer_ids
                    .map(|change| change.old)
                    .unwrap_or_default(),
            )
            .filter(|user| readers.binary_search(user).is_err())
            .collect();
        revoked.sort();
        revoked.dedup();
        (readers, revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::directory::Lost;

    use taskflow_schemas::EventEnvelope;

    fn bytes(event_type: &str, task_id: Option<Uuid>, payload: Value) -> Vec<u8> {
        let envelope = EventEnvelope::new(event_type, task_id, None, "r", payload);
        serde_json::to_vec(&envelope).unwrap()
    }

    fn project_event(event_type: &str, project: Uuid, member: Uuid, role: &str) -> Vec<u8> {
        project_event_at(event_type, project, 1, member, role)
    }

    fn project_event_at(
        event_type: &str,
        project: Uuid,
        version: i64,
        member: Uuid,
        role: &str,
    ) -> Vec<u8> {
        let now = chrono::Utc::now();
        bytes(
            event_type,
            None,
            json!({
                "project": {"id": project, "name": "p", "description": null, "created_by": member,
                            "version": version, "created_at": now, "updated_at": now},
                "member": {"project_id": project, "user_id": member, "role": role, "added_at": now}
            }),
        )
    }

    #[test]
    fn an_older_membership_or_role_change_coming_again_changes_nothing() {
        let (launch, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut directory = FeedDirectory::default();
        let added = project_event_at("project.member_added", launch, 2, bob, "member");
        let removed = project_event_at("project.member_removed", launch, 3, bob, "member");
        directory.apply_audit(5000, &added);
        directory.apply_audit(4871, &removed);
        // Republished after the server lost its tail.
        directory.apply_audit(4872, &added);
        assert!(!directory.is_member(launch, bob));
        let role = |role: &str, version: i64| {
            bytes(
                "user.role_changed",
                None,
                json!({"user_id": bob, "role": role, "version": version}),
            )
        };
        directory.apply_audit(5001, &role("admin", 1));
        directory.apply_audit(4873, &role("member", 2));
        directory.apply_audit(4874, &role("admin", 1));
        assert!(!directory.is_admin(bob));
    }

    #[test]
    fn a_change_that_removes_a_reader_revokes_it_and_shows_the_event_to_the_rest() {
        let (ada, bob, cy, root) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let task_id = Uuid::now_v7();
        let payload = bytes(
            "task.updated",
            Some(task_id),
            json!({
                "task": {"creator_id": ada, "assignee_id": cy, "observer_ids": []},
                "changes": {"assignee_id": {"old": bob, "new": cy}}
            }),
        );
        let event = LiveEvent::decode(7, &payload).unwrap();
        let mut directory = FeedDirectory::default();
        directory.apply_audit(
            0,
            &bytes(
                "user.role_changed",
                None,
                json!({"user_id": root, "role": "admin"}),
            ),
        );
        assert_eq!(event.delivery_to(ada, &directory), Delivery::Event);
        assert_eq!(event.delivery_to(cy, &directory), Delivery::Event);
        assert_eq!(
            event.delivery_to(bob, &directory),
            Delivery::Revoked(task_id)
        );
        assert_eq!(
            event.delivery_to(Uuid::now_v7(), &directory),
            Delivery::Nothing
        );
        assert_eq!(event.delivery_to(root, &directory), Delivery::Event);
        let cursor = event.cursor.to_wire();
        assert_eq!(FeedCursor::from_wire(cursor).unwrap().seq, 7);
        assert!(event.frame.contains(&format!(r#""cursor":{cursor}"#)));
    }

    #[test]
    fn project_members_see_its_tasks_until_they_leave_or_the_task_does() {
        let (ada, bob, eve) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (launch, elsewhere) = (Uuid::now_v7(), Uuid::now_v7());
        let mut directory = FeedDirectory::default();
        directory.apply_audit(0, &project_event("project.created", launch, ada, "owner"));
        directory.apply_audit(
            0,
            &project_event("project.member_added", launch, bob, "viewer"),
        );
        let (planned, assigned) = (Uuid::now_v7(), Uuid::now_v7());
        for (seq, id, assignee) in [(1, planned, None), (2, assigned, Some(bob))] {
            let payload = json!({"task": {"id": id, "creator_id": ada, "project_id": launch,
                                          "assignee_id": assignee, "observer_ids": []}});
            let event = LiveEvent::decode(seq, &bytes("task.created", Some(id), payload)).unwrap();
            directory.apply_task(&event);
            assert_eq!(event.delivery_to(bob, &directory), Delivery::Event);
            assert_eq!(event.delivery_to(eve, &directory), Delivery::Nothing);
        }
        // Bob leaves: he loses the task he is not named in.
        let lost = directory.apply_audit(
            0,
            &project_event("project.member_removed", launch, bob, "viewer"),
        );
        assert_eq!(
            lost,
            vec![Lost {
                user: bob,
                tasks: vec![planned]
            }]
        );
        // Ada moves a task elsewhere, where she is nobody: she gets `revoked`.
        let moved = bytes(
            "task.updated",
            Some(planned),
            json!({"task": {"creator_id": ada, "project_id": elsewhere, "observer_ids": []},
                   "changes": {"project_id": {"old": launch, "new": elsewhere}}}),
        );
        let event = LiveEvent::decode(3, &moved).unwrap();
        directory.apply_task(&event);
        assert_eq!(
            event.delivery_to(ada, &directory),
            Delivery::Revoked(planned)
        );
        // A deleted project takes its members' access to every task with it.
        let lost =
            directory.apply_audit(0, &project_event("project.deleted", launch, ada, "owner"));
        assert_eq!(
            lost,
            vec![Lost {
                user: ada,
                tasks: vec![assigned]
            }]
        );
    }
}
