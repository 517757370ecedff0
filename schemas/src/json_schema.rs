//! JSON Schema (2020-12) documents of the wire types, generated from the
//! same derives that feed the OpenAPI document, so the two cannot disagree.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::audit::{AuditChange, AuditRecord};
use crate::commands::{
    Credentials, NewTask, Page, ProfilePatch, Registration, Session, TaskPatch, TaskQuery,
};
use crate::envelope::EventEnvelope;
use crate::error::{ErrorBody, ErrorCode};
use crate::events::{
    FieldChange, ReminderDuePayload, RoleChangePayload, TaskEventPayload, UserEventPayload,
};
use crate::notification::{
    Channel, Notification, NotificationEventPayload, NotificationKind, NotificationStatus,
};
use crate::project::{Project, ProjectEventPayload, ProjectMember, ProjectRole};
use crate::task::{Frequency, Priority, Recurrence, RecurrenceAnchor, Task, TaskStatus};
use crate::user::{PublicProfile, Role, UserProfile};

#[derive(OpenApi)]
#[openapi(components(schemas(
    EventEnvelope,
    TaskEventPayload,
    UserEventPayload,
    RoleChangePayload,
    ReminderDuePayload,
    NotificationEventPayload,
    ProjectEventPayload,
    Project,
    ProjectMember,
    ProjectRole,
    Notification,
    NotificationKind,
    NotificationStatus,
    Channel,
    FieldChange,
    Task,
    TaskStatus,
    Priority,
    Frequency,
    RecurrenceAnchor,
    Recurrence,
    NewTask,
    TaskPatch,
    TaskQuery,
    Page<Task>,
    Registration,
    Credentials,
    Session,
    ProfilePatch,
    UserProfile,
    PublicProfile,
    Role,
    ErrorBody,
    ErrorCode,
    AuditRecord,
    AuditChange,
)))]
struct WireTypes;

/// The types that get a file of their own under `schemas/json/`.
pub const DOCUMENTS: [&str; 17] = [
    "EventEnvelope",
    "TaskEventPayload",
    "UserEventPayload",
    "RoleChangePayload",
    "ReminderDuePayload",
    "NotificationEventPayload",
    "ProjectEventPayload",
    "Notification",
    "Task",
    "NewTask",
    "TaskPatch",
    "Registration",
    "Credentials",
    "Session",
    "ProfilePatch",
    "ErrorBody",
    "AuditRecord",
];

/// File name (`task.schema.json` style) → document.
pub fn documents() -> BTreeMap<String, Value> {
    let components = component_schemas();
    DOCUMENTS
        .iter()
        .map(|name| {
            let mut document = components[*name].clone();
            let defs: serde_json::Map<String, Value> = referenced(name, &components)
                .into_iter()
                .filter(|dependency| dependency != name)
                .map(|dependency| (dependency.clone(), components[&dependency].clone()))
                .collect();
            let object = document
                .as_object_mut()
                .expect("a component schema is an object");
            object.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
            object.insert(
                "$id".into(),
                json!(format!("https://taskflow.dev/schemas/{}", file_name(name))),
            );
            object.insert("title".into(), json!(name));
            if !defs.is_empty() {
                object.insert("$defs".into(), Value::Object(defs));
            }
            (file_name(name), document)
        })
        .collect()
}

fn file_name(type_name: &str) -> String {
    let mut snake = String::new();
    for (index, character) in type_name.chars().enumerate() {
        if character.is_uppercase() && index > 0 {
            snake.push('_');
        }
        snake.push(character.to_ascii_lowercase());
    }
    format!("{snake}.schema.json")
}

fn component_schemas() -> BTreeMap<String, Value> {
    let openapi = WireTypes::openapi();
    let schemas = openapi.components.expect("components are declared").schemas;
    schemas
        .into_iter()
        .map(|(name, schema)| {
            let text = serde_json::to_string(&schema).expect("a schema serializes");
            let text = text.replace("#/components/schemas/", "#/$defs/");
            (name, serde_json::from_str(&text).expect("it still parses"))
        })
        .collect()
}

/// Every component reachable by `$ref` from `root`, itself included.
fn referenced(root: &str, components: &BTreeMap<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![root.to_owned()];
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        collect_refs(&components[&name], &mut pending);
    }
    seen
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            into.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}
