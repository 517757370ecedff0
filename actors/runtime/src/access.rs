//! The access rule (`taskflow_schemas::access`) where each service's data
//! lives, written once. A service that lists things by task keeps, from the
//! task's own writes or events and in the transaction that handles them,
//! who is named in each task it has heard of (`access_named`) and which
//! project each is in (`access_tasks`); see `migrations/runtime/0005`.
//!
//! The rule in SQL is two conditions on a task id: the reader is named in
//! the task, or the task is in one of the reader's projects. A [`Reader`]
//! carries both (`$1` the user, `$2` their projects, read from the
//! service's directory first), and the rule is used in two shapes:
//!
//! - [`ReadableList`]: a page of a list, as one ordered branch per
//!   condition, each an index range scan whether the reader reads most
//!   rows (walk the list's order, probe the condition) or few (walk what
//!   they read, in order);
//! - [`Reader::row_condition`]: one row's check, for a lookup by id or a list
//!   driven by something else (a recipient's notifications).
//!
//! Both are planned with the reader's values (see [`unprepared`]): a plan
//! made for one reader is not the right one for another.

use std::collections::HashMap;

use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, PgExecutor, Postgres};
use taskflow_schemas::access::{Participants, ReadAccess};
use taskflow_schemas::task::Task;
use uuid::Uuid;

/// `$1`, `$2`: the condition "the reader is named in the task in `$task_id`".
macro_rules! named {
    ($task_id:expr) => {
        format!(
            "EXISTS (SELECT 1 FROM access_named an WHERE an.user_id = $1 AND an.task_id = {})",
            $task_id
        )
    };
}

/// `$2`: the condition "the task in `$task_id` is in one of the reader's projects".
macro_rules! in_projects {
    ($task_id:expr) => {
        format!("EXISTS (SELECT 1 FROM access_tasks at WHERE at.task_id = {} AND at.project_id = ANY($2))", $task_id)
    };
}

/// Whose reading a query is filtered by, as the service's directory says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// Reads everything.
    Admin,
    /// Reads the tasks they are named in and those of `projects`.
    Member { user: Uuid, projects: Vec<Uuid> },
}

impl Reader {
    /// `user` as the directory of this service's database sees them: an
    /// admin, or a member of these projects (one round trip).
    pub async fn of(conn: impl PgExecutor<'_>, user: Uuid) -> Result<Self, sqlx::Error> {
        let (admin, projects): (bool, Vec<Uuid>) = sqlx::query_as(
            "SELECT coalesce((SELECT is_admin FROM directory_users WHERE user_id = $1), false), \
             ARRAY(SELECT project_id FROM directory_members WHERE user_id = $1 AND role IS NOT NULL)",
        )
        .bind(user)
        .fetch_one(conn)
        .await?;
        Ok(match admin {
            true => Self::Admin,
            false => Self::Member { user, projects },
        })
    }

    /// Binds `$1` (the user, NULL for an admin) and `$2` (their projects).
    pub fn bind<'q>(&'q self, query: Query<'q>) -> Query<'q> {
        match self {
            Self::Admin => query.bind(None::<Uuid>).bind(None::<Vec<Uuid>>),
            Self::Member { user, projects } => query.bind(Some(*user)).bind(Some(projects)),
        }
    }

    /// The rule as a condition on one row whose task id is in `task_id`.
    pub fn row_condition(&self, task_id: &str) -> String {
        match self {
            Self::Admin => "($1::uuid IS NULL AND $2::uuid[] IS NULL)".into(),
            Self::Member { projects, .. } if projects.is_empty() => {
                format!("({} AND $2::uuid[] IS NOT NULL)", named!(task_id))
            }
            Self::Member { .. } => format!("({} OR {})", named!(task_id), in_projects!(task_id)),
        }
    }
}

/// A query bound to [`Reader::bind`] and what follows.
pub type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A statement planned afresh with its values each time (an unnamed
/// prepared statement): the plan for a reader who reads a million rows is
/// not the plan for one who reads ten, and a cached generic plan would
/// serve one of them badly.
pub fn unprepared(sql: String) -> Query<'static> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false)
}

/// Whether a list's statement is run, or its plan asked for (the tests
/// that hold every list to an index scan use the very statement and values
/// the service runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statement {
    Run,
    Explain,
}

impl Statement {
    /// `sql` to run, or the plan of it as JSON.
    pub fn of(self, sql: String) -> String {
        match self {
            Self::Run => sql,
            Self::Explain => format!("EXPLAIN (FORMAT JSON) {sql}"),
        }
    }
}

/// A page of a list, filtered by the rule.
pub struct ReadableList<'a> {
    /// `SELECT <columns> FROM <one table or subquery>`, no `WHERE`.
    pub select: &'a str,
    /// The column that holds each row's task id (may be NULL).
    pub task_id: &'a str,
    /// The list's own conditions (`$3` on), `TRUE` for none.
    pub filters: &'a str,
    /// Rows the reader sees besides those of their tasks (the audit's own
    /// records of no task), if any.
    pub also: Option<&'a str>,
    /// `ORDER BY` of the page, in columns the select returns by name.
    pub order: &'a str,
    /// The page size: a placeholder or a number.
    pub limit: &'a str,
    /// A list whose order is not its tasks' keeps, per project, its rows'
    /// keys in that order: a member's page walks it project by project.
    pub by_project: Option<ByProject<'a>>,
}

