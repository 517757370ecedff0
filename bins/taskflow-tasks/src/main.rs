//! The tasks service on its own: commands in, task events out.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::process::run_service(
        "taskflow-tasks",
        "127.0.0.1:9101",
        &taskflow_tasks::MIGRATOR,
        |platform| async move { taskflow_tasks::start(&platform).await },
    )
    .await
}
