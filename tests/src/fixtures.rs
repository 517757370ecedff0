//! Events as the tasks service would publish them, for tests and the bench
//! that inject straight into the streams.

use serde_json::json;
use taskflow_schemas::EventEnvelope;
use uuid::Uuid;

/// A `task.created` envelope of a new task of `owner`.
pub fn task_created(owner: Uuid, title: &str, correlation_id: &str) -> EventEnvelope {
    let task_id = Uuid::now_v7();
    let now = chrono::Utc::now();
    EventEnvelope::new(
        "task.created",
        Some(task_id),
        Some(owner),
        correlation_id,
        json!({"task": {
            "id": task_id, "project_id": null, "title": title, "description": null,
            "status": "pending", "priority": "medium", "labels": [], "creator_id": owner,
            "assignee_id": null, "observer_ids": [], "due_date": null, "reminder_time": null,
            "reminder_offset_minutes": null, "recurrence": null, "series_id": null, "version": 1,
            "created_at": now, "updated_at": now, "completed_at": null
        }}),
    )
}

/// The subject the event would be published on.
pub fn subject_of(event: &EventEnvelope) -> String {
    taskflow_schemas::subjects::task_event_subject(
        &event.event_type,
        event.task_id.unwrap_or_default(),
    )
}
