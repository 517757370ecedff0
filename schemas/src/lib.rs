//! Every type that crosses a process boundary in TaskFlow: the event
//! envelope and its payloads, the command requests and replies that travel by
//! NATS request-reply, stream and subject names, and the error codes that the
//! edge maps to HTTP statuses.
//!
//! This crate has no IO. The JSON Schema files under `schemas/json/` are
//! generated from these types (`cargo run -p taskflow-schemas --example
//! write_json_schemas`), and a test fails when they are stale.

pub mod access;
pub mod audit;
pub mod catalogue;
pub mod commands;
pub mod decode;
pub mod envelope;
pub mod error;
pub mod events;
pub mod feed;
pub mod json_schema;
pub mod limits;
pub mod notification;
pub mod patch;
pub mod project;
pub mod schedule;
pub mod subjects;
pub mod task;
pub mod user;

pub use envelope::EventEnvelope;
pub use error::{ErrorBody, ErrorCode};
