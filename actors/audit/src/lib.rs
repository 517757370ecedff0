//! The audit service: owns the `taskflow_audit` database, where every event
//! becomes one immutable record (the database refuses UPDATE, DELETE and
//! TRUNCATE on them).
//!
//! Consumes: `TASKS` (durable `audit-tasks`) and `AUDIT` (durable
//! `audit-domain`), through the runtime's stream consumer; `audit.user.>`
//! and `audit.project.>` again for its directory (`audit-directory`).
//! Answers: `ListAuditRecords`, `GetAuditRecord` (`taskflow.audit.*`, NATS
//! service `taskflow-audit`):
//! members see the records of the tasks they can read now (by the access
//! rule, with its directory's memberships) and their own records that
//! concern no task; admins see all.
//! Publishes: nothing.

pub mod queries;
pub mod recorder;
pub mod store;

use sqlx::migrate::Migrator;
use taskflow_runtime::bus::Endpoints;
use taskflow_runtime::consumer::ConsumerSpec;
use taskflow_runtime::directory;
use taskflow_runtime::service::{ConsumerStarter, ServiceDefinition, ServiceParts};
use taskflow_schemas::catalogue::{GetAuditRecord, ListAuditRecords};
use taskflow_schemas::subjects::{AUDIT_STREAM, TASKS_STREAM};

use crate::queries::AuditQueries;
use crate::recorder::AuditRecorder;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/audit");

pub static SERVICE: ServiceDefinition<AuditQueries> = ServiceDefinition {
    name: "audit",
    description: "Audit: the immutable record of every event",
    migrator: &MIGRATOR,
    workers: 4,
    outbox: false,
    publishes_directory: false,
    check_settings: |_| Ok(()),
    ops_addr: "127.0.0.1:9103",
    state: |_, parts| AuditQueries::new(parts.pool),
    endpoints,
    consumers: |_, parts| consumers(parts),
    actors: Vec::new,
};

fn endpoints() -> Endpoints<AuditQueries> {
    Endpoints::<AuditQueries>::new()
        .on::<ListAuditRecords, _, _, _>(|audit, _, request| async move {
            audit.list(request.user(), request.body).await
        })
        .on::<GetAuditRecord, _, _, _>(|audit, _, request| async move {
            audit.get(request.user(), request.body).await
        })
}

/// The durable consumers of the audit service: every task event and every
/// event of the other domains becomes a record; users and memberships also
/// keep its directory.
fn consumers(parts: &ServiceParts) -> Vec<ConsumerStarter> {
    let recorders = [
        ("audit-tasks", TASKS_STREAM, "tasks.>"),
        ("audit-domain", AUDIT_STREAM, "audit.>"),
    ]
    .into_iter()
    .map(|(durable, stream, subjects)| {
        let spec = ConsumerSpec {
            service: "audit",
            durable: durable.into(),
            stream,
            subjects: vec![subjects.into()],
            workers: 1,
        };
        ConsumerStarter::new(spec, AuditRecorder)
    });
    recorders
        .chain([directory::consumer("audit", &parts.directory)])
        .collect()
}
