//! The task's rules, free of IO: what a valid task is, what a patch does,
//! who may do what, and which fields an event reports as changed.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::commands::{NewTask, TaskPatch};
use taskflow_schemas::events::{Changes, FieldChange};
use taskflow_schemas::limits::{MAX_DESCRIPTION, MAX_INTERVAL, MAX_REMINDER_OFFSET};
use taskflow_schemas::task::{Task, TaskStatus};
use uuid::Uuid;

mod validation;

use validation::{check_sizes, dedup, normalize_labels, trimmed, validate};

/// The task a valid `NewTask` makes.
pub fn new_task(
    id: Uuid,
    creator_id: Uuid,
    now: DateTime<Utc>,
    new: NewTask,
) -> Result<Task, ErrorBody> {
    check_sizes(Some(&new.title), Some(&new.labels), Some(&new.observer_ids))?;
    let status = new.status.unwrap_or(TaskStatus::Pending);
    if status == TaskStatus::Complete {
        return Err(ErrorBody::refused(
            "status",
            "a new task is pending or in_progress",
        ));
    }
    let series_id = new.recurrence.as_ref().map(|_| id);
    let task = Task {
        id,
        project_id: new.project_id,
        title: trimmed(&new.title),
        description: new.description,
        status,
        priority: new.priority.unwrap_or_default(),
        labels: normalize_labels(new.labels),
        creator_id,
        assignee_id: new.assignee_id,
        observer_ids: dedup(new.observer_ids),
        due_date: new.due_date,
        reminder_time: new.reminder_time,
        reminder_offset_minutes: new.reminder_offset_minutes,
        recurrence: new.recurrence,
        series_id,
        version: 1,
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    validate(&task)?;
    Ok(to_stored_precision(task))
}

/// The next task of `previous`'s series, due at `due`: the same title,
/// people, labels, priority, project and recurrence, pending, with the
/// reminder the same time before its due date (an absolute reminder becomes
/// that offset).
pub fn next_occurrence(
    id: Uuid,
    previous: &Task,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Task, ErrorBody> {
    if previous.recurrence.is_none() || previous.series_id.is_none() {
        return Err(ErrorBody::refused(
            "previous_task_id",
            "is not a recurring task",
        ));
    }
    let carried_offset = previous.reminder_offset_minutes.or_else(|| {
        let before = previous.due_date? - previous.reminder_time?;
        let minutes = before.num_minutes();
        (0..=i64::from(MAX_REMINDER_OFFSET))
            .contains(&minutes)
            .then_some(minutes as i32)
    });
    let task = Task {
        id,
        status: TaskStatus::Pending,
        due_date: Some(due),
        reminder_time: None,
        reminder_offset_minutes: carried_offset,
        version: 1,
        created_at: now,
        updated_at: now,
        completed_at: None,
        ..previous.clone()
    };
    validate(&task)?;
    Ok(to_stored_precision(task))
}

/// What can be checked of a patch on its own, before the task is read: a
/// malformed patch is a 400 whatever state the task is in (a stale
/// `If-Match` included).
pub fn check_patch(patch: &TaskPatch) -> Result<(), ErrorBody> {
    check_sizes(
        patch.title.as_deref(),
        patch.labels.as_deref(),
        patch.observer_ids.as_deref(),
    )?;
    let chars = |text: &str| text.chars().count();
    if let Some(Some(description)) = &patch.description
        && chars(description) > MAX_DESCRIPTION
    {
        return Err(ErrorBody::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if let Some(Some(offset)) = patch.reminder_offset_minutes
        && !(0..=MAX_REMINDER_OFFSET).contains(&offset)
    {
        return Err(ErrorBody::invalid(
            "reminder_offset_minutes",
            format!("between 0 and {MAX_REMINDER_OFFSET} minutes"),
        ));
    }
    if let Some(Some(recurrence)) = &patch.recurrence
        && !(1..=MAX_INTERVAL).contains(&recurrence.interval)
    {
        return Err(ErrorBody::invalid(
            "recurrence.interval",
            format!("between 1 and {MAX_INTERVAL}"),
        ));
    }
    Ok(())
}

/// The task after `patch`, and what changed; an empty change set means
/// nothing is to be written.
pub fn apply_patch(
    current: &Task,
    patch: TaskPatch,
    now: DateTime<Utc>,
) -> Result<(Task, Changes), ErrorBody> {
    check_patch(&patch)?;
    let mut next = current.clone();
    if let Some(title) = patch.title {
        next.title = trimmed(&title);
    }
    if let Some(description) = patch.description {
        next.description = description;
    }
    if let Some(priority) = patch.priority {
        next.priority = priority;
    }
    if let Some(labels) = patch.labels {
        next.labels = normalize_labels(labels);
    }
    if let Some(assignee_id) = patch.assignee_id {
        next.assignee_id = assignee_id;
    }
    if let Some(observer_ids) = patch.observer_ids {
        next.observer_ids = dedup(observer_ids);
    }
    if let Some(project_id) = patch.project_id {
        next.project_id = project_id;
    }
    if let Some(due_date) = patch.due_date {
        next.due_date = due_date;
    }
    // Setting one kind of reminder replaces the other.
    match (patch.reminder_time, patch.reminder_offset_minutes) {
        (Some(time), Some(offset)) => {
            next.reminder_time = time;
            next.reminder_offset_minutes = offset;
        }
        (Some(time), None) => {
            next.reminder_time = time;
            if time.is_some() {
                next.reminder_offset_minutes = None;
            }
        }
        (None, Some(offset)) => {
            next.reminder_offset_minutes = offset;
            if offset.is_some() {
                next.reminder_time = None;
            }
        }
        (None, None) => {}
    }
    if let Some(recurrence) = patch.recurrence {
        next.recurrence = recurrence;
        if next.recurrence.is_some() && next.series_id.is_none() {
            next.series_id = Some(next.id);
        }
    }
    if let Some(status) = patch.status {
        set_status(&mut next, status, now);
    }
    validate(&next)?;
    let mut next = to_stored_precision(next);
    let changes = changes(current, &next);
    if !changes.is_empty() {
        next.version = current.version + 1;
        next.updated_at = now;
    }
    Ok((next, changes))
}

/// The completed task and its changes, or `None` when it already is complete.
pub fn complete(current: &Task, now: DateTime<Utc>) -> Option<(Task, Changes)> {
    if current.status == TaskStatus::Complete {
        return None;
    }
    let mut next = current.clone();
    set_status(&mut next, TaskStatus::Complete, now);
    next.version = current.version + 1;
    next.updated_at = now;
    let next = to_stored_precision(next);
    let changes = changes(current, &next);
    Some((next, changes))
}

/// Postgres keeps microseconds; a reply must show what a later read shows.
fn to_stored_precision(mut task: Task) -> Task {
    let micros = |time: DateTime<Utc>| time.trunc_subsecs(6);
    task.due_date = task.due_date.map(micros);
    task.reminder_time = task.reminder_time.map(micros);
    task.created_at = micros(task.created_at);
    task.updated_at = micros(task.updated_at);
    task.completed_at = task.completed_at.map(micros);
    if let Some(recurrence) = task.recurrence.as_mut() {
        recurrence.until = recurrence.until.map(micros);
    }
    task
}

fn set_status(task: &mut Task, status: TaskStatus, now: DateTime<Utc>) {
    if task.status == status {
        return;
    }
    task.completed_at = (status == TaskStatus::Complete).then_some(now);
    task.status = status;
}

/// The people `next` names that `current` did not (all of them for a new
/// task or one that changes project): each must exist and, in a project, be
/// one of its members.
pub fn newly_named(current: Option<&Task>, next: &Task) -> (Option<Uuid>, Vec<Uuid>) {
    let before = current.filter(|current| current.project_id == next.project_id);
    let assignee = next
        .assignee_id
        .filter(|user| before.is_none_or(|task| task.assignee_id != Some(*user)));
    let observers = next
        .observer_ids
        .iter()
        .copied()
        .filter(|user| before.is_none_or(|task| !task.observer_ids.contains(user)))
        .collect();
    (assignee, observers)
}

/// Each field whose value differs, bookkeeping fields aside.
pub fn changes(before: &Task, after: &Task) -> Changes {
    let (Value::Object(before), Value::Object(after)) = (to_value(before), to_value(after)) else {
        unreachable!("a task serializes to an object")
    };
    after
        .into_iter()
        .filter(|(field, _)| !matches!(field.as_str(), "version" | "updated_at"))
        .filter_map(|(field, new)| {
            let old = before.get(&field).cloned().unwrap_or(Value::Null);
            (old != new).then_some((field, FieldChange { old, new }))
        })
        .collect()
}

fn to_value(task: &Task) -> Value {
    serde_json::to_value(task).expect("a task serializes")
}

#[cfg(test)]
mod tests;
