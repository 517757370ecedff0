//! The HTTP edge on its own, with the live feed of its own clients; the
//! services answer its commands over NATS.

use std::process::ExitCode;

use taskflow_edge::{EdgeSettings, LiveFeedRoutes};
use taskflow_livefeed::LiveFeed;
use taskflow_runtime::http::ops::Readiness;
use taskflow_runtime::platform::process;

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow-edge").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let edge = match EdgeSettings::read(&platform.settings) {
        Ok(edge) => edge,
        Err(error) => return process::fail("taskflow-edge", error),
    };
    let mut feed = match LiveFeed::start(&platform).await {
        Ok(feed) => feed,
        Err(error) => return process::fail("taskflow-edge", error),
    };
    let readiness = Readiness::of("edge", &platform, &[]);
    let live = LiveFeedRoutes {
        routes: taskflow_livefeed::router(&feed, &platform, platform.shutdown.clone()),
        connections: feed.counter(),
    };
    let app = taskflow_edge::app(&platform, &edge, readiness, Vec::new(), live);
    if let Err(error) =
        taskflow_edge::serve(platform.settings.http_addr, app, platform.shutdown.clone()).await
    {
        return process::fail("taskflow-edge", error.into());
    }
    let code = process::run_until_shutdown_or(&platform.shutdown, Vec::new(), feed.stopped()).await;
    feed.stop().await;
    code
}
