//! The audit service: owns the `taskflow_audit` database, where every event
//! becomes one immutable record (the database refuses UPDATE, DELETE and
//! TRUNCATE on them).
//!
//! Consumes: `TASKS` (durable `audit-tasks`) and `AUDIT` (durable
//! `audit-domain`), through the runtime's stream consumer.
//! Serves: `taskflow.audit.{list,get}` (NATS service `taskflow-audit`):
//! members see the records of the tasks they can read and their own records
//! that concern no task; admins see all.
//! Publishes: nothing.

pub mod queries;
pub mod recorder;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::consumer::ConsumerSpec;
use taskflow_runtime::service::{ConsumerStarter, RunningService, ServiceSpec};
use taskflow_runtime::{Platform, RuntimeError};
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM, commands::audit};

use crate::queries::AuditQueries;
use crate::recorder::AuditRecorder;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/audit");

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "audit",
    description: "Audit: the immutable record of every event",
    endpoints: &[audit::LIST, audit::GET],
    workers: 4,
    outbox: false,
};

/// The durable consumers of the audit service.
pub fn consumers() -> [ConsumerSpec; 2] {
    [
        ConsumerSpec {
            service: "audit",
            durable: "audit-tasks".into(),
            stream: TASKS_STREAM,
            subjects: vec!["tasks.>".into()],
        },
        ConsumerSpec {
            service: "audit",
            durable: "audit-domain".into(),
            stream: AUDIT_STREAM,
            subjects: vec!["audit.>".into()],
        },
    ]
}

/// Starts the audit service: database, consumers, query workers.
pub async fn start(platform: &Platform) -> Result<RunningService, RuntimeError> {
    let consumers = consumers()
        .into_iter()
        .map(|spec| ConsumerStarter::new(spec, AuditRecorder))
        .collect();
    RunningService::start(platform, SPEC, &MIGRATOR, consumers, |parts| {
        AuditQueries::new(parts.pool)
    })
    .await
}
