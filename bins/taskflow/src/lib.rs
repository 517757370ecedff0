//! The services of TaskFlow, in start order. The all-in-one binary and the
//! test harness start this list; a new service is one line here (and a
//! binary of its own, `bins/taskflow-<name>`, one call long).

use taskflow_runtime::service::Service;

pub static SERVICES: [&dyn Service; 6] = [
    &taskflow_identity::SERVICE,
    &taskflow_projects::SERVICE,
    &taskflow_tasks::SERVICE,
    &taskflow_audit::SERVICE,
    &taskflow_scheduler::SERVICE,
    &taskflow_notifier::SERVICE,
];
