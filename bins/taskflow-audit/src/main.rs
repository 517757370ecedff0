//! The audit service on its own: every event in, immutable records out.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::process::run_service(
        "taskflow-audit",
        "127.0.0.1:9103",
        &taskflow_audit::MIGRATOR,
        |platform| async move { taskflow_audit::start(&platform).await },
    )
    .await
}
