//! The tasks service's commands: each write commits the task and its event together
//! (the outbox), then wakes the relay.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use taskflow_runtime::bus::CommandContext;
use taskflow_runtime::directory::{self, DirectoryUpdates};
use taskflow_runtime::outbox::{self, OutboxRecord, RelayHandle};
use taskflow_runtime::store::postgres;
use taskflow_schemas::access::Participants;
use taskflow_schemas::commands::{
    NewTask, NextOccurrence, Page, Principal, TaskQuery, TaskRef, TaskUpdate, page_size,
};
use taskflow_schemas::events::{self, Changes, TaskEventPayload};
use taskflow_schemas::limits;
use taskflow_schemas::project::ProjectRole;
use taskflow_schemas::subjects::{IDEMPOTENCY_KEY_HEADER, task_event_subject};
use taskflow_schemas::task::{Task, TaskStatus};
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::access;
use crate::error::TasksError;
use crate::group_commit::CreateGroups;
use crate::rules;
use crate::store::{self, IdempotentCreate};

/// The longest search text (`?q=`).
const MAX_QUERY: usize = 200;

/// How long a command refused by the directory waits for it to change
/// (a project or member added a moment ago in another service) before the
/// refusal goes back.
const DIRECTORY_GRACE: Duration = Duration::from_millis(500);

/// How often a command waiting out [`DIRECTORY_GRACE`] looks again, when
/// this instance hears of no change.
const RECHECK: Duration = Duration::from_millis(20);

/// Commands that may wait out [`DIRECTORY_GRACE`] at once. A waiting command
/// holds its worker: a flood of refused writes must not hold them all, so
/// the others are refused at once.
const GRACE_WAITERS: usize = 4;

/// Who asks, and under which request id (the events' correlation id).
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whether they are an admin is the directory's to say, not the token's.
    pub user_id: Uuid,
    pub request_id: String,
    /// When the caller stops waiting: a write still blocked then is cancelled.
    pub deadline: Option<SystemTime>,
    /// `Idempotency-Key`: a create retried with it returns the first reply.
    pub idempotency_key: Option<String>,
    /// The event this command follows from (a completion, for the next
    /// occurrence of a series); its events name it as their cause.
    pub causation_id: Option<Uuid>,
}

impl Caller {
    pub fn new(context: CommandContext, user: Principal) -> Self {
        Self {
            user_id: user.id,
            request_id: context.request_id,
            deadline: context.deadline,
            idempotency_key: context.idempotency_key,
            causation_id: context.causation_id,
        }
    }

    /// `actor`, acting through an event of another service (`cause`), whose
    /// correlation id the consequences keep.
    pub fn acting_on(actor: Uuid, correlation_id: String, cause: Uuid) -> Self {
        Self {
            user_id: actor,
            request_id: correlation_id,
            deadline: None,
            idempotency_key: None,
            causation_id: Some(cause),
        }
    }
}

/// The tasks service's commands, over its database and its relay.
pub struct TasksService {
    pool: PgPool,
    /// Where plain creates are written together.
    creates: CreateGroups,
    relay: RelayHandle,
    directory: DirectoryUpdates,
    waiters: Semaphore,
}

impl TasksService {
    pub fn new(pool: PgPool, relay: RelayHandle, directory: DirectoryUpdates) -> Self {
        Self {
            creates: CreateGroups::new(pool.clone()),
            pool,
            relay,
            directory,
            waiters: Semaphore::new(GRACE_WAITERS),
        }
    }

    pub async fn create(&self, caller: &Caller, new: NewTask) -> Result<Task, TasksError> {
        let request = serde_json::to_value(&new).expect("a new task serializes");
        let task = rules::new_task(Uuid::now_v7(), caller.user_id, Utc::now(), new)?;
        self.create_once(caller, &task, request, Placement::Checked)
            .await
    }

