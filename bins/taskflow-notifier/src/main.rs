//! The notifier on its own: notifications in-app and by email.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskflow_runtime::platform::process::run_service(&taskflow_notifier::SERVICE).await
}
