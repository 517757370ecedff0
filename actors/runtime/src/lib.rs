//! What every TaskFlow service needs, written once, one folder per concern:
//!
//! - [`platform`]: settings, JSON logs, metrics, shutdown, the process's
//!   start and stop, and the connections a process shares;
//! - [`bus`]: NATS and its streams, and typed commands both ways (the
//!   [`bus::CommandClient`] that sends them and the [`bus::Endpoints`] a
//!   service answers them with);
//! - [`store`]: each service's Postgres database, its migrations and the
//!   runtime's own (outbox and inbox tables), and what a database error means;
//! - [`outbox`]: the transactional outbox and the relay that publishes it;
//! - [`consumer`]: durable stream consumers, their handlers and the DLQ;
//! - [`directory`]: each service's copy of users, admins and project
//!   memberships, which access is decided from;
//! - [`access`]: the access rule where the data lives: who may read each
//!   task, and the rule in SQL that every list filters with;
//! - [`service`]: a service's definition and the supervised actors that run it;
//! - [`http`]: the health, readiness and metrics endpoints, access tokens.

pub mod access;
pub mod bus;
pub mod consumer;
pub mod directory;
pub mod http;
pub mod in_effect;
pub mod outbox;
pub mod platform;
pub mod service;
pub mod store;

pub use platform::Platform;
pub use platform::error::{FailureKind, NatsStep, RuntimeError};
pub use platform::settings::Settings;
pub use platform::shutdown::Shutdown;
