//! The system as separate processes, the way an operator runs it (as
//! `compose.yaml` does): its own nats-server, a Postgres, one or more
//! instances of every service binary and as many edges, each of which the
//! harness can kill (SIGKILL) and start again. `just chaos` and `just bench`
//! run the system this way, with rate limits off and 4 database
//! connections per process unless the topology's environment says otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{NatsServer, PostgresServer, wait_until};

pub use taskflow::service_names;

const JWT_SECRET: &str = "cluster-secret-of-at-least-thirty-two-characters";

/// How the system is laid out.
pub struct Topology {
    /// Instances of every service binary, and of the edge.
    pub copies: usize,
    /// A Postgres of the cluster's own, which the harness may kill, or the
    /// one at this URL.
    pub database: Database,
    /// The prefix of the cluster's database names.
    pub prefix: &'static str,
    /// `RUST_LOG` of every process; their logs go to files.
    pub log_level: &'static str,
    /// More environment for every process.
    pub env: Vec<(&'static str, String)>,
}

pub enum Database {
    Own,
    At(String),
}

/// One process of the system.
pub struct Instance {
    /// `tasks-1`, `edge-2`.
    pub name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    /// Where its `/health/ready` answers.
    pub ready_url: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::from(log.try_clone().expect("a log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|error| panic!("{} starts: {error}", self.binary.display()));
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as an operator's stop would, and waits for it to exit: the
    /// service finishes what it pulled and stops pulling.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if !crate::signal(child.id(), "TERM") {
                let _ = child.kill();
            }
            let _ = tokio::task::block_in_place(|| child.wait());
        }
    }