    /// The next task of a completed recurring task's series. The scheduler
    /// asks as the series' creator and names the occurrence in the
    /// `Idempotency-Key`, so however often it asks, one task is made. It
    /// keeps the series' people and project as they are.
    pub async fn create_next_occurrence(
        &self,
        caller: &Caller,
        next: NextOccurrence,
    ) -> Result<Task, TasksError> {
        if caller.idempotency_key.is_none() {
            return Err(ErrorBody::invalid(
                IDEMPOTENCY_KEY_HEADER,
                "an occurrence is made once: name it with an Idempotency-Key",
            )
            .into());
        }
        let previous = match store::find(&self.pool, next.previous_task_id).await? {
            Some(task) if task.creator_id == caller.user_id => task,
            _ => return Err(TasksError::not_found()),
        };
        let request = serde_json::to_value(&next).expect("an occurrence serializes");
        let task = rules::next_occurrence(Uuid::now_v7(), &previous, next.due_date, Utc::now())?;
        self.create_once(caller, &task, request, Placement::Inherited)
            .await
    }

    /// Inserts `task`, once per `Idempotency-Key` when the caller gave one
    /// (`request` is what the key must come with again).
    ///
    /// The key is taken in the write's own transaction: a lock on it (a
    /// Postgres advisory lock of the transaction) tells a concurrent retry
    /// the first is still in flight, and the key's row is written with the
    /// task and its event. A process that dies mid-request takes its
    /// transaction, and so its claim, with it: the retry goes ahead at once.
    async fn create_once(
        &self,
        caller: &Caller,
        task: &Task,
        request: serde_json::Value,
        placement: Placement,
    ) -> Result<Task, TasksError> {
        let key = caller.idempotency_key.as_deref();
        // Checked where it entered (HTTP or NATS); again for callers in the process.
        if key.is_some_and(|key| !limits::is_valid_idempotency_key(key.as_bytes())) {
            return Err(
                ErrorBody::invalid(IDEMPOTENCY_KEY_HEADER, limits::IDEMPOTENCY_KEY_RULE).into(),
            );
        }
        let (event, record) = event_record(caller, events::TASK_CREATED, task, Changes::new())?;
        let response = serde_json::to_value(task).expect("a task serializes");
        let key = key.map(|key| IdempotentCreate {
            user: caller.user_id,
            key,
            request: &request,
            response: &response,
        });
        let (record, key) = (&record, key.as_ref());
        let created = self
            .settled(|| async move {
                if key.is_none() && task.project_id.is_none() {
                    // Nothing to lock (users are never removed): written
                    // with the creates that arrive beside it. Only the
                    // people it names need the directory.
                    let names_anyone = task.assignee_id.is_some() || !task.observer_ids.is_empty();
                    if placement == Placement::Checked && names_anyone {
                        let mut conn = self.pool.acquire().await?;
                        access::check_placement(&mut conn, caller.user_id, None, task).await?;
                    }
                    self.creates.insert(task.clone(), record.clone()).await?;
                    return Ok(None);
                }
                let mut tx = postgres::begin_until(&self.pool, caller.deadline).await?;
                if let Some(key) = key
                    && let Some(first) = first_response(&mut tx, key).await?
                {
                    return Ok(Some(first));
                }
                // Locks what the write relies on (the caller's membership,
                // or the project), so it cannot cross the project's deletion.
                match (placement, task.project_id) {
                    (Placement::Checked, _) => {
                        access::check_placement(&mut tx, caller.user_id, None, task).await?
                    }
                    (Placement::Inherited, Some(project)) => {
                        if !directory::project_open_locked(&mut tx, project).await? {
                            let gone = ErrorBody::refused("project_id", "the project is gone");
                            return Err(gone.into());
                        }
                    }
                    (Placement::Inherited, None) => {}
                }
                store::insert_with_event(&mut *tx, task, record, key).await?;
                tx.commit().await?;
                Ok(None)
            })
            .await?;
        match created {
            Some(first) => serde_json::from_value(first).map_err(|_| {
                ErrorBody::new(ErrorCode::Internal, "stored response is unreadable").into()
            }),
            None => {
                self.committed(&event);
                Ok(task.clone())
            }
        }
    }

