//! The command catalogue: every request-reply command of TaskFlow, one type
//! each, fixing its subject, its request, its reply and the key that orders
//! it. A caller sends with `CommandClient::call::<CreateTask>(..)` and a
//! service answers with `Endpoints::on::<CreateTask>(..)` (both in the
//! runtime), so neither side can pair a subject with the wrong body.
//!
//! On NATS a command is `taskflow.<service>.<command>` with a JSON request
//! and a JSON reply (`{"ok": ...}` or the error shape). Headers carry what is
//! about the call rather than its content: `X-Request-Id`,
//! `Taskflow-Deadline` and `Idempotency-Key`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::audit::{AuditQuery, AuditRecord, AuditRef};
use crate::commands::{
    AsUser, Credentials, NewTask, NextOccurrence, Page, ProfilePatch, Registration, Session,
    TaskQuery, TaskRef, TaskUpdate, UserRef,
};
use crate::error::ErrorBody;
use crate::notification::{Notification, NotificationQuery, NotificationRef};
use crate::project::{
    MemberChange, MemberRef, MembersOf, NewProject, Project, ProjectMember, ProjectQuery,
    ProjectRef, ProjectUpdate,
};
use crate::schedule::{Schedule, ScheduleQuery, ScheduleRef};
use crate::task::Task;
use crate::user::{PublicProfile, UserProfile};

/// One command: where it is sent, what it carries and what comes back.
pub trait Command: Send + Sync + 'static {
    /// `taskflow.<service>.<command>`.
    const SUBJECT: &'static str;
    type Request: WireRequest;
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Commands with the same key are answered one after another, in the
    /// order they came (a task's commands); `None` lets any worker take it.
    fn routing_key(_request: &Self::Request) -> Option<Uuid> {
        None
    }

    /// The service part of the subject (`tasks`), for messages about it.
    fn service() -> &'static str {
        Self::SUBJECT.split('.').nth(1).unwrap_or(Self::SUBJECT)
    }
}

/// How a request travels as bytes. A failure to decode names the field.
pub trait WireRequest: Send + Sized + 'static {
    fn decode(bytes: &[u8]) -> Result<Self, ErrorBody>;
    fn encode(&self) -> Vec<u8>;
}

impl<B: Serialize + DeserializeOwned + Send + 'static> WireRequest for AsUser<B> {
    fn decode(bytes: &[u8]) -> Result<Self, ErrorBody> {
        crate::decode::command(bytes)
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("requests serialize")
    }
}

macro_rules! plain_requests {
    ($($request:ty),*) => {$(
        impl WireRequest for $request {
            fn decode(bytes: &[u8]) -> Result<Self, ErrorBody> {
                crate::decode::json(bytes)
            }

            fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("requests serialize")
            }
        }
    )*};
}

plain_requests!(Registration, Credentials, UserRef);

