//! The wire formats: committed schemas are current, fixtures round-trip,
//! command bodies refuse what they do not know.

use std::path::Path;

use serde_json::{Value, json};
use taskflow_schemas::commands::{AsUser, NewTask, Reply, TaskPatch, TaskUpdate};
use taskflow_schemas::events::TaskEventPayload;
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope, decode};

#[test]
fn committed_json_schemas_match_the_types() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    for (file, document) in taskflow_schemas::json_schema::documents() {
        let committed = std::fs::read_to_string(folder.join(&file)).unwrap_or_default();
        let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
        assert_eq!(
            committed, document,
            "schemas/json/{file} is stale: run `just schemas`"
        );
    }
}

#[test]
fn every_event_fixture_round_trips() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut seen = 0;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        let envelope: EventEnvelope = serde_json::from_value(original.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if envelope.event_type.starts_with("task.") {
            let payload: TaskEventPayload = serde_json::from_value(envelope.payload.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(Some(payload.task.id), envelope.task_id);
        }
        assert_eq!(
            serde_json::to_value(&envelope).unwrap(),
            original,
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 5, "expected a fixture per event type, saw {seen}");
}

#[test]
fn a_create_command_is_flat_and_refuses_unknown_fields() {
    let actor = uuid::Uuid::now_v7();
    let command: AsUser<NewTask> = decode::command(
        json!({"title": "from nats", "actor_id": actor})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(command.actor_id, actor);
    assert_eq!(command.body.title, "from nats");

    let misspelt = decode::command::<NewTask>(
        json!({"titel": "x", "title": "x", "actor_id": actor})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(misspelt.unwrap_err().field.as_deref(), Some("titel"));
    let wrong = decode::command::<NewTask>(
        json!({"title": 7, "actor_id": actor})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(wrong.unwrap_err().field.as_deref(), Some("title"));
    let anonymous = decode::command::<NewTask>(json!({"title": "x"}).to_string().as_bytes());
    assert_eq!(anonymous.unwrap_err().field.as_deref(), Some("actor_id"));
}

#[test]
fn a_patch_tells_absent_from_null() {
    let body = json!({
        "actor_id": uuid::Uuid::nil(),
        "task_id": uuid::Uuid::nil(),
        "patch": {"assignee_id": null, "title": "renamed"},
    });
    let update: AsUser<TaskUpdate> = decode::command(body.to_string().as_bytes()).unwrap();
    let patch: TaskPatch = update.body.patch;
    assert_eq!(patch.assignee_id, Some(None));
    assert_eq!(patch.due_date, None);
    assert_eq!(patch.title.as_deref(), Some("renamed"));
}

#[test]
fn replies_are_ok_or_the_error_shape() {
    let ok: Reply<u32> = Ok(7).into();
    assert_eq!(serde_json::to_value(&ok).unwrap(), json!({"ok": 7}));
    let err: Reply<u32> = Err(ErrorBody::invalid("title", "must not be empty")).into();
    assert_eq!(
        serde_json::to_value(&err).unwrap(),
        json!({"error": "title: must not be empty", "code": "validation_failed", "field": "title"})
    );
    let back: Result<u32, ErrorBody> =
        serde_json::from_value::<Reply<u32>>(json!({"error": "gone", "code": "not_found"}))
            .unwrap()
            .into();
    assert_eq!(back.unwrap_err().code, ErrorCode::NotFound);
}
