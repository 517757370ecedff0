//! A real SMTP server of the test's own: aiosmtpd (PyPI), storing every
//! message it accepts in a Maildir, with stop and start on the same port so
//! tests can take mail away and bring it back.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SmtpCatcher {
    python: PathBuf,
    pub port: u16,
    maildir: PathBuf,
    child: Option<Child>,
}

impl SmtpCatcher {
    /// Starts one with `SMTP_CATCHER_PYTHON` (set by `just test`: a Python
    /// with aiosmtpd) or `python3`.
    pub async fn start() -> Self {
        let python = std::env::var_os("SMTP_CATCHER_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"));
        let maildir = std::env::temp_dir().join(format!("taskflow-smtp-{}", uuid::Uuid::now_v7()));
        let mut catcher = Self {
            python,
            port: crate::nats_server::free_port(),
            maildir,
            child: None,
        };
        catcher.resume().await;
        catcher
    }

    /// `TASKFLOW_SMTP_URL` for it.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, as received (headers and body).
    pub fn messages(&self) -> Vec<String> {
        self.message_times()
            .into_iter()
            .map(|(text, _)| text)
            .collect()
    }

    /// Every message accepted so far, with when the catcher stored it.
    pub fn message_times(&self) -> Vec<(String, std::time::SystemTime)> {
        let mut messages = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let stored = entry.metadata().and_then(|meta| meta.modified());
                if let (Ok(text), Ok(stored)) = (std::fs::read_to_string(entry.path()), stored) {
                    messages.push((text, stored));
                }
            }
        }
        messages
    }

    /// Stops it at once: the port refuses connections until [`Self::resume`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the catcher is running");
        let listen = format!("127.0.0.1:{}", self.port);
        let child = Command::new(&self.python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &listen,
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run {} -m aiosmtpd ({error}): run the tests with `just test`",
                    self.python.display()
                )
            });
        self.child = Some(child);
        crate::wait_until(
            "the SMTP catcher to listen",
            Duration::from_secs(20),
            || {
                let listen = listen.clone();
                async move {
                    tokio::net::TcpStream::connect(listen)
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await;
    }
}

impl Drop for SmtpCatcher {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