    pub fn start(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process ended by itself (a service exits when it cannot
    /// go on: crash-only); the harness starts it again, as a supervisor would.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) => {
                self.child = None;
                true
            }
            _ => false,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub nats: NatsServer,
    /// Its own Postgres, if the topology asked for one.
    pub postgres: Option<PostgresServer>,
    database_url: String,
    prefix: &'static str,
    pub instances: Vec<Instance>,
    /// The edges' base URLs.
    pub edges: Vec<String>,
}

impl Cluster {
    /// Starts nats-server, the database if its own, then every process,
    /// with their logs in `logs`; returns once every one is ready.
    pub async fn start(logs: &Path, topology: Topology) -> Self {
        let nats = NatsServer::start().await;
        let (postgres, database_url) = match topology.database {
            Database::Own => {
                let postgres = PostgresServer::start().await;
                let url = postgres.url();
                (Some(postgres), url)
            }
            Database::At(url) => (None, url),
        };
        let bin_dir = binaries();
        let mut instances = Vec::new();
        let mut edges = Vec::new();
        let mut ports = Ports::default();
        let common = |ops: u16| {
            let mut env = vec![
                ("NATS_URL".to_owned(), nats.url()),
                ("DATABASE_URL".to_owned(), database_url.clone()),
                (
                    "TASKFLOW_DATABASE_PREFIX".to_owned(),
                    topology.prefix.to_owned(),
                ),
                (
                    "TASKFLOW_DATABASE_MAX_CONNECTIONS".to_owned(),
                    "4".to_owned(),
                ),
                ("TASKFLOW_JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
                ("TASKFLOW_OPS_ADDR".to_owned(), format!("127.0.0.1:{ops}")),
                ("TASKFLOW_RATE_LIMIT_IP".to_owned(), "off".to_owned()),
                ("TASKFLOW_RATE_LIMIT_USER".to_owned(), "off".to_owned()),
                ("TASKFLOW_RATE_LIMIT_AUTH_IP".to_owned(), "off".to_owned()),
                (
                    "TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT".to_owned(),
                    "off".to_owned(),
                ),
                ("RUST_LOG".to_owned(), topology.log_level.to_owned()),
            ];
            for (name, value) in &topology.env {
                env.push((name.to_string(), value.clone()));
            }
            env
        };
        for copy in 1..=topology.copies {
            for service in service_names() {
                let ops = ports.take();
                instances.push(Instance {
                    name: format!("{service}-{copy}"),
                    binary: bin_dir.join(format!("taskflow-{service}")),
                    env: common(ops),
                    ready_url: format!("http://127.0.0.1:{ops}/health/ready"),
                    log: logs.join(format!("{service}-{copy}.log")),
                    child: None,
                });
            }
            let http = ports.take();
            let mut env = common(ports.take());
            env.push(("TASKFLOW_HTTP_ADDR".to_owned(), format!("127.0.0.1:{http}")));
            let base = format!("http://127.0.0.1:{http}");
            instances.push(Instance {
                name: format!("edge-{copy}"),
                binary: bin_dir.join("taskflow-edge"),
                env,
                ready_url: format!("{base}/health/ready"),
                log: logs.join(format!("edge-{copy}.log")),
                child: None,
            });
            edges.push(base);
        }
        drop(ports);
        let mut cluster = Self {
            nats,
            postgres,
            database_url,
            prefix: topology.prefix,
            instances,
            edges,
        };
        // The first copies create the databases and streams, then the others.
        let per_copy = cluster.instances.len() / topology.copies;
        for copy in 0..topology.copies {
            let range = copy * per_copy..(copy + 1) * per_copy;
            for index in range.clone() {
                cluster.instances[index].start();
            }
            cluster.wait_ready(range).await;
        }
        cluster
    }

    /// Its own Postgres; panics for a cluster on a shared one.
    pub fn own_postgres(&self) -> &PostgresServer {
        self.postgres
            .as_ref()
            .expect("a cluster with a Postgres of its own")
    }

    /// The instance named `name` (`audit-1`).
    pub fn instance(&self, name: &str) -> &Instance {
        &self.instances[self.index_of(name)]
    }

    fn index_of(&self, name: &str) -> usize {
        self.instances
            .iter()
            .position(|instance| instance.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    /// Kills the first instance named `name` (`audit-1`), or starts it
    /// again and waits until it is ready.
    pub async fn set_running(&mut self, name: &str, running: bool) {
        let index = self.index_of(name);
        if running {
            self.instances[index].start();
            self.wait_ready(index..index + 1).await;
        } else {
            self.instances[index].kill();
        }
    }

    /// Stops the first instance named `name` as an operator would (SIGTERM).
    pub fn terminate(&mut self, name: &str) {
        let index = self.index_of(name);
        self.instances[index].terminate();
    }

    /// Starts whatever is down (or ended by itself) and waits until every
    /// instance is ready.
    pub async fn heal(&mut self) {
        for instance in &mut self.instances {
            instance.exited();
            instance.start();
        }
        self.wait_ready(0..self.instances.len()).await;
    }

    pub async fn wait_ready(&self, range: std::ops::Range<usize>) {
        let http = reqwest::Client::new();
        for instance in &self.instances[range] {
            let url = instance.ready_url.clone();
            wait_until(
                &format!("{} to be ready", instance.name),
                Duration::from_secs(120),
                || {
                    let request = http.get(&url).timeout(Duration::from_secs(2));
                    async move {
                        request
                            .send()
                            .await
                            .ok()?
                            .status()
                            .is_success()
                            .then_some(())
                    }
                },
            )
            .await;
        }
    }

    /// The URL of `service`'s database.
    pub fn database_url(&self, service: &str) -> String {
        self.database_url
            .replace("/?sslmode", &format!("/{}{service}?sslmode", self.prefix))
    }

    /// A connection pool to `service`'s database, for the checks.
    pub async fn database(&self, service: &str) -> sqlx::PgPool {
        let url = self.database_url(service);
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap_or_else(|error| panic!("the {service} database: {error}"))
    }
}

/// The folder of the harness's own binary, where `cargo build --bins` put
/// the service binaries beside it.
fn binaries() -> PathBuf {
    let me = std::env::current_exe().expect("the harness's path");
    let folder = me.parent().expect("a folder").to_owned();
    for service in service_names().chain(["edge"]) {
        let binary = folder.join(format!("taskflow-{service}"));
        assert!(
            binary.exists(),
            "{} is missing: run `just chaos` or `just bench` (they build the binaries)",
            binary.display()
        );
    }
    folder
}

/// Free ports, none given twice: each stays bound until the pool is dropped.
#[derive(Default)]
struct Ports(Vec<std::net::TcpListener>);

impl Ports {
    fn take(&mut self) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        self.0.push(listener);
        port
    }
}
