//! The task's rules, free of IO: what a valid task is, what a patch does,
//! who may do what, and which fields an event reports as changed.

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;
use taskflow_schemas::ErrorBody;
use taskflow_schemas::commands::{NewTask, TaskPatch};
use taskflow_schemas::events::{Changes, FieldChange};
use taskflow_schemas::limits::TRIMMED;
use taskflow_schemas::task::{Task, TaskStatus};
use uuid::Uuid;

pub const MAX_TITLE: usize = 200;
pub const MAX_DESCRIPTION: usize = 10_000;
pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL: usize = 50;
pub const MAX_OBSERVERS: usize = 50;
pub const MAX_INTERVAL: u32 = 365;
/// A reminder may come at most a year before the due date.
pub const MAX_REMINDER_OFFSET: i32 = 525_600;

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

/// Sizes come first, as the client sent them and before any per-item work
/// (trimming, removing repeats): a body of a hundred thousand labels costs
/// one comparison, and a value the schema allows is never refused for its
/// length after trimming.
fn check_sizes(
    title: Option<&str>,
    labels: Option<&[String]>,
    observers: Option<&[Uuid]>,
) -> Result<(), ErrorBody> {
    let chars = |text: &str| text.chars().count();
    if title.is_some_and(|title| chars(title) > MAX_TITLE) {
        return Err(ErrorBody::invalid(
            "title",
            format!("at most {MAX_TITLE} characters"),
        ));
    }
    if labels.is_some_and(|labels| labels.len() > MAX_LABELS) {
        return Err(ErrorBody::invalid(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    if observers.is_some_and(|observers| observers.len() > MAX_OBSERVERS) {
        return Err(ErrorBody::invalid(
            "observer_ids",
            format!("at most {MAX_OBSERVERS} observers"),
        ));
    }
    let bad_label = |label: &String| chars(label) > MAX_LABEL || trimmed(label).is_empty();
    if labels.is_some_and(|labels| labels.iter().any(bad_label)) {
        return Err(ErrorBody::invalid(
            "labels",
            format!("each label has 1 to {MAX_LABEL} characters, not only spaces"),
        ));
    }
    Ok(())
}

/// Without the spaces, tabs and line breaks around it.
fn trimmed(text: &str) -> String {
    text.trim_matches(TRIMMED).to_owned()
}

fn validate(task: &Task) -> Result<(), ErrorBody> {
    let chars = |text: &str| text.chars().count();
    if task.title.is_empty() {
        return Err(ErrorBody::invalid("title", "must not be empty"));
    }
    if task
        .description
        .as_deref()
        .is_some_and(|d| chars(d) > MAX_DESCRIPTION)
    {
        return Err(ErrorBody::invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    if task.reminder_time.is_some() && task.reminder_offset_minutes.is_some() {
        return Err(ErrorBody::refused(
            "reminder_offset_minutes",
            "give reminder_time or reminder_offset_minutes, not both",
        ));
    }
    if let Some(offset) = task.reminder_offset_minutes {
        if task.due_date.is_none() {
            return Err(ErrorBody::refused(
                "reminder_offset_minutes",
                "needs a due_date to count back from",
            ));
        }
        if !(0..=MAX_REMINDER_OFFSET).contains(&offset) {
            return Err(ErrorBody::invalid(
                "reminder_offset_minutes",
                format!("between 0 and {MAX_REMINDER_OFFSET} minutes"),
            ));
        }
    }
    if let Some(recurrence) = &task.recurrence {
        let Some(due_date) = task.due_date else {
            return Err(ErrorBody::refused(
                "recurrence",
                "needs a due_date to repeat from",
            ));
        };
        if !(1..=MAX_INTERVAL).contains(&recurrence.interval) {
            return Err(ErrorBody::invalid(
                "recurrence.interval",
                format!("between 1 and {MAX_INTERVAL}"),
            ));
        }
        if recurrence.until.is_some_and(|until| until < due_date) {
            return Err(ErrorBody::refused(
                "recurrence.until",
                "must not be before the due_date",
            ));
        }
    }
    Ok(())
}

fn normalize_labels(labels: Vec<String>) -> Vec<String> {
    dedup(labels.iter().map(|label| trimmed(label)).collect())
}

/// Drops repeats, keeping the first of each in its place.
fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_schemas::task::{Frequency, Recurrence, RecurrenceAnchor};

    fn draft(title: &str) -> NewTask {
        NewTask {
            title: title.into(),
            ..Default::default()
        }
    }

    fn task() -> Task {
        new_task(
            Uuid::now_v7(),
            Uuid::now_v7(),
            Utc::now(),
            draft("  Write it  "),
        )
        .unwrap()
    }

    #[test]
    fn a_new_task_is_trimmed_pending_and_at_version_one() {
        let task = task();
        assert_eq!(task.title, "Write it");
        assert_eq!(task.status, TaskStatus::Pending);
        assert_eq!(task.version, 1);
        assert_eq!(task.series_id, None);
    }

    #[test]
    fn invalid_drafts_name_their_field() {
        let cases = [
            (draft("   "), "title"),
            (draft(&"x".repeat(MAX_TITLE + 1)), "title"),
            (
                NewTask {
                    labels: vec!["".into()],
                    ..draft("t")
                },
                "labels",
            ),
            (
                NewTask {
                    reminder_offset_minutes: Some(10),
                    ..draft("t")
                },
                "reminder_offset_minutes",
            ),
            (
                NewTask {
                    recurrence: Some(Recurrence {
                        frequency: Frequency::Daily,
                        interval: 1,
                        until: None,
                        anchor: RecurrenceAnchor::Due,
                    }),
                    ..draft("t")
                },
                "recurrence",
            ),
        ];
        for (new, field) in cases {
            let error = new_task(Uuid::now_v7(), Uuid::now_v7(), Utc::now(), new).unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{error}");
        }
    }

    #[test]
    fn a_flood_of_labels_is_refused_by_its_count_before_any_other_work() {
        let labels: Vec<String> = (0..120_000).map(|n| n.to_string()).collect();
        let error = new_task(
            Uuid::now_v7(),
            Uuid::now_v7(),
            Utc::now(),
            NewTask {
                labels: labels.clone(),
                ..draft("t")
            },
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("labels"));
        let patch = TaskPatch {
            labels: Some(labels),
            ..Default::default()
        };
        let error = apply_patch(&task(), patch, Utc::now()).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("labels"));
    }

    #[test]
    fn a_patch_reports_only_what_changed() {
        let current = task();
        let patch = TaskPatch {
            title: Some("Write it".into()),
            priority: Some(taskflow_schemas::task::Priority::Urgent),
            ..Default::default()
        };
        let (next, changes) = apply_patch(&current, patch, Utc::now()).unwrap();
        assert_eq!(changes.keys().collect::<Vec<_>>(), ["priority"]);
        assert_eq!(changes["priority"].old, "medium");
        assert_eq!(next.version, 2);
    }

    #[test]
    fn an_empty_patch_changes_nothing() {
        let current = task();
        let (next, changes) = apply_patch(&current, TaskPatch::default(), Utc::now()).unwrap();
        assert!(changes.is_empty());
        assert_eq!(next, current);
    }

    #[test]
    fn completing_twice_changes_nothing_the_second_time() {
        let current = task();
        let (done, changes) = complete(&current, Utc::now()).unwrap();
        assert!(done.completed_at.is_some());
        assert!(changes.contains_key("status") && changes.contains_key("completed_at"));
        assert!(complete(&done, Utc::now()).is_none());
    }

    #[test]
    fn a_relative_reminder_replaces_an_absolute_one() {
        let mut current = task();
        current.due_date = Some(Utc::now());
        current.reminder_time = Some(Utc::now());
        let patch = TaskPatch {
            reminder_offset_minutes: Some(Some(15)),
            ..Default::default()
        };
        let (next, _) = apply_patch(&current, patch, Utc::now()).unwrap();
        assert_eq!(next.reminder_time, None);
        assert_eq!(next.reminder_offset_minutes, Some(15));
    }

    mod properties {
        use super::*;
        use chrono::Duration;
        use proptest::prelude::*;
        use taskflow_schemas::task::Priority;

        /// Text as clients send it: empty, blank, NUL, long, any script.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                "\\PC{0,40}",
                " {0,3}",
                "[a-z ]{190,210}",
                Just("\u{0}".to_owned()),
            ]
        }

        /// A moment near the task's creation, by minutes.
        fn moment() -> impl Strategy<Value = DateTime<Utc>> {
            (-2_000i64..20_000).prop_map(|minutes| {
                DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
            })
        }

        fn patch() -> impl Strategy<Value = TaskPatch> {
            let status = prop_oneof![
                Just(TaskStatus::Pending),
                Just(TaskStatus::InProgress),
                Just(TaskStatus::Complete),
            ];
            let priority = prop_oneof![
                Just(Priority::Low),
                Just(Priority::Medium),
                Just(Priority::High),
                Just(Priority::Urgent),
            ];
            (
                proptest::option::of(text()),
                proptest::option::of(proptest::option::of(text())),
                proptest::option::of(status),
                proptest::option::of(priority),
                proptest::option::of(proptest::collection::vec(text(), 0..24)),
                proptest::option::of(proptest::option::of(moment())),
                proptest::option::of(proptest::option::of(moment())),
                proptest::option::of(proptest::option::of(-10i32..600_000)),
            )
                .prop_map(
                    |(title, description, status, priority, labels, due, reminder, offset)| {
                        TaskPatch {
                            title,
                            description,
                            status,
                            priority,
                            labels,
                            due_date: due,
                            reminder_time: reminder,
                            reminder_offset_minutes: offset,
                            ..Default::default()
                        }
                    },
                )
        }

        fn current() -> Task {
            let created = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
            new_task(Uuid::now_v7(), Uuid::now_v7(), created, draft("Write it")).unwrap()
        }

        proptest! {
            #[test]
            fn a_patch_is_taken_whole_or_refused_naming_a_field(patch in patch(), at in moment()) {
                let current = current();
                match apply_patch(&current, patch, at) {
                    Err(error) => prop_assert!(error.field.is_some(), "{error}"),
                    Ok((next, reported)) => {
                        prop_assert!(validate(&next).is_ok());
                        prop_assert_eq!(&reported, &changes(&current, &next));
                        if reported.is_empty() {
                            prop_assert_eq!(&next, &current);
                        } else {
                            prop_assert_eq!(next.version, current.version + 1);
                            prop_assert_eq!(next.updated_at, at);
                        }
                    }
                }
            }

            #[test]
            fn the_same_patch_again_changes_nothing(patch in patch(), at in moment()) {
                let current = current();
                if let Ok((next, _)) = apply_patch(&current, patch.clone(), at) {
                    let (again, reported) = apply_patch(&next, patch, at).expect("taken again");
                    prop_assert!(reported.is_empty(), "{reported:?}");
                    prop_assert_eq!(again, next);
                }
            }

            #[test]
            fn a_draft_makes_a_valid_task_or_names_its_field(
                title in text(),
                labels in proptest::collection::vec(text(), 0..24),
                due in proptest::option::of(moment()),
                offset in proptest::option::of(-10i32..600_000),
            ) {
                let new = NewTask { title, labels, due_date: due, reminder_offset_minutes: offset, ..Default::default() };
                match new_task(Uuid::now_v7(), Uuid::now_v7(), Utc::now(), new) {
                    Err(error) => prop_assert!(error.field.is_some(), "{error}"),
                    Ok(task) => {
                        prop_assert!(validate(&task).is_ok());
                        prop_assert_eq!(task.version, 1);
                        prop_assert_eq!(task.title.trim(), task.title.as_str());
                    }
                }
            }
        }
    }
}
