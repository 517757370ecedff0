//! The services of TaskFlow, in start order: the one list that the
//! all-in-one binary, the test harness, the chaos run and the bench start,
//! and that a test holds `compose.yaml`, the `Dockerfile` and the binaries
//! against. A new service is its crate, one line here, its binary
//! (`bins/taskflow-<name>`, one call long) and its entries in `compose.yaml`
//! and the `Dockerfile`.

use taskflow_runtime::service::Service;

pub static SERVICES: &[&dyn Service] = &[
    &taskflow_identity::SERVICE,
    &taskflow_projects::SERVICE,
    &taskflow_tasks::SERVICE,
    &taskflow_audit::SERVICE,
    &taskflow_scheduler::SERVICE,
    &taskflow_notifier::SERVICE,
];

/// The names of [`SERVICES`] (`tasks`: binary `taskflow-tasks`, database
/// `taskflow_tasks`), in start order.
pub fn service_names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|service| service.name())
}