/// The keys of a list's rows by the project of their task, in the list's
/// order (`project_id`, then `key`, in `table`), kept with the rows and
/// moved with their task. [`ReadableList::order`] is `key`, ascending.
pub struct ByProject<'a> {
    pub table: &'a str,
    pub key: &'a str,
    /// Walk the project's keys in order, probing each row (a page with no
    /// selective filter), rather than let the planner start from a
    /// filter's index.
    pub in_order: bool,
}

impl ReadableList<'_> {
    /// The page's SQL for `reader`: for a member, the rows of the tasks they
    /// are named in and, apart, those of their projects' tasks they are not
    /// named in (so none twice), each ordered and cut to the page, merged.
    pub fn sql(&self, reader: &Reader) -> String {
        let Self {
            select,
            task_id,
            filters,
            also,
            order,
            limit,
            by_project,
        } = self;
        let projects = match reader {
            Reader::Admin => {
                return format!(
                    "{select} WHERE {} AND {filters} ORDER BY {order} LIMIT {limit}",
                    reader.row_condition(task_id)
                );
            }
            Reader::Member { projects, .. } => projects.len(),
        };
        let branch = |condition: String| {
            format!("({select} WHERE {condition} AND {filters} ORDER BY {order} LIMIT {limit})")
        };
        let not_named = format!("NOT {}", named!(task_id));
        // `$2` is named in the first branch even when the second is left out
        // (a reader in no project): every placeholder must appear.
        let mut branches = vec![branch(format!(
            "{} AND $2::uuid[] IS NOT NULL",
            named!(task_id)
        ))];
        match by_project {
            _ if projects == 0 => {}
            None => branches.push(branch(format!("{} AND {not_named}", in_projects!(task_id)))),
            Some(ByProject {
                table,
                key,
                in_order: false,
            }) => branches.extend((1..=projects).map(|n| {
                branch(format!(
                    "{key} IN (SELECT bp.{key} FROM {table} bp WHERE bp.project_id = ($2::uuid[])[{n}]) \
                     AND {not_named}"
                ))
            })),
            // The row is read in a fenced subquery (`OFFSET 0`), so that the
            // planner probes it by key for each key in order instead of
            // merging two walks of the whole table.
            Some(ByProject {
                table,
                key,
                in_order: true,
            }) => branches.extend((1..=projects).map(|n| {
                format!(
                    "(SELECT row.* FROM {table} bp CROSS JOIN LATERAL \
                     ({select} WHERE {key} = bp.{key} AND {not_named} AND {filters} OFFSET 0) row \
                     WHERE bp.project_id = ($2::uuid[])[{n}] ORDER BY bp.{key} LIMIT {limit})"
                )
            })),
        }
        if let Some(also) = also {
            branches.push(branch(format!("({also})")));
        }
        format!(
            "SELECT * FROM ({}) page ORDER BY {order} LIMIT {limit}",
            branches.join(" UNION ALL ")
        )
    }
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
}

/// The statement of [`keep`], as `WITH` clauses a service may put in front
/// of its own write (one round trip): the tasks' ids, projects and versions
/// at `$a`, `$b`, `$c`, and who is named in them as pairs of arrays (users
/// at `$d`, their tasks at `$e`), as [`ReadersColumns`] binds them. A task's
/// row changes only for a version at least as new as the one kept; its
/// names follow it.
#[macro_export]
macro_rules! access_keep {
    ($a:literal, $b:literal, $c:literal, $d:literal, $e:literal) => {
        concat!(
            "access_input AS (SELECT * FROM unnest(", $a, "::uuid[], ", $b, "::uuid[], ", $c,
            "::bigint[]) AS input(task_id, project_id, version)), \
             access_kept AS (INSERT INTO access_tasks (task_id, project_id, version) \
               SELECT task_id, project_id, version FROM access_input \
               ON CONFLICT (task_id) DO UPDATE SET project_id = EXCLUDED.project_id, \
               version = EXCLUDED.version WHERE access_tasks.version <= EXCLUDED.version \
               RETURNING task_id), \
             access_names AS (SELECT * FROM unnest(", $d, "::uuid[], ", $e,
            "::uuid[]) AS names(user_id, task_id)), \
             access_unnamed AS (DELETE FROM access_named an USING access_kept \
               WHERE an.task_id = access_kept.task_id AND NOT EXISTS (SELECT 1 FROM access_names \
               WHERE access_names.user_id = an.user_id AND access_names.task_id = an.task_id)), \
             access_renamed AS (INSERT INTO access_named (user_id, task_id) \
               SELECT user_id, task_id FROM access_names \
               WHERE task_id IN (SELECT task_id FROM access_kept) ON CONFLICT DO NOTHING)"
        )
    };
}

