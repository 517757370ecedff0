//! What a valid task is: sizes first, then the rules between its fields.

use taskflow_schemas::ErrorBody;
use taskflow_schemas::limits::{
    MAX_DESCRIPTION, MAX_INTERVAL, MAX_LABEL, MAX_LABELS, MAX_OBSERVERS, MAX_REMINDER_OFFSET,
    MAX_TITLE, TRIMMED,
};
use taskflow_schemas::task::Task;
use uuid::Uuid;

/// Sizes come first, as the client sent them and before any per-item work
/// (trimming, removing repeats): a body of a hundred thousand labels costs
/// one comparison, and a value the schema allows is never refused for its
/// length after trimming.
pub(super) fn check_sizes(
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
pub(super) fn trimmed(text: &str) -> String {
    text.trim_matches(TRIMMED).to_owned()
}

pub(super) fn validate(task: &Task) -> Result<(), ErrorBody> {
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

pub(super) fn normalize_labels(labels: Vec<String>) -> Vec<String> {
    dedup(labels.iter().map(|label| trimmed(label)).collect())
}

/// Drops repeats, keeping the first of each in its place.
pub(super) fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    kept
}
