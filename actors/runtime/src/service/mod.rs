//! A service, written as a [`ServiceDefinition`] (its name, database,
//! commands, consumers and outbox) and run by the runtime as a supervised
//! actor system: a supervisor owning the outbox relay, the stream consumers,
//! a pool of command workers and the NATS listener feeding them.
//!
//! Every binary, the all-in-one process and the test harness start services
//! from a list of definitions, so adding a service is its definition plus
//! one line in that list.

mod definition;
mod listener;
pub mod pool;
mod running;
mod supervisor;
mod workers;

pub use definition::{ActorStarter, ConsumerStarter, Service, ServiceDefinition, ServiceParts};
pub use running::RunningService;
pub use supervisor::{SupervisorMessage, crash_only};
