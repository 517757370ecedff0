//! The identity service on its own, and `make-admin EMAIL`.

use std::process::ExitCode;

use taskflow_runtime::ops::{self, Readiness};
use taskflow_runtime::{Settings, process};

/// Where `/health` and `/metrics` are served unless TASKFLOW_OPS_ADDR says otherwise.
const DEFAULT_OPS_ADDR: &str = "127.0.0.1:9102";

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [] => serve().await,
        [command, email] if command == "make-admin" => make_admin(email).await,
        _ => {
            eprintln!("usage: taskflow-identity [make-admin EMAIL]");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    let platform = match process::boot("taskflow-identity").await {
        Ok(platform) => platform,
        Err(code) => return code,
    };
    let identity = match taskflow_identity::start(&platform).await {
        Ok(service) => service,
        Err(error) => return process::fail("taskflow-identity", error),
    };
    let readiness = Readiness {
        service: "identity",
        nats: platform.nats.clone(),
        databases: vec![(identity.pool.clone(), &taskflow_identity::MIGRATOR)],
    };
    let addr = platform
        .settings
        .ops_addr
        .unwrap_or(DEFAULT_OPS_ADDR.parse().expect("valid"));
    if let Err(error) = ops::serve(addr, readiness, platform.shutdown.clone()).await {
        return process::fail("taskflow-identity", error.into());
    }
    process::run_until_shutdown(&platform.shutdown, vec![identity]).await
}

/// Grants the admin role; a running identity service publishes the event.
async fn make_admin(email: &str) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("taskflow-identity: bad setting {error}");
            return ExitCode::from(2);
        }
    };
    let pool = match taskflow_runtime::postgres::connect(
        &settings,
        "identity",
        &taskflow_identity::MIGRATOR,
    )
    .await
    {
        Ok(pool) => pool,
        Err(error) => return process::fail("taskflow-identity", error),
    };
    match taskflow_identity::commands::make_admin(&pool, email).await {
        Ok(user) => {
            println!("{email} ({user}) is now an admin; it takes effect at their next login");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("taskflow-identity: {}", rejection_text(error));
            ExitCode::FAILURE
        }
    }
}

fn rejection_text(error: taskflow_identity::error::IdentityError) -> String {
    match error {
        taskflow_identity::error::IdentityError::Rejected(body) => body.error,
        other => other.to_string(),
    }
}
