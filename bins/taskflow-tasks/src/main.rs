//! The tasks service on its own: commands in, task events out.

use std::process::ExitCode;

use taskflow_runtime::ops::{self, Readiness};
use taskflow_runtime::process;

/// Where `/health` and `/metrics` are served unless TASKFLOW_OPS_ADDR says otherwise.
const DEFAULT_OPS_ADDR: &str = "127.0.0.1:9101";

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow-tasks").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let tasks = match taskflow_tasks::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow-tasks", error),
    };
    let readiness = Readiness {
        service: "tasks",
        nats: platform.nats.clone(),
        databases: vec![(tasks.pool.clone(), &taskflow_tasks::MIGRATOR)],
    };
    let addr = platform
        .settings
        .ops_addr
        .unwrap_or(DEFAULT_OPS_ADDR.parse().expect("valid"));
    if let Err(error) = ops::serve(addr, readiness, platform.shutdown.clone()).await {
        return process::fail("taskflow-tasks", error.into());
    }
    process::run_until_shutdown(&platform.shutdown, vec![tasks]).await
}
