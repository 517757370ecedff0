//! The identity service on its own, and `make-admin EMAIL` / `revoke-admin EMAIL`.

use std::process::ExitCode;

use taskflow_runtime::Settings;
use taskflow_runtime::platform::process;
use taskflow_schemas::user::Role;

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.as_slice() {
        [] => serve().await,
        [command, email] if command == "make-admin" => set_role(email, Role::Admin).await,
        [command, email] if command == "revoke-admin" => set_role(email, Role::Member).await,
        _ => {
            eprintln!("usage: taskflow-identity [make-admin EMAIL | revoke-admin EMAIL]");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> ExitCode {
    process::run_service(&taskflow_identity::SERVICE).await
}

/// Grants or takes back the admin role; a running identity service
/// publishes the event, and every service follows it at once.
async fn set_role(email: &str, role: Role) -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("taskflow-identity: bad setting {error}");
            return ExitCode::from(2);
        }
    };
    let pool = match taskflow_runtime::store::postgres::connect(
        &settings,
        "identity",
        &taskflow_identity::MIGRATOR,
    )
    .await
    {
        Ok(pool) => pool,
        Err(error) => return process::fail("taskflow-identity", error),
    };
    match taskflow_identity::service::set_role(&pool, email, role).await {
        Ok(user) => {
            let now = match role {
                Role::Admin => "an admin",
                Role::Member => "no longer an admin",
            };
            println!("{email} ({user}) is now {now}: every service follows within a moment");
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
