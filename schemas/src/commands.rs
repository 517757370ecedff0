//! Command requests and replies (NATS request-reply, JSON both ways).
//!
//! The HTTP bodies are the same types: the edge adds who is acting and sends
//! them on. Bodies refuse unknown fields, so a misspelt field is an error
//! naming it rather than a silent no-op.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ErrorBody;
use crate::patch;
use crate::task::{Priority, Recurrence, TaskStatus};
use crate::user::Role;

/// A command reply: `{"ok": ...}` or `{"error": ..., "code": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply<T> {
    Ok { ok: T },
    Err(ErrorBody),
}

impl<T> From<Result<T, ErrorBody>> for Reply<T> {
    fn from(result: Result<T, ErrorBody>) -> Self {
        match result {
            Ok(ok) => Reply::Ok { ok },
            Err(error) => Reply::Err(error),
        }
    }
}

impl<T> From<Reply<T>> for Result<T, ErrorBody> {
    fn from(reply: Reply<T>) -> Self {
        match reply {
            Reply::Ok { ok } => Ok(ok),
            Reply::Err(error) => Err(error),
        }
    }
}

/// A page of a list: `next_cursor` is null on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Items on a page when the request names no `limit`.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest `limit` a list takes.
pub const MAX_PAGE: u32 = 200;

/// The page size a list's `limit` asks for: 1 to [`MAX_PAGE`], by default
/// [`DEFAULT_PAGE`]; anything else is refused by name.
pub fn page_size(limit: Option<u32>) -> Result<u32, ErrorBody> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ErrorBody::invalid(
            "limit",
            format!("between 1 and {MAX_PAGE}"),
        ))
    }
}

/// The most a page's items may weigh as JSON: a reply must fit in one NATS
/// message (1 MiB by default) with room to spare, whatever the items hold.
pub const PAGE_BYTES: usize = 512 * 1024;

impl<T: Serialize> Page<T> {
    /// The page of `fetched` (read with `limit + 1` rows, the extra one
    /// telling that more follow): at most `limit` items and, past the first,
    /// no more than [`PAGE_BYTES`]. A page cut short by its size has a
    /// `next_cursor` like one cut by its count, so nothing is ever dropped.
    pub fn cut(mut fetched: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Self {
        let mut bytes = 0;
        let mut kept = 0;
        for item in fetched.iter().take(limit) {
            bytes += serde_json::to_vec(item).map_or(0, |json| json.len());
            if kept > 0 && bytes > PAGE_BYTES {
                break;
            }
            kept += 1;
        }
        let more = fetched.len() > kept;
        fetched.truncate(kept);
        let next_cursor = more.then(|| fetched.last().map(&cursor_of)).flatten();
        Page {
            items: fetched,
            next_cursor,
        }
    }
}

/// A request made on a user's behalf, as sent on NATS: the user, and the
/// body's fields beside it (`{"actor_id": "...", "title": "..."}`, the
/// contract's names). Decode it with [`crate::decode::command`], which keeps
/// the body's refusal of unknown fields (serde's `flatten` would lose it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AsUser<B> {
    pub actor_id: Uuid,
    /// `admin` widens what the actor may read; absent means `member`.
    #[serde(default, skip_serializing_if = "Role::is_member")]
    pub actor_role: Role,
    #[serde(flatten)]
    pub body: B,
}

impl<B> AsUser<B> {
    pub fn new(user: Principal, body: B) -> Self {
        Self {
            actor_id: user.id,
            actor_role: user.role,
            body,
        }
    }

    pub fn user(&self) -> Principal {
        Principal {
            id: self.actor_id,
            role: self.actor_role,
        }
    }
}

/// Who a command acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub id: Uuid,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

// ---- tasks ----

/// `taskflow.tasks.create_next_occurrence`: the scheduler asks for the next
/// task of a series once one is completed. The tasks service copies the
/// completed task (title, people, labels, priority, recurrence, reminder
/// offset) into a new one of the same series, due at `due_date`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextOccurrence {
    pub previous_task_id: Uuid,
    pub due_date: DateTime<Utc>,
}

/// `POST /api/v1/tasks` and `taskflow.tasks.create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// 1 to 200 characters, not only spaces; trimmed.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\t\n\r ][^\u0000]*$"
    )]
    pub title: String,
    /// At most 10,000 characters.
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// The project it belongs to: you must be one of its owners or members
    /// (403 for a viewer, 422 for a project you are not in). Without one,
    /// the task is yours alone.
    #[serde(default)]
    pub project_id: Option<Uuid>,
    /// `pending` (the default) or `in_progress`; `complete` is refused (422).
    #[serde(default)]
    pub status: Option<TaskStatus>,
    #[serde(default)]
    pub priority: Option<Priority>,
    /// At most 20, repeats dropped.
    #[serde(default)]
    #[schema(value_type = Vec<Label>, max_items = 20)]
    pub labels: Vec<String>,
    /// An existing user; in a project, one of its members (422 otherwise).
    #[serde(default)]
    pub assignee_id: Option<Uuid>,
    /// At most 50, repeats dropped; existing users and, in a project, its
    /// members (422 otherwise).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub observer_ids: Vec<Uuid>,
    #[serde(default)]
    pub due_date: Option<DateTime<Utc>>,
    /// An absolute reminder; not with `reminder_offset_minutes` (422).
    #[serde(default)]
    pub reminder_time: Option<DateTime<Utc>>,
    /// Minutes before `due_date`, which it needs (422 without one).
    #[serde(default, deserialize_with = "patch::whole_opt")]
    #[schema(minimum = 0, maximum = 525600)]
    pub reminder_offset_minutes: Option<i32>,
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// A task label in the OpenAPI document: 1 to 50 characters, not only spaces.
pub struct Label;

