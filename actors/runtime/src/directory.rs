//! The directory: each service's own copy of who exists, who is an admin and
//! who holds which role in which project, built from identity's and
//! projects' events on `AUDIT` (`audit.user.>`, `audit.project.>`). Access
//! is decided from it where the data lives, without asking another service
//! or reading its database (see `taskflow_schemas::access` for the rule).
//!
//! Events may come again, late, or (after a server lost its unsynced tail)
//! at lower stream sequences than ones already applied: a membership row
//! keeps the project's version of the event that set it, and a user's row
//! the version of their role, both counted by the producer, so an older
//! event never overwrites a newer one; removed members and deleted projects
//! stay as tombstones.

use std::sync::Arc;

use sqlx::{PgConnection, PgExecutor};
use taskflow_schemas::commands::Principal;
use taskflow_schemas::events::{self, RoleChangePayload};
use taskflow_schemas::project::{ProjectEventPayload, ProjectRole};
use taskflow_schemas::subjects::AUDIT_STREAM;
use taskflow_schemas::user::Role;
use tokio::sync::watch;
use uuid::Uuid;

use crate::consumer::{ConsumedEvent, ConsumerSpec, EventHandler, HandlerError, user_profile};
use crate::service::ConsumerStarter;

/// The durable consumer `<service>-directory` that keeps `service`'s copy.
pub fn spec(service: &'static str) -> ConsumerSpec {
    ConsumerSpec {
        service,
        durable: format!("{service}-directory"),
        stream: AUDIT_STREAM,
        subjects: vec!["audit.user.>".into(), "audit.project.>".into()],
        // One worker: project events carry no task id to split them by.
        workers: 1,
    }
}

/// The consumer that keeps the directory of a service and does nothing
/// else; it tells `updates` after each commit.
pub fn consumer(service: &'static str, updates: &DirectoryUpdates) -> ConsumerStarter {
    ConsumerStarter::new(spec(service), DirectoryProjection(updates.clone()))
}

/// Tells whoever waits on a service's directory that it changed: a command
/// refused for a membership the directory has not yet seen may look again.
#[derive(Clone)]
pub struct DirectoryUpdates(Arc<watch::Sender<u64>>);

