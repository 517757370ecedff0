//! The tasks service on its own: commands in, task events out.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::platform::process::run_service(&taskflow_tasks::SERVICE).await
}