    /// Runs `command` again each time the directory changes, for up to
    /// [`DIRECTORY_GRACE`], while the directory refuses it: a project made or
    /// a member added a moment ago reaches this service's directory a few
    /// milliseconds after its event. The change may be applied by another
    /// instance of the service (they share the directory's consumer), which
    /// this one is not told of: it also looks again every [`RECHECK`].
    async fn settled<T, F>(&self, command: impl Fn() -> F) -> Result<T, TasksError>
    where
        F: Future<Output = Result<T, TasksError>>,
    {
        let mut changes = self.directory.subscribe();
        let grace = tokio::time::Instant::now() + DIRECTORY_GRACE;
        let mut waiting = None;
        loop {
            changes.mark_unchanged();
            match command().await {
                Err(TasksError::Unsettled(body)) => {
                    if waiting.is_none() {
                        waiting = self.waiters.try_acquire().ok();
                    }
                    if waiting.is_none() {
                        return Err(TasksError::Rejected(body));
                    }
                    let now = tokio::time::Instant::now();
                    if now >= grace {
                        return Err(TasksError::Rejected(body));
                    }
                    let next_look = grace.min(now + RECHECK);
                    let _ = tokio::time::timeout_at(next_look, changes.changed()).await;
                }
                done => return done,
            }
        }
    }

    pub async fn get(&self, caller: &Caller, reference: TaskRef) -> Result<Task, TasksError> {
        let mut conn = self.pool.acquire().await?;
        let Some(task) = store::find(&mut *conn, reference.task_id).await? else {
            return Err(TasksError::not_found());
        };
        let role = match task.project_id {
            Some(project) => directory::role_in(&mut *conn, project, caller.user_id).await?,
            None => None,
        };
        match access::may_read(&mut conn, &task, caller.user_id, role).await? {
            true => Ok(task),
            false => Err(TasksError::not_found()),
        }
    }

    pub async fn list(&self, caller: &Caller, query: TaskQuery) -> Result<Page<Task>, TasksError> {
        let limit = page_size(query.limit)?;
        if query
            .q
            .as_deref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY)
        {
            return Err(ErrorBody::invalid("q", format!("at most {MAX_QUERY} characters")).into());
        }
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let reader = directory::reader(&self.pool, caller.user_id).await?;
        let fetched = store::list(&self.pool, reader, &query, after, i64::from(limit) + 1).await?;
        Ok(Page::cut(fetched, limit as usize, |task| {
            encode_cursor(task.id)
        }))
    }

    pub async fn update(&self, caller: &Caller, update: TaskUpdate) -> Result<Task, TasksError> {
        rules::check_patch(&update.patch)?;
        self.settled(|| self.try_update(caller, &update)).await
    }

    async fn try_update(&self, caller: &Caller, update: &TaskUpdate) -> Result<Task, TasksError> {
        let mut tx = postgres::begin_until(&self.pool, caller.deadline).await?;
        let current = locked_for(
            &mut tx,
            caller,
            update.task_id,
            "change",
            |task, user, role| task.may_write(user, role),
        )
        .await?;
        check_version(&current, update.expected_version)?;
        let (next, changes) = rules::apply_patch(&current, update.patch.clone(), Utc::now())?;
        if changes.is_empty() {
            return Ok(current);
        }
        access::check_placement(&mut tx, caller.user_id, Some(&current), &next).await?;
        let event_type = if next.status == TaskStatus::Complete && changes.contains_key("status") {
            events::TASK_COMPLETED
        } else {
            events::TASK_UPDATED
        };
        store::update(&mut tx, &next).await?;
        self.commit_event(tx, caller, event_type, &next, changes)
            .await?;
        Ok(next)
    }

    pub async fn complete(&self, caller: &Caller, reference: TaskRef) -> Result<Task, TasksError> {
        let mut tx = postgres::begin_until(&self.pool, caller.deadline).await?;
        let current = locked_for(
            &mut tx,
            caller,
            reference.task_id,
            "complete",
            |task, user, role| task.may_complete(user, role),
        )
        .await?;
        check_version(&current, reference.expected_version)?;
        let Some((next, changes)) = rules::complete(&current, Utc::now()) else {
            return Ok(current);
        };
        store::update(&mut tx, &next).await?;
        self.commit_event(tx, caller, events::TASK_COMPLETED, &next, changes)
            .await?;
        Ok(next)
    }

    pub async fn delete(&self, caller: &Caller, reference: TaskRef) -> Result<Task, TasksError> {
        let mut tx = postgres::begin_until(&self.pool, caller.deadline).await?;
        let current = locked_for(
            &mut tx,
            caller,
            reference.task_id,
            "delete",
            |task, user, role| task.may_write(user, role),
        )
        .await?;
        check_version(&current, reference.expected_version)?;
        store::delete(&mut tx, current.id).await?;
        self.commit_event(tx, caller, events::TASK_DELETED, &current, Changes::new())
            .await?;
        Ok(current)
    }

    async fn commit_event(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        caller: &Caller,
        event_type: &str,
        task: &Task,
        changes: Changes,
    ) -> Result<(), TasksError> {
        let (event, record) = event_record(caller, event_type, task, changes)?;
        outbox::enqueue_record(&mut tx, &record).await?;
        tx.commit().await?;
        self.committed(&event);
        Ok(())
    }

    fn committed(&self, event: &EventEnvelope) {
        // One line per event: DEBUG, so a production log level keeps the
        // hot path quiet (the relay's metrics count the events).
        tracing::debug!(
            service = "tasks",
            event_id = %event.event_id,
            task_id = ?event.task_id,
            event_type = event.event_type,
            "task event committed"
        );
        self.relay.wake();
    }
}

