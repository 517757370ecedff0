//! Every TaskFlow service in one process, for local use and tests.

use std::process::ExitCode;

use taskflow_livefeed::LiveFeed;
use taskflow_runtime::ops::Readiness;
use taskflow_runtime::process;

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let identity = match taskflow_identity::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow", error),
    };
    let tasks = match taskflow_tasks::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow", error),
    };
    let audit = match taskflow_audit::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow", error),
    };
    let readiness = Readiness {
        service: "taskflow",
        nats: platform.nats.clone(),
        databases: vec![
            (identity.pool.clone(), &taskflow_identity::MIGRATOR),
            (tasks.pool.clone(), &taskflow_tasks::MIGRATOR),
            (audit.pool.clone(), &taskflow_audit::MIGRATOR),
        ],
    };
    let feed = match LiveFeed::start(&platform).await {
        Ok(feed) => feed,
        Err(error) => return process::fail("taskflow", error),
    };
    let local = vec![
        identity.local.clone(),
        tasks.local.clone(),
        audit.local.clone(),
    ];
    let app = taskflow_edge::app(
        &platform,
        readiness,
        local,
        &feed,
        platform.shutdown.clone(),
    );
    if let Err(error) =
        taskflow_edge::serve(platform.settings.http_addr, app, platform.shutdown.clone()).await
    {
        return process::fail("taskflow", error.into());
    }
    let code = process::run_until_shutdown(&platform.shutdown, vec![identity, tasks, audit]).await;
    feed.stop().await;
    code
}
