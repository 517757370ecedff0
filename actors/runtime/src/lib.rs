//! What every TaskFlow service needs, written once: settings from the
//! environment, JSON logs, the NATS and Postgres connections (with database
//! creation and migrations), the JetStream streams, the health and metrics
//! endpoints, shutdown, a NATS service-API command server, a keyed worker
//! pool, and the transactional outbox with its relay actor.

pub mod commands;
pub mod consumer;
pub mod error;
pub mod metrics;
pub mod nats;
pub mod ops;
pub mod outbox;
pub mod platform;
pub mod pool;
pub mod postgres;
pub mod process;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod tokens;

pub use error::RuntimeError;
pub use platform::Platform;
pub use settings::Settings;
pub use shutdown::Shutdown;
