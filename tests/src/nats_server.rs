//! A nats-server of the test's own: a free port, a fresh store folder, and
//! stop/start so tests can take NATS away and bring it back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    store: PathBuf,
    /// More command-line arguments (`--user`, `--pass`, ...).
    extra: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server from `NATS_SERVER_BIN` (set by `just test`) or `nats-server` on PATH.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With more command-line arguments, e.g. `["--user", "u", "--pass", "p"]`.
    pub async fn start_with(extra: &[&str]) -> Self {
        let binary = std::env::var_os("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let port = free_port();
        let store = std::env::temp_dir().join(format!("taskflow-nats-{}", uuid::Uuid::now_v7()));
        let mut server = Self {
            binary,
            port,
            store,
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A copy of the server's store as it is on disk now, as a power loss
    /// would leave it.
    pub fn copy_store(&self) -> PathBuf {
        // The running server replaces its consumers' state files through
        // temporary ones, which may vanish under `cp`: copy again.
        for _ in 0..5 {
            let copy =
                std::env::temp_dir().join(format!("taskflow-nats-copy-{}", uuid::Uuid::now_v7()));
            let copied = Command::new("cp")
                .arg("-a")
                .arg(&self.store)
                .arg(&copy)
                .status()
                .expect("cp runs");
            if copied.success() {
                return copy;
            }
            let _ = std::fs::remove_dir_all(&copy);
        }
        panic!("the store could not be copied in five tries");
    }

    /// Puts `copy` back as the store of a killed server: what it wrote since
    /// the copy is gone, as after a power loss.
    pub fn restore_store(&mut self, copy: &std::path::Path) {
        assert!(self.child.is_none(), "kill the server first");
        std::fs::remove_dir_all(&self.store).expect("the store is removed");
        std::fs::rename(copy, &self.store).expect("the copy takes its place");
    }

    /// Starts the server again on the same port and store.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the server is running");
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {} ({error}): run the tests with `just test`, or set NATS_SERVER_BIN",
                    self.binary.display()
                )
            });
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        crate::wait_until("nats-server to listen", Duration::from_secs(10), || {
            let address = address.clone();
            async move {
                tokio::net::TcpStream::connect(address)
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}
