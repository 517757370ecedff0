//! The system under measurement, as separate processes started the way
//! `compose.yaml` starts them (one of every service binary and an edge,
//! their logs at `info` in files under `target/bench/logs`), against the
//! machine's Postgres and a nats-server of the bench's own. The bench drives
//! it from its own process, as any client would.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use taskflow_runtime::Settings;
use taskflow_system_tests::cluster::{Cluster, Database, Topology, service_names};
use taskflow_system_tests::{Api, Reply, User, consumer_backlog, wait_until};

/// The bench's databases: `tfbench_tasks`, ...
const PREFIX: &str = "tfbench_";

pub struct BenchSystem {
    cluster: Cluster,
    api: Api,
    pub base_url: String,
    pub nats_url: String,
    pub jetstream: jetstream::Context,
    pools: HashMap<&'static str, PgPool>,
    database_url: String,
}

impl BenchSystem {
    /// Starts the system with `env` on top of its defaults, on fresh databases.
    pub async fn start(logs: &Path, env: Vec<(&'static str, String)>) -> anyhow::Result<Self> {
        let database_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/?sslmode=disable".into());
        drop_databases(&database_url).await?;
        std::fs::create_dir_all(logs)?;
        let topology = Topology {
            copies: 1,
            database: Database::At(database_url.clone()),
            prefix: PREFIX,
            log_level: "info",
            env,
        };
        let cluster = Cluster::start(logs, topology).await;
        let base_url = cluster.edges[0].clone();
        let nats_url = cluster.nats.url();
        let jetstream = jetstream::new(async_nats::connect(nats_url.as_str()).await?);
        let mut pools = HashMap::new();
        for service in service_names() {
            pools.insert(service, cluster.database(service).await);
        }
        let api = Api {
            http: reqwest::Client::new(),
            base_url: base_url.clone(),
        };
        Ok(Self {
            cluster,
            api,
            base_url,
            nats_url,
            jetstream,
            pools,
            database_url,
        })
    }

    /// Settings that reach the bench's databases, for the raw figures'
    /// own databases beside them.
    pub fn settings(&self) -> Settings {
        let database_url = self.database_url.clone();
        let nats_url = self.nats_url.clone();
        Settings::from_lookup(move |name| match name {
            "DATABASE_URL" => Some(database_url.clone()),
            "NATS_URL" => Some(nats_url.clone()),
            "TASKFLOW_DATABASE_PREFIX" => Some(PREFIX.to_owned()),
            _ => None,
        })
        .expect("bench settings are valid")
    }

    /// A pool of the bench's own to `service`'s database.
    pub fn pool(&self, service: &str) -> &PgPool {
        &self.pools[service]
    }

    pub async fn register(&self, name: &str) -> User {
        self.api.register(name).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.api.call(method, path, token, body).await
    }

    /// What the durable consumers whose names start with `prefix` (a
    /// service's name, or "" for every one) have pending or unacknowledged.
    pub async fn consumer_lag(&self, prefix: &str) -> u64 {
        consumer_backlog(&self.jetstream, prefix)
            .await
            .unwrap_or(u64::MAX)
    }

    /// The resident memory of `service`'s process (`edge` for the edge), in KiB.
    pub fn resident_kib(&self, service: &str) -> anyhow::Result<u64> {
        let instance = self.cluster.instance(&format!("{service}-1"));
        let pid = instance
            .pid()
            .ok_or_else(|| anyhow::anyhow!("{service} is not running"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS for {service}"))
    }

    /// The system's processes that run now, by name (`tasks`, `edge`,
    /// `nats-server`), for their CPU time.
    pub fn processes(&self) -> Vec<(String, u32)> {
        let mut processes: Vec<(String, u32)> = self
            .cluster
            .instances
            .iter()
            .filter_map(|instance| {
                let name = instance.name.trim_end_matches("-1").to_owned();
                Some((name, instance.pid()?))
            })
            .collect();
        processes.extend(
            self.cluster
                .nats
                .pid()
                .map(|pid| ("nats-server".to_owned(), pid)),
        );
        processes
    }

    /// Stops `service` as an operator would (SIGTERM): it finishes what it
    /// pulled, so no message waits out its ack timeout at the restart.
    pub fn terminate(&mut self, service: &str) {
        self.cluster.terminate(&format!("{service}-1"));
    }

    /// Kills `service`'s process, or starts it again and waits until it is ready.
    pub async fn set_running(&mut self, service: &str, running: bool) {
        self.cluster
            .set_running(&format!("{service}-1"), running)
            .await;
    }

    /// Waits until every user and project change reached every service's
    /// directory: identity's and projects' outboxes are published and no
    /// `<service>-directory` consumer has anything left.
    pub async fn settle_directories(&self) {
        wait_until(
            "the directories to settle",
            Duration::from_secs(10),
            || async {
                let publishers = taskflow::SERVICES
                    .iter()
                    .filter(|service| service.publishes_directory());
                for service in publishers.map(|service| service.name()) {
                    let unpublished: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                    )
                    .fetch_one(self.pool(service))
                    .await
                    .ok()?;
                    if unpublished > 0 {
                        return None;
                    }
                }
                for service in service_names() {
                    if self.consumer_lag(&format!("{service}-directory")).await > 0 {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    }

    /// Stops every process and drops the bench's databases.
    pub async fn stop(self) -> anyhow::Result<()> {
        for pool in self.pools.values() {
            pool.close().await;
        }
        let database_url = self.database_url.clone();
        drop(self.cluster);
        drop_databases(&database_url).await
    }
}

/// Drops every database of an earlier bench.
async fn drop_databases(database_url: &str) -> anyhow::Result<()> {
    let admin = sqlx::PgPool::connect(database_url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
            .bind(PREFIX)
            .fetch_all(&admin)
            .await?;
    for name in names {
        // The names come from pg_database and start with the bench's prefix.
        let drop = format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    Ok(())
}