/// The columns [`access_keep!`] reads, for any number of tasks; of several
/// versions of one task, the newest.
#[derive(Debug, Default)]
pub struct ReadersColumns {
    task_ids: Vec<Uuid>,
    projects: Vec<Option<Uuid>>,
    versions: Vec<i64>,
    named_users: Vec<Uuid>,
    named_tasks: Vec<Uuid>,
}

impl ReadersColumns {
    pub fn of<'a>(tasks: impl IntoIterator<Item = &'a TaskReaders>) -> Self {
        let mut newest: HashMap<Uuid, &TaskReaders> = HashMap::new();
        for task in tasks {
            match newest.get(&task.task_id) {
                Some(kept) if kept.version >= task.version => {}
                _ => {
                    newest.insert(task.task_id, task);
                }
            }
        }
        let mut columns = Self::default();
        for task in newest.values() {
            columns.task_ids.push(task.task_id);
            columns.projects.push(task.access.project);
            columns.versions.push(task.version);
            for user in &task.access.named {
                columns.named_users.push(*user);
                columns.named_tasks.push(task.task_id);
            }
        }
        columns
    }

    pub fn is_empty(&self) -> bool {
        self.task_ids.is_empty()
    }

    /// Binds the five arrays, in [`access_keep!`]'s order.
    pub fn bind<'q>(&'q self, query: Query<'q>) -> Query<'q> {
        query
            .bind(&self.task_ids)
            .bind(&self.projects)
            .bind(&self.versions)
            .bind(&self.named_users)
            .bind(&self.named_tasks)
    }
}

/// Keeps each task's readers, unless a newer version of it was kept already
/// (events may come again or late). One statement for any number of tasks.
pub async fn keep(conn: &mut PgConnection, tasks: &[TaskReaders]) -> Result<(), sqlx::Error> {
    let columns = ReadersColumns::of(tasks);
    if columns.is_empty() {
        return Ok(());
    }
    let query = sqlx::query(concat!(
        "WITH ",
        access_keep!("$1", "$2", "$3", "$4", "$5"),
        " SELECT 1"
    ));
    columns.bind(query).execute(conn).await?;
    Ok(())
}

/// Whether `version` is newer than any of the task's events applied here
/// so far, with this transaction serialized against any other applying an
/// event of the same task (another instance may hold the next one): call
/// it before [`keep`], in the same transaction. A handler whose state is
/// the task's newest (a reminder's time) applies an older event's task
/// only when this says so; two instances committing in the other order
/// would otherwise leave the older state.
pub async fn newest(
    conn: &mut PgConnection,
    task_id: Uuid,
    version: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
        .bind(task_id)
        .execute(&mut *conn)
        .await?;
    let kept: Option<i64> =
        sqlx::query_scalar("SELECT version FROM access_tasks WHERE task_id = $1")
            .bind(task_id)
            .fetch_optional(conn)
            .await?;
    Ok(kept.is_none_or(|kept| kept < version))
}

/// Forgets the tasks (deleted with everything they held).
pub async fn forget(conn: &mut PgConnection, task_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if task_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "WITH named AS (DELETE FROM access_named WHERE task_id = ANY($1)) \
         DELETE FROM access_tasks WHERE task_id = ANY($1)",
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> ReadableList<'static> {
        ReadableList {
            select: "SELECT id, task_id FROM records",
            task_id: "records.task_id",
            filters: "($3::text IS NULL OR kind = $3)",
            also: Some("records.task_id IS NULL AND records.actor_id = $1"),
            order: "id",
            limit: "$4",
            by_project: None,
        }
    }

    #[test]
    fn an_admin_reads_the_list_as_it_is_and_a_member_through_both_conditions() {
        let admin = list().sql(&Reader::Admin);
        assert!(!admin.contains("access_"), "{admin}");
        assert!(admin.contains("$1::uuid IS NULL"), "{admin}");
        let member = Reader::Member {
            user: Uuid::now_v7(),
            projects: vec![Uuid::now_v7()],
        };
        let sql = list().sql(&member);
        assert_eq!(sql.matches("UNION ALL").count(), 2, "{sql}");
        assert_eq!(sql.matches("ORDER BY id LIMIT $4").count(), 4, "{sql}");
        let outside_the_named = "AND NOT EXISTS (SELECT 1 FROM access_named";
        assert!(sql.contains(outside_the_named), "{sql}");
        let in_no_project = Reader::Member {
            user: Uuid::now_v7(),
            projects: Vec::new(),
        };
        let sql = list().sql(&in_no_project);
        assert!(!sql.contains("access_tasks"), "{sql}");
        assert!(sql.contains("$2::uuid[]"), "{sql}");
    }

    #[test]
    fn of_several_versions_of_a_task_the_newest_is_kept() {
        let task = Uuid::now_v7();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let version = |version, named: Vec<Uuid>| TaskReaders {
            task_id: task,
            access: ReadAccess {
                named,
                project: None,
            },
            version,
        };
        let columns = ReadersColumns::of(&[version(2, vec![bob]), version(1, vec![ada])]);
        assert_eq!(columns.versions, [2]);
        assert_eq!(columns.named_users, [bob]);
    }
}
