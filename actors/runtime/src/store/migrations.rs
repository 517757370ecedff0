//! Two sets of migrations per service database: the runtime's own
//! (`migrations/runtime`: the outbox and the inbox every service shares),
//! tracked in a table of their own so their versions never meet the
//! service's, then the service's (`migrations/<service>`).

use std::sync::LazyLock;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// Where the runtime's migrations are recorded (the service's go to sqlx's
/// `_sqlx_migrations`).
const RUNTIME_TABLE: &str = "_taskflow_runtime_migrations";

static RUNTIME: LazyLock<Migrator> = LazyLock::new(|| {
    let mut migrator = sqlx::migrate!("../../migrations/runtime");
    migrator.dangerous_set_table_name(RUNTIME_TABLE);
    migrator
});

/// Applies the runtime's migrations, then the service's.
pub async fn run(pool: &PgPool, service: &Migrator) -> Result<(), MigrateError> {
    RUNTIME.run(pool).await?;
    service.run(pool).await
}

/// `Err("database")` when Postgres does not answer, `Err("migrations")`
/// while a migration of either set is not applied.
pub async fn check(pool: &PgPool, service: &Migrator) -> Result<(), &'static str> {
    for (table, migrator) in [(RUNTIME_TABLE, &*RUNTIME), ("_sqlx_migrations", service)] {
        let query = format!("SELECT version FROM {table} WHERE success");
        let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .fetch_all(pool)
            .await
            .map_err(|_| "database")?;
        if !migrator
            .iter()
            .all(|migration| applied.contains(&migration.version))
        {
            return Err("migrations");
        }
    }
    Ok(())
}
