//! The access rule, drawn at random: users, projects, roles (and members who
//! left), admins, and tasks with creators, projects, assignees and
//! observers. Every service's filter must give each user exactly the tasks
//! (records, schedules, notifications, feed events) that the contract's
//! words allow, written out here on their own, apart from the product's
//! code: admins read all; a task without a project is its creator's; in a
//! project, every role reads; the assignee and observers read.

use std::collections::BTreeSet;

use chrono::Utc;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;
use sqlx::PgPool;
use taskflow_audit::queries::AuditQueries;
use taskflow_audit::recorder::AuditRecorder;
use taskflow_livefeed::directory::FeedDirectory;
use taskflow_livefeed::event::{Delivery, LiveEvent};
use taskflow_notifier::queries::NotificationQueries;
use taskflow_notifier::store::NewNotification;
use taskflow_runtime::access::{self, Reader, TaskReaders};
use taskflow_runtime::consumer::{ConsumedEvent, EventHandler};
use taskflow_scheduler::queries::ScheduleQueries;
use taskflow_schemas::EventEnvelope;
use taskflow_schemas::access::Participants;
use taskflow_schemas::audit::AuditQuery;
use taskflow_schemas::commands::{Principal, TaskQuery};
use taskflow_schemas::notification::{Channel, NotificationKind, NotificationQuery};
use taskflow_schemas::project::ProjectRole;
use taskflow_schemas::schedule::ScheduleQuery;
use taskflow_schemas::task::{Priority, Task, TaskStatus};
use taskflow_schemas::user::Role;
use taskflow_system_tests::fixtures::subject_of;
use taskflow_system_tests::service_databases::ServiceDatabases;
use uuid::Uuid;

const USERS: usize = 5;
const PROJECTS: usize = 2;

/// Where a user stands in a project.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Standing {
    Stranger,
    /// Was a member, and was removed.
    Left,
    Holds(ProjectRole),
}

#[derive(Debug, Clone)]
struct TaskShape {
    creator: usize,
    /// Where it was made; it was moved to `project` since, if that differs.
    first_project: Option<usize>,
    project: Option<usize>,
    assignee: Option<usize>,
    observers: Vec<usize>,
}

#[derive(Debug, Clone)]
struct World {
    admins: Vec<bool>,
    /// `standing[project][user]`.
    standing: Vec<Vec<Standing>>,
    tasks: Vec<TaskShape>,
}

impl World {
    /// The contract's rule, in its own words.
    fn may_read(&self, user: usize, task: &TaskShape) -> bool {
        let in_project =
            |project: usize| matches!(self.standing[project][user], Standing::Holds(_));
        self.admins[user]
            || task.assignee == Some(user)
            || task.observers.contains(&user)
            || match task.project {
                None => task.creator == user,
                Some(project) => in_project(project),
            }
    }

    fn role(&self, user: usize, project: Option<usize>) -> Option<ProjectRole> {
        match self.standing[project?][user] {
            Standing::Holds(role) => Some(role),
            _ => None,
        }
    }
}

fn world() -> impl Strategy<Value = World> {
    let standing = prop_oneof![
        3 => Just(Standing::Stranger),
        1 => Just(Standing::Left),
        1 => Just(Standing::Holds(ProjectRole::Owner)),
        1 => Just(Standing::Holds(ProjectRole::Member)),
        1 => Just(Standing::Holds(ProjectRole::Viewer)),
    ];
    let user = 0..USERS;
    let task = (
        user.clone(),
        proptest::option::of(0..PROJECTS),
        proptest::option::of(0..PROJECTS),
        proptest::bool::weighted(0.3),
        proptest::option::of(user.clone()),
        proptest::collection::vec(user, 0..3),
    )
        .prop_map(
            |(creator, first_project, later, moved, assignee, observers)| TaskShape {
                creator,
                first_project,
                project: if moved { later } else { first_project },
                assignee,
                observers,
            },
        );
    (
        proptest::collection::vec(proptest::bool::weighted(0.15), USERS),
        proptest::collection::vec(proptest::collection::vec(standing, USERS), PROJECTS),
        proptest::collection::vec(task, 1..8),
    )
        .prop_map(|(admins, standing, tasks)| World {
            admins,
            standing,
            tasks,
        })
}

