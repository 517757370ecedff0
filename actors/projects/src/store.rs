//! The projects database: every query of this service.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::project::{Project, ProjectMember, ProjectRole};
use uuid::Uuid;

const PROJECT: &str = "id, name, description, created_by, version, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: Uuid,
    name: String,
    description: Option<String>,
    created_by: Uuid,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Project {
            id: row.id,
            name: row.name,
            description: row.description,
            created_by: row.created_by,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    project_id: Uuid,
    user_id: Uuid,
    role: String,
    added_at: DateTime<Utc>,
}

impl From<MemberRow> for ProjectMember {
    fn from(row: MemberRow) -> Self {
        ProjectMember {
            project_id: row.project_id,
            user_id: row.user_id,
            role: ProjectRole::parse(&row.role).unwrap_or(ProjectRole::Viewer),
            added_at: row.added_at,
        }
    }
}

pub async fn insert(tx: &mut PgConnection, project: &Project) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projects (id, name, description, created_by, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.created_by)
    .bind(project.version)
    .bind(project.created_at)
    .bind(project.updated_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// The project, locked until the transaction ends.
pub async fn locked(tx: &mut PgConnection, id: Uuid) -> Result<Option<Project>, sqlx::Error> {
    let query = format!("SELECT {PROJECT} FROM projects WHERE id = $1 FOR UPDATE");
    let row: Option<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Project::from))
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Project>, sqlx::Error> {
    let query = format!("SELECT {PROJECT} FROM projects WHERE id = $1");
    let row: Option<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Project::from))
}

pub async fn save(tx: &mut PgConnection, project: &Project) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projects SET name = $2, description = $3, version = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(project.id)
    .bind(&project.name)
    .bind(&project.description)
    .bind(project.version)
    .bind(project.updated_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM projects WHERE id = $1")
        .bind(id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Projects `reader` is a member of (every project for `None`), newest first.
pub async fn list(
    pool: &PgPool,
    reader: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Project>, sqlx::Error> {
    let query = format!(
        "SELECT {PROJECT} FROM projects p WHERE \
           ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM memberships m \
              WHERE m.project_id = p.id AND m.user_id = $1)) \
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    let rows: Vec<ProjectRow> = sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(reader)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(Project::from).collect())
}

pub async fn role_of(
    connection: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> Result<Option<ProjectRole>, sqlx::Error> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM memberships WHERE project_id = $1 AND user_id = $2")
            .bind(project)
            .bind(user)
            .fetch_optional(connection)
            .await?;
    Ok(role.as_deref().and_then(ProjectRole::parse))
}

pub async fn member(
    connection: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> Result<Option<ProjectMember>, sqlx::Error> {
    let row: Option<MemberRow> = sqlx::query_as(
        "SELECT project_id, user_id, role, added_at FROM memberships \
         WHERE project_id = $1 AND user_id = $2",
    )
    .bind(project)
    .bind(user)
    .fetch_optional(connection)
    .await?;
    Ok(row.map(ProjectMember::from))
}

/// A project's members, oldest first, after the cursor `(added_at, user_id)`.
pub async fn members(
    pool: &PgPool,
    project: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ProjectMember>, sqlx::Error> {
    let rows: Vec<MemberRow> = sqlx::query_as(
        "SELECT project_id, user_id, role, added_at FROM memberships \
         WHERE project_id = $1 AND ($2::timestamptz IS NULL OR (added_at, user_id) > ($2, $3)) \
         ORDER BY added_at, user_id LIMIT $4",
    )
    .bind(project)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ProjectMember::from).collect())
}

pub async fn owners(tx: &mut PgConnection, project: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE project_id = $1 AND role = 'owner'")
        .bind(project)
        .fetch_one(tx)
        .await
}

pub async fn put_member(tx: &mut PgConnection, member: &ProjectMember) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (project_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(member.project_id)
    .bind(member.user_id)
    .bind(member.role.as_str())
    .bind(member.added_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn remove_member(
    tx: &mut PgConnection,
    project: Uuid,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND user_id = $2")
        .bind(project)
        .bind(user)
        .execute(tx)
        .await?;
    Ok(())
}
