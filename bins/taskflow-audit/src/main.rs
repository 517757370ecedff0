//! The audit service on its own: every event in, immutable records out.

use std::process::ExitCode;

use taskflow_runtime::ops::{self, Readiness};
use taskflow_runtime::process;

/// Where `/health` and `/metrics` are served unless TASKFLOW_OPS_ADDR says otherwise.
const DEFAULT_OPS_ADDR: &str = "127.0.0.1:9103";

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow-audit").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let tasks = match taskflow_audit::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow-audit", error),
    };
    let readiness = Readiness {
        service: "audit",
        nats: platform.nats.clone(),
        databases: vec![(tasks.pool.clone(), &taskflow_audit::MIGRATOR)],
    };
    let addr = platform
        .settings
        .ops_addr
        .unwrap_or(DEFAULT_OPS_ADDR.parse().expect("valid"));
    if let Err(error) = ops::serve(addr, readiness, platform.shutdown.clone()).await {
        return process::fail("taskflow-audit", error.into());
    }
    process::run_until_shutdown(&platform.shutdown, vec![tasks]).await
}
