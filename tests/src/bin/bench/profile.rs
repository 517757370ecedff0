//! `just profile`: samples every process of the machine with `perf` while
//! one figure runs (the 16-client HTTP creates, or the audit catching up),
//! call stacks included, so the flame graph shows where the cores go under
//! that load (and nothing of the system's start).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::system::BenchSystem;

/// Samples per second and core: enough for a figure of seconds, and few
/// enough that `perf` (on the same 2 cores) stays out of the way.
const FREQUENCY: &str = "199";

/// A `perf record` running for the length of one figure.
pub struct Profiler {
    child: Child,
    output: PathBuf,
}

impl Profiler {
    /// Starts `perf record` if `TASKFLOW_BENCH_PROFILE` names its output file.
    pub fn start_if_asked() -> anyhow::Result<Option<Self>> {
        let Some(output) = std::env::var_os("TASKFLOW_BENCH_PROFILE").map(PathBuf::from) else {
            return Ok(None);
        };
        // Without a command, `perf record --all-cpus` samples until interrupted.
        let child = Command::new("perf")
            .args(["record", "--all-cpus", "--freq", FREQUENCY])
            .args(["--call-graph", "dwarf,16384", "--output"])
            .arg(&output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| {
                anyhow::anyhow!("perf record starts (is linux-perf installed?): {error}")
            })?;
        Ok(Some(Self { child, output }))
    }

    /// Stops `perf record` (SIGINT, as Ctrl-C would), waits for it to
    /// write its samples, and writes beside them which process each pid of
    /// the system is (`<output>.pids`): every service's threads have the
    /// same name.
    pub fn finish(mut self, system: &BenchSystem) -> anyhow::Result<()> {
        anyhow::ensure!(
            taskflow_system_tests::signal(self.child.id(), "INT"),
            "perf record could not be stopped"
        );
        let status = self.child.wait()?;
        // perf exits with the signal's status when interrupted.
        anyhow::ensure!(
            status.success() || status.code().is_none() || status.code() == Some(130),
            "perf record failed: {status}"
        );
        let mut processes = system.processes();
        processes.push(("bench".to_owned(), std::process::id()));
        let pids: String = processes
            .into_iter()
            .map(|(name, pid)| format!("{pid} {name}\n"))
            .collect();
        let mut names = self.output.clone().into_os_string();
        names.push(".pids");
        std::fs::write(names, pids)?;
        println!("(perf samples: {})", self.output.display());
        Ok(())
    }
}