impl Default for DirectoryUpdates {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl DirectoryUpdates {
    pub fn changed(&self) {
        self.0.send_modify(|count| *count += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Keeps the directory tables.
pub struct DirectoryProjection(pub DirectoryUpdates);

impl EventHandler for DirectoryProjection {
    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &ConsumedEvent,
    ) -> Result<(), HandlerError> {
        apply(tx, event).await.map(|_| ())
    }

    fn committed(&self) {
        self.0.changed();
    }
}

/// What an event changed in the directory.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryChange {
    Nothing,
    /// A user's role in a project is now `role` (`None`: no longer a member).
    Membership {
        project: Uuid,
        user: Uuid,
        role: Option<ProjectRole>,
    },
    ProjectDeleted(Uuid),
    Admin {
        user: Uuid,
        is_admin: bool,
    },
}

/// The project a `project.deleted` event deletes; `None` for other events
/// (and for a payload that is not a project event, which [`apply`] rejects).
pub fn deleted_project(event: &ConsumedEvent) -> Option<Uuid> {
    let envelope = &event.envelope;
    (envelope.event_type == events::PROJECT_DELETED)
        .then(|| serde_json::from_value::<ProjectEventPayload>(envelope.payload.clone()).ok())
        .flatten()
        .map(|payload| payload.project.id)
}

/// Applies one event of `audit.user.>` or `audit.project.>` in `tx`.
pub async fn apply(
    tx: &mut PgConnection,
    event: &ConsumedEvent,
) -> Result<DirectoryChange, HandlerError> {
    let seq = event.stream_seq as i64;
    if let Some(user) = user_profile(event)? {
        know_user(&mut *tx, user.user_id).await?;
        return Ok(DirectoryChange::Nothing);
    }
    let envelope = &event.envelope;
    if envelope.event_type == events::USER_ROLE_CHANGED {
        let change: RoleChangePayload = serde_json::from_value(envelope.payload.clone())
            .map_err(|error| HandlerError::Reject(format!("not a role change: {error}")))?;
        let is_admin = change.role == Role::Admin;
        sqlx::query(
            "INSERT INTO directory_users (user_id, is_admin, role_seq, role_version) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET is_admin = EXCLUDED.is_admin, \
             role_seq = EXCLUDED.role_seq, role_version = EXCLUDED.role_version \
             WHERE directory_users.role_version < EXCLUDED.role_version \
               OR (directory_users.role_version = EXCLUDED.role_version \
                   AND directory_users.role_seq < EXCLUDED.role_seq)",
        )
        .bind(change.user_id)
        .bind(is_admin)
        .bind(seq)
        .bind(change.version)
        .execute(&mut *tx)
        .await?;
        return Ok(DirectoryChange::Admin {
            user: change.user_id,
            is_admin,
        });
    }
    if !envelope.event_type.starts_with("project.") {
        return Ok(DirectoryChange::Nothing);
    }
    let payload: ProjectEventPayload = serde_json::from_value(envelope.payload.clone())
        .map_err(|error| HandlerError::Reject(format!("not a project event payload: {error}")))?;
    let project = payload.project.id;
    if envelope.event_type == events::PROJECT_DELETED {
        sqlx::query(
            "INSERT INTO directory_projects (project_id, deleted) VALUES ($1, true) \
             ON CONFLICT (project_id) DO UPDATE SET deleted = true",
        )
        .bind(project)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE directory_members SET role = NULL, seq = $2, version = $3 WHERE project_id = $1",
        )
        .bind(project)
        .bind(seq)
        .bind(payload.project.version)
            .execute(&mut *tx)
            .await?;
        return Ok(DirectoryChange::ProjectDeleted(project));
    }
    let deleted: bool = sqlx::query_scalar(
        "INSERT INTO directory_projects (project_id) VALUES ($1) \
         ON CONFLICT (project_id) DO UPDATE SET deleted = directory_projects.deleted \
         RETURNING deleted",
    )
    .bind(project)
    .fetch_one(&mut *tx)
    .await?;
    let Some(member) = payload.member.filter(|_| !deleted) else {
        return Ok(DirectoryChange::Nothing);
    };
    let role = (envelope.event_type != events::PROJECT_MEMBER_REMOVED).then_some(member.role);
    let applied = sqlx::query(
        "INSERT INTO directory_members (project_id, user_id, role, seq, version) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role, \
           seq = EXCLUDED.seq, version = EXCLUDED.version \
         WHERE directory_members.version < EXCLUDED.version \
           OR (directory_members.version = EXCLUDED.version AND directory_members.seq < EXCLUDED.seq)",
    )
    .bind(project)
    .bind(member.user_id)
    .bind(role.map(ProjectRole::as_str))
    .bind(seq)
    .bind(payload.project.version)
    .execute(&mut *tx)
    .await?;
    know_user(&mut *tx, member.user_id).await?;
    Ok(if applied.rows_affected() == 1 {
        DirectoryChange::Membership {
            project,
            user: member.user_id,
            role,
        }
    } else {
        DirectoryChange::Nothing
    })
}

async fn know_user(conn: impl PgExecutor<'_>, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO directory_users (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether `user` is an admin now: the directory decides, not the role a
/// token was signed with, so granting or taking back the role takes effect
/// as soon as its event is processed.
pub async fn is_admin(conn: impl PgExecutor<'_>, user: Uuid) -> Result<bool, sqlx::Error> {
    let admin: Option<bool> =
        sqlx::query_scalar("SELECT is_admin FROM directory_users WHERE user_id = $1")
            .bind(user)
            .fetch_optional(conn)
            .await?;
    Ok(admin.unwrap_or(false))
}

/// `user` with the role the directory gives them now, whatever role their
/// token was signed with.
pub async fn recheck(conn: impl PgExecutor<'_>, user: Principal) -> Result<Principal, sqlx::Error> {
    let role = match is_admin(conn, user.id).await? {
        true => Role::Admin,
        false => Role::Member,
    };
    Ok(Principal { role, ..user })
}

/// `user`'s role in `project`, if any.
pub async fn role_in(
    conn: impl PgExecutor<'_>,
    project: Uuid,
    user: Uuid,
) -> Result<Option<ProjectRole>, sqlx::Error> {
    role(conn, ROLE, project, user).await
}

/// `user`'s role in `project`, with the membership locked until the
/// transaction ends: a write that relies on it cannot cross the removal of
/// the member or the deletion of the project.
pub async fn role_in_locked(
    conn: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> Result<Option<ProjectRole>, sqlx::Error> {
    role(conn, concat!(role_sql!(), " FOR SHARE"), project, user).await
}

macro_rules! role_sql {
    () => {
        "SELECT role FROM directory_members WHERE project_id = $1 AND user_id = $2"
    };
}
use role_sql;

const ROLE: &str = role_sql!();

async fn role(
    conn: impl PgExecutor<'_>,
    sql: &'static str,
    project: Uuid,
    user: Uuid,
) -> Result<Option<ProjectRole>, sqlx::Error> {
    let role: Option<Option<String>> = sqlx::query_scalar(sql)
        .bind(project)
        .bind(user)
        .fetch_optional(conn)
        .await?;
    Ok(role.flatten().as_deref().and_then(ProjectRole::parse))
}

/// Whether `project` exists and is not deleted, locked until the
/// transaction ends (its deletion waits for the write that relies on it).
pub async fn project_open_locked(
    conn: &mut PgConnection,
    project: Uuid,
) -> Result<bool, sqlx::Error> {
    let deleted: Option<bool> = sqlx::query_scalar(
        "SELECT deleted FROM directory_projects WHERE project_id = $1 FOR SHARE",
    )
    .bind(project)
    .fetch_optional(conn)
    .await?;
    Ok(deleted == Some(false))
}

/// Those of `users` the directory does not know, in the order given.
pub async fn unknown_users(
    conn: impl PgExecutor<'_>,
    users: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let known: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM directory_users WHERE user_id = ANY($1)")
            .bind(users)
            .fetch_all(conn)
            .await?;
    Ok(not_in(users, &known))
}

/// Those of `users` who hold no role in `project`, in the order given.
pub async fn outsiders(
    conn: impl PgExecutor<'_>,
    project: Uuid,
    users: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let members: Vec<Uuid> = sqlx::query_scalar(
        "SELECT user_id FROM directory_members \
         WHERE project_id = $1 AND user_id = ANY($2) AND role IS NOT NULL",
    )
    .bind(project)
    .bind(users)
    .fetch_all(conn)
    .await?;
    Ok(not_in(users, &members))
}

/// Those of `users` that are not in `found`, in the order given.
fn not_in(users: &[Uuid], found: &[Uuid]) -> Vec<Uuid> {
    users
        .iter()
        .copied()
        .filter(|user| !found.contains(user))
        .collect()
}