/// One drawn world, with fresh ids: earlier cases stay in the databases,
/// and only admins (who read them) see past this case's own.
struct Case<'a> {
    world: &'a World,
    users: Vec<Uuid>,
    projects: Vec<Uuid>,
    /// Each task as it is now.
    tasks: Vec<Task>,
    /// Each task as it was made.
    first: Vec<Task>,
    /// Every event of them, in order: each made, then each moved.
    events: Vec<EventEnvelope>,
    correlation_id: String,
}

impl<'a> Case<'a> {
    fn new(world: &'a World) -> Self {
        let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::now_v7()).collect();
        let projects: Vec<Uuid> = (0..PROJECTS).map(|_| Uuid::now_v7()).collect();
        let correlation_id = Uuid::now_v7().to_string();
        let now = Utc::now();
        let first: Vec<Task> = world
            .tasks
            .iter()
            .map(|shape| Task {
                id: Uuid::now_v7(),
                project_id: shape.first_project.map(|project| projects[project]),
                title: "drawn".into(),
                description: None,
                status: TaskStatus::Pending,
                priority: Priority::Medium,
                labels: Vec::new(),
                creator_id: users[shape.creator],
                assignee_id: shape.assignee.map(|user| users[user]),
                observer_ids: shape.observers.iter().map(|&user| users[user]).collect(),
                due_date: None,
                reminder_time: Some(now + chrono::Duration::days(1)),
                reminder_offset_minutes: None,
                recurrence: None,
                series_id: None,
                version: 1,
                created_at: now,
                updated_at: now,
                completed_at: None,
            })
            .collect();
        let mut events: Vec<EventEnvelope> = first
            .iter()
            .map(|task| {
                EventEnvelope::new(
                    "task.created",
                    Some(task.id),
                    Some(task.creator_id),
                    correlation_id.clone(),
                    json!({ "task": task }),
                )
            })
            .collect();
        let mut tasks = first.clone();
        for (task, shape) in tasks.iter_mut().zip(&world.tasks) {
            if shape.project == shape.first_project {
                continue;
            }
            let old = task.project_id;
            task.project_id = shape.project.map(|project| projects[project]);
            task.version = 2;
            events.push(EventEnvelope::new(
                "task.updated",
                Some(task.id),
                Some(task.creator_id),
                correlation_id.clone(),
                json!({ "task": task, "changes": {"project_id": {"old": old, "new": task.project_id}} }),
            ));
        }
        Self {
            world,
            users,
            projects,
            tasks,
            first,
            events,
            correlation_id,
        }
    }

    /// What the user may read, by the contract's words; the product's
    /// predicate must agree.
    fn expected(&self, user: usize) -> BTreeSet<Uuid> {
        self.world
            .tasks
            .iter()
            .zip(&self.tasks)
            .filter(|(shape, task)| {
                let allowed = self.world.may_read(user, shape);
                let role = self.world.role(user, shape.project);
                let predicate = Participants::of(task).may_read(
                    self.users[user],
                    role,
                    self.world.admins[user],
                );
                assert_eq!(predicate, allowed, "the predicate disagrees on {shape:?}");
                allowed
            })
            .map(|(_, task)| task.id)
            .collect()
    }

    /// Only this case's tasks of `listed`.
    fn ours(&self, listed: impl IntoIterator<Item = Option<Uuid>>) -> BTreeSet<Uuid> {
        listed
            .into_iter()
            .flatten()
            .filter(|id| self.tasks.iter().any(|task| task.id == *id))
            .collect()
    }

    fn principal(&self, user: usize) -> Principal {
        Principal {
            id: self.users[user],
            role: Role::Member,
        }
    }

    /// The directory as each service's consumer keeps it.
    async fn load_directory(&self, pool: &PgPool) {
        for (user, admin) in self.users.iter().zip(&self.world.admins) {
            sqlx::query(
                "INSERT INTO directory_users (user_id, is_admin, role_seq) VALUES ($1, $2, 1)",
            )
            .bind(user)
            .bind(admin)
            .execute(pool)
            .await
            .expect("a user");
        }
        for (project, standing) in self.projects.iter().zip(&self.world.standing) {
            sqlx::query("INSERT INTO directory_projects (project_id) VALUES ($1)")
                .bind(project)
                .execute(pool)
                .await
                .expect("a project");
            for (user, standing) in self.users.iter().zip(standing) {
                let role = match standing {
                    Standing::Stranger => continue,
                    Standing::Left => None,
                    Standing::Holds(role) => Some(role.as_str()),
                };
                sqlx::query(
                    "INSERT INTO directory_members (project_id, user_id, role, seq) VALUES ($1, $2, $3, 1)",
                )
                .bind(project)
                .bind(user)
                .bind(role)
                .execute(pool)
                .await
                .expect("a membership");
            }
        }
    }

    fn consumed(&self) -> Vec<ConsumedEvent> {
        self.events
            .iter()
            .enumerate()
            .map(|(seq, envelope)| ConsumedEvent {
                envelope: envelope.clone(),
                subject: subject_of(envelope),
                stream: "TASKS".into(),
                stream_seq: seq as u64 + 1,
            })
            .collect()
    }

    /// Each service's own record of the tasks, as its handlers keep it.
    async fn record(&self, databases: &ServiceDatabases) {
        for (task, event) in self.first.iter().zip(&self.events) {
            let record = taskflow_runtime::outbox::OutboxRecord::new(subject_of(event), event)
                .expect("a small event");
            taskflow_tasks::store::insert_with_event(&databases.tasks, task, &record, None)
                .await
                .expect("the task is stored");
        }
        let mut tx = databases.tasks.begin().await.expect("a transaction");
        for task in self.tasks.iter().filter(|task| task.version > 1) {
            taskflow_tasks::store::update(&mut tx, task)
                .await
                .expect("the task is moved");
        }
        tx.commit().await.expect("a commit");
        // The tasks as made in one batch, as a consumer takes a burst; the
        // moves one by one after.
        let consumed = self.consumed();
        let (made, moved) = consumed.split_at(self.first.len());
        let made: Vec<&ConsumedEvent> = made.iter().collect();
        let batches = std::iter::once(made).chain(moved.iter().map(|event| vec![event]));
        for batch in batches {
            let mut tx = databases.audit.begin().await.expect("a transaction");
            AuditRecorder
                .apply_batch(&mut tx, &batch)
                .await
                .expect("the records are stored");
            tx.commit().await.expect("a commit");
        }
        let mut tx = databases.scheduler.begin().await.expect("a transaction");
        for ((first, task), event) in self.first.iter().zip(&self.tasks).zip(&self.events) {
            access::keep(&mut tx, &[TaskReaders::of(first), TaskReaders::of(task)])
                .await
                .expect("readers");
            taskflow_scheduler::reminders::reconcile(&mut tx, task, task.reminder_time, event)
                .await
                .expect("a reminder");
        }
        tx.commit().await.expect("a commit");
        // A notification of every task for every user: the list alone decides.
        let mut tx = databases.notifier.begin().await.expect("a transaction");
        for ((first, task), event) in self.first.iter().zip(&self.tasks).zip(&self.events) {
            access::keep(&mut tx, &[TaskReaders::of(first), TaskReaders::of(task)])
                .await
                .expect("readers");
            for user in &self.users {
                let new = NewNotification {
                    recipient: *user,
                    task_id: Some(task.id),
                    kind: NotificationKind::Assigned,
                    channel: Channel::InApp,
                    message: "drawn",
                    source_event_id: event.event_id,
                    correlation_id: &self.correlation_id,
                };
                taskflow_notifier::store::insert(&mut tx, &new)
                    .await
                    .expect("a notification");
            }
        }
        tx.commit().await.expect("a commit");
    }

    /// The live feed's directory, from the membership and role events.
    fn feed_directory(&self) -> (FeedDirectory, Vec<LiveEvent>) {
        let mut directory = FeedDirectory::default();
        let mut seq = 0;
        let mut apply = |event_type: &str, payload: serde_json::Value| {
            seq += 1;
            let envelope = EventEnvelope::new(event_type, None, None, "drawn", payload);
            directory.apply_audit(seq, &serde_json::to_vec(&envelope).expect("json"));
        };
        for (user, admin) in self.users.iter().zip(&self.world.admins) {
            if *admin {
                apply(
                    "user.role_changed",
                    json!({"user_id": user, "role": "admin"}),
                );
            }
        }
        let now = Utc::now();
        for (project, standing) in self.projects.iter().zip(&self.world.standing) {
            for (user, standing) in self.users.iter().zip(standing) {
                let payload = |role: ProjectRole| {
                    json!({
                        "project": {"id": project, "name": "p", "description": null,
                                    "created_by": user, "version": 1, "created_at": now,
                                    "updated_at": now},
                        "member": {"project_id": project, "user_id": user, "role": role,
                                   "added_at": now}
                    })
                };
                match standing {
                    Standing::Stranger => {}
                    Standing::Left => {
                        apply("project.member_added", payload(ProjectRole::Member));
                        apply("project.member_removed", payload(ProjectRole::Member));
                    }
                    Standing::Holds(role) => apply("project.member_added", payload(*role)),
                }
            }
        }
        let events: Vec<LiveEvent> = self
            .events
            .iter()
            .enumerate()
            .map(|(seq, envelope)| {
                let bytes = serde_json::to_vec(envelope).expect("json");
                LiveEvent::decode(seq as u64 + 1, &bytes).expect("a task event")
            })
            .collect();
        for event in &events {
            directory.apply_task(event);
        }
        (directory, events)
    }

    async fn check(&self, databases: &ServiceDatabases) -> Result<(), String> {
        for pool in databases.all() {
            self.load_directory(pool).await;
        }
        self.record(databases).await;
        let (feed, live) = self.feed_directory();
        let audit = AuditQueries::new(databases.audit.clone());
        let schedules = ScheduleQueries::new(databases.scheduler.clone());
        let notifications = NotificationQueries::new(databases.notifier.clone());
        for user in 0..USERS {
            let expected = self.expected(user);
            let id = self.users[user];
            let reader = Reader::of(&databases.tasks, id)
                .await
                .map_err(|e| e.to_string())?;
            let tasks = taskflow_tasks::store::list(
                &databases.tasks,
                &reader,
                &TaskQuery::default(),
                None,
                200,
            )
            .await
            .map_err(|e| e.to_string())?;
            let records = audit
                .list(
                    self.principal(user),
                    AuditQuery {
                        correlation_id: Some(self.correlation_id.clone()),
                        limit: Some(200),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.error)?;
            let schedules = schedules
                .list(
                    self.principal(user),
                    ScheduleQuery {
                        limit: Some(200),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.error)?;
            let notified = notifications
                .list(
                    self.principal(user),
                    NotificationQuery {
                        limit: Some(200),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.error)?;
            // Each event is shown as the rule stands at it: what the user
            // sees now is the last event of each task.
            let mut last = std::collections::HashMap::new();
            for event in &live {
                last.insert(event.task_id, event);
            }
            let delivered: BTreeSet<Uuid> = last
                .into_values()
                .filter(|event| event.delivery_to(id, &feed) == Delivery::Event)
                .filter_map(|event| event.task_id)
                .collect();
            let listed = [
                ("tasks", self.ours(tasks.iter().map(|task| Some(task.id)))),
                ("audit", self.ours(records.items.iter().map(|r| r.task_id))),
                (
                    "schedules",
                    self.ours(schedules.items.iter().map(|s| Some(s.task_id))),
                ),
                (
                    "notifications",
                    self.ours(notified.items.iter().map(|n| n.task_id)),
                ),
                ("live feed", delivered),
            ];
            for (service, listed) in listed {
                if listed != expected {
                    return Err(format!(
                        "{service} shows user {user} {listed:?}, the rule allows {expected:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

mod properties {
    use super::*;

    #[test]
    fn every_service_lists_exactly_what_the_access_rule_allows() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let databases = runtime.block_on(ServiceDatabases::connect(2));
        let mut runner = taskflow_system_tests::property_runner("PROPTEST_CASES", 64);
        let outcome = runner.run(&world(), |world| {
            runtime
                .block_on(Case::new(&world).check(&databases))
                .map_err(TestCaseError::fail)
        });
        runtime.block_on(databases.drop());
        outcome.unwrap();
    }
}
