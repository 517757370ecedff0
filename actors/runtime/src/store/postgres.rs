//! A service's own database: created when missing, migrated, pooled; and
//! the transactions and error kinds every service shares.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Postgres, Transaction};
use taskflow_schemas::{ErrorBody, ErrorCode};

use crate::{RuntimeError, Settings};

/// A pooled connection idle this long is pinged before use (HikariCP's
/// default bypass window).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(500);

/// Connects to `<prefix><service>`, creating it first if it does not exist,
/// and applies the runtime's migrations and the service's.
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
        // sqlx pings every connection it hands out by default: one more round
        // trip per statement on the busiest paths. A connection used a moment
        // ago is live; one idle longer is checked, as after a database restart.
        .test_before_acquire(false)
        .before_acquire(|connection, used| {
            Box::pin(async move {
                if used.idle_for >= PING_WHEN_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(
            server
                .database(&database)
                // Connections live for half an hour and prepare each
                // statement once; a generic plan Postgres caches for a small
                // table (a scan of three rows) stays the plan at 200,000
                // rows until the table is analyzed again (the relay's marks
                // took 25 ms at 90,000 rows so). Planned with each run's
                // values and the table's size now, they stay index lookups,
                // for about 10 µs of planning each.
                .options([("plan_cache_mode", "force_custom_plan")]),
        )
        .await?;
    super::migrations::run(&pool, migrator).await?;
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

/// What a database error means, decided once: command replies
/// ([`error_body`]) and the consumers' ack decisions follow the same kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseErrorKind {
    /// Unreachable, restarting or overloaded (I/O, pool, SQLSTATE 08, 53,
    /// 57P), a statement cancelled at its deadline (57014), a serialization
    /// failure or deadlock: the same work may succeed later.
    Unavailable,
    /// A value Postgres cannot take (class 22, data exception; class 54, too
    /// large for an index): the same input fails again.
    Refused,
    /// A constraint refused the write (class 23); `unique` for a taken key.
    Constraint { unique: bool },
    /// Anything else: a fault of ours.
    Internal,
}

pub fn classify(error: &sqlx::Error) -> DatabaseErrorKind {
    let code = match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => return DatabaseErrorKind::Unavailable,
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    };
    let Some(code) = code else {
        return DatabaseErrorKind::Internal;
    };
    let class = |prefix: &str| code.starts_with(prefix);
    if class("08")
        || class("53")
        || class("57P")
        || matches!(code.as_str(), "57014" | "40001" | "40P01" | "25006")
    {
        DatabaseErrorKind::Unavailable
    } else if class("22") || class("54") {
        DatabaseErrorKind::Refused
    } else if class("23") {
        DatabaseErrorKind::Constraint {
            unique: code == "23505",
        }
    } else {
        DatabaseErrorKind::Internal
    }
}

/// What a client is told about a database error of `service`, by its
/// [`classify`] kind; the details stay in the log: `service_unavailable`
/// naming the database (the client retries), `validation_failed` for a
/// value Postgres refuses, `conflict` for a taken unique key, `internal`
/// for anything else.
pub fn error_body(service: &str, error: &sqlx::Error) -> ErrorBody {
    match classify(error) {
        DatabaseErrorKind::Unavailable => {
            tracing::warn!(service, %error, "database unavailable");
            ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                format!("the {service} database is unavailable, try again shortly"),
            )
        }
        DatabaseErrorKind::Refused => {
            tracing::info!(service, %error, "a value the database refused");
            ErrorBody::new(
                ErrorCode::ValidationFailed,
                "a value is malformed or too large to store",
            )
        }
        DatabaseErrorKind::Constraint { unique: true } => {
            ErrorBody::new(ErrorCode::Conflict, "this already exists")
        }
        DatabaseErrorKind::Constraint { unique: false } | DatabaseErrorKind::Internal => {
            tracing::error!(service, %error, "database error");
            ErrorBody::new(ErrorCode::Internal, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A server error carrying only its SQLSTATE.
    #[derive(Debug)]
    struct State(&'static str);

    impl std::fmt::Display for State {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for State {}

    impl sqlx::error::DatabaseError for State {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn kind_of(code: &'static str) -> DatabaseErrorKind {
        classify(&sqlx::Error::Database(Box::new(State(code))))
    }

    #[test]
    fn restarts_and_overload_are_unavailable_and_bad_values_refused() {
        for code in [
            "57P01", "57P03", "08006", "53300", "57014", "40001", "40P01",
        ] {
            assert_eq!(kind_of(code), DatabaseErrorKind::Unavailable, "{code}");
        }
        assert_eq!(
            classify(&sqlx::Error::PoolTimedOut),
            DatabaseErrorKind::Unavailable
        );
        for code in ["22P05", "22021", "54000"] {
            assert_eq!(kind_of(code), DatabaseErrorKind::Refused, "{code}");
        }
        assert_eq!(
            kind_of("23505"),
            DatabaseErrorKind::Constraint { unique: true }
        );
        assert_eq!(
            kind_of("23503"),
            DatabaseErrorKind::Constraint { unique: false }
        );
        assert_eq!(kind_of("42P01"), DatabaseErrorKind::Internal);
        let body = error_body("tasks", &sqlx::Error::Database(Box::new(State("57P01"))));
        assert_eq!(body.code, ErrorCode::ServiceUnavailable);
        assert!(body.error.contains("tasks database"));
    }
}
