//! The live feed on its own, for a deployment that routes `/ws` to it rather
//! than to the edge (which serves the same feed itself): `/ws`, `/health`,
//! `/health/ready` and `/metrics` on TASKFLOW_HTTP_ADDR.

use std::process::ExitCode;

use taskflow_livefeed::LiveFeed;
use taskflow_runtime::http::ops::Readiness;
use taskflow_runtime::platform::process;

#[tokio::main]
async fn main() -> ExitCode {
    let platform = match process::boot("taskflow-livefeed").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let mut feed = match LiveFeed::start(&platform).await {
        Ok(feed) => feed,
        Err(error) => return process::fail("taskflow-livefeed", error),
    };
    let readiness = Readiness::of("livefeed", &platform, &[]);
    let app = taskflow_livefeed::router(&feed, &platform, platform.shutdown.clone())
        .merge(taskflow_runtime::http::ops::router(readiness));
    let served = taskflow_runtime::http::ops::serve_app(
        platform.settings.http_addr,
        app,
        platform.shutdown.clone(),
    )
    .await;
    if let Err(error) = served {
        return process::fail("taskflow-livefeed", error.into());
    }
    let code = process::run_until_shutdown_or(&platform.shutdown, Vec::new(), feed.stopped()).await;
    feed.stop().await;
    code
}
