//! The databases of the services that list things by task, migrated and
//! nothing more: for tests of their queries against the real tables.

use sqlx::PgPool;
use taskflow_runtime::Settings;
use taskflow_runtime::service::Service;
use uuid::Uuid;

/// The databases of the services that list by task, migrated.
pub struct ServiceDatabases {
    pub settings: Settings,
    pub tasks: PgPool,
    pub audit: PgPool,
    pub scheduler: PgPool,
    pub notifier: PgPool,
}

impl ServiceDatabases {
    /// Fresh databases under a prefix of their own, with `connections` each.
    pub async fn connect(connections: u32) -> Self {
        let prefix = format!("tft_{}_", &Uuid::now_v7().simple().to_string()[20..]);
        let database_url = std::env::var("DATABASE_URL").unwrap_or_default();
        let settings = Settings::from_lookup(move |name| match name {
            "TASKFLOW_DATABASE_PREFIX" => Some(prefix.clone()),
            "DATABASE_URL" => Some(database_url.clone()),
            "TASKFLOW_DATABASE_MAX_CONNECTIONS" => Some(connections.to_string()),
            _ => None,
        })
        .expect("test settings are valid");
        let connect = |service: &'static dyn Service| {
            let settings = settings.clone();
            async move {
                taskflow_runtime::store::postgres::connect(
                    &settings,
                    service.name(),
                    service.migrator(),
                )
                .await
                .expect("the database migrates")
            }
        };
        Self {
            tasks: connect(&taskflow_tasks::SERVICE).await,
            audit: connect(&taskflow_audit::SERVICE).await,
            scheduler: connect(&taskflow_scheduler::SERVICE).await,
            notifier: connect(&taskflow_notifier::SERVICE).await,
            settings,
        }
    }

    pub fn all(&self) -> [&PgPool; 4] {
        [&self.tasks, &self.audit, &self.scheduler, &self.notifier]
    }

    /// Drops them.
    pub async fn drop(self) {
        crate::system::drop_databases(&self.settings).await;
    }
}