/// Takes `create`'s key for this transaction; the first response when the
/// key was used before with the same request, `None` when this is the first.
async fn first_response(
    tx: &mut PgConnection,
    create: &IdempotentCreate<'_>,
) -> Result<Option<serde_json::Value>, TasksError> {
    if !store::lock_key(&mut *tx, create.user, create.key).await? {
        return Err(ErrorBody::new(
            ErrorCode::IdempotencyKeyInFlight,
            "a request with this Idempotency-Key is still in progress",
        )
        .into());
    }
    match store::used_key(tx, create.user, create.key).await? {
        None => Ok(None),
        Some(used) if used.request != *create.request => Err(ErrorBody::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )
        .into()),
        // A claim without a response is from before claims were
        // transactional: its request never committed, so this one goes ahead.
        Some(used) => Ok(used.response),
    }
}

/// The event of a change, and its outbox row.
pub fn event_record(
    caller: &Caller,
    event_type: &str,
    task: &Task,
    changes: Changes,
) -> Result<(EventEnvelope, OutboxRecord), ErrorBody> {
    let payload = TaskEventPayload {
        task: task.clone(),
        changes,
    };
    let mut event = EventEnvelope::new(
        event_type,
        Some(task.id),
        Some(caller.user_id),
        caller.request_id.clone(),
        serde_json::to_value(payload).expect("a payload serializes"),
    );
    event.causation_id = caller.causation_id;
    let record = OutboxRecord::new(task_event_subject(event_type, task.id), &event)?;
    Ok((event, record))
}

/// The task, locked for this transaction, if `caller` may read it (else 404)
/// and may `verb` it (else 403).
async fn locked_for(
    tx: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    verb: &str,
    allowed: fn(&Participants<'_>, Uuid, Option<ProjectRole>) -> bool,
) -> Result<Task, TasksError> {
    let Some(task) = store::find_for_update(&mut *tx, id).await? else {
        return Err(TasksError::not_found());
    };
    let role = access::role_locked(tx, &task, caller.user_id).await?;
    if !access::may_read(tx, &task, caller.user_id, role).await? {
        return Err(TasksError::not_found());
    }
    match allowed(&Participants::of(&task), caller.user_id, role) {
        true => Ok(task),
        false => Err(TasksError::forbidden(verb)),
    }
}

/// Whether a new task's project and people are checked against the
/// directory, or taken as they are from the series it continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    Checked,
    Inherited,
}

fn check_version(task: &Task, expected: Option<i64>) -> Result<(), TasksError> {
    match expected {
        Some(expected) if expected != task.version => Err(TasksError::stale(task.version)),
        _ => Ok(()),
    }
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<Uuid, TasksError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| ErrorBody::refused("cursor", "is not a cursor this API gave out").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_named() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        let TasksError::Rejected(body) = decode_cursor("not a cursor").unwrap_err() else {
            panic!("expected a rejection")
        };
        assert_eq!(body.field.as_deref(), Some("cursor"));
    }
}
