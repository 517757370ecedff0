//! The identity service: owns the `taskflow_identity` database (users,
//! argon2 password hashes, roles) and signs access tokens.
//!
//! Consumes: `taskflow.identity.{register,login,get_profile,update_profile,get_public_profile}`
//! (NATS service `taskflow-identity`).
//! Publishes: `user.registered` and `user.role_changed` on `AUDIT`
//! (`audit.user.*`), through its transactional outbox.

pub mod commands;
pub mod error;
mod handler;
pub mod passwords;
pub mod rules;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::service::{RunningService, ServiceSpec};
use taskflow_runtime::tokens::Tokens;
use taskflow_runtime::{Platform, RuntimeError};
use taskflow_schemas::subjects::commands::identity;

use crate::commands::IdentityCommands;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/identity");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "identity",
    description: "Identity: register, log in, profiles",
    endpoints: &[
        identity::REGISTER,
        identity::LOGIN,
        identity::GET_PROFILE,
        identity::UPDATE_PROFILE,
        identity::GET_PUBLIC_PROFILE,
    ],
    // Hashing runs on its own bounded pool; more workers than cores keep
    // profile reads moving while sign-ins wait for it.
    workers: 8,
    outbox: true,
};

/// Starts the identity service: database, outbox relay, command workers.
pub async fn start(platform: &Platform) -> Result<RunningService, RuntimeError> {
    let tokens = Tokens::new(&platform.settings.jwt_secret);
    RunningService::start(platform, SPEC, &MIGRATOR, Vec::new(), move |parts| {
        let relay = parts.relay.expect("SPEC has an outbox");
        IdentityCommands::new(parts.pool, relay, tokens)
    })
    .await
}
