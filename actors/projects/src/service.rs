//! The projects service's commands: each change commits with its
//! `project.*` event (the outbox), then wakes the relay.

use chrono::{SubsecRound, Utc};
use sqlx::{PgConnection, PgPool};
use taskflow_runtime::bus::CommandContext;
use taskflow_runtime::outbox::{self, OutboxRecord, RelayHandle};
use taskflow_runtime::store::{cursor, postgres};
use taskflow_runtime::{directory, in_effect};
use taskflow_schemas::commands::{Page, Principal, page_size};
use taskflow_schemas::events::{
    PROJECT_CREATED, PROJECT_DELETED, PROJECT_MEMBER_ADDED, PROJECT_MEMBER_REMOVED,
    PROJECT_MEMBER_ROLE_CHANGED, PROJECT_UPDATED,
};
use taskflow_schemas::project::{
    MemberChange, MemberRef, MembersOf, NewProject, Project, ProjectEventPayload, ProjectMember,
    ProjectQuery, ProjectRef, ProjectRole, ProjectUpdate,
};
use taskflow_schemas::subjects::audit_subject;
use taskflow_schemas::{ErrorBody, EventEnvelope};
use uuid::Uuid;

use crate::rules::{self, Act};
use crate::store;

pub struct ProjectsService {
    pool: PgPool,
    relay: RelayHandle,
    jetstream: async_nats::jetstream::Context,
}

/// What an event about a project says beyond the project itself.
#[derive(Default)]
struct About {
    member: Option<ProjectMember>,
    previous_role: Option<ProjectRole>,
}

impl ProjectsService {
    pub fn new(
        pool: PgPool,
        relay: RelayHandle,
        jetstream: async_nats::jetstream::Context,
    ) -> Self {
        Self {
            pool,
            relay,
            jetstream,
        }
    }

