//! The audit service on its own: every event in, immutable records out.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::platform::process::run_service(&taskflow_audit::SERVICE).await
}
