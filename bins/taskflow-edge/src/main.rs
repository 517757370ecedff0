//! The HTTP edge on its own; the services answer its commands over NATS.

use std::process::ExitCode;

use taskflow_runtime::ops::Readiness;
use taskflow_runtime::process;

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow-edge").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let readiness = Readiness {
        service: "edge",
        nats: platform.nats.clone(),
        databases: Vec::new(),
    };
    let app = taskflow_edge::app(&platform, readiness, Vec::new());
    if let Err(error) =
        taskflow_edge::serve(platform.settings.http_addr, app, platform.shutdown.clone()).await
    {
        return process::fail("taskflow-edge", error.into());
    }
    process::run_until_shutdown(&platform.shutdown, Vec::new()).await
}
