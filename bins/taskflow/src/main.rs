//! Every TaskFlow service in one process, for local use and tests: the
//! services of [`taskflow::SERVICES`], the live feed and the edge, whose
//! commands reach the services here without NATS.

use std::process::ExitCode;

use taskflow_edge::{EdgeSettings, LiveFeedRoutes};
use taskflow_livefeed::LiveFeed;
use taskflow_runtime::http::ops::Readiness;
use taskflow_runtime::platform::process;

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let edge = match EdgeSettings::read(&platform.settings) {
        Ok(edge) => edge,
        Err(error) => return process::fail("taskflow", error),
    };
    let services = match process::start_all(&platform, taskflow::SERVICES).await {
        Ok(services) => services,
        Err(error) => return process::fail("taskflow", error),
    };
    let mut feed = match LiveFeed::start(&platform).await {
        Ok(feed) => feed,
        Err(error) => return process::fail("taskflow", error),
    };
    let readiness = Readiness::of("taskflow", &platform, &services);
    let local = services
        .iter()
        .map(|service| service.local.clone())
        .collect();
    let live = LiveFeedRoutes {
        routes: taskflow_livefeed::router(&feed, &platform, platform.shutdown.clone()),
        connections: feed.counter(),
    };
    let app = taskflow_edge::app(&platform, &edge, readiness, local, live);
    if let Err(error) =
        taskflow_edge::serve(platform.settings.http_addr, app, platform.shutdown.clone()).await
    {
        return process::fail("taskflow", error.into());
    }
    let code = process::run_until_shutdown_or(&platform.shutdown, services, feed.stopped()).await;
    feed.stop().await;
    code
}
