//! The identity service on its own, and `make-admin EMAIL` / `revoke-admin EMAIL`.

use std::process::ExitCode;
use std::time::Duration;

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
    let user = match taskflow_identity::service::set_role(&pool, email, role).await {
        Ok(user) => user,
        Err(error) => {
            eprintln!("taskflow-identity: {}", rejection_text(error));
            return ExitCode::FAILURE;
        }
    };
    let now = match role {
        Role::Admin => "an admin",
        Role::Member => "no longer an admin",
    };
    // Said done only once every service decides with it.
    let nats = match taskflow_runtime::bus::nats::connect(
        &settings.nats_url,
        settings.nats_creds_file.as_deref(),
        "taskflow-identity-cli",
        IN_EFFECT_WITHIN,
    )
    .await
    {
        Ok((nats, _)) => nats,
        Err(error) => return process::fail("taskflow-identity", error),
    };
    let until = taskflow_runtime::in_effect::until(None, IN_EFFECT_WITHIN);
    let jetstream = async_nats::jetstream::new(nats);
    match taskflow_runtime::in_effect::everywhere(
        &pool,
        &jetstream,
        taskflow_runtime::in_effect::DIRECTORIES,
        until,
    )
    .await
    {
        Ok(()) => {
            println!("{email} ({user}) is now {now}, in every service");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "taskflow-identity: {email} ({user}) is saved as {now}, but {error} \
                 (is the identity service running to publish it?); every service follows once it is"
            );
            ExitCode::from(75)
        }
    }
}

/// How long the command waits for every service to apply the change.
const IN_EFFECT_WITHIN: Duration = Duration::from_secs(30);

fn rejection_text(error: taskflow_identity::error::IdentityError) -> String {
    match error {
        taskflow_identity::error::IdentityError::Rejected(body) => body.error,
        other => other.to_string(),
    }
}
