//! The task's rules, by example and by property.

use super::*;
use taskflow_schemas::limits::MAX_TITLE;
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
                |(title, description, status, priority, labels, due, reminder, offset)| TaskPatch {
                    title,
                    description,
                    status,
                    priority,
                    labels,
                    due_date: due,
                    reminder_time: reminder,
                    reminder_offset_minutes: offset,
                    ..Default::default()
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