    pub async fn create(
        &self,
        context: &CommandContext,
        user: Principal,
        new: NewProject,
    ) -> Result<Project, ErrorBody> {
        let now = Utc::now().trunc_subsecs(6);
        let project = Project {
            id: Uuid::now_v7(),
            name: rules::name(&new.name)?,
            description: rules::description(new.description)?,
            created_by: user.id,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let owner = ProjectMember {
            project_id: project.id,
            user_id: user.id,
            role: ProjectRole::Owner,
            added_at: now,
        };
        let mut tx = self.begin(context).await?;
        store::insert(&mut tx, &project).await.map_err(db)?;
        store::put_member(&mut tx, &owner).await.map_err(db)?;
        let about = About {
            member: Some(owner),
            ..About::default()
        };
        self.commit(tx, context, user, PROJECT_CREATED, &project, about)
            .await?;
        Ok(project)
    }

    /// `user` as an admin only if the directory says they are one now.
    pub async fn recheck(&self, user: Principal) -> Result<Principal, ErrorBody> {
        directory::recheck(&self.pool, user).await.map_err(db)
    }

    pub async fn list(
        &self,
        user: Principal,
        query: ProjectQuery,
    ) -> Result<Page<Project>, ErrorBody> {
        let limit = page_size(query.limit)?;
        let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
        let reader = (!user.is_admin()).then_some(user.id);
        let listed = store::list(&self.pool, reader, after, i64::from(limit) + 1)
            .await
            .map_err(db)?;
        Ok(Page::cut(listed, limit as usize, |project| {
            cursor::encode(project.created_at, project.id)
        }))
    }

    pub async fn get(&self, user: Principal, reference: ProjectRef) -> Result<Project, ErrorBody> {
        let mut connection = self.pool.acquire().await.map_err(db)?;
        let role = store::role_of(&mut connection, reference.project_id, user.id)
            .await
            .map_err(db)?;
        rules::allow(role, user.is_admin(), Act::Read)?;
        store::find(&self.pool, reference.project_id)
            .await
            .map_err(db)?
            .ok_or_else(rules::not_found)
    }

    pub async fn members(
        &self,
        user: Principal,
        of: MembersOf,
    ) -> Result<Page<ProjectMember>, ErrorBody> {
        let limit = page_size(of.limit)?;
        let after = of.cursor.as_deref().map(cursor::decode).transpose()?;
        let project_id = of.project_id;
        self.get(user, ProjectRef { project_id }).await?;
        let listed = store::members(&self.pool, project_id, after, i64::from(limit) + 1)
            .await
            .map_err(db)?;
        Ok(Page::cut(listed, limit as usize, |member| {
            cursor::encode(member.added_at, member.user_id)
        }))
    }

    pub async fn update(
        &self,
        context: &CommandContext,
        user: Principal,
        update: ProjectUpdate,
    ) -> Result<Project, ErrorBody> {
        let name = update.patch.name.as_deref().map(rules::name).transpose()?;
        let description = update
            .patch
            .description
            .map(rules::description)
            .transpose()?;
        let (mut tx, mut project) = self.managed(context, user, update.project_id).await?;
        let before = project.clone();
        if let Some(name) = name {
            project.name = name;
        }
        if let Some(description) = description {
            project.description = description;
        }
        if project == before {
            return Ok(project);
        }
        project.version += 1;
        project.updated_at = Utc::now().trunc_subsecs(6);
        store::save(&mut tx, &project).await.map_err(db)?;
        self.commit(
            tx,
            context,
            user,
            PROJECT_UPDATED,
            &project,
            About::default(),
        )
        .await?;
        Ok(project)
    }

    pub async fn delete(
        &self,
        context: &CommandContext,
        user: Principal,
        reference: ProjectRef,
    ) -> Result<Project, ErrorBody> {
        let (mut tx, mut project) = self.managed(context, user, reference.project_id).await?;
        store::delete(&mut tx, project.id).await.map_err(db)?;
        project.version += 1;
        self.commit(
            tx,
            context,
            user,
            PROJECT_DELETED,
            &project,
            About::default(),
        )
        .await?;
        Ok(project)
    }

    /// Adds `change.member`, or changes the role of one already in; a
    /// change that leaves the project without an owner is refused (409).
    pub async fn add_member(
        &self,
        context: &CommandContext,
        user: Principal,
        change: MemberChange,
    ) -> Result<ProjectMember, ErrorBody> {
        let (mut tx, project) = self.managed(context, user, change.project_id).await?;
        let wanted = change.member;
        let unknown = directory::unknown_users(&mut *tx, &[wanted.user_id])
            .await
            .map_err(db)?;
        if !unknown.is_empty() {
            return Err(ErrorBody::refused("user_id", "no such user"));
        }
        let current = store::member(&mut tx, project.id, wanted.user_id)
            .await
            .map_err(db)?;
        let member = ProjectMember {
            project_id: project.id,
            user_id: wanted.user_id,
            role: wanted.role,
            added_at: current
                .as_ref()
                .map_or_else(|| Utc::now().trunc_subsecs(6), |member| member.added_at),
        };
        let event = match &current {
            Some(current) if current.role == wanted.role => {
                drop(tx);
                self.in_effect(context).await?;
                return Ok(member);
            }
            Some(current) => {
                if current.role == ProjectRole::Owner {
                    keeps_an_owner(&mut tx, project.id).await?;
                }
                PROJECT_MEMBER_ROLE_CHANGED
            }
            None => PROJECT_MEMBER_ADDED,
        };
        store::put_member(&mut tx, &member).await.map_err(db)?;
        let project = counted(&mut tx, project).await?;
        let about = About {
            member: Some(member.clone()),
            previous_role: current.map(|current| current.role),
        };
        self.commit(tx, context, user, event, &project, about)
            .await?;
        self.in_effect(context).await?;
        Ok(member)
    }

    /// Removes a member (owners remove anyone; a member may leave); the
    /// last owner stays (409).
    pub async fn remove_member(
        &self,
        context: &CommandContext,
        user: Principal,
        reference: MemberRef,
    ) -> Result<ProjectMember, ErrorBody> {
        let mut tx = self.begin(context).await?;
        let project = store::locked(&mut tx, reference.project_id)
            .await
            .map_err(db)?
            .ok_or_else(rules::not_found)?;
        let role = store::role_of(&mut tx, project.id, user.id)
            .await
            .map_err(db)?;
        if reference.user_id != user.id || role.is_none() {
            rules::allow(role, user.is_admin(), Act::Manage)?;
        }
        let Some(member) = store::member(&mut tx, project.id, reference.user_id)
            .await
            .map_err(db)?
        else {
            // Maybe removed by a call that answered 503: gone once in
            // effect everywhere.
            drop(tx);
            self.in_effect(context).await?;
            return Err(ErrorBody::new(
                taskflow_schemas::ErrorCode::NotFound,
                "no such member",
            ));
        };
        if member.role == ProjectRole::Owner {
            keeps_an_owner(&mut tx, project.id).await?;
        }
        store::remove_member(&mut tx, project.id, member.user_id)
            .await
            .map_err(db)?;
        let project = counted(&mut tx, project).await?;
        let about = About {
            member: Some(member.clone()),
            ..About::default()
        };
        self.commit(tx, context, user, PROJECT_MEMBER_REMOVED, &project, about)
            .await?;
        self.in_effect(context).await?;
        Ok(member)
    }

    /// Waits until every service decides access with this service's
    /// changes so far, within the caller's deadline and
    /// [`in_effect::WITHIN`]; past it, a 503 the client retries (the change
    /// is saved: the retry finds it and waits again).
    async fn in_effect(&self, context: &CommandContext) -> Result<(), ErrorBody> {
        let until = in_effect::until(context.deadline, in_effect::WITHIN);
        match in_effect::everywhere(&self.pool, &self.jetstream, in_effect::DIRECTORIES, until)
            .await
        {
            Ok(()) => Ok(()),
            Err(in_effect::NotInEffect::Database(error)) => Err(db(error)),
            Err(in_effect::NotInEffect::TimedOut) => {
                tracing::warn!(
                    service = "projects",
                    "a membership change is saved but not yet applied by every service"
                );
                Err(in_effect::not_yet_body())
            }
        }
    }

    async fn begin(
        &self,
        context: &CommandContext,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ErrorBody> {
        postgres::begin_until(&self.pool, context.deadline)
            .await
            .map_err(db)
    }

    /// The project, locked for a change `user` must be an owner to make.
    async fn managed(
        &self,
        context: &CommandContext,
        user: Principal,
        project: Uuid,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Project), ErrorBody> {
        let mut tx = self.begin(context).await?;
        let found = store::locked(&mut tx, project).await.map_err(db)?;
        let role = store::role_of(&mut tx, project, user.id)
            .await
            .map_err(db)?;
        let Some(project) = found else {
            return Err(rules::not_found());
        };
        rules::allow(role, user.is_admin(), Act::Manage)?;
        Ok((tx, project))
    }

    /// Adds the event to the outbox, commits, wakes the relay.
    async fn commit(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        context: &CommandContext,
        user: Principal,
        event_type: &str,
        project: &Project,
        about: About,
    ) -> Result<(), ErrorBody> {
        let payload = ProjectEventPayload {
            project: project.clone(),
            member: about.member,
            previous_role: about.previous_role,
        };
        let mut event = EventEnvelope::new(
            event_type,
            None,
            Some(user.id),
            context.request_id.clone(),
            serde_json::to_value(payload).expect("a payload serializes"),
        );
        event.causation_id = context.causation_id;
        let record = OutboxRecord::new(audit_subject(event_type), &event)?;
        outbox::enqueue_record(&mut tx, &record).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.relay.wake();
        Ok(())
    }
}

/// The locked `project` with its version counted up for a change of its
/// members: every service's directory orders a project's membership
/// changes by this version, which the stream's sequences cannot do (a
/// server that lost its tail gives them out again).
async fn counted(tx: &mut PgConnection, mut project: Project) -> Result<Project, ErrorBody> {
    project.version += 1;
    project.updated_at = Utc::now().trunc_subsecs(6);
    store::save(tx, &project).await.map_err(db)?;
    Ok(project)
}

/// Refuses (409) a change to an owner when they are the only one.
async fn keeps_an_owner(tx: &mut PgConnection, project: Uuid) -> Result<(), ErrorBody> {
    if store::owners(tx, project).await.map_err(db)? <= 1 {
        return Err(rules::last_owner());
    }
    Ok(())
}

fn db(error: sqlx::Error) -> ErrorBody {
    postgres::error_body("projects", &error)
}
