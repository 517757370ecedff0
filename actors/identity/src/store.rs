//! The identity database: every query of this service.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use taskflow_schemas::user::{Role, UserProfile};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub timezone: String,
    pub email_notifications: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// 1 at registration, one more with each profile change.
    pub profile_version: i64,
}

impl UserRow {
    pub fn role(&self) -> Role {
        if self.role == "admin" {
            Role::Admin
        } else {
            Role::Member
        }
    }

    pub fn profile(&self) -> UserProfile {
        UserProfile {
            id: self.id,
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role(),
            timezone: self.timezone.clone(),
            email_notifications: self.email_notifications,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

const COLUMNS: &str = "id, email, name, password_hash, role, timezone, email_notifications, created_at, updated_at, \
     profile_version";

/// Inserts the user; `Ok(false)` when the email is taken.
pub async fn insert(conn: &mut PgConnection, user: &UserRow) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, role, timezone, email_notifications, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (email) DO NOTHING",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(&user.role)
    .bind(&user.timezone)
    .bind(user.email_notifications)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    let query = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    let query = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Sets the given fields; `None` when there is no such user.
pub async fn update_profile(
    tx: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    timezone: Option<&str>,
    email_notifications: Option<bool>,
) -> Result<Option<UserRow>, sqlx::Error> {
    let query = format!(
        "UPDATE users SET name = coalesce($2, name), timezone = coalesce($3, timezone), \
         email_notifications = coalesce($4, email_notifications), updated_at = now(), \
         profile_version = profile_version + 1 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .bind(name)
        .bind(timezone)
        .bind(email_notifications)
        .fetch_optional(tx)
        .await
}

/// The user, locked until the transaction ends.
pub async fn by_id_for_update(
    tx: &mut PgConnection,
    id: Uuid,
) -> Result<Option<UserRow>, sqlx::Error> {
    let query = format!("SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
    sqlx::query_as(sqlx::AssertSqlSafe(query))
        .bind(id)
        .fetch_optional(tx)
        .await
}

/// Gives the user with this email `role`, counting the change; their id
/// and the change's number, `None` when there is no such user.
pub async fn set_role(
    conn: &mut PgConnection,
    email: &str,
    role: Role,
) -> Result<Option<(Uuid, i64)>, sqlx::Error> {
    let role = match role {
        Role::Admin => "admin",
        Role::Member => "member",
    };
    sqlx::query_as(
        "UPDATE users SET role = $2, role_version = role_version + 1, updated_at = now() \
         WHERE email = $1 RETURNING id, role_version",
    )
    .bind(email)
    .bind(role)
    .fetch_optional(conn)
    .await
}
