//! The projects service on its own: projects, members and roles.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::platform::process::run_service(&taskflow_projects::SERVICE).await
}
