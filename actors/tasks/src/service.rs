//! The tasks service's commands: each write commits the task and its event together
//! (the outbox), then wakes the relay.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use taskflow_runtime::access::Reader;
use taskflow_runtime::directory::{self, DirectoryUpdates};
use taskflow_runtime::outbox::{self, OutboxRecord, RelayHandle};
use taskflow_runtime::store::postgres;
use taskflow_schemas::access::Participants;
use taskflow_schemas::commands::{
    NewTask, NextOccurrence, Page, TaskQuery, TaskRef, TaskUpdate, page_size,
};
use taskflow_schemas::events::{self, Changes, TaskEventPayload};
use taskflow_schemas::limits;
use taskflow_schemas::project::ProjectRole;
use taskflow_schemas::subjects::{IDEMPOTENCY_KEY_HEADER, task_event_subject};
use taskflow_schemas::task::{Task, TaskStatus};
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope};
use uuid::Uuid;

use crate::access;
pub use crate::caller::Caller;
use crate::error::TasksError;
use crate::grace::DirectoryGrace;
use crate::group_commit::CreateGroups;
use crate::idempotency::first_response;
use crate::rules;
use crate::store::{self, IdempotentCreate};

/// The tasks service's commands, over its database and its relay.
pub struct TasksService {
    pool: PgPool,
    /// Where plain creates are written together.
    creates: CreateGroups,
    relay: RelayHandle,
    grace: DirectoryGrace,
}

impl TasksService {
    pub fn new(pool: PgPool, relay: RelayHandle, directory: DirectoryUpdates) -> Self {
        Self {
            creates: CreateGroups::new(pool.clone()),
            pool,
            relay,
            grace: DirectoryGrace::new(directory),
        }
    }

    pub async fn create(&self, caller: &Caller, new: NewTask) -> Result<Task, TasksError> {
        // What a retry's body is compared with, only when there is a key.
        let request = caller
            .idempotency_key
            .is_some()
            .then(|| serde_json::to_value(&new).expect("a new task serializes"));
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
        let request = Some(serde_json::to_value(&next).expect("an occurrence serializes"));
        let task = rules::next_occurrence(Uuid::now_v7(), &previous, next.due_date, Utc::now())?;
        self.create_once(caller, &task, request, Placement::Inherited)
            .await
    }

    /// Inserts `task`, once per `Idempotency-Key` when the caller gave one
    /// (`request` is what the key must come with again: present with a key).
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
        request: Option<serde_json::Value>,
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
        let response = key.map(|_| serde_json::to_value(task).expect("a task serializes"));
        let key =
            key.zip(request.as_ref())
                .zip(response.as_ref())
                .map(|((key, request), response)| IdempotentCreate {
                    user: caller.user_id,
                    key,
                    request,
                    response,
                });
        let (record, key) = (&record, key.as_ref());
        let created = self
            .grace
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
            .is_some_and(|q| q.chars().count() > limits::MAX_SEARCH)
        {
            return Err(ErrorBody::invalid(
                "q",
                format!("at most {} characters", limits::MAX_SEARCH),
            )
            .into());
        }
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let reader = Reader::of(&self.pool, caller.user_id).await?;
        let fetched = store::list(&self.pool, &reader, &query, after, i64::from(limit) + 1).await?;
        Ok(Page::cut(fetched, limit as usize, |task| {
            encode_cursor(task.id)
        }))
    }

    pub async fn update(&self, caller: &Caller, update: TaskUpdate) -> Result<Task, TasksError> {
        rules::check_patch(&update.patch)?;
        self.grace
            .settled(|| self.try_update(caller, &update))
            .await
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
