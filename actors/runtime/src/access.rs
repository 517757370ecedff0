//! The access rule (`taskflow_schemas::access`) where each service's data
//! lives. A service that lists things by task keeps who may read each task
//! it has heard of in its `task_readers` table (from the task's events, in
//! the transaction that handles them), and filters every list with
//! [`readable!`](crate::readable): the rule in SQL, written once here. One
//! task is judged with [`ReadAccess::may_read`], and [`readers_among`] asks
//! the directory for what that needs.

use std::collections::HashMap;

use sqlx::PgConnection;
use taskflow_schemas::access::{Participants, ReadAccess};
use taskflow_schemas::task::Task;
use uuid::Uuid;

/// The rule in SQL: the reader `$1` (NULL for an admin, who reads
/// everything) may read the task whose id is in the column `$task_id`. The
/// reader is named in it, or holds a role in its project by the service's
/// directory. A task the service never heard of is read by admins only.
#[macro_export]
macro_rules! readable {
    ($task_id:literal) => {
        concat!(
            "($1::uuid IS NULL OR EXISTS (SELECT 1 FROM task_readers tr WHERE tr.task_id = ",
            $task_id,
            " AND (tr.named @> ARRAY[$1::uuid] OR tr.project_id IN (SELECT dm.project_id \
             FROM directory_members dm WHERE dm.user_id = $1 AND dm.role IS NOT NULL))))"
        )
    };
}

/// The head of an insert of tasks' readers from a JSON array of
/// [`TaskReaders::row`]s bound at `$param`, for a service that folds it into
/// the statement of its own write (`WITH write AS (...), readers AS (`this`)`).
/// It keeps the newest version of each task, as [`keep`] does.
#[macro_export]
macro_rules! task_readers_insert {
    ($param:literal) => {
        concat!(
            "INSERT INTO task_readers (task_id, named, project_id, version) \
             SELECT task_id, named, project_id, version \
             FROM jsonb_populate_recordset(NULL::task_readers, ",
            $param,
            ") ON CONFLICT (task_id) DO UPDATE SET named = EXCLUDED.named, \
             project_id = EXCLUDED.project_id, version = EXCLUDED.version \
             WHERE task_readers.version <= EXCLUDED.version"
        )
    };
}

/// Who may read one task as of one version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReaders {
    pub task_id: Uuid,
    pub access: ReadAccess,
    pub version: i64,
}

impl TaskReaders {
    pub fn of(task: &Task) -> Self {
        Self {
            task_id: task.id,
            access: Participants::of(task).read_access(),
            version: task.version,
        }
    }

    /// Its row of `task_readers`, as [`task_readers_insert!`](crate::task_readers_insert) reads it.
    pub fn row(&self) -> TaskReadersRow<'_> {
        TaskReadersRow {
            task_id: self.task_id,
            named: &self.access.named,
            project_id: self.access.project,
            version: self.version,
        }
    }
}

/// A row of `task_readers`, as JSON.
#[derive(Debug, serde::Serialize)]
pub struct TaskReadersRow<'a> {
    task_id: Uuid,
    named: &'a [Uuid],
    project_id: Option<Uuid>,
    version: i64,
}

/// Keeps each task's readers, unless a newer version of it was kept already
/// (events may come again or late). One statement for any number of tasks;
/// of several versions of one task, the newest is kept.
pub async fn keep(conn: &mut PgConnection, tasks: &[TaskReaders]) -> Result<(), sqlx::Error> {
    let mut newest: HashMap<Uuid, &TaskReaders> = HashMap::with_capacity(tasks.len());
    for task in tasks {
        match newest.get(&task.task_id) {
            Some(kept) if kept.version >= task.version => {}
            _ => {
                newest.insert(task.task_id, task);
            }
        }
    }
    if newest.is_empty() {
        return Ok(());
    }
    let mut task_ids = Vec::with_capacity(newest.len());
    // Reader lists differ in length and a uuid[][] must be rectangular: each
    // goes as the text of a uuid[].
    let mut named = Vec::with_capacity(newest.len());
    let mut projects = Vec::with_capacity(newest.len());
    let mut versions = Vec::with_capacity(newest.len());
    for task in newest.values() {
        task_ids.push(task.task_id);
        let list: Vec<String> = task.access.named.iter().map(Uuid::to_string).collect();
        named.push(format!("{{{}}}", list.join(",")));
        projects.push(task.access.project);
        versions.push(task.version);
    }
    sqlx::query(
        "INSERT INTO task_readers (task_id, named, project_id, version) \
         SELECT task_id, named::uuid[], project_id, version \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[]) \
         AS kept(task_id, named, project_id, version) \
         ON CONFLICT (task_id) DO UPDATE SET named = EXCLUDED.named, \
         project_id = EXCLUDED.project_id, version = EXCLUDED.version \
         WHERE task_readers.version <= EXCLUDED.version",
    )
    .bind(&task_ids)
    .bind(&named)
    .bind(&projects)
    .bind(&versions)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets the tasks (deleted with everything they held).
pub async fn forget(conn: &mut PgConnection, task_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if task_ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM task_readers WHERE task_id = ANY($1)")
        .bind(task_ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Those of `users` who may read a task with `access` now, in the order
/// given: the directory says who is an admin and who holds a role in its
/// project; the rule decides.
pub async fn readers_among(
    conn: &mut PgConnection,
    access: &ReadAccess,
    users: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if users.iter().all(|user| access.named.contains(user)) {
        return Ok(users.to_vec());
    }
    let standing: Vec<(Uuid, bool, bool)> = sqlx::query_as(
        "SELECT u.user_id, coalesce(d.is_admin, false), m.user_id IS NOT NULL \
         FROM unnest($1::uuid[]) AS u(user_id) \
         LEFT JOIN directory_users d ON d.user_id = u.user_id \
         LEFT JOIN directory_members m ON m.project_id = $2 AND m.user_id = u.user_id \
           AND m.role IS NOT NULL",
    )
    .bind(users)
    .bind(access.project)
    .fetch_all(conn)
    .await?;
    Ok(users
        .iter()
        .copied()
        .filter(|user| {
            standing
                .iter()
                .find(|(id, _, _)| id == user)
                .is_some_and(|&(_, admin, member)| access.may_read(*user, member, admin))
        })
        .collect())
}
