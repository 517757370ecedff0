//! The identity service: owns the `taskflow_identity` database (users,
//! argon2 password hashes, roles) and signs access tokens.
//!
//! Answers: `Register`, `Login`, `GetProfile`, `UpdateProfile`,
//! `GetPublicProfile` (`taskflow.identity.*`, NATS service `taskflow-identity`).
//! Publishes: `user.registered`, `user.updated` and `user.role_changed` on `AUDIT`
//! (`audit.user.*`), through its transactional outbox.

pub mod error;
pub mod passwords;
pub mod rules;
pub mod service;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_runtime::service::ServiceDefinition;
use taskflow_schemas::catalogue::{GetProfile, GetPublicProfile, Login, Register, UpdateProfile};

use crate::service::IdentityService;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/identity");

pub static SERVICE: ServiceDefinition<IdentityService> = ServiceDefinition {
    name: "identity",
    description: "Identity: register, log in, profiles",
    migrator: &MIGRATOR,
    // Hashing runs on its own bounded pool; more workers than cores keep
    // profile reads moving while sign-ins wait for it.
    workers: 8,
    outbox: true,
    publishes_directory: true,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:9102",
    state: |platform, parts| {
        IdentityService::new(
            parts.pool.clone(),
            parts.relay(),
            Tokens::new(&platform.settings.jwt_secret),
            platform.jetstream.clone(),
        )
    },
    endpoints,
    consumers: |_, _| Vec::new(),
    actors: Vec::new,
};

fn endpoints() -> Endpoints<IdentityService> {
    Endpoints::<IdentityService>::new()
        // Register and login hash a password: each takes a place in the
        // hashing pool (refused at once when none is left) on a task of its
        // own, so the worker goes on with the commands behind it.
        .on_detached::<Register, _, _, _>(|identity, context, registration| async move {
            let slot = passwords::admit()?;
            identity
                .register(&context.request_id, context.deadline, slot, registration)
                .await
        })
        .on_detached::<Login, _, _, _>(|identity, _, credentials| async move {
            identity.login(passwords::admit()?, credentials).await
        })
        .on::<GetProfile, _, _, _>(|identity, _, user| async move {
            identity.profile(user.user_id).await
        })
        .on::<UpdateProfile, _, _, _>(|identity, context, request| async move {
            let user = request.user().id;
            identity
                .update_profile(user, &context.request_id, context.deadline, request.body)
                .await
        })
        .on::<GetPublicProfile, _, _, _>(|identity, _, user| async move {
            identity.public_profile(user).await
        })
}
