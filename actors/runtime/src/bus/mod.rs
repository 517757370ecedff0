//! NATS, its streams, and the commands that travel on it: a caller sends a
//! typed command with [`CommandClient::call`], a service answers the
//! commands it registered in its [`Endpoints`]. Inside one process the
//! command goes straight to the service's workers, as a value.

pub mod client;
pub mod context;
pub mod endpoints;
pub(crate) mod listener;
pub mod nats;

pub use client::CommandClient;
pub use context::CommandContext;
pub use endpoints::Endpoints;