macro_rules! commands {
    ($(
        $(#[$doc:meta])*
        $name:ident = $subject:literal, $request:ty => $reply:ty
        $(, ordered by |$by:ident| $key:expr)?;
    )*) => {$(
        $(#[$doc])*
        pub enum $name {}

        impl Command for $name {
            const SUBJECT: &'static str = $subject;
            type Request = $request;
            type Reply = $reply;
            $(
                fn routing_key($by: &$request) -> Option<Uuid> {
                    Some($key)
                }
            )?
        }
    )*};
}

commands! {
    /// Create a task; an `Idempotency-Key` header makes a retry safe.
    CreateTask = "taskflow.tasks.create", AsUser<NewTask> => Task;
    GetTask = "taskflow.tasks.get", AsUser<TaskRef> => Task,
        ordered by |request| request.body.task_id;
    /// The tasks the user may read, newest first.
    ListTasks = "taskflow.tasks.list", AsUser<TaskQuery> => Page<Task>;
    UpdateTask = "taskflow.tasks.update", AsUser<TaskUpdate> => Task,
        ordered by |request| request.body.task_id;
    CompleteTask = "taskflow.tasks.complete", AsUser<TaskRef> => Task,
        ordered by |request| request.body.task_id;
    /// A copy of a completed recurring task, due next (the scheduler's);
    /// its `Idempotency-Key` names the occurrence, so it is made once.
    CreateNextOccurrence = "taskflow.tasks.create_next_occurrence",
        AsUser<NextOccurrence> => Task,
        ordered by |request| request.body.previous_task_id;
    /// Replies with the task as it was when deleted.
    DeleteTask = "taskflow.tasks.delete", AsUser<TaskRef> => Task,
        ordered by |request| request.body.task_id;

    Register = "taskflow.identity.register", Registration => Session;
    Login = "taskflow.identity.login", Credentials => Session;
    /// The user's own profile (the edge names the user it authenticated).
    GetProfile = "taskflow.identity.get_profile", UserRef => UserProfile;
    UpdateProfile = "taskflow.identity.update_profile", AsUser<ProfilePatch> => UserProfile;
    GetPublicProfile = "taskflow.identity.get_public_profile", UserRef => PublicProfile;

    /// The audit records the user may read, in recording order.
    ListAuditRecords = "taskflow.audit.list", AsUser<AuditQuery> => Page<AuditRecord>;
    GetAuditRecord = "taskflow.audit.get", AsUser<AuditRef> => AuditRecord;

    /// Reminders and series of the tasks the user may read, newest first.
    ListSchedules = "taskflow.scheduler.list", AsUser<ScheduleQuery> => Page<Schedule>;
    GetSchedule = "taskflow.scheduler.get", AsUser<ScheduleRef> => Schedule;

    /// Create a project; its creator becomes its owner.
    CreateProject = "taskflow.projects.create", AsUser<NewProject> => Project;
    /// The projects the user is a member of (admins: all), newest first.
    ListProjects = "taskflow.projects.list", AsUser<ProjectQuery> => Page<Project>;
    GetProject = "taskflow.projects.get", AsUser<ProjectRef> => Project,
        ordered by |request| request.body.project_id;
    UpdateProject = "taskflow.projects.update", AsUser<ProjectUpdate> => Project,
        ordered by |request| request.body.project_id;
    /// Replies with the project as it was when deleted.
    DeleteProject = "taskflow.projects.delete", AsUser<ProjectRef> => Project,
        ordered by |request| request.body.project_id;
    /// Adds a member, or changes the role of one.
    AddMember = "taskflow.projects.add_member", AsUser<MemberChange> => ProjectMember,
        ordered by |request| request.body.project_id;
    /// A project's members, oldest first.
    ListMembers = "taskflow.projects.members", AsUser<MembersOf> => Page<ProjectMember>,
        ordered by |request| request.body.project_id;
    /// Replies with the member as it was when removed.
    RemoveMember = "taskflow.projects.remove_member", AsUser<MemberRef> => ProjectMember,
        ordered by |request| request.body.project_id;

    /// The user's own notifications, newest first.
    ListNotifications = "taskflow.notifier.list", AsUser<NotificationQuery> => Page<Notification>;
    /// Marks one of the user's notifications read; reading it again changes nothing.
    MarkNotificationRead = "taskflow.notifier.read", AsUser<NotificationRef> => Notification;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_command_is_ordered_by_its_task_and_a_create_by_nothing() {
        let user = crate::commands::Principal {
            id: Uuid::now_v7(),
            role: crate::user::Role::Member,
        };
        let task_id = Uuid::now_v7();
        let complete = AsUser::new(
            user,
            TaskRef {
                task_id,
                expected_version: None,
            },
        );
        assert_eq!(CompleteTask::routing_key(&complete), Some(task_id));
        let create = AsUser::new(user, NewTask::default());
        assert_eq!(CreateTask::routing_key(&create), None);
        assert_eq!(CreateTask::service(), "tasks");
    }

    #[test]
    fn a_request_reads_back_what_it_wrote() {
        let user = crate::commands::Principal {
            id: Uuid::now_v7(),
            role: crate::user::Role::Admin,
        };
        let sent = AsUser::new(
            user,
            NewTask {
                title: "from nats".into(),
                ..Default::default()
            },
        );
        let read = <CreateTask as Command>::Request::decode(&sent.encode()).unwrap();
        assert_eq!(read, sent);
    }
}
