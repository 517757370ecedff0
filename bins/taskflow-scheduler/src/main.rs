//! The scheduler on its own: reminders on time, the next task of each series.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::platform::process::run_service(&taskflow_scheduler::SERVICE).await
}
