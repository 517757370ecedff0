//! The access rule (`taskflow_schemas::access`) over this service's tasks,
//! with the users and memberships of its own directory.

use sqlx::PgConnection;
use taskflow_runtime::directory;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::access::Participants;
use taskflow_schemas::project::ProjectRole;
use taskflow_schemas::task::Task;
use uuid::Uuid;

use crate::error::TasksError;
use crate::rules;

/// `user`'s role in the task's project, if it has one. The membership stays
/// locked until the transaction ends, so a write that relies on it cannot
/// cross the member's removal or the project's deletion.
pub async fn role_locked(
    conn: &mut PgConnection,
    task: &Task,
    user: Uuid,
) -> Result<Option<ProjectRole>, sqlx::Error> {
    match task.project_id {
        Some(project) => directory::role_in_locked(conn, project, user).await,
        None => Ok(None),
    }
}

/// Whether `user` may read `task`, given their role in its project; the
/// directory is asked whether they are an admin only when that decides it.
pub async fn may_read(
    conn: &mut PgConnection,
    task: &Task,
    user: Uuid,
    role: Option<ProjectRole>,
) -> Result<bool, sqlx::Error> {
    Ok(Participants::of(task).may_read(user, role, false)
        || directory::is_admin(conn, user).await?)
}

/// Refuses `next` (a new task, or `current` after a change by `user`) when
/// it puts the task where `user` may not write, or names someone who does
/// not exist or, in a project, is not one of its members. These refusals
/// rest on the directory, which may be a moment behind a change just made:
/// they are [`TasksError::Unsettled`].
pub async fn check_placement(
    conn: &mut PgConnection,
    user: Uuid,
    current: Option<&Task>,
    next: &Task,
) -> Result<(), TasksError> {
    let moved = current.is_none_or(|current| current.project_id != next.project_id);
    if moved && let Some(project) = next.project_id {
        match directory::role_in_locked(conn, project, user).await? {
            Some(role) if role.writes() => {}
            Some(_) => {
                return Err(TasksError::Unsettled(TasksError::forbidden_body(
                    "add tasks to this project as a viewer",
                )));
            }
            None => {
                return Err(unsettled(
                    "project_id",
                    "is not a project you are a member of",
                ));
            }
        }
    }
    let (assignee, observers) = rules::newly_named(current, next);
    let named: Vec<Uuid> = assignee.iter().chain(&observers).copied().collect();
    let refused = match next.project_id {
        Some(project) => directory::outsiders(&mut *conn, project, &named).await?,
        None => directory::unknown_users(&mut *conn, &named).await?,
    };
    let Some(first) = refused.first() else {
        return Ok(());
    };
    let field = if assignee == Some(*first) {
        "assignee_id"
    } else {
        "observer_ids"
    };
    Err(match next.project_id {
        Some(_) => unsettled(
            field,
            format!("{first} is not a member of the task's project"),
        ),
        None => unsettled(field, format!("{first} is not a user")),
    })
}

fn unsettled(field: &str, message: impl std::fmt::Display) -> TasksError {
    TasksError::Unsettled(ErrorBody::refused(field, message))
}
