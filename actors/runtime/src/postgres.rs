//! A service's own database: created when missing, migrated, pooled.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Transaction};
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::{RuntimeError, Settings};

/// Connects to `<prefix><service>`, creating it first if it does not exist,
/// and applies the service's migrations.
pub async fn connect(
    settings: &Settings,
    service: &str,
    migrator: &Migrator,
) -> Result<PgPool, RuntimeError> {
    let server = PgConnectOptions::from_str(&settings.database_url)?;
    let database = settings.database_name(service);
    create_database_if_missing(&server, &database).await?;
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(server.database(&database))
        .await?;
    migrator.run(&pool).await?;
    Ok(pool)
}

async fn create_database_if_missing(
    server: &PgConnectOptions,
    database: &str,
) -> Result<(), RuntimeError> {
    // The name comes from settings validated to [a-z0-9_], so quoting it is enough.
    let mut admin = server.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut admin)
            .await?;
    if exists {
        return Ok(());
    }
    let create = format!("CREATE DATABASE \"{database}\"");
    match sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
    {
        Ok(_) => Ok(()),
        // Another instance created it between our check and our create.
        Err(sqlx::Error::Database(error))
            if matches!(error.code().as_deref(), Some("42P04" | "23505")) =>
        {
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// True when Postgres answers and every migration of `migrator` is applied.
pub async fn is_ready(pool: &PgPool, migrator: &Migrator) -> Result<(), &'static str> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(|_| "database")?;
    let all_applied = migrator
        .iter()
        .all(|migration| applied.contains(&migration.version));
    if all_applied {
        Ok(())
    } else {
        Err("migrations")
    }
}

/// Begins a transaction whose statements are cancelled once `deadline`
/// passes (`statement_timeout`, SQLSTATE 57014, a 503): a write that waits
/// on a lock past the moment its caller gave up fails instead of committing
/// behind the caller's back. One round trip, like a plain `BEGIN`.
pub async fn begin_until(
    pool: &PgPool,
    deadline: Option<SystemTime>,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let Some(deadline) = deadline else {
        return pool.begin().await;
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .map_or(1, |left| left.as_millis().max(1));
    let begin = format!("BEGIN; SET LOCAL statement_timeout = {left}");
    pool.begin_with(sqlx::AssertSqlSafe(begin)).await
}

/// What a client is told about a database error of `service`, decided in
/// one place for every service; the details stay in the log.
///
/// - the database is unreachable, restarting or overloaded (I/O, pool,
///   SQLSTATE classes 08, 53, 57P, a statement cancelled at its deadline,
///   a serialization failure or deadlock):
///   `service_unavailable` naming the database, so the client retries;
/// - a value Postgres cannot take (class 22, data exception; class 54, too
///   large for an index): `validation_failed`;
/// - a unique key taken (23505): `conflict`;
/// - anything else is ours: `internal`.
pub fn error_body(service: &str, error: &sqlx::Error) -> ErrorBody {
    let code = match error {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    };
    let kind = match (error, code.as_deref()) {
        (
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
            _,
        ) => ErrorCode::ServiceUnavailable,
        (_, Some(code))
            if ["08", "53", "57P"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(code, "57014" | "40001" | "40P01" | "25006") =>
        {
            ErrorCode::ServiceUnavailable
        }
        (_, Some(code)) if code.starts_with("22") || code.starts_with("54") => {
            ErrorCode::ValidationFailed
        }
        (_, Some("23505")) => ErrorCode::Conflict,
        _ => ErrorCode::Internal,
    };
    match kind {
        ErrorCode::ServiceUnavailable => {
            tracing::warn!(service, %error, "database unavailable");
            ErrorBody::new(
                kind,
                format!("the {service} database is unavailable, try again shortly"),
            )
        }
        ErrorCode::ValidationFailed => {
            tracing::info!(service, %error, "a value the database refused");
            ErrorBody::new(kind, "a value is malformed or too large to store")
        }
        ErrorCode::Conflict => ErrorBody::new(kind, "this already exists"),
        _ => {
            tracing::error!(service, %error, "database error");
            ErrorBody::new(ErrorCode::Internal, "internal error")
        }
    }
}