impl utoipa::PartialSchema for Label {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::limits::MAX_LABEL))
            .pattern(Some(crate::limits::NOT_BLANK))
            .into()
    }
}

impl ToSchema for Label {
    fn name() -> std::borrow::Cow<'static, str> {
        "Label".into()
    }
}

/// `PUT`/`PATCH /api/v1/tasks/{id}`: fields given are changed, `null` clears.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskPatch {
    /// 1 to 200 characters, not only spaces; trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\t\n\r ][^\u0000]*$"
    )]
    pub title: Option<String>,
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Label>>, max_items = 20)]
    pub labels: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    /// An existing user; in a project, one of its members (422 otherwise).
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    /// Existing users; in a project, its members (422 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50)]
    pub observer_ids: Option<Vec<Uuid>>,
    /// Moves the task to another project (`null`: out of any, to its
    /// creator): you must write in both.
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Uuid>)]
    pub project_id: Option<Option<Uuid>>,
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_date: Option<Option<DateTime<Utc>>>,
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub reminder_time: Option<Option<DateTime<Utc>>>,
    #[serde(
        default,
        deserialize_with = "patch::whole_nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i32>, minimum = 0, maximum = 525600)]
    pub reminder_offset_minutes: Option<Option<i32>>,
    #[serde(
        default,
        deserialize_with = "patch::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Recurrence>)]
    pub recurrence: Option<Option<Recurrence>>,
}

/// `taskflow.tasks.update`: `{"task_id", "expected_version"?, "patch": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskUpdate {
    pub task_id: Uuid,
    /// The `If-Match` version; the update is refused when the task moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
    pub patch: TaskPatch,
}

/// `taskflow.tasks.get`, `.complete` and `.delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRef {
    pub task_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<i64>,
}

/// `GET /api/v1/tasks` query and `taskflow.tasks.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_before: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_after: Option<DateTime<Utc>>,
    /// Words to find in the title or description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 200, pattern = r"^[^\u0000]*$")]
    pub q: Option<String>,
    /// 1..=200, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (422 for one this API did not give out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

// ---- identity ----

/// `POST /api/v1/auth/register` and `taskflow.identity.register`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// At most 254 characters: a local part, `@`, and a domain with a dot.
    #[schema(
        max_length = 254,
        pattern = r"^[^@\u0000-\u0020\u007f]+@[^@\u0000-\u0020\u007f.][^@\u0000-\u0020\u007f]*\.[^@\u0000-\u0020\u007f]*[^@\u0000-\u0020\u007f.]$"
    )]
    pub email: String,
    /// 1 to 100 characters, not only spaces; trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*[^\u0000\t\n\r ][^\u0000]*$"
    )]
    pub name: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub password: String,
}

/// `POST /api/v1/auth/login` and `taskflow.identity.login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(max_length = 254, pattern = r"^[^\u0000]*$")]
    pub email: String,
    #[schema(max_length = 256, pattern = r"^[^\u0000]*$")]
    pub password: String,
}

/// The reply to register and login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// A bearer token for `Authorization: Bearer <token>`.
    pub token: String,
}

/// `PATCH /api/v1/users/me`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 1 to 100 characters, not only spaces; trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*[^\u0000\t\n\r ][^\u0000]*$"
    )]
    pub name: Option<String>,
    /// IANA time zone, e.g. `America/New_York` (422 for a name the zone database does not know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\u0000]*$")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_notifications: Option<bool>,
}

/// `taskflow.identity.get_profile` and `.get_public_profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub user_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_ends_at_its_count_or_its_size_and_never_drops_an_item() {
        let small: Vec<u32> = (0..5).collect();
        let page = Page::cut(small.clone(), 3, u32::to_string);
        assert_eq!(
            (page.items, page.next_cursor),
            (vec![0, 1, 2], Some("2".into()))
        );
        let page = Page::cut(small, 5, u32::to_string);
        assert_eq!(page.next_cursor, None);

        let big: Vec<String> = (0..10)
            .map(|n| format!("{n}{}", "x".repeat(200_000)))
            .collect();
        let page = Page::cut(big.clone(), 10, |item| item[..1].to_owned());
        assert_eq!(page.items.len(), 2, "two items of 200 KB fit in 512 KiB");
        assert_eq!(page.next_cursor.as_deref(), Some("1"));
        let huge = vec!["y".repeat(PAGE_BYTES * 2)];
        let page = Page::cut(huge, 10, |_| "0".into());
        assert_eq!(page.items.len(), 1, "a page always holds its first item");
        assert_eq!(page.next_cursor, None);
    }
}
